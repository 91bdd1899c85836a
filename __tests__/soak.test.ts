import { describeSoak, runSoak, soakProblems } from './helpers/soak';

// The short soak; `npm run soak` runs the same for minutes.
describe('the soak: random connect/abort cycles over every helper, body type and host', () => {
  it('leaves nothing behind, answers every request, and runs every onClose exactly once', async () => {
    const report = await runSoak({ durationMs: 8000, concurrency: 40 });
    process.stdout.write(`\n${describeSoak(report)}\n`);
    expect(report.cycles).toBeGreaterThan(300);
    expect(report.http2Cycles).toBeGreaterThan(50);
    expect(soakProblems(report)).toEqual([]);
  }, 60_000);
});

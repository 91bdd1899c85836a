import { describeSoak, runSoak, soakProblems } from './helpers/soak';

// The short soak; `npm run soak` runs the same for minutes.
describe('the soak: random connect/abort cycles over every helper, body type and host', () => {
  it('leaves nothing behind, answers every request, and runs every onClose exactly once', async () => {
    // A count of cycles, not a duration: a slow CI machine takes longer rather than testing less.
    const enough = { cycles: 300, http2Cycles: 60 };
    const report = await runSoak({ durationMs: 60_000, concurrency: 40, enough });
    process.stdout.write(`\n${describeSoak(report)}\n`);
    expect(report.cycles).toBeGreaterThanOrEqual(enough.cycles);
    expect(report.http2Cycles).toBeGreaterThanOrEqual(enough.http2Cycles);
    expect(soakProblems(report)).toEqual([]);
  }, 120_000);
});

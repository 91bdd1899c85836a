/**
 * `npm run soak`: the soak of `__tests__/helpers/soak.ts` for minutes instead of seconds.
 * SOAK_SECONDS (default 180), SOAK_CLIENTS (default 200) and SOAK_SEED (to replay a run) tune it.
 */
import { describeSoak, runSoak, soakProblems } from '../__tests__/helpers/soak';

const seconds = Number(process.env.SOAK_SECONDS ?? 180);
const clients = Number(process.env.SOAK_CLIENTS ?? 200);
const seed = process.env.SOAK_SEED === undefined ? undefined : Number(process.env.SOAK_SEED);

const report = await runSoak({ durationMs: seconds * 1000, concurrency: clients, seed, log: console.log });
console.log(describeSoak(report));
const problems = soakProblems(report);
if (problems.length > 0) {
  console.error(`\nsoak FAILED:\n- ${problems.join('\n- ')}`);
  process.exitCode = 1;
} else {
  console.log('\nsoak passed: every resource back to its baseline');
}

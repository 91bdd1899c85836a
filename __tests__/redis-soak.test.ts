import { requireComponent } from './helpers/components';
import { closeClients, findRedisServer } from './helpers/redis';
import { describeRedisSoak, FAULTS, runRedisSoak } from './helpers/redis-soak';

const ownRedis = requireComponent(
  'redis-server (to break one of its own)',
  findRedisServer() !== undefined,
  'REQUIRE_REDIS',
);

afterAll(closeClients);

/**
 * The short soak, in `npm test`; `npm run soak:redis` runs the same for minutes (REDIS_SOAK_SECONDS, default
 * 180 there; REDIS_SOAK_SEED replays a run's order of faults, REDIS_SOAK_CLIENTS clients per process and topic).
 */
const seconds = Number(process.env.REDIS_SOAK_SECONDS ?? 16);
const seed = process.env.REDIS_SOAK_SEED === undefined ? undefined : Number(process.env.REDIS_SOAK_SEED);

ownRedis.describe(
  `the Redis fault soak: two processes, a fault every 1.6 s for ${seconds} s${ownRedis.label}`,
  () => {
    it(
      'leaves every client with each event once, in order, or a reset naming why; and live once the faults stop',
      async () => {
        const report = await runRedisSoak({
          durationMs: seconds * 1000,
          faultEveryMs: 1600,
          clientsPerProcess: Number(process.env.REDIS_SOAK_CLIENTS ?? 2),
          seed,
        });
        process.stdout.write(`\n${describeRedisSoak(report)}\n`);
        expect(FAULTS.filter((fault) => report.faults[fault] === 0)).toEqual([]); // every kind, at least once
        expect(report.problems).toEqual([]);
        expect(report.liveAfterFaults).toBe(true);
        expect(report.delivered).toBeGreaterThan(0);
      },
      (seconds + 60) * 1000,
    );
  },
);

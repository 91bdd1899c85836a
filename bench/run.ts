/**
 * `npm run bench [-- flags]`: express-streaming beside its baselines (and peers), in one run, each
 * figure a ratio to a baseline measured in the same run. Variants take turns in interleaved rounds, so
 * drift of the shared machine hits them alike; tables show medians and the spread of per-round ratios.
 *
 *   --only=a,b       sections to run (default: broadcast, memory, stream, burst, coalesce; with the
 *                    flags below, theirs too): broadcast memory stream burst coalesce idle pair
 *                    publish scaleout storm
 *   --peers          better-sse, sse-channel and hono beside ours (broadcast, memory)
 *   --idle           the idle section: up to 20,000 idle streams
 *   --redis          the Redis sections (pair publish scaleout storm) on a redis-server of the run's own
 *   --all            --peers --idle --redis
 *   --scale=x        sizes × x (BENCH_SCALE): 0.2 for a quick look, 2 for steadier figures
 *   --coalesce-ms=N  the hub's coalesceMs in the coalesce section (BENCH_COALESCE_MS; default 10; 0: none)
 *
 * Load goes to 127.0.0.1 only; every loop and wait is bounded in count and time; every child (and the
 * run's Redis) is stopped at the end, on failure, on Ctrl-C or when the watchdog fires.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { broadcastSection, burstSection, coalesceSection, type SectionContext } from './broadcast';
import { BENCH_DIR, firstLine, killAll, log, reportNotes, reportText } from './harness';
import { BenchRedis } from './redis';
import {
  pairSection,
  publishSection,
  type RedisContext,
  scaleoutSection,
  stormSection,
} from './redis-sections';
import { idleSection, memorySection, streamSection } from './resources';

const { values: flags } = parseArgs({
  options: {
    only: { type: 'string' },
    peers: { type: 'boolean', default: false },
    idle: { type: 'boolean', default: false },
    redis: { type: 'boolean', default: false },
    all: { type: 'boolean', default: false },
    scale: { type: 'string', default: process.env.BENCH_SCALE ?? '1' },
    'coalesce-ms': { type: 'string', default: process.env.BENCH_COALESCE_MS ?? '10' },
  },
});

/** Each section: what runs it, and what it may take at scale 1 (the watchdog allows the sum picked). */
const SECTIONS: Record<string, { run: (context: SectionContext) => Promise<void>; budgetMs: number }> = {
  broadcast: { run: broadcastSection, budgetMs: 900_000 },
  memory: { run: memorySection, budgetMs: 90_000 },
  stream: { run: streamSection, budgetMs: 90_000 },
  burst: { run: burstSection, budgetMs: 120_000 },
  coalesce: { run: coalesceSection, budgetMs: 180_000 },
  idle: { run: idleSection, budgetMs: 300_000 },
};
const REDIS_SECTIONS: Record<string, { run: (context: RedisContext) => Promise<void>; budgetMs: number }> = {
  pair: { run: pairSection, budgetMs: 300_000 },
  publish: { run: publishSection, budgetMs: 240_000 },
  scaleout: { run: scaleoutSection, budgetMs: 240_000 },
  storm: { run: stormSection, budgetMs: 180_000 },
};

const scale = Number(flags.scale) || 1;
const context: SectionContext = {
  scale,
  peers: flags.peers || flags.all,
  coalesceMs: Math.max(0, Number(flags['coalesce-ms']) || 0),
};
const picked = flags.only
  ? flags.only.split(',').filter(Boolean)
  : [
      ...['broadcast', 'memory', 'stream', 'burst', 'coalesce'],
      ...(flags.idle || flags.all ? ['idle'] : []),
      ...(flags.redis || flags.all ? Object.keys(REDIS_SECTIONS) : []),
    ];
const unknown = picked.filter((name) => !SECTIONS[name] && !REDIS_SECTIONS[name]);
if (unknown.length > 0) {
  log(
    `unknown section(s): ${unknown.join(', ')}; known: ${[...Object.keys(SECTIONS), ...Object.keys(REDIS_SECTIONS)].join(' ')}`,
  );
  process.exit(2);
}
const budgetMs = picked.reduce((sum, name) => sum + (SECTIONS[name] ?? REDIS_SECTIONS[name])!.budgetMs, 0);
const startedAt = Date.now();
let redis: BenchRedis | undefined;

function printReport(partial?: string): void {
  const cpus = os.cpus();
  const head = [
    `express-streaming benchmarks${partial ? ` (PARTIAL: ${partial})` : ''}`,
    `Node ${process.version}, ${os.platform()} ${os.arch()}, ${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} at the end`,
    `sections: ${picked.join(' ')}; peers ${context.peers ? 'on' : 'off'}; scale ${scale}; coalesce-ms ${context.coalesceMs}; ${((Date.now() - startedAt) / 1000).toFixed(0)} s`,
    '',
  ];
  process.stdout.write(`\n${head.join('\n')}\n${reportText()}`);
}

async function main(): Promise<void> {
  if (!existsSync(`${BENCH_DIR}../dist/index.js`)) {
    log('dist/ is missing: building it once with `npx tsup`');
    execFileSync('npx', ['tsup'], { cwd: `${BENCH_DIR}..`, stdio: 'inherit' });
  }
  const watchdog = setTimeout(() => {
    log(`watchdog: past ${budgetMs / 1000} s; stopping the children and printing what there is`);
    killAll();
    printReport('stopped by the watchdog');
    void redis?.stop().finally(() => process.exit(1));
  }, budgetMs * Math.max(1, scale));
  watchdog.unref();
  for (const name of picked) {
    const section = SECTIONS[name];
    if (section) {
      await section.run(context);
      continue;
    }
    if (redis === undefined) {
      const started = await BenchRedis.start().catch((error: unknown) => firstLine(error));
      if (typeof started === 'string') {
        reportNotes.push(`the Redis sections were skipped: ${started}`);
        log(`Redis sections skipped: ${started}`);
        break;
      }
      redis = started;
      log(`the run's own Redis: ${redis.url}`);
    }
    await REDIS_SECTIONS[name]!.run({ ...context, redis });
  }
  clearTimeout(watchdog);
  printReport();
}

main()
  .catch((error: unknown) => {
    log(`bench failed: ${(error as Error).stack ?? String(error)}`);
    printReport('the bench failed');
    process.exitCode = 1;
  })
  .finally(async () => {
    killAll();
    await redis?.stop();
    // the Redis probe's and children's handles are gone; nothing should keep the run alive
    setTimeout(() => process.exit(), 1000).unref();
  });

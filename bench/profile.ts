/**
 * `npm run bench:profile [-- targets] [--clients=N]`: CPU profiles (node:inspector, 200 µs sampling) of
 * the server children's measured phases, summarised as shares by where the code lives, the top frames
 * by self time, and the library's own frames. Profiling slows everything a little: read shares.
 * Targets (default: hub framed-socket):
 *   <variant>            a broadcast variant (hub, framed-socket, raw-http, es-express, …): 3 × 150 events
 *   coalesce:<ms>        the hub with that coalesceMs at 2,000 events/s (the coalesce section's pace)
 *   stream:<variant>     es-stream, pipe or pipeline: 3 bodies of 200 MiB
 *   pair                 both processes of the Redis pair (1,000 clients split between them)
 *   publish:<variant>    redis-ioredis or redis-node-redis publishing 3 × 5,000 events, 128 in flight
 * The Redis targets run on a redis-server of the run's own. Profiles are written to the OS temp folder.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { firstLine, killAll, log, median, table } from './harness';
import { BenchRedis } from './redis';
import { STREAM_BYTES, StreamRig } from './resources';
import { type Pace, Rig, type RigOptions } from './rigs';

interface Profile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

const OUT_DIR = path.join(os.tmpdir(), 'express-streaming-bench-profiles');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { clients: { type: 'string', default: '1000' }, top: { type: 'string', default: '18' } },
});
const CLIENTS = Number(values.clients);
const TOP = Number(values.top);

function where(url: string, name: string): string {
  if (url.includes('/dist/')) return 'express-streaming (dist)';
  if (url.includes('/node_modules/')) return url.split('/node_modules/').pop()!.split('/')[0]!;
  if (url.includes('/bench/children/')) return 'the bench child';
  if (name === '(garbage collector)') return 'GC';
  if (name.startsWith('(')) return name;
  return url === '' ? 'native / builtins' : 'Node internals';
}

function summarise(file: string): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  const buckets = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const name = functionName || '(anonymous)';
    if (name === '(idle)') return;
    const delta = profile.timeDeltas[i] ?? 0;
    total += delta;
    const short = url
      ? `${url.replace(/^.*\/(node_modules\/|dist\/|children\/)/, '$1').replace(/^node:/, '')}:${lineNumber + 1}`
      : '';
    const key = `${name}  ${short}`;
    self.set(key, (self.get(key) ?? 0) + delta);
    buckets.set(where(url, name), (buckets.get(where(url, name)) ?? 0) + delta);
  });
  const pct = (value: number) => `${((100 * value) / total).toFixed(1)}%`;
  const rows = (entries: Array<[string, number]>, limit: number) =>
    entries
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([key, value]) => [pct(value), key]);
  const ours = [...self].filter(([key]) => key.includes(' dist/'));
  return [
    table([['share', 'where'], ...rows([...buckets], 20)]),
    table([['self', 'top frames'], ...rows([...self], TOP)]),
    table([['self', 'express-streaming frames'], ...rows(ours, TOP)]),
    `(${(total / 1000).toFixed(0)} ms of non-idle samples)`,
  ].join('\n\n');
}

/** A rig with profiled servers: `phases` phases of `pace`, then each server's profile summarised. */
async function profileRig(
  name: string,
  options: Omit<RigOptions, 'profileFiles'>,
  pace: Pace | { window: number },
  phases = 3,
) {
  const files = options.variants.map((_, i) =>
    path.join(OUT_DIR, `${name.replace(/[^\w-]/g, '_')}-${i + 1}.cpuprofile`),
  );
  const rig = new Rig({ ...options, profileFiles: files });
  try {
    await rig.open();
    const cpu: number[] = [];
    for (let i = 0; i < phases; i++) {
      const phase =
        'window' in pace ? await rig.pipeline(5000, pace.window, 30_000) : await rig.phase(pace, 60_000);
      if (!phase.ok) throw new Error(phase.reason);
      cpu.push('cpuUsPerEvent' in phase ? phase.cpuUsPerEvent : phase.cpuUsPerPublish);
    }
    await rig.dumpProfiles();
    files.forEach((file, i) => {
      const server = files.length > 1 ? `, process ${i + 1} (${options.variants[i]})` : '';
      process.stdout.write(
        `\n== ${name}${server}, ${options.clients} clients (${median(cpu).toFixed(2)} µs per ${'window' in pace ? 'publish' : 'delivered event'} while profiled)\n${summarise(file)}\n`,
      );
    });
  } catch (error) {
    log(`${name}: FAILED (${firstLine(error)})`);
  } finally {
    rig.close();
  }
}

async function main(): Promise<void> {
  mkdirSync(OUT_DIR, { recursive: true });
  const targets = positionals.length > 0 ? positionals : ['hub', 'framed-socket'];
  let redis: BenchRedis | undefined;
  const redisEnv = async () => {
    if (redis === undefined) {
      const started = await BenchRedis.start();
      if (typeof started === 'string') throw new Error(started);
      redis = started;
    }
    return { REDIS_URL: redis.url, BENCH_REDIS_PREFIX: BenchRedis.prefix() };
  };
  try {
    for (const target of targets) {
      const [kind, arg] = target.includes(':') ? target.split(':') : [target, undefined];
      if (kind === 'stream') {
        const file = path.join(OUT_DIR, `stream-${arg}.cpuprofile`);
        const rig = new StreamRig(arg!, file);
        try {
          await rig.open();
          const cpu = [];
          for (let i = 0; i < 3; i++) cpu.push((await rig.get(STREAM_BYTES)).cpuUsPerMiB);
          await rig.dumpProfile();
          process.stdout.write(
            `\n== stream ${arg} (${median(cpu).toFixed(0)} µs/MiB while profiled)\n${summarise(file)}\n`,
          );
        } finally {
          rig.close();
        }
      } else if (kind === 'coalesce') {
        const flags = [`coalesce=${arg}`];
        await profileRig(
          target,
          { variants: ['hub'], clients: CLIENTS, flags, warmup: 50 },
          { count: 4000, ratePerSec: 2000, durationMs: 2000 },
        );
      } else if (kind === 'pair') {
        const variants = ['redis-ioredis', 'redis-node-redis'];
        await profileRig(
          target,
          { variants, clients: CLIENTS, env: await redisEnv(), warmup: 50 },
          { count: 150 },
        );
      } else if (kind === 'publish') {
        await profileRig(
          target,
          { variants: [arg!], clients: 2, env: await redisEnv(), warmup: 200 },
          { window: 128 },
        );
      } else {
        await profileRig(target, { variants: [kind!], clients: CLIENTS, warmup: 50 }, { count: 150 });
      }
    }
  } finally {
    killAll();
    await (redis as BenchRedis | undefined)?.stop();
  }
  process.stdout.write(`\nProfiles: ${OUT_DIR}\n`);
}

main().catch((error: unknown) => {
  log(`profile failed: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
});

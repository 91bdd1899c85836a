/**
 * `npm run bench:profile`: CPU profiles (node:inspector, 200 µs sampling) of the measured phase of a few
 * benchmark variants, summarised as the top frames by self time and as shares by where the code lives.
 * Profiling slows everything down a little: read shares, not absolute numbers. Profiles are written to
 * the OS temp directory. BENCH_PROFILE_HUB=hub,raw-http adds the hub section's broadcast (1,000 clients,
 * or BENCH_PROFILE_HUB_CLIENTS); BENCH_PROFILE_SSE= and BENCH_PROFILE_STREAM= (empty) leave the others out.
 * BENCH_PROFILE_REDIS=pair,redis-ioredis,redis-node-redis adds the Redis section's processes (a Redis at
 * REDIS_URL, keys under a prefix of the run, deleted after): `pair` both servers of its broadcast
 * (1,000 clients split between them), a store name a publisher with 128 publishes in flight.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { firstLine, log, median, table } from './harness';
import { HubRig } from './hub-bench';
import { REDIS_URL, RedisPairRig, RedisProbe, redisEnv, runPrefix } from './redis-bench';
import { runBroadcast } from './sse-bench';
import { runThroughput, summary } from './stream-bench';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const OUT_DIR = path.join(os.tmpdir(), 'express-streaming-bench-profiles');
const TOP = Number(process.env.BENCH_PROFILE_TOP ?? '18');

function where(url: string, name: string): string {
  if (url.includes('/dist/redis.')) return 'express-streaming/redis (dist)';
  // the build splits code both entry points share into chunks
  if (url.includes('/dist/index.') || url.includes('/dist/chunk-')) return 'express-streaming (dist)';
  if (url.includes('/node_modules/')) return url.split('/node_modules/').pop()!.split('/')[0]!;
  if (url.startsWith('node:') || url === '') {
    if (name === '(garbage collector)') return 'GC';
    if (name === '(program)' || name === '(idle)' || name === '(root)') return name;
    return url === '' ? 'native / builtins' : 'Node internals';
  }
  return path.basename(url);
}

function summarise(file: string): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  const buckets = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    const node = byId.get(id);
    if (!node) return;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName || '(anonymous)';
    if (name === '(idle)') return;
    total += delta;
    const short = url
      ? `${url.replace(/^.*\/(node_modules\/|dist\/)/, '$1').replace(/^node:/, '')}:${lineNumber + 1}`
      : '';
    const key = `${name}  ${short}`;
    self.set(key, (self.get(key) ?? 0) + delta);
    const bucket = where(url, name);
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + delta);
  });
  const pct = (value: number) => `${((100 * value) / total).toFixed(1)}%`;
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP);
  const rows = [['self', 'frame'], ...top.map(([key, value]) => [pct(value), key])];
  const shareRows = [
    ['share', 'where'],
    ...[...buckets.entries()].sort((a, b) => b[1] - a[1]).map(([key, value]) => [pct(value), key]),
  ];
  return `${table(shareRows)}\n\n${table(rows)}\n(${(total / 1000).toFixed(0)} ms of non-idle samples)`;
}

async function main(): Promise<void> {
  mkdirSync(OUT_DIR, { recursive: true });
  const broadcasts = (process.env.BENCH_PROFILE_SSE ?? 'es-express,es-http,raw-express')
    .split(',')
    .filter(Boolean);
  for (const variant of broadcasts) {
    const file = path.join(OUT_DIR, `sse-${variant}.cpuprofile`);
    const result = await runBroadcast(variant, 1000, 150, {
      warmup: 20,
      rounds: 1,
      timeLimitMs: 40_000,
      profileFile: file,
    });
    if (!result.ok) {
      log(`${variant}: FAILED (${result.reason})`);
      continue;
    }
    process.stdout.write(
      `\n== SSE broadcast, ${variant}, 1000 clients × 150 events (${result.phases[0]!.cpuUsPerEvent.toFixed(2)} µs/event while profiled)\n${summarise(file)}\n`,
    );
  }
  const streams = (process.env.BENCH_PROFILE_STREAM ?? 'es-stream,pipe').split(',').filter(Boolean);
  for (const variant of streams) {
    const file = path.join(OUT_DIR, `stream-${variant}.cpuprofile`);
    const result = await runThroughput(variant, 200 * 1024 * 1024, 3, 30_000, file);
    if (!result.ok) {
      log(`${variant}: FAILED (${result.reason})`);
      continue;
    }
    process.stdout.write(
      `\n== Streaming 200 MiB, ${variant} (${summary(result).cpuUsPerMiB!.toFixed(0)} µs/MiB while profiled)\n${summarise(file)}\n`,
    );
  }
  // Off unless asked for (BENCH_PROFILE_HUB=hub,raw-http): the hub's fan-out at full speed.
  const hubs = (process.env.BENCH_PROFILE_HUB ?? '').split(',').filter(Boolean);
  const hubClients = Number(process.env.BENCH_PROFILE_HUB_CLIENTS ?? '1000');
  for (const variant of hubs) {
    const file = path.join(OUT_DIR, `hub-${variant}.cpuprofile`);
    const cpu = await profileHub(variant, hubClients, 150, 3, file);
    if (cpu === undefined) continue;
    process.stdout.write(
      `\n== Hub broadcast, ${variant}, ${hubClients} clients × 3 × 150 events, one per tick (${cpu.toFixed(2)} µs/event while profiled)\n${summarise(file)}\n`,
    );
  }
  // Off unless asked for (BENCH_PROFILE_REDIS=pair,redis-ioredis): the Redis store's processes.
  const redisTargets = (process.env.BENCH_PROFILE_REDIS ?? '').split(',').filter(Boolean);
  if (redisTargets.length > 0) await profileRedis(redisTargets);
  process.stdout.write(`\nProfiles: ${OUT_DIR}\n`);
}

/** The Redis section's processes, profiled: the broadcast pair, or a publisher with 128 in flight. */
async function profileRedis(targets: string[]): Promise<void> {
  const probe = await RedisProbe.connect(REDIS_URL);
  if (typeof probe === 'string') {
    log(`Redis profiles skipped: ${probe}`);
    return;
  }
  const prefixes: string[] = [];
  try {
    for (const target of targets) {
      const prefix = runPrefix();
      prefixes.push(prefix);
      if (target === 'pair') await profilePair(prefix, 1000, 150, 3);
      else await profilePublisher(target, prefix, 5000, 128, 3);
    }
  } finally {
    await probe.forget(prefixes).catch(() => {});
    probe.close();
  }
}

/** Both servers of the Redis pair over `phases` full-speed phases; each summarised on its own. */
async function profilePair(prefix: string, clients: number, events: number, phases: number): Promise<void> {
  const files = {
    publisher: path.join(OUT_DIR, 'redis-pair-publisher.cpuprofile'),
    follower: path.join(OUT_DIR, 'redis-pair-follower.cpuprofile'),
  };
  const rig = new RedisPairRig(clients, prefix);
  try {
    await rig.open({ warmup: 50, profileFiles: files });
    const split: Array<[number, number]> = [];
    for (let i = 0; i < phases; i++) {
      const phase = await rig.phase({ count: events }, 60_000);
      if (!phase.ok) throw new Error(phase.reason);
      split.push([phase.publisherUsPerEvent!, phase.followerUsPerEvent!]);
    }
    await rig.dumpProfiles();
    for (const [i, role] of (['publisher', 'follower'] as const).entries()) {
      process.stdout.write(
        `\n== Redis pair, ${role} (${role === 'publisher' ? 'ioredis' : 'node-redis'}), ${clients / 2} of ${clients} clients × ${phases} × ${events} events (${median(split.map((s) => s[i]!)).toFixed(2)} µs per delivered event of all ${clients} while profiled)\n${summarise(files[role])}\n`,
      );
    }
  } catch (error) {
    log(`redis pair: FAILED (${firstLine(error)})`);
  } finally {
    rig.close();
  }
}

/** One publisher (2 subscribers of its own) with `window` publishes in flight, over `phases` phases. */
async function profilePublisher(
  variant: string,
  prefix: string,
  count: number,
  window: number,
  phases: number,
): Promise<void> {
  const file = path.join(OUT_DIR, `redis-publish-${variant}.cpuprofile`);
  const rig = new HubRig(variant, 2);
  try {
    await rig.open({ warmup: 200, profileFile: file, env: redisEnv(prefix) });
    const cpu: number[] = [];
    for (let i = 0; i < phases; i++) {
      const phase = await rig.pipeline(count, window, 30_000);
      if (!phase.ok) throw new Error(phase.reason);
      cpu.push(phase.cpuUsPerPublish);
    }
    await rig.dumpProfile();
    process.stdout.write(
      `\n== Publishing, ${variant}, ${window} in flight, ${phases} × ${count} publishes (${median(cpu).toFixed(1)} µs/publish while profiled)\n${summarise(file)}\n`,
    );
  } catch (error) {
    log(`publish ${variant}: FAILED (${firstLine(error)})`);
  } finally {
    rig.close();
  }
}

/** `phases` throughput phases of one hub-section variant, profiled; the median CPU µs per delivered event. */
async function profileHub(
  variant: string,
  clients: number,
  events: number,
  phases: number,
  file: string,
): Promise<number | undefined> {
  const rig = new HubRig(variant, clients);
  try {
    await rig.open({ warmup: 50, profileFile: file });
    const cpu: number[] = [];
    for (let i = 0; i < phases; i++) {
      const phase = await rig.phase({ count: events }, 60_000);
      if (!phase.ok) throw new Error(phase.reason);
      cpu.push(phase.cpuUsPerEvent);
    }
    await rig.dumpProfile();
    return median(cpu);
  } catch (error) {
    log(`hub ${variant}: FAILED (${firstLine(error)})`);
    return undefined;
  } finally {
    rig.close();
  }
}

main().catch((error: unknown) => {
  log(`profile failed: ${(error as Error).stack ?? String(error)}`);
  process.exitCode = 1;
});

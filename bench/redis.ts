/**
 * The benchmarks' own Redis: a `redis-server` on a free loopback port, nothing kept on disk, started
 * for the run and stopped after it — never the shared one, whose CPU other people's tests use too. Its
 * CPU (`INFO cpu`) and per-command counts and times (`INFO commandstats`) are read around a phase.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import type { OwnRedis } from '../__tests__/helpers/redis';

/** The tests' Redis helpers, written for Jest's CommonJS: they call `require` when loaded, which the bench's ESM lacks. */
async function testHelpers(): Promise<typeof import('../__tests__/helpers/redis')> {
  (globalThis as { require?: NodeRequire }).require ??= createRequire(import.meta.url);
  return import('../__tests__/helpers/redis');
}

/** Commands Redis runs only inside the store's scripts: counted in commandstats, and in EVALSHA's time too. */
const INSIDE_SCRIPTS = new Set([
  'hget',
  'hset',
  'hincrby',
  'persist',
  'time',
  'xadd',
  'xrange',
  'del',
  'expire',
]);
/** This probe's own commands. */
const PROBE = new Set(['info', 'ping']);

/** Redis's figures at one moment: CPU (user + system, µs) and, per command, calls and µs. */
export interface RedisSnapshot {
  cpuUs: number;
  commands: Map<string, { calls: number; usec: number }>;
}

/** What Redis did between two snapshots. */
export interface RedisDelta {
  /** INFO cpu: the whole server, its event loop and cron included. */
  cpuUs: number;
  /** Commands sent to Redis (not those run inside scripts, nor the probe's), and their µs. */
  calls: number;
  usec: number;
  byCommand: Map<string, { calls: number; usec: number }>;
}

export class BenchRedis {
  readonly url: string;
  readonly #server: OwnRedis;
  readonly #probe: Redis;

  private constructor(server: OwnRedis, probe: Redis) {
    this.#server = server;
    this.#probe = probe;
    this.url = server.url;
  }

  /** Starts the run's own Redis, or says why it cannot (the Redis sections are then skipped). */
  static async start(): Promise<BenchRedis | string> {
    const { findRedisServer, OwnRedis } = await testHelpers();
    const binary = findRedisServer();
    if (binary === undefined) return 'no redis-server binary (apt-get install redis-server)';
    const server = await OwnRedis.start(binary);
    const { default: IoRedis } = await import('ioredis');
    const probe = new IoRedis(server.url, { maxRetriesPerRequest: 1 });
    probe.on('error', () => {});
    await probe.ping();
    return new BenchRedis(server, probe);
  }

  /** A key prefix of one rig alone. */
  static prefix(): string {
    return `bench${randomBytes(4).toString('hex')}`;
  }

  async snapshot(): Promise<RedisSnapshot> {
    const info = await this.#probe.info('cpu');
    const seconds = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1]);
    const commands = new Map<string, { calls: number; usec: number }>();
    for (const match of (await this.#probe.info('commandstats')).matchAll(
      /^cmdstat_(\S+?):calls=(\d+),usec=(\d+)/gm,
    ))
      commands.set(match[1]!, { calls: Number(match[2]), usec: Number(match[3]) });
    return { cpuUs: Math.round((seconds('used_cpu_sys') + seconds('used_cpu_user')) * 1e6), commands };
  }

  /** Runs `measure` between two snapshots. */
  async around<T>(measure: () => Promise<T>): Promise<{ value: T; redis: RedisDelta }> {
    const before = await this.snapshot();
    const value = await measure();
    return { value, redis: delta(before, await this.snapshot()) };
  }

  async stop(): Promise<void> {
    this.#probe.disconnect();
    await this.#server.kill();
  }
}

export function delta(before: RedisSnapshot, after: RedisSnapshot): RedisDelta {
  const byCommand = new Map<string, { calls: number; usec: number }>();
  let calls = 0;
  let usec = 0;
  for (const [name, now] of after.commands) {
    if (PROBE.has(name)) continue;
    const was = before.commands.get(name) ?? { calls: 0, usec: 0 };
    const diff = { calls: now.calls - was.calls, usec: now.usec - was.usec };
    if (diff.calls === 0) continue;
    byCommand.set(name, diff);
    if (INSIDE_SCRIPTS.has(name)) continue;
    calls += diff.calls;
    usec += diff.usec;
  }
  return { cpuUs: after.cpuUs - before.cpuUs, calls, usec, byCommand };
}

/** Calls of each command per `per` over some deltas, the busiest first: `evalsha 2.00, xread 0.01`. */
export function commandMix(deltas: RedisDelta[], per: number): string {
  const calls = new Map<string, number>();
  for (const { byCommand } of deltas) {
    for (const [name, stat] of byCommand) calls.set(name, (calls.get(name) ?? 0) + stat.calls);
  }
  return [...calls]
    .filter(([name]) => !INSIDE_SCRIPTS.has(name))
    .sort((a, b) => b[1] - a[1])
    .map(([name, n]) => `${name} ${(n / per).toFixed(2)}`)
    .join(', ');
}

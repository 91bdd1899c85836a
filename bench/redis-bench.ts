/**
 * Redis store benchmarks (section `redis`), server and client children as in hub-bench.ts:
 * - broadcast: N clients of one topic split between two server processes on one Redis (one on
 *   ioredis, one on node-redis; the ioredis one publishes) against the in-process hub (memory store,
 *   one server holding all N), interleaved in rounds: delivered events/s, server CPU per delivered
 *   event (both Redis-store processes summed), Redis's own CPU, publish→receive latency;
 * - pipelining: publishes/s from one process with K publishes in flight, per store and client.
 * Redis's CPU is read from `INFO cpu` (used_cpu_sys + used_cpu_user) around every phase, by this
 * process, on a connection of its own. Every key lives under a prefix of this run and is deleted at
 * the end; nothing else in the Redis is touched (other tests share it).
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { keysOf } from '../lib/redis/entries';
import {
  type Child,
  firstLine,
  interleavedRounds,
  openClients,
  SERVER_ARGV,
  startChild,
  untilServerHas,
  warmUp,
} from './harness';
import {
  cpuUsOf,
  type HubPhase,
  HubRig,
  type HubSuiteOptions,
  measurePhase,
  type Pace,
  type PipelinePhase,
} from './hub-bench';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
/** The topic of the Redis variants' server children, passed to them as BENCH_TOPIC (redisEnv). */
const TOPIC = 'bench';

/** A key prefix of this run alone: `{<prefix>:bench}:meta` and `…:log`. */
export function runPrefix(): string {
  return `esbench${randomBytes(6).toString('hex')}`;
}

/** What a server child on the Redis store needs: the Redis, the run's key prefix and the topic. */
export function redisEnv(prefix: string): Record<string, string> {
  return { REDIS_URL, BENCH_REDIS_PREFIX: prefix, BENCH_TOPIC: TOPIC };
}

/** This process's own connection to the Redis: its CPU counters, and the run's keys deleted at the end. */
export class RedisProbe {
  readonly #client: Redis;

  private constructor(client: Redis) {
    this.#client = client;
  }

  /** Connects within a few seconds, or says why not (the section is then skipped). */
  static async connect(url: string): Promise<RedisProbe | string> {
    const { default: IoRedis } = await import('ioredis');
    const client = new IoRedis(url, {
      lazyConnect: true,
      connectTimeout: 3_000,
      commandTimeout: 5_000,
      maxRetriesPerRequest: 1,
      retryStrategy: () => null,
    });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.ping();
      return new RedisProbe(client);
    } catch (error) {
      client.disconnect();
      return `no Redis at ${url}: ${firstLine(error)}`;
    }
  }

  /** Redis's user + system CPU so far (the whole server: other clients' commands too), in µs. */
  async cpuUs(): Promise<number> {
    const info = await this.#client.info('cpu');
    const seconds = (name: string) => {
      const line = info.split('\n').find((l) => l.startsWith(`${name}:`));
      return Number(line?.slice(name.length + 1));
    };
    return Math.round((seconds('used_cpu_sys') + seconds('used_cpu_user')) * 1e6);
  }

  /** Deletes the run's keys (a topic's meta hash and log per prefix), and nothing else. */
  async forget(prefixes: readonly string[]): Promise<void> {
    const keys = prefixes.flatMap((prefix) => {
      const { meta, log } = keysOf(prefix, TOPIC);
      return [meta, log];
    });
    if (keys.length > 0) await this.#client.del(...keys);
  }

  close(): void {
    this.#client.disconnect();
  }
}

/** A phase of one variant, with Redis's CPU over it and, for the two-process rig, each process's share. */
export interface RedisPhase extends HubPhase {
  /** Events published in the phase. */
  publishes: number;
  /** Redis's CPU (the whole server) over the phase. */
  redisUs: number;
  /** Each server's CPU per delivered event (the two-process rig only; each holds half the clients). */
  publisherUsPerEvent?: number;
  followerUsPerEvent?: number;
}

/**
 * The hub across processes: two server children on one Redis under one prefix — the publisher on
 * ioredis, the follower on node-redis — with half the clients each, from one client child. Only the
 * publisher publishes; the follower's hub gets every event from its store's live reader, as the
 * publisher's does. Same interface as HubRig, so both take turns in the same rounds.
 */
export class RedisPairRig {
  readonly clients: number;
  readonly #prefix: string;
  #publisher: Child | undefined;
  #follower: Child | undefined;
  #client: Child | undefined;
  #delivered = 0;
  #phases = 0;

  constructor(clients: number, prefix: string) {
    this.clients = clients;
    this.#prefix = prefix;
  }

  async open(options: {
    warmup: number;
    profileFiles?: { publisher: string; follower: string };
  }): Promise<void> {
    const env = redisEnv(this.#prefix);
    // 'burst' mode: the broadcast server that also counts its socket writes
    const server = (variant: string, profile: string | undefined) =>
      startChild('hub-server.mjs', [variant, 'burst'], {
        name: `hub server ${variant}`,
        execArgv: SERVER_ARGV,
        env: profile ? { ...env, BENCH_CPU_PROFILE: profile } : env,
      });
    const publisher = server('redis-ioredis', options.profileFiles?.publisher);
    this.#publisher = publisher;
    const follower = server('redis-node-redis', options.profileFiles?.follower);
    this.#follower = follower;
    const client = startChild('hub-client.mjs', [], { name: 'hub client of the Redis pair' });
    this.#client = client;
    const [a, b] = await Promise.all([
      publisher.waitFor('listening', 15_000),
      follower.waitFor('listening', 15_000),
    ]);
    const half = Math.floor(this.clients / 2);
    const shares: Array<[Child, number, number]> = [
      [publisher, a.port as number, half],
      [follower, b.port as number, this.clients - half],
    ];
    let expected = 0;
    for (const [, port, n] of shares) {
      expected += n;
      await openClients(client, { port, n, parallel: 100, timeLimitMs: 60_000 }, 70_000, expected);
    }
    // Every subscriber positioned by its store (a Redis round trip each) before the first event.
    for (const [server, , n] of shares) {
      const ready = await untilServerHas(server, n, 30_000);
      if (ready < n) throw new Error(`${server.name}: ${ready} of ${n} subscribers positioned`);
    }
    // Warm-up events, not measured: JIT, both live readers running, every subscriber live.
    this.#delivered = options.warmup;
    await warmUp(publisher, client, this.clients, options.warmup, 30_000);
  }

  /**
   * As HubRig.phase (measurePhase): the publisher publishes as `pace` says; both servers' CPU from the
   * first publish until the last client has the last event, summed and each one's share; every socket
   * checked.
   */
  async phase(pace: Pace, timeLimitMs: number): Promise<HubPhase & Partial<RedisPhase>> {
    this.#delivered += pace.count;
    const { phase, cpus } = await measurePhase(
      { publisher: this.#publisher!, followers: [this.#follower!] },
      this.#client!,
      pace,
      timeLimitMs,
      { clients: this.clients, delivered: this.#delivered, tag: `run${this.#phases++}` },
    );
    return {
      ...phase,
      publisherUsPerEvent: cpuUsOf(cpus[0]!) / phase.deliveries,
      followerUsPerEvent: cpuUsOf(cpus[1]!) / phase.deliveries,
    };
  }

  /** Writes both servers' CPU profiles (started with the first measured phase), if they have them. */
  async dumpProfiles(): Promise<void> {
    await Promise.all([
      this.#publisher!.request({ type: 'dump' }, 'dumped', 20_000),
      this.#follower!.request({ type: 'dump' }, 'dumped', 20_000),
    ]);
  }

  close(): void {
    this.#client?.kill();
    this.#publisher?.kill();
    this.#follower?.kill();
  }
}

/** Runs `measure` and reads Redis's CPU on both sides of it. */
async function withRedisCpu<P extends { ok: boolean }>(
  probe: RedisProbe,
  measure: () => Promise<P>,
): Promise<{ phase: P; redisUs: number }> {
  const before = await probe.cpuUs();
  const phase = await measure();
  const after = await probe.cpuUs();
  return { phase, redisUs: after - before };
}

export type BroadcastVariant = 'memory' | 'redis';

export interface RedisBroadcastResult {
  variant: BroadcastVariant;
  ok: boolean;
  reason?: string;
  /** One per round: one event per setImmediate turn. */
  throughput: RedisPhase[];
  /** One per round: one event every `intervalMs`, for latency. */
  paced: RedisPhase[];
}

/** The hub suite's options, and how many clients the pair shares. */
export interface RedisBroadcastOptions extends HubSuiteOptions {
  clients: number;
}

/**
 * The in-process hub (one server) and the Redis pair (two servers) held open at once, then `rounds`
 * rounds in which each runs a throughput phase and a latency phase in turn, order rotated: drift hits
 * both alike, and each round's ratios are taken against the in-process hub's phases of the same round.
 */
export async function runRedisBroadcast(
  probe: RedisProbe,
  prefix: string,
  options: RedisBroadcastOptions,
): Promise<Map<BroadcastVariant, RedisBroadcastResult>> {
  const { clients } = options;
  // Both count their socket writes ('burst' mode): the Redis readers hand over what piled up since
  // their last read as one batch, one write per client, and the write count shows how much did.
  const entries: Array<{
    variant: BroadcastVariant;
    rig: HubRig | RedisPairRig;
    result: RedisBroadcastResult;
  }> = [
    { variant: 'memory', rig: new HubRig('hub', clients, 'burst') },
    { variant: 'redis', rig: new RedisPairRig(clients, prefix) },
  ].map(({ variant, rig }) => ({
    variant: variant as BroadcastVariant,
    rig,
    result: { variant: variant as BroadcastVariant, ok: false, throughput: [], paced: [] },
  }));
  await interleavedRounds(
    entries,
    options.rounds,
    (rig) => rig.open(options),
    async (rig, result) => {
      const run = async (pace: Pace): Promise<RedisPhase> => {
        const { phase, redisUs } = await withRedisCpu(probe, () => rig.phase(pace, options.timeLimitMs));
        return { ...phase, publishes: pace.count, redisUs };
      };
      const fast = await run({ count: options.events });
      result.throughput.push(fast);
      const paced = fast.ok
        ? await run({ count: options.pacedEvents, intervalMs: options.intervalMs })
        : fast;
      result.paced.push(paced);
      return fast.reason ?? paced.reason;
    },
    () => entries.map(({ result }) => roundLine(result)).join('; '),
  );
  return new Map(entries.map(({ variant, result }) => [variant, result]));
}

/** A variant's last full-speed phase, for the log: rounds far from the median are seen with their cause. */
function roundLine(result: RedisBroadcastResult): string {
  const phase = result.throughput[result.throughput.length - 1];
  if (phase === undefined || !phase.ok) return `${result.variant} ${result.reason ?? 'no phase'}`;
  return `${result.variant} ${Math.round(phase.deliveredPerSec)} events/s, ${phase.cpuUsPerEvent.toFixed(2)} µs/event, ${phase.handleWritesPerEvent.toFixed(2)} writes/delivery`;
}

/** The stores a publisher can run on in the pipelining phases: a hub-server.mjs variant each. */
export const PIPELINE_VARIANTS = [
  { id: 'hub', label: 'memory store (in-process)' },
  { id: 'redis-ioredis', label: 'redisStore, ioredis' },
  { id: 'redis-node-redis', label: 'redisStore, node-redis' },
] as const;

export interface PipelineResult {
  variant: string;
  ok: boolean;
  reason?: string;
  /** Per window, one phase per round. */
  phases: Map<number, Array<PipelinePhase & { redisUsPerPublish: number }>>;
}

export interface PipelineOptions {
  /** Subscribers of the publishing process (its own clients), which check every event arrives in order. */
  subscribers: number;
  windows: readonly number[];
  count: number;
  rounds: number;
  warmup: number;
  timeLimitMs: number;
}

/**
 * One publishing server per store, each with a few subscribers of its own and a prefix of its own,
 * held open at once; each round, every store publishes `count` events at each window size in turn,
 * order rotated.
 */
export async function runPipelining(
  probe: RedisProbe,
  prefixes: Record<string, string>,
  options: PipelineOptions,
): Promise<Map<string, PipelineResult>> {
  const entries = PIPELINE_VARIANTS.map(({ id }) => {
    const result: PipelineResult = { variant: id, ok: false, phases: new Map() };
    for (const window of options.windows) result.phases.set(window, []);
    return { variant: id, rig: new HubRig(id, options.subscribers), result };
  });
  await interleavedRounds(
    entries,
    options.rounds,
    (rig) =>
      rig.open({
        warmup: options.warmup,
        env: rig.variant === 'hub' ? {} : redisEnv(prefixes[rig.variant]!),
      }),
    async (rig, result, round) => {
      const windows = round % 2 === 0 ? options.windows : [...options.windows].reverse();
      for (const window of windows) {
        const { phase, redisUs } = await withRedisCpu(probe, () =>
          rig.pipeline(options.count, window, options.timeLimitMs),
        );
        result.phases.get(window)!.push({ ...phase, redisUsPerPublish: redisUs / options.count });
        if (!phase.ok) return `${window} in flight: ${phase.reason}`;
      }
      return undefined;
    },
  );
  return new Map(entries.map(({ variant, result }) => [variant, result]));
}

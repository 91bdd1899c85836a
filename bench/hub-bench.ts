/**
 * Hub benchmarks, a server child and client child(ren) per variant (children/hub-server.mjs,
 * children/hub-client.mjs):
 * - broadcast: N clients, ~100-byte JSON events; delivered events/s (until the last client has the
 *   last event), server CPU per delivered event, and publish→receive latency (each event carries its
 *   publish time on CLOCK_MONOTONIC, which server and clients share);
 * - burst: the hub alone, 100 events published in one tick against the same events one per tick;
 * - idle: as many idle hub streams as the descriptor limit and local ports allow: heap and RSS per
 *   stream, timers, and the CPU of heartbeats.
 */
import {
  type Child,
  firstLine,
  interleavedRounds,
  log,
  type Message,
  openClients,
  SERVER_ARGV,
  serverHolds,
  sleep,
  startChild,
  untilServerHas,
  warmUp,
  withChildren,
} from './harness';
import type { Variant } from './sse-bench';

export const HUB_VARIANTS: Variant[] = [
  { id: 'raw-http', label: '(a) raw node:http, pre-encoded Buffer' },
  { id: 'hub', label: '(h) createHub + sseChannel, Express 5' },
  { id: 'better-sse', label: '(e) better-sse 0.16 Channel, Express 5' },
  { id: 'sse-channel', label: '(f) sse-channel 4, Express 5' },
  { id: 'framed-socket', label: '(ref) one framed chunk → res.socket' },
];

/** How a phase publishes: `perTurn` events in one tick, then a setImmediate turn or `intervalMs`. */
export interface Pace {
  count: number;
  perTurn?: number;
  intervalMs?: number;
  /** Events between waits until no client needs 'drain'. */
  drainEvery?: number;
}

/** One measured phase of one variant. */
export interface HubPhase {
  ok: boolean;
  reason?: string;
  /** Events delivered in the phase: clients × events published. */
  deliveries: number;
  /** Wall time from the first publish to the last event at the last client. */
  wallUs: number;
  /** Events delivered (one event to one client counts one) per second of wall time. */
  deliveredPerSec: number;
  /** Server user + system CPU per delivered event. */
  cpuUsPerEvent: number;
  /** Server CPU over wall time: near 1, the server bounds the pace; well below, the clients do. */
  busy: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  /** Bytes on the wire (after the head, HTTP/1.1 chunk framing included) per delivered event. */
  wireBytesPerEvent: number;
  /** `socket.write` calls and handle writes (`_write`/`_writev`) per delivered event (burst mode only). */
  writeCallsPerEvent: number;
  handleWritesPerEvent: number;
  /** Voluntary context switches of the client child per delivered event: how often the reader slept. */
  wakeupsPerEvent: number;
}

/** One phase of publishes with a window in flight (HubRig.pipeline). */
export interface PipelinePhase {
  ok: boolean;
  reason?: string;
  window: number;
  count: number;
  /** Publishes answered per second, first publish to last answer. */
  publishesPerSec: number;
  /** The publishing process's user + system CPU per publish (its few subscribers' fan-out included). */
  cpuUsPerPublish: number;
}

/** Every client must have exactly `delivered` events, in the order published, and none may have closed. */
function checkClients(status: Message, delivered: number, reason: string | undefined): string | undefined {
  if (
    status.min === delivered &&
    status.max === delivered &&
    status.closed === 0 &&
    (status.disordered ?? 0) === 0
  ) {
    return reason;
  }
  return `clients got ${status.min}–${status.max} of ${delivered} events each, ${status.disordered} out of order, ${status.closed} closed${reason ? `; ${reason}` : ''}`;
}

/**
 * One variant's server child holding `clients` streams from one client child, ready for measured
 * phases; idle between them, so every variant can be held at once and measured in turn.
 */
export class HubRig {
  readonly variant: string;
  readonly clients: number;
  readonly #mode: 'broadcast' | 'burst';
  #server: Child | undefined;
  #client: Child | undefined;
  /** Events every client must have received so far. */
  #delivered = 0;
  #phases = 0;

  constructor(variant: string, clients: number, mode: 'broadcast' | 'burst' = 'broadcast') {
    this.variant = variant;
    this.clients = clients;
    this.#mode = mode;
  }

  async open(options: { warmup: number; profileFile?: string; env?: Record<string, string> }): Promise<void> {
    const server = startChild('hub-server.mjs', [this.variant, this.#mode], {
      name: `hub server ${this.variant}`,
      execArgv: SERVER_ARGV,
      env: { ...options.env, ...(options.profileFile ? { BENCH_CPU_PROFILE: options.profileFile } : {}) },
    });
    this.#server = server;
    const client = startChild('hub-client.mjs', [], { name: `hub client of ${this.variant}` });
    this.#client = client;
    const { port } = await server.waitFor('listening', 15_000);
    await openClients(client, { port, n: this.clients, parallel: 100, timeLimitMs: 60_000 }, 70_000);
    await serverHolds(server, this.clients, 15_000);
    // The hub's subscribers all live by the end of the warm-up.
    this.#delivered = options.warmup;
    await warmUp(server, client, this.clients, options.warmup, 30_000);
  }

  /**
   * Publishes as `pace` says; measures (measurePhase) the server's CPU, the wall time from the first
   * publish to the last event at the last client, and the latency of every event at every client;
   * checks every socket.
   */
  async phase(pace: Pace, timeLimitMs: number): Promise<HubPhase> {
    this.#delivered += pace.count;
    const { phase } = await measurePhase({ publisher: this.#server! }, this.#client!, pace, timeLimitMs, {
      clients: this.clients,
      delivered: this.#delivered,
      tag: `run${this.#phases++}`,
    });
    return phase;
  }

  /**
   * Publishes `count` events from the server child with `window` publishes in flight at once (a
   * sliding window); publishes/s and the server's CPU from the first publish to the last answer. The
   * ids must come back in the order published, and every client must get every event, in order.
   */
  async pipeline(count: number, window: number, timeLimitMs: number): Promise<PipelinePhase> {
    const server = this.#server!;
    const client = this.#client!;
    const tag = `pipe${this.#phases++}`;
    this.#delivered += count;
    client.send({ type: 'expect', total: this.clients * this.#delivered, tag });
    const [done, reached] = await Promise.allSettled([
      server.request({ type: 'pipeline', count, window, timeLimitMs }, 'pipelined', timeLimitMs + 10_000),
      client.waitFor('reached', timeLimitMs + 10_000, (m) => m.tag === tag),
    ]);
    let reason: string | undefined;
    if (done.status === 'rejected') reason = firstLine(done.reason);
    else if (done.value.failed !== 0)
      reason = `${done.value.failed} publishes failed: ${done.value.firstError}`;
    else if (done.value.published !== count) reason = `published ${done.value.published} of ${count} in time`;
    else if (done.value.disordered !== 0) reason = `${done.value.disordered} ids out of publish order`;
    else if (reached.status === 'rejected') reason = firstLine(reached.reason);
    await sleep(reason ? 0 : 30);
    const status = await client.request({ type: 'status' }, 'status', 10_000);
    reason = checkClients(status, this.#delivered, reason);
    const result = done.status === 'fulfilled' ? done.value : undefined;
    const wallUs = result ? (result.wallUs as number) : Number.NaN;
    const cpuUs = result ? cpuUsOf(result) : Number.NaN;
    return {
      ok: reason === undefined,
      ...(reason === undefined ? {} : { reason }),
      window,
      count,
      publishesPerSec: count / (wallUs / 1e6),
      cpuUsPerPublish: cpuUs / count,
    };
  }

  /** Writes the server's CPU profile (started with the first measured phase), if it has one. */
  async dumpProfile(): Promise<void> {
    await this.#server!.request({ type: 'dump' }, 'dumped', 20_000);
  }

  close(): void {
    this.#client?.kill();
    this.#server?.kill();
  }
}

export interface HubBroadcastResult {
  variant: string;
  clients: number;
  ok: boolean;
  reason?: string;
  /** One per round: as fast as the variant goes, one event per setImmediate turn. */
  throughput: HubPhase[];
  /** One per round: one event every `intervalMs`, below every variant's limit, for latency. */
  paced: HubPhase[];
}

export interface HubSuiteOptions {
  warmup: number;
  rounds: number;
  /** Events of a throughput phase. */
  events: number;
  /** Events of a latency phase, and the time between them. */
  pacedEvents: number;
  intervalMs: number;
  timeLimitMs: number;
}

/**
 * Every variant held open at once, then `rounds` rounds in which each variant runs a throughput
 * phase and a latency phase in turn (order rotated each round): machine drift hits all variants
 * alike, and each round's ratios are taken against the baseline's phases of the same round.
 */
export async function runHubSuite(
  variants: string[],
  clients: number,
  options: HubSuiteOptions,
): Promise<Map<string, HubBroadcastResult>> {
  const entries = variants.map((variant) => ({
    variant,
    rig: new HubRig(variant, clients),
    result: { variant, clients, ok: false, throughput: [], paced: [] } as HubBroadcastResult,
  }));
  await interleavedRounds(
    entries,
    options.rounds,
    (rig) => rig.open(options),
    async (rig, result) => {
      const fast = await rig.phase({ count: options.events }, options.timeLimitMs);
      result.throughput.push(fast);
      const paced = fast.ok
        ? await rig.phase({ count: options.pacedEvents, intervalMs: options.intervalMs }, options.timeLimitMs)
        : fast;
      result.paced.push(paced);
      return fast.reason ?? paced.reason;
    },
  );
  return new Map(entries.map(({ variant, result }) => [variant, result]));
}

export interface BurstResult {
  clients: number;
  ok: boolean;
  reason?: string;
  /** `burstSize` events published in one tick, `bursts` times per phase; one phase per round. */
  burst: HubPhase[];
  /** The same events, one per setImmediate turn. */
  perTick: HubPhase[];
}

/**
 * The hub alone, one server: each round a phase of bursts (`burstSize` publishes in one tick, which
 * the hub sends as one write per client) and a phase of the same events one per tick, order
 * alternating. Both wait for 'drain' after every `burstSize` events, so only the batching differs.
 */
export async function runBurst(
  clients: number,
  options: { bursts: number; burstSize: number; rounds: number; warmup: number; timeLimitMs: number },
): Promise<BurstResult> {
  const result: BurstResult = { clients, ok: false, burst: [], perTick: [] };
  const rig = new HubRig('hub', clients, 'burst');
  const count = options.bursts * options.burstSize;
  const burst: Pace = { count, perTurn: options.burstSize, drainEvery: options.burstSize };
  const perTick: Pace = { count, perTurn: 1, drainEvery: options.burstSize };
  try {
    await rig.open(options);
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? (['burst', 'perTick'] as const) : (['perTick', 'burst'] as const);
      for (const which of order) {
        const phase = await rig.phase(which === 'burst' ? burst : perTick, options.timeLimitMs);
        result[which].push(phase);
        if (!phase.ok) {
          result.reason = `round ${round + 1}, ${which}: ${phase.reason}`;
          return result;
        }
      }
      log(`    round ${round + 1}/${options.rounds} done`);
    }
    result.ok = true;
    return result;
  } catch (error) {
    result.reason = firstLine(error);
    return result;
  } finally {
    rig.close();
  }
}

/** What a server child counts of its timers: ref'd ones (getActiveResourcesInfo) and every live one. */
export interface TimerCounts {
  refTimeouts: number;
  liveTimers: number;
}

export interface IdleResult {
  variant: string;
  heartbeatMs: number | undefined;
  ok: boolean;
  reason?: string;
  /** Streams held open and measured, beyond the warm-up ones. */
  streams: number;
  heapPerStream?: number;
  rssPerStream?: number;
  externalPerStream?: number;
  /** Timers before the library was loaded, with the warm-up streams open, and with every stream open. */
  timers?: { atStart: TimerCounts; warm: TimerCounts; full: TimerCounts };
  /** Server CPU over fixed windows with every stream open, and the bytes the clients got meanwhile. */
  windows: Array<{ cpuUs: number; wallUs: number; gcUs: number; bytes: number }>;
}

/** The server's CPU over `windowMs` of wall time, and the bytes its clients got meanwhile; no stream may close. */
async function cpuWindow(server: Child, clients: Child[], windowMs: number) {
  await Promise.all(clients.map((c) => c.request({ type: 'mark' }, 'marked', 10_000)));
  const cpu = await server.request({ type: 'window', ms: windowMs }, 'window', windowMs + 20_000);
  const after = await Promise.all(clients.map((c) => c.request({ type: 'status' }, 'status', 10_000)));
  const closed = after.reduce((sum, s) => sum + (s.closed as number), 0);
  if (closed > 0) throw new Error(`${closed} streams closed while idle`);
  return {
    cpuUs: cpuUsOf(cpu),
    wallUs: cpu.wallUs as number,
    gcUs: cpu.gcUs as number,
    bytes: after.reduce((sum, s) => sum + (s.bytes as number), 0),
  };
}

/** Sockets per client child: well inside one process's descriptor limit. */
const PER_CLIENT = 10_000;

/**
 * `streams` idle streams (after `warm` warm-up ones) from as many client children as they need:
 * heap and RSS growth after gc, timers, and optionally the server's CPU over `windowMs`.
 */
export async function runIdle(
  variant: string,
  streams: number,
  options: { warm: number; heartbeatMs?: number; windows?: number; windowMs?: number; measureHeap: boolean },
): Promise<IdleResult> {
  const { warm, heartbeatMs, windows = 0, windowMs = 2_000 } = options;
  const result: IdleResult = { variant, heartbeatMs, ok: false, streams: 0, windows: [] };
  try {
    return await withChildren(async (start) => {
      const args = [variant, 'idle', ...(heartbeatMs === undefined ? [] : [String(heartbeatMs)])];
      const server = start('hub-server.mjs', args, { name: `idle server ${variant}`, execArgv: SERVER_ARGV });
      const total = warm + streams;
      const clients = Array.from({ length: Math.ceil(total / PER_CLIENT) }, (_, i) =>
        start('hub-client.mjs', [], { name: `idle client ${i + 1} of ${variant}` }),
      );
      const { port } = await server.waitFor('listening', 15_000);
      const atStart = (await server.request({ type: 'timers' }, 'timers', 5_000)).atStart as TimerCounts;
      // Warm streams first (lazy modules, JIT, parser pool), kept open: only the next ones are counted.
      await clients[0]!.request({ type: 'open', port, n: warm, parallel: 50 }, 'opened', 40_000);
      await untilServerHas(server, warm, 10_000);
      await sleep(300);
      const warmTimers = (await server.request({ type: 'timers' }, 'timers', 5_000)).now as TimerCounts;
      const before = options.measureHeap ? await server.request({ type: 'heap' }, 'heap', 30_000) : undefined;
      // An even share each, opened in parallel (the first client also holds the warm-up streams).
      await Promise.all(
        clients.map((client, i) => {
          const n = Math.floor(streams / clients.length) + (i < streams % clients.length ? 1 : 0);
          return client.request(
            { type: 'open', port, n, parallel: 100, timeLimitMs: 90_000 },
            'opened',
            100_000,
          );
        }),
      );
      const held = await untilServerHas(server, total, 30_000);
      result.streams = held - warm;
      // Let every subscriber go live (its position event written) before the heap is read.
      await sleep(1_000);
      const statuses = await Promise.all(clients.map((c) => c.request({ type: 'status' }, 'status', 10_000)));
      const open = statuses.reduce((sum, s) => sum + (s.headersDone as number) - (s.closed as number), 0);
      const failed = statuses.reduce((sum, s) => sum + (s.failures as number), 0);
      const full = (await server.request({ type: 'timers' }, 'timers', 5_000)).now as TimerCounts;
      result.timers = { atStart, warm: warmTimers, full };
      if (windows > 0) {
        // Past the first heartbeats of the last streams opened, so the windows see the steady state;
        // before the heap reading, whose forced collections would leave work to background threads.
        await sleep(Math.max(1_000, Math.min(3_000, 2 * (heartbeatMs ?? 0))));
        for (let i = 0; i < windows; i++) result.windows.push(await cpuWindow(server, clients, windowMs));
      }
      if (options.measureHeap) {
        const after = await server.request({ type: 'heap' }, 'heap', 60_000);
        result.heapPerStream = ((after.heapUsed as number) - (before!.heapUsed as number)) / result.streams;
        result.rssPerStream = ((after.rss as number) - (before!.rss as number)) / result.streams;
        result.externalPerStream =
          ((after.external as number) - (before!.external as number)) / result.streams;
      }
      if (open !== total || failed > 0) {
        result.reason = `${open} of ${total} streams open at the clients (${failed} failed to open)`;
        return result;
      }
      result.ok = true;
      return result;
    });
  } catch (error) {
    result.reason = firstLine(error);
    log(`  ${variant}: ${result.reason}`);
    return result;
  }
}

type Settled = PromiseSettledResult<Message>;

/** A server's user + system CPU, in µs, from its 'cpu', 'window' or 'pipelined' reply. */
export const cpuUsOf = (reply: Message) => (reply.userUs as number) + (reply.systemUs as number);

/**
 * One measured phase of a rig, the same for HubRig and RedisPairRig: `publisher` publishes as `pace`
 * says while every one of `followers` (told 'begin' first) fans out what reaches it; every server's
 * CPU from the first publish until the last client has the last event (each client must then have
 * `expect.delivered` events in all), the latency of every event at every client; every socket checked.
 * Also gives each server's 'cpu' reply, the publisher's first.
 */
export async function measurePhase(
  servers: { publisher: Child; followers?: readonly Child[] },
  client: Child,
  pace: Pace,
  timeLimitMs: number,
  expect: { clients: number; delivered: number; tag: string },
): Promise<{ phase: HubPhase; cpus: Message[] }> {
  const { publisher, followers = [] } = servers;
  const { clients, delivered, tag } = expect;
  client.send({ type: 'expect', total: clients * delivered, tag });
  for (const follower of followers) await follower.request({ type: 'begin' }, 'begun', 10_000);
  const [sent, reached] = await Promise.allSettled([
    publisher.request({ type: 'run', ...pace, timeLimitMs }, 'sent', timeLimitMs + 5_000),
    client.waitFor('reached', timeLimitMs + 5_000, (m) => m.tag === tag),
  ]);
  let reason: string | undefined;
  if (sent.status === 'rejected') reason = firstLine(sent.reason);
  else if (reached.status === 'rejected') reason = firstLine(reached.reason);
  const cpus = await Promise.all(
    [publisher, ...followers].map((server) => server.request({ type: 'stop' }, 'cpu', 10_000)),
  );
  // Late or duplicate bytes would show up here: give stragglers a moment, then check every socket.
  await sleep(reason ? 0 : 30);
  const status = await client.request({ type: 'status' }, 'status', 10_000);
  reason = checkClients(status, delivered, reason);
  return { phase: phaseFigures(clients * pace.count, cpus, sent, reached, status, reason), cpus };
}

/**
 * A phase's figures from what the server(s) and the client reported: delivered events/s from the first
 * publish to the last event at the last client, CPU of every server per delivered event, latency, bytes.
 */
function phaseFigures(
  deliveries: number,
  cpus: readonly Message[],
  sent: Settled,
  reached: Settled,
  status: Message,
  reason: string | undefined,
): HubPhase {
  const sum = (value: (cpu: Message) => number) => cpus.reduce((total, cpu) => total + value(cpu), 0);
  const cpuUs = sum(cpuUsOf);
  const wallUs =
    sent.status === 'fulfilled' && reached.status === 'fulfilled'
      ? (reached.value.atUs as number) - (sent.value.startedUs as number)
      : Number.NaN;
  return {
    ok: reason === undefined,
    ...(reason === undefined ? {} : { reason }),
    deliveries,
    wallUs,
    deliveredPerSec: deliveries / (wallUs / 1e6),
    cpuUsPerEvent: cpuUs / deliveries,
    busy: cpuUs / wallUs,
    p50Us: status.p50Us as number,
    p99Us: status.p99Us as number,
    maxUs: status.maxUs as number,
    wireBytesPerEvent: (status.bytes as number) / deliveries,
    writeCallsPerEvent: sum((cpu) => cpu.writeCalls as number) / deliveries,
    handleWritesPerEvent: sum((cpu) => cpu.handleWrites as number) / deliveries,
    wakeupsPerEvent: (status.wakeups as number) / deliveries,
  };
}

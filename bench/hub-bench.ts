/**
 * Hub benchmarks, a server child and client child(ren) per variant (children/hub-server.mjs,
 * children/hub-client.mjs):
 * - broadcast: N clients, ~100-byte JSON events; delivered events/s (until the last client has the
 *   last event), server CPU per delivered event, and publish→receive latency (each event carries its
 *   publish time on CLOCK_MONOTONIC, which server and clients share);
 * - burst: the hub alone, 100 events published in one tick against the same events one per tick;
 * - idle: as many idle hub streams as the descriptor limit allows: heap and RSS per stream, timers,
 *   and the CPU of heartbeats.
 */
import { type Child, log, type Message, sleep, startChild, withChildren } from './harness';
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

export const SERVER_ARGV = ['--expose-gc'];

/**
 * Polls the server until it has opened `n` streams, within `timeLimitMs`; on the Redis store, until
 * the store has also read each one's starting point (`positioned`), so no event published afterwards
 * can miss a subscriber.
 */
export async function untilServerHas(server: Child, n: number, timeLimitMs: number): Promise<number> {
  const deadline = Date.now() + timeLimitMs;
  for (;;) {
    const { opened, positioned } = await server.request({ type: 'count' }, 'count', 5_000);
    const ready = Math.min(opened as number, (positioned as number | undefined) ?? Number.POSITIVE_INFINITY);
    if (ready >= n || Date.now() > deadline) return ready;
    await sleep(100);
  }
}

export const firstLine = (error: unknown) => (error as Error).message.split('\n')[0]!.slice(0, 300);

/** Every client must have exactly `delivered` events, in the order published, and none may have closed. */
export function checkClients(
  status: Message,
  delivered: number,
  reason: string | undefined,
): string | undefined {
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
    const opened = await client.request(
      { type: 'open', port, n: this.clients, parallel: 100, timeLimitMs: 60_000 },
      'opened',
      70_000,
    );
    if (opened.headersDone !== this.clients || opened.failures !== 0) {
      throw new Error(`opened ${opened.headersDone}/${this.clients} streams (${opened.failures} failed)`);
    }
    const held = await untilServerHas(server, this.clients, 15_000);
    if (held < this.clients) throw new Error(`the server opened ${held} of ${this.clients} streams`);
    // Warm-up events (JIT, buffers; the hub's subscribers all live), not measured.
    this.#delivered = options.warmup;
    client.send({ type: 'expect', total: this.clients * this.#delivered, tag: 'warm' });
    await server.request({ type: 'warm', count: options.warmup, timeLimitMs: 30_000 }, 'warmed', 35_000);
    await client.waitFor('reached', 30_000, (m) => m.tag === 'warm');
  }

  /**
   * Publishes as `pace` says; measures the server's CPU, the wall time from the first publish to the
   * last event at the last client, and the latency of every event at every client; checks every socket.
   */
  async phase(pace: Pace, timeLimitMs: number): Promise<HubPhase> {
    const server = this.#server!;
    const client = this.#client!;
    const tag = `run${this.#phases++}`;
    this.#delivered += pace.count;
    client.send({ type: 'expect', total: this.clients * this.#delivered, tag });
    const [sent, reached] = await Promise.allSettled([
      server.request({ type: 'run', ...pace, timeLimitMs }, 'sent', timeLimitMs + 5_000),
      client.waitFor('reached', timeLimitMs + 5_000, (m) => m.tag === tag),
    ]);
    let reason: string | undefined;
    if (sent.status === 'rejected') reason = firstLine(sent.reason);
    else if (reached.status === 'rejected') reason = firstLine(reached.reason);
    const cpu = await server.request({ type: 'stop' }, 'cpu', 10_000);
    // Late or duplicate bytes would show up here: give stragglers a moment, then check every socket.
    await sleep(reason ? 0 : 30);
    const status = await client.request({ type: 'status' }, 'status', 10_000);
    reason = checkClients(status, this.#delivered, reason);
    return phaseFigures(this.clients * pace.count, [cpu], sent, reached, status, reason);
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
    const cpuUs = result ? (result.userUs as number) + (result.systemUs as number) : Number.NaN;
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
  const results = new Map<string, HubBroadcastResult>();
  const rigs = new Map<string, HubRig>();
  try {
    for (const variant of variants) {
      const result: HubBroadcastResult = { variant, clients, ok: false, throughput: [], paced: [] };
      results.set(variant, result);
      const rig = new HubRig(variant, clients);
      try {
        await rig.open(options);
        rigs.set(variant, rig);
      } catch (error) {
        rig.close();
        result.reason = `setup: ${firstLine(error)}`;
        log(`  ${variant}: ${result.reason}`);
      }
    }
    for (let round = 0; round < options.rounds; round++) {
      const order = [...rigs.keys()];
      const shift = round % order.length;
      for (const variant of [...order.slice(shift), ...order.slice(0, shift)]) {
        const result = results.get(variant)!;
        if (result.reason) continue;
        const rig = rigs.get(variant)!;
        const fast = await rig.phase({ count: options.events }, options.timeLimitMs);
        result.throughput.push(fast);
        const paced = fast.ok
          ? await rig.phase(
              { count: options.pacedEvents, intervalMs: options.intervalMs },
              options.timeLimitMs,
            )
          : fast;
        result.paced.push(paced);
        if (!fast.ok || !paced.ok) {
          result.reason = `round ${round + 1}: ${fast.reason ?? paced.reason}`;
          rig.close();
        }
      }
      log(`    round ${round + 1}/${options.rounds} done`);
    }
    for (const result of results.values()) result.ok = result.reason === undefined;
    return results;
  } finally {
    for (const rig of rigs.values()) rig.close();
  }
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
    cpuUs: (cpu.userUs as number) + (cpu.systemUs as number),
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

/**
 * A phase's figures from what the server(s) and the client reported: delivered events/s from the first
 * publish to the last event at the last client, CPU of every server per delivered event, latency, bytes.
 */
export function phaseFigures(
  deliveries: number,
  cpus: readonly Message[],
  sent: Settled,
  reached: Settled,
  status: Message,
  reason: string | undefined,
): HubPhase {
  const sum = (pick: (cpu: Message) => number) => cpus.reduce((total, cpu) => total + pick(cpu), 0);
  const cpuUs = sum((cpu) => (cpu.userUs as number) + (cpu.systemUs as number));
  const wallUs =
    sent.status === 'fulfilled' && reached.status === 'fulfilled'
      ? (reached.value.atUs as number) - (sent.value.startedUs as number)
      : Number.NaN;
  return {
    ok: reason === undefined,
    ...(reason === undefined ? {} : { reason }),
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

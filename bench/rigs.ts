/**
 * A rig: one or more server children (children/server.mjs, each a variant) holding `clients` SSE
 * streams from one client child (children/client.mjs), split evenly between them; the first server
 * publishes, the others fan out what reaches them through their store. Idle between phases, so that
 * every variant of a suite is held open at once and measured in turn.
 */
import { Child, firstLine, type Message, reportNotes, sleep } from './harness';

/** How a phase publishes: see `publish()` in children/server.mjs. */
export interface Pace {
  count: number;
  perTurn?: number;
  intervalMs?: number;
  /** Time-bounded instead: one event every 1/ratePerSec s (one per tick while behind) for durationMs. */
  ratePerSec?: number;
  durationMs?: number;
  drainEvery?: number;
}

/** One measured phase. */
export interface Phase {
  ok: boolean;
  reason?: string;
  published: number;
  /** clients × published. */
  deliveries: number;
  /** From the first publish to the last event at the last client. */
  wallUs: number;
  deliveredPerSec: number;
  /** Every server's user + system CPU per delivered event, and user alone. */
  cpuUsPerEvent: number;
  userUsPerEvent: number;
  /** Each server's CPU per delivered event of all clients (the publisher first). */
  serverUsPerEvent: number[];
  /** Server CPU over wall time: near 1 (per process), the server sets the pace. */
  busy: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  wireBytesPerEvent: number;
  /** socket.write calls and handle writes per delivered event (servers with the count-writes flag). */
  writeCallsPerEvent: number;
  handleWritesPerEvent: number;
  /** Voluntary context switches of the client child per delivered event: how often the reader slept. */
  wakeupsPerEvent: number;
}

/** One phase of publishes with `window` in flight. */
export interface PipelinePhase {
  ok: boolean;
  reason?: string;
  publishesPerSec: number;
  /** The publishing process's CPU per publish (its subscribers' fan-out included). */
  cpuUsPerPublish: number;
}

export interface RigOptions {
  /** One server child per entry; the first one publishes. */
  variants: string[];
  clients: number;
  /** Server flags (children/server.mjs) and environment. */
  flags?: string[];
  env?: Record<string, string>;
  warmup: number;
  /** The client child tracks event ids (for drop and resume). */
  trackIds?: boolean;
  /** BENCH_CPU_PROFILE per server. */
  profileFiles?: string[];
}

const cpuUsOf = (reply: Message) => (reply.userUs as number) + (reply.systemUs as number);

export class Rig {
  readonly options: RigOptions;
  servers: Child[] = [];
  client: Child | undefined;
  /** Per server: its port and the client indexes [from, to) it holds. */
  shares: Array<{ port: number; from: number; to: number }> = [];
  /** Events every client must have received so far. */
  delivered = 0;
  #phases = 0;

  constructor(options: RigOptions) {
    this.options = options;
  }

  get clients(): number {
    return this.options.clients;
  }

  async open(): Promise<void> {
    await this.connect();
    await this.warm();
  }

  /** Starts the children and opens every client's stream. */
  async connect(): Promise<void> {
    const { variants, clients, flags = [], env = {}, profileFiles } = this.options;
    this.servers = variants.map(
      (variant, i) =>
        new Child('server.mjs', [variant, ...flags], `server ${i + 1} (${variant})`, {
          ...env,
          ...(profileFiles?.[i] ? { BENCH_CPU_PROFILE: profileFiles[i] } : {}),
        }),
    );
    this.client = new Child(
      'client.mjs',
      this.options.trackIds ? ['ids'] : [],
      `client of ${variants.join('+')}`,
    );
    let from = 0;
    for (const [i, server] of this.servers.entries()) {
      const ready = await Promise.race([
        server.waitFor('listening', 20_000),
        server.waitFor('failed', 20_000),
      ]);
      if (ready.type === 'failed') throw new Error(String(ready.reason));
      const n = Math.floor(clients / variants.length) + (i < clients % variants.length ? 1 : 0);
      this.shares.push({ port: ready.port as number, from, to: from + n });
      from += n;
      const opened = await this.client.request(
        { type: 'open', port: ready.port, n, parallel: 100, timeLimitMs: 60_000 },
        'opened',
        75_000,
      );
      if (opened.headersDone !== from || opened.failures !== 0)
        throw new Error(`opened ${opened.headersDone}/${from} streams (${opened.failures} failed)`);
      const { opened: held } = await server.request({ type: 'count' }, 'count', 5_000);
      if (held !== n) throw new Error(`${server.name} holds ${held} of ${n} streams`);
    }
  }

  /** Warm-up events, not measured: JIT, buffers, every subscriber live. */
  async warm(): Promise<void> {
    const { clients, warmup } = this.options;
    await this.client!.request({ type: 'expect', tag: 'warm', total: clients * warmup }, 'expecting', 5_000);
    this.delivered = warmup;
    await this.servers[0]!.request({ type: 'run', count: warmup, timeLimitMs: 30_000 }, 'sent', 35_000);
    await this.client!.waitFor('reached', 30_000, (m) => m.tag === 'warm');
    // Measured phases check the order from here on; disorder in the warm-up is reported once, apart.
    const { disordered } = await this.client!.request({ type: 'status', clearOrder: true }, 'status', 10_000);
    if (disordered !== 0) {
      reportNotes.push(
        `${this.options.variants.join(' + ')}: ${disordered} warm-up events reached clients out of publish order (not in any measured phase)`,
      );
    }
  }

  /**
   * Publishes as `pace` says; every server's CPU from the first publish until the last client has the
   * last event; the latency of every event at every client; then every socket checked: each client
   * must have exactly every event, in order, and none may have closed.
   */
  async phase(pace: Pace, timeLimitMs: number): Promise<Phase> {
    const [publisher, ...followers] = this.servers;
    const client = this.client!;
    const tag = `p${this.#phases++}`;
    const rated = pace.ratePerSec !== undefined;
    if (!rated) this.delivered += pace.count;
    await client.request(
      { type: 'expect', tag, ...(rated ? {} : { total: this.clients * this.delivered }) },
      'expecting',
      5_000,
    );
    for (const follower of followers) await follower.request({ type: 'begin' }, 'begun', 10_000);
    let reason: string | undefined;
    let sent: Message | undefined;
    let reached: Message | undefined;
    try {
      sent = await publisher!.request(
        { type: 'run', measure: true, ...pace, timeLimitMs },
        'sent',
        timeLimitMs + 10_000,
      );
      if (rated) {
        this.delivered += sent.sent as number;
        const total = this.clients * this.delivered;
        await client.request({ type: 'expect', tag, total, keep: true }, 'expecting', 5_000);
      } else if (sent.sent !== pace.count) reason = `published ${sent.sent} of ${pace.count} in time`;
      reached = await client.waitFor('reached', timeLimitMs + 5_000, (m) => m.tag === tag);
    } catch (error) {
      reason ??= firstLine(error);
    }
    const cpus = await Promise.all(this.servers.map((s) => s.request({ type: 'stop' }, 'cpu', 10_000)));
    // Late or duplicate bytes would show up here: give stragglers a moment, then check every socket.
    await sleep(reason ? 0 : 30);
    const status = await client.request({ type: 'status' }, 'status', 10_000);
    reason = checkClients(status, this.delivered, reason);
    const published = (sent?.sent as number | undefined) ?? pace.count;
    const deliveries = this.clients * published;
    const wallUs = reached && sent ? (reached.atUs as number) - (sent.startedUs as number) : Number.NaN;
    const cpuUs = cpus.reduce((sum, cpu) => sum + cpuUsOf(cpu), 0);
    const per = (value: (cpu: Message) => number) =>
      cpus.reduce((sum, cpu) => sum + value(cpu), 0) / deliveries;
    return {
      ok: reason === undefined,
      ...(reason === undefined ? {} : { reason }),
      published,
      deliveries,
      wallUs,
      deliveredPerSec: deliveries / (wallUs / 1e6),
      cpuUsPerEvent: cpuUs / deliveries,
      userUsPerEvent: per((cpu) => cpu.userUs as number),
      serverUsPerEvent: cpus.map((cpu) => cpuUsOf(cpu) / deliveries),
      busy: cpuUs / wallUs,
      p50Us: status.p50Us as number,
      p99Us: status.p99Us as number,
      maxUs: status.maxUs as number,
      wireBytesPerEvent: (status.bytes as number) / deliveries,
      writeCallsPerEvent: per((cpu) => cpu.writeCalls as number),
      handleWritesPerEvent: per((cpu) => cpu.handleWrites as number),
      wakeupsPerEvent: (status.wakeups as number) / deliveries,
    };
  }

  /**
   * The first server publishes `count` events with `window` in flight; publishes/s and its CPU from
   * the first publish to the last answer. Ids must come back in publish order, and every client must
   * get every event, in order.
   */
  async pipeline(count: number, window: number, timeLimitMs: number): Promise<PipelinePhase> {
    const client = this.client!;
    const tag = `w${this.#phases++}`;
    this.delivered += count;
    await client.request({ type: 'expect', tag, total: this.clients * this.delivered }, 'expecting', 5_000);
    const [done, reached] = await Promise.allSettled([
      this.servers[0]!.request(
        { type: 'pipeline', count, window, timeLimitMs },
        'pipelined',
        timeLimitMs + 10_000,
      ),
      client.waitFor('reached', timeLimitMs + 10_000, (m) => m.tag === tag),
    ]);
    let reason: string | undefined;
    const result = done.status === 'fulfilled' ? done.value : undefined;
    if (done.status === 'rejected') reason = firstLine(done.reason);
    else if (result!.failed !== 0) reason = `${result!.failed} publishes failed: ${result!.firstError}`;
    else if (result!.published !== count) reason = `published ${result!.published} of ${count} in time`;
    else if (result!.disordered !== 0) reason = `${result!.disordered} ids out of publish order`;
    else if (reached.status === 'rejected') reason = firstLine(reached.reason);
    await sleep(reason ? 0 : 30);
    reason = checkClients(await client.request({ type: 'status' }, 'status', 10_000), this.delivered, reason);
    return {
      ok: reason === undefined,
      ...(reason === undefined ? {} : { reason }),
      publishesPerSec: result ? count / ((result.wallUs as number) / 1e6) : Number.NaN,
      cpuUsPerPublish: result ? cpuUsOf(result) / count : Number.NaN,
    };
  }

  /** Writes the servers' CPU profiles (started with the first measured phase). */
  async dumpProfiles(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.request({ type: 'dump' }, 'dumped', 20_000)));
  }

  close(): void {
    this.client?.kill();
    for (const server of this.servers) server.kill();
  }
}

/** Every client must have exactly `delivered` events, in the order published, and none may have closed. */
export function checkClients(status: Message, delivered: number, reason?: string): string | undefined {
  const { min, max, closed, disordered } = status;
  if (min === delivered && max === delivered && closed === 0 && disordered === 0) return reason;
  return `clients got ${min}–${max} of ${delivered} events each, ${disordered} out of order, ${closed} closed${reason ? `; ${reason}` : ''}`;
}

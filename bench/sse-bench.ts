/**
 * SSE benchmarks, one server child and one client child per measurement:
 * - broadcast: N clients, M events of ~100 bytes, server CPU per delivered event;
 * - memory: K idle streams, server heap growth per stream.
 */
import {
  type Child,
  firstLine,
  interleavedRounds,
  log,
  openClients,
  SERVER_ARGV,
  serverHolds,
  sleep,
  startChild,
  warmUp,
  withChildren,
} from './harness';

export interface Variant {
  id: string;
  label: string;
}

export const SSE_VARIANTS: Variant[] = [
  { id: 'raw-http', label: '(a) raw node:http, pre-encoded Buffer' },
  { id: 'raw-express', label: '(b) raw loop inside Express 5' },
  { id: 'es-express', label: '(c) express-streaming, Express 5' },
  { id: 'es-http', label: '(d) express-streaming, node:http' },
  { id: 'better-sse', label: '(e) better-sse 0.16, Express 5' },
  { id: 'sse-channel', label: '(f) sse-channel 4, Express 5' },
  { id: 'hono', label: '(g) hono streamSSE, @hono/node-server' },
  { id: 'framed-socket', label: '(ref) one framed chunk → res.socket' },
];

export const MEMORY_VARIANTS: Variant[] = [
  { id: 'raw-http', label: 'raw node:http (res held open)' },
  { id: 'raw-express', label: 'Express 5 alone (res held open)' },
  { id: 'es-express', label: 'express-streaming, Express 5' },
  { id: 'es-http', label: 'express-streaming, node:http' },
  { id: 'better-sse', label: 'better-sse, Express 5' },
  { id: 'sse-channel', label: 'sse-channel, Express 5 (extra)' },
  { id: 'hono', label: 'hono streamSSE (extra)' },
];

/** One measured phase: server CPU per delivered event (user + system, and user alone). */
export interface Phase {
  ok: boolean;
  reason?: string;
  cpuUsPerEvent: number;
  userUsPerEvent: number;
  wallMs: number;
}

/**
 * One variant's server child holding `clients` streams from one client child, ready to broadcast
 * measured phases. Idle between phases, so several can be held at once and measured in turn.
 */
export class BroadcastRig {
  readonly variant: string;
  readonly clients: number;
  #server: Child | undefined;
  #client: Child | undefined;
  /** Events every client must have received so far. */
  #delivered = 0;
  #phases = 0;

  constructor(variant: string, clients: number) {
    this.variant = variant;
    this.clients = clients;
  }

  async open(options: { warmup: number; profileFile?: string }): Promise<void> {
    const server = startChild('sse-server.mjs', [this.variant, 'broadcast'], {
      name: `server ${this.variant}`,
      execArgv: SERVER_ARGV,
      // The server profiles exactly its measured phase (node:inspector) and writes it there.
      env: options.profileFile ? { BENCH_CPU_PROFILE: options.profileFile } : {},
    });
    this.#server = server;
    const client = startChild('sse-client.mjs', [], { name: `client of ${this.variant}` });
    this.#client = client;
    const { port } = await server.waitFor('listening', 15_000);
    await openClients(client, { port, n: this.clients }, 40_000);
    await serverHolds(server, this.clients, 10_000);
    this.#delivered = options.warmup;
    await warmUp(server, client, this.clients, options.warmup, 20_000);
  }

  /** Broadcasts `events` events, measures the server's CPU until the last client got the last one, checks every socket. */
  async phase(events: number, timeLimitMs: number): Promise<Phase> {
    const server = this.#server!;
    const client = this.#client!;
    const tag = `run${this.#phases++}`;
    const first = this.#delivered;
    this.#delivered += events;
    client.send({ type: 'expect', total: this.clients * this.#delivered, tag });
    server.send({ type: 'run', first, count: events, timeLimitMs });
    let reason: string | undefined;
    try {
      await client.waitFor('reached', timeLimitMs + 5_000, (m) => m.tag === tag);
    } catch (error) {
      reason = (error as Error).message;
    }
    const cpu = await server.request({ type: 'stop' }, 'cpu', 10_000);
    // Late or duplicate bytes would show up here: give stragglers a moment, then check every socket.
    await sleep(reason ? 0 : 30);
    const status = await client.request({ type: 'status' }, 'status', 10_000);
    if (status.min !== this.#delivered || status.max !== this.#delivered || status.closed !== 0) {
      reason = `clients got ${status.min}–${status.max} of ${this.#delivered} events each, ${status.closed} closed${reason ? `; ${reason}` : ''}`;
    }
    const deliveries = this.clients * events;
    return {
      ok: reason === undefined,
      ...(reason === undefined ? {} : { reason }),
      cpuUsPerEvent: ((cpu.userUs as number) + (cpu.systemUs as number)) / deliveries,
      userUsPerEvent: (cpu.userUs as number) / deliveries,
      wallMs: cpu.wallMs as number,
    };
  }

  close(): void {
    this.#client?.kill();
    this.#server?.kill();
  }
}

export interface BroadcastResult {
  variant: string;
  clients: number;
  /** Events per round. */
  events: number;
  ok: boolean;
  reason?: string;
  phases: Phase[];
}

/** One variant alone (used by bench/profile.ts): open, `rounds` phases, close. */
export async function runBroadcast(
  variant: string,
  clients: number,
  events: number,
  options: { warmup: number; rounds: number; timeLimitMs: number; profileFile?: string },
): Promise<BroadcastResult> {
  const result: BroadcastResult = { variant, clients, events, ok: false, phases: [] };
  const rig = new BroadcastRig(variant, clients);
  try {
    await rig.open(options);
    for (let round = 0; round < options.rounds; round++) {
      const phase = await rig.phase(events, options.timeLimitMs);
      result.phases.push(phase);
      if (!phase.ok) {
        result.reason = phase.reason;
        return result;
      }
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

/**
 * Every variant held open at once, then `rounds` rounds in which each variant broadcasts `events`
 * events in turn (order rotated each round): drift of the machine hits all variants alike, and each
 * round's ratios are taken against the baseline's phase of the same round.
 */
export async function runBroadcastSuite(
  variants: string[],
  clients: number,
  events: number,
  options: { warmup: number; rounds: number; timeLimitMs: number },
): Promise<Map<string, BroadcastResult>> {
  const entries = variants.map((variant) => ({
    variant,
    rig: new BroadcastRig(variant, clients),
    result: { variant, clients, events, ok: false, phases: [] } as BroadcastResult,
  }));
  await interleavedRounds(
    entries,
    options.rounds,
    (rig) => rig.open(options),
    async (rig, result) => {
      const phase = await rig.phase(events, options.timeLimitMs);
      result.phases.push(phase);
      return phase.ok ? undefined : phase.reason;
    },
  );
  return new Map(entries.map(({ variant, result }) => [variant, result]));
}

export interface MemoryResult {
  variant: string;
  streams: number;
  ok: boolean;
  reason?: string;
  heapPerStream?: number;
  externalPerStream?: number;
}

export async function runMemory(variant: string, streams: number, warm: number): Promise<MemoryResult> {
  const result: MemoryResult = { variant, streams, ok: false };
  try {
    return await withChildren(async (start) => {
      const server = start('sse-server.mjs', [variant, 'memory'], {
        name: `server ${variant}`,
        execArgv: SERVER_ARGV,
      });
      const client = start('sse-client.mjs', [], { name: 'sse client' });
      const { port } = await server.waitFor('listening', 15_000);
      // Warm streams first (lazy modules, JIT, parser pool), kept open: only the next K are counted.
      const warmed = await client.request({ type: 'open', port, n: warm }, 'opened', 30_000);
      if (warmed.headersDone !== warm)
        throw new Error(`opened ${warmed.headersDone}/${warm} warm-up streams`);
      await serverHolds(server, warm, 10_000);
      await sleep(200);
      const before = await server.request({ type: 'heap' }, 'heap', 20_000);
      const opened = await client.request({ type: 'open', port, n: streams }, 'opened', 60_000);
      if ((opened.headersDone as number) !== warm + streams || opened.failures !== 0) {
        throw new Error(`opened ${(opened.headersDone as number) - warm}/${streams} streams`);
      }
      await serverHolds(server, warm + streams, 10_000);
      await sleep(200);
      const after = await server.request({ type: 'heap' }, 'heap', 20_000);
      const status = await client.request({ type: 'status' }, 'status', 10_000);
      if (status.closed !== 0) throw new Error(`${status.closed} streams closed while idle`);
      result.heapPerStream = ((after.heapUsed as number) - (before.heapUsed as number)) / streams;
      result.externalPerStream = ((after.external as number) - (before.external as number)) / streams;
      result.ok = true;
      return result;
    });
  } catch (error) {
    result.reason = firstLine(error);
    log(`  ${variant}: ${result.reason}`);
    return result;
  }
}

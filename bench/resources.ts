/**
 * What a stream holds and what a body costs:
 * - memory: heap per idle SSE stream, each variant over the server that hosts it (node:http, Express);
 * - idle (--idle): as many idle hub streams as descriptors and local ports allow (up to 20,000): heap,
 *   RSS, timers, and the CPU of heartbeats;
 * - stream: res.stream() of 200 MiB from an async generator against pipe and pipeline.
 */
import { readFileSync } from 'node:fs';
import { LABELS, PEERS, type SectionContext } from './broadcast';
import {
  Child,
  d0,
  d1,
  firstLine,
  interleavedRounds,
  log,
  type Message,
  median,
  newTable,
  pick,
  ratio,
  reportNotes,
  roundRatios,
  signed,
  sleep,
  statusOf,
  thousands,
  unavailable,
  type VariantResult,
} from './harness';

interface HoldResult extends VariantResult {
  streams: number;
  heapPerStream?: number;
  rssPerStream?: number;
  /** Timers before the library loaded, with the warm-up streams open, with every stream open. */
  timers?: string[];
  /** Server CPU over fixed windows with every stream open, and the bytes the clients got meanwhile. */
  windows: Array<{ cpuUs: number; wallUs: number; gcUs: number; bytes: number }>;
}

/** Sockets per client child: well inside one process's descriptor limit. */
const PER_CLIENT = 10_000;

/**
 * One server of `variant` (hold mode) holding `warm` streams, then `streams` more from as many client
 * children as they need: heap and RSS growth after gc, timers, and the CPU of `windows` windows.
 */
async function holdStreams(
  variant: string,
  streams: number,
  options: { warm: number; flags?: string[]; windows?: number; windowMs?: number },
): Promise<HoldResult> {
  const { warm, flags = [], windows = 0, windowMs = 2_000 } = options;
  const result: HoldResult = { ok: false, streams: 0, windows: [] };
  const server = new Child('server.mjs', [variant, 'hold', ...flags], `server (${variant}, hold)`);
  const clients = Array.from(
    { length: Math.ceil((warm + streams) / PER_CLIENT) },
    (_, i) => new Child('client.mjs', [], `client ${i + 1} of ${variant}`),
  );
  const ask = (child: Child, type: string, reply = type, extra = {}, timeoutMs = 30_000) =>
    child.request({ type, ...extra }, reply, timeoutMs);
  const holds = async (n: number) => {
    for (let i = 0; i < 600 && ((await ask(server, 'count')).opened as number) < n; i++) await sleep(50);
  };
  try {
    const { port } = await server.waitFor('listening', 15_000);
    const timers = (reply: Message, key: string) => {
      const t = reply[key] as { refTimeouts: number; liveTimers: number };
      return [t.refTimeouts, t.liveTimers];
    };
    const atStart = timers(await ask(server, 'timers'), 'atStart');
    // Warm streams first (lazy modules, JIT, parser pool), kept open: only the next ones are counted.
    await ask(clients[0]!, 'open', 'opened', { port, n: warm }, 40_000);
    await holds(warm);
    await sleep(300);
    const warmTimers = timers(await ask(server, 'timers'), 'now');
    const before = await ask(server, 'heap');
    await Promise.all(
      clients.map((client, i) => {
        const n = Math.floor(streams / clients.length) + (i < streams % clients.length ? 1 : 0);
        return ask(client, 'open', 'opened', { port, n, parallel: 100, timeLimitMs: 90_000 }, 100_000);
      }),
    );
    await holds(warm + streams);
    await sleep(1_000); // every hub subscriber live before the heap is read
    const allTimers = timers(await ask(server, 'timers'), 'now');
    result.timers = [0, 1].map((i) => `${atStart[i]} → ${warmTimers[i]} → ${allTimers[i]}`);
    if (windows > 0) await sleep(3_000); // past the first heartbeats of the last streams opened
    for (let i = 0; i < windows; i++) {
      await Promise.all(clients.map((c) => ask(c, 'mark', 'marked')));
      const cpu = await ask(server, 'window', 'window', { ms: windowMs }, windowMs + 20_000);
      const after = await Promise.all(clients.map((c) => ask(c, 'status')));
      result.windows.push({
        cpuUs: (cpu.userUs as number) + (cpu.systemUs as number),
        wallUs: cpu.wallUs as number,
        gcUs: cpu.gcUs as number,
        bytes: after.reduce((sum, s) => sum + (s.bytes as number), 0),
      });
    }
    const after = await ask(server, 'heap', 'heap', {}, 60_000);
    const statuses = await Promise.all(clients.map((c) => ask(c, 'status')));
    const sum = (key: string) => statuses.reduce((total, s) => total + (s[key] as number), 0);
    result.streams = sum('headersDone') - warm;
    result.heapPerStream = ((after.heapUsed as number) - (before.heapUsed as number)) / result.streams;
    result.rssPerStream = ((after.rss as number) - (before.rss as number)) / result.streams;
    if (sum('closed') > 0 || sum('failures') > 0 || result.streams !== streams) {
      result.reason = `${result.streams} of ${streams} streams open (${sum('failures')} failed, ${sum('closed')} closed)`;
    } else result.ok = true;
  } catch (error) {
    result.reason = firstLine(error);
  } finally {
    for (const child of [server, ...clients]) child.kill();
  }
  if (!result.ok) log(`  ${variant}: ${result.reason}`);
  return result;
}

export async function memorySection({ peers }: SectionContext): Promise<void> {
  const [streams, warm] = [2000, 100];
  // what each variant is measured over: the server it runs in, holding the responses open by itself
  const hosts: Record<string, string> = {
    'raw-express': 'raw-http',
    'es-express': 'raw-express',
    'es-http': 'raw-http',
    'better-sse': 'raw-express',
    'sse-channel': 'raw-express',
    hono: 'raw-http',
  };
  const variants = ['raw-http', ...Object.keys(hosts)].filter((id) => peers || !PEERS.has(id));
  log(`Memory, ${streams} idle streams per variant after ${warm} warm-up streams`);
  const results = new Map<string, HoldResult>();
  const over = (id: string) => {
    const [own, host] = [results.get(id)!, results.get(hosts[id] ?? '')];
    return own.ok && host?.ok ? own.heapPerStream! - host.heapPerStream! : undefined;
  };
  const row = newTable<string>(
    `heapUsed after gc(), before and after opening the streams; "over its host" subtracts the same server holding its
responses open by itself (node:http, or Express alone). Target for express-streaming: < 1 KB over Express alone.`,
    [
      [
        'Per-stream memory',
        (id) => (id === 'raw-express' ? '(b) Express 5 alone (res held open)' : LABELS[id]!),
      ],
      ['streams', (id) => `${results.get(id)!.streams}`],
      ['heap B/stream', (id) => d0(results.get(id)!.heapPerStream)],
      ['over its host', (id) => signed(over(id))],
      ['host', (id) => LABELS[hosts[id] ?? '']?.slice(0, 3) ?? '—'],
      [
        'status',
        (id) => {
          const target = id.startsWith('es-') && hosts[id] === 'raw-express' && over(id) !== undefined;
          return target
            ? `ok, ${over(id)! < 1024 ? 'under' : 'OVER'} the 1 KB target`
            : statusOf(results.get(id)!, 'held');
        },
      ],
    ],
  );
  for (const id of variants) {
    const missing = await unavailable(id);
    const skipped = { ok: false, reason: `skipped: ${missing}`, streams: 0, windows: [] };
    results.set(id, missing ? skipped : await holdStreams(id, streams, { warm }));
    row(id);
  }
}

/** How many idle streams one server may hold: descriptors and local ports both, less headroom; or why not. */
function idleStreams(scale: number): { streams: number; limits: string } | { skip: string } {
  const read = (file: string, pick: (text: string) => number, fallback: number) => {
    try {
      const value = pick(readFileSync(file, 'utf8'));
      return Number.isFinite(value) && value > 0 ? value : fallback;
    } catch {
      return fallback;
    }
  };
  const limit = read('/proc/self/limits', (t) => Number(/^Max open files\s+(\d+)/m.exec(t)?.[1]), 1024);
  const ports = read(
    '/proc/sys/net/ipv4/ip_local_port_range',
    (t) => {
      const [low, high] = t.trim().split(/\s+/).map(Number);
      return high! - low! + 1;
    },
    28232,
  );
  const limits = `descriptor limit ${limit}, ${ports} local ports`;
  const room = Math.min(limit, ports) - 1000; // the server's own descriptors: listener, IPC, stdio, epoll…
  if (room < 1100) return { skip: `${limits}: the idle section needs 2,100 of each (raise \`ulimit -n\`)` };
  const wanted = Math.min(room, 20_000) * Math.min(1, scale);
  return { streams: Math.max(1000, Math.floor(wanted / 1000) * 1000), limits };
}

export async function idleSection({ scale }: SectionContext): Promise<void> {
  const sizing = idleStreams(scale);
  type Row = { label: string; variant: string; result: HoldResult; host: HoldResult };
  const overHost = (r: Row, value: (result: HoldResult) => number | undefined) =>
    r.result === r.host ? '—' : signed(value(r.result)! - value(r.host)!);
  const row = newTable<Row>(
    `heapUsed after gc() and rss, before and after opening the streams (after 100 warm-up ones); "over Express"
subtracts Express 5 alone holding as many responses. "ref'd Timeouts": process.getActiveResourcesInfo() (the library's
timer is unref'd); "live timers": every timer made through the global functions and alive. start = before Express and
the library load, warm = 100 streams, all = every stream. Default heartbeatMs (15000) but in the last row.`,
    [
      ['Idle streams', (r) => r.label],
      ['streams', (r) => thousands(r.result.streams)],
      ['heap B/stream', (r) => thousands(r.result.heapPerStream)],
      ['over Express', (r) => overHost(r, (x) => x.heapPerStream)],
      ['RSS B/stream', (r) => thousands(r.result.rssPerStream)],
      ['over Express', (r) => overHost(r, (x) => x.rssPerStream)],
      ["ref'd Timeouts start→warm→all", (r) => r.result.timers?.[0] ?? '—'],
      ['live timers start→warm→all', (r) => r.result.timers?.[1] ?? '—'],
      [
        'status',
        (r) => {
          const extra =
            r.result.ok && r.host.ok && r.result !== r.host
              ? r.result.heapPerStream! - r.host.heapPerStream!
              : undefined;
          return r.variant === 'hub' && extra !== undefined
            ? `ok, ${extra < 1024 ? 'under' : 'OVER'} the 1 KB target`
            : statusOf(r.result, 'held');
        },
      ],
    ],
  );
  const windows = (r: Row) => r.result.windows;
  const perSec = (r: Row) => windows(r).map((w) => (w.cpuUs / w.wallUs) * 1000);
  const beats = (r: Row) => windows(r).map((w) => w.bytes / 8); // `3\r\n:\n\n\r\n`: 8 bytes a heartbeat
  const beat = newTable<Row>(
    `Server CPU over fixed 2 s windows, every stream open and nothing else to do; medians of the windows (their
spread in brackets). Express alone is the floor. heartbeats/s = bytes the clients received / 8 per second.`,
    [
      ['Heartbeat CPU', (r) => r.label],
      ['streams', (r) => thousands(r.result.streams)],
      ['windows', (r) => `${windows(r).length}×2s`],
      ['CPU ms/s', (r) => ratio(perSec(r)).replace('×', '')],
      ['per 10k streams ms/s', (r) => d1((median(perSec(r)) * 10_000) / (r.result.streams + 100))],
      [
        'heartbeats/s at clients',
        (r) => thousands(median(windows(r).map((w, i) => beats(r)[i]! / (w.wallUs / 1e6)))),
      ],
      [
        'CPU µs/heartbeat',
        (r) => (median(beats(r)) > 0 ? d1(median(windows(r).map((w, i) => w.cpuUs / beats(r)[i]!))) : '—'),
      ],
      ['GC ms/s', (r) => d1(median(windows(r).map((w) => (w.gcUs / w.wallUs) * 1000)))],
      ['status', (r) => statusOf(r.result, 'no stream closed')],
    ],
  );
  if ('skip' in sizing) {
    reportNotes.push(`the idle section was skipped: ${sizing.skip}`);
    return;
  }
  log(`Idle streams: ${sizing.streams} per server (${sizing.limits}), one server at a time`);
  const runs = [
    { label: 'Express 5 alone (res held open)', variant: 'raw-express', windows: 5 },
    { label: 'res.sse() without source, Express 5', variant: 'es-express', windows: 0 },
    { label: 'hub: res.sse(hub.subscribe()), Express 5', variant: 'hub', windows: 0 },
    { label: 'hub, heartbeatMs 1000', variant: 'hub', flags: ['heartbeat=1000'], windows: 5 },
  ];
  let host: HoldResult | undefined;
  for (const run of runs) {
    const result = await holdStreams(run.variant, sizing.streams, { warm: 100, ...run });
    host ??= result;
    row({ ...run, result, host });
    if (run.windows > 0) beat({ ...run, result, host });
  }
}

interface Transfer {
  ok: boolean;
  reason?: string;
  mbPerSec: number;
  cpuUsPerMiB: number;
}

/** One streaming server and a client pulling whole bodies from it. */
export class StreamRig {
  readonly variant: string;
  readonly #profileFile: string | undefined;
  #server: Child | undefined;
  #client: Child | undefined;
  #port = 0;

  constructor(variant: string, profileFile?: string) {
    this.variant = variant;
    this.#profileFile = profileFile;
  }

  async open(): Promise<void> {
    const env: Record<string, string> = this.#profileFile ? { BENCH_CPU_PROFILE: this.#profileFile } : {};
    this.#server = new Child('server.mjs', [this.variant], `stream server ${this.variant}`, env);
    this.#client = new Child('client.mjs', [], `stream client of ${this.variant}`);
    this.#port = (await this.#server.waitFor('listening', 15_000)).port as number;
    const warm = await this.get(STREAM_BYTES);
    if (!warm.ok) throw new Error(`warm-up: ${warm.reason}`);
  }

  async get(bytes: number, timeLimitMs = 30_000): Promise<Transfer> {
    const got = await this.#client!.request(
      { type: 'get', port: this.#port, bytes, timeLimitMs },
      'got',
      timeLimitMs + 5_000,
    );
    const served = await this.#server!.waitFor('served', 5_000);
    const reason =
      (got.error as string | undefined) ??
      (got.received !== bytes ? `received ${got.received} of ${bytes} bytes` : undefined) ??
      (served.outcome !== 'finished' ? `server outcome ${String(served.outcome)}` : undefined);
    return {
      ok: reason === undefined,
      ...(reason === undefined ? {} : { reason }),
      mbPerSec: bytes / 1e6 / ((got.ms as number) / 1000),
      cpuUsPerMiB: (served.cpuUs as number) / (bytes / (1024 * 1024)),
    };
  }

  async dumpProfile(): Promise<void> {
    await this.#server!.request({ type: 'dump' }, 'dumped', 10_000);
  }

  close(): void {
    this.#client?.kill();
    this.#server?.kill();
  }
}

export const STREAM_BYTES = 200 * 1024 * 1024;

export async function streamSection(): Promise<void> {
  const labels: Record<string, string> = {
    'es-stream': 'express-streaming res.stream(gen)',
    pipe: 'Readable.from(gen).pipe(res)',
    pipeline: 'stream.pipeline(Readable.from(gen), res)',
  };
  const rounds = 11;
  log(`res.stream throughput, 200 MiB in 64 KiB Buffers, ${rounds} rounds after one warm-up, interleaved`);
  const entries = Object.keys(labels).map((variant) => ({
    variant,
    rig: new StreamRig(variant),
    result: { ok: false, transfers: [] as Transfer[] },
  }));
  await interleavedRounds(
    entries,
    rounds,
    (rig) => rig.open(),
    async (rig, result) => {
      const transfer = await rig.get(STREAM_BYTES);
      result.transfers.push(transfer);
      return transfer.reason;
    },
  );
  const pipe = entries.find((e) => e.variant === 'pipe')!.result.transfers;
  type Row = (typeof entries)[number];
  const vsPipe = (r: Row, value: (t: Transfer) => number) =>
    ratio(roundRatios(r.result.transfers, pipe, value));
  const row = newTable<Row>(
    `MB/s seen by the client (request to the end of the body); CPU = server process per MiB; medians of the rounds,
ratios per round against pipe in the same round. Higher MB/s, lower CPU is better.`,
    [
      ['Streaming 200 MiB', (r) => labels[r.variant]!],
      ['MB/s', (r) => d0(pick(r.result.transfers, (t) => t.mbPerSec))],
      ['vs pipe', (r) => vsPipe(r, (t) => t.mbPerSec)],
      ['server CPU µs/MiB', (r) => d0(pick(r.result.transfers, (t) => t.cpuUsPerMiB))],
      ['vs pipe', (r) => vsPipe(r, (t) => t.cpuUsPerMiB)],
      ['status', (r) => statusOf(r.result, 'every byte arrived')],
    ],
  );
  for (const entry of entries) row(entry);
}

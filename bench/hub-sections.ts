/**
 * The hub sections of `npm run bench` (BENCH_ONLY=hub,burst,idle): they run the measurements of
 * hub-bench.ts and keep their tables here, so that run.ts can print whatever is done — also when the
 * watchdog stops the run half-way.
 */
import { readFileSync } from 'node:fs';
import { fixed, medianOf, ms, okPhases, pick, roundRatios, signed, spread, thousands, times } from './format';
import { log, median, tableWithNotes, unavailable } from './harness';
import {
  HUB_VARIANTS,
  type HubBroadcastResult,
  type HubPhase,
  type IdleResult,
  runBurst,
  runHubSuite,
  runIdle,
  type TimerCounts,
} from './hub-bench';

/** What the product asks of the hub against the baseline (a). */
const GOAL = { throughput: 1.4, cpu: 0.65, p99: 1 };

const hubRows: string[][] = [];
const latencyRows: string[][] = [];
const burstRows: string[][] = [];
const idleRows: string[][] = [];
const heartbeatRows: string[][] = [];
const goalLines: string[] = [];
const notes: string[] = [];

/** What a broadcast measurement gives, in the hub section and the Redis section alike. */
export interface Broadcast<P extends HubPhase> {
  ok: boolean;
  reason?: string;
  throughput: P[];
  paced: P[];
}

/** How a broadcast run was set up, as its table rows say. */
export interface BroadcastSetup {
  clients: number;
  rounds: number;
  events: number;
  pacedEvents: number;
  intervalMs: number;
}

/** Each round's ratios to the baseline's phases of the same round. */
export function broadcastRatios<P extends HubPhase>(result: Broadcast<P>, base: Broadcast<P> | undefined) {
  const baseFast = base?.throughput ?? [];
  return {
    speed: roundRatios(result.throughput, baseFast, (p) => p.deliveredPerSec),
    cpu: roundRatios(result.throughput, baseFast, (p) => p.cpuUsPerEvent),
    p99: roundRatios(result.paced, base?.paced ?? [], (p) => p.p99Us),
    loaded: roundRatios(result.throughput, baseFast, (p) => p.p99Us),
  };
}

/** The cells every throughput table starts with: the run, events/s and CPU per event against the baseline. */
export function throughputCells<P extends HubPhase>(
  label: string,
  result: Broadcast<P>,
  ratios: ReturnType<typeof broadcastRatios>,
  setup: BroadcastSetup,
): string[] {
  const fast = okPhases(result.throughput);
  const cpu = pick(fast, (p) => p.cpuUsPerEvent);
  return [
    label,
    `${setup.clients}`,
    `${setup.rounds}×${setup.events}`,
    thousands(pick(fast, (p) => p.deliveredPerSec)),
    times(medianOf(ratios.speed)),
    spread(ratios.speed),
    fixed(cpu, 2),
    times(medianOf(ratios.cpu)),
    spread(ratios.cpu),
  ];
}

/** The one-line summary of a broadcast run, as the log shows it while the bench runs. */
export function logBroadcast<P extends HubPhase>(label: string, result: Broadcast<P>): void {
  const fast = okPhases(result.throughput);
  const cpu = pick(fast, (p) => p.cpuUsPerEvent);
  log(
    `  ${label}: ${result.ok ? `${thousands(pick(fast, (p) => p.deliveredPerSec))} events/s, ${fixed(cpu, 2)} µs/event, p99 ${ms(pick(okPhases(result.paced), (p) => p.p99Us))} ms` : `FAILED (${result.reason})`}`,
  );
}

/** A row of the latency table: paced and loaded p99 against the baseline's, and whether events queued. */
export function latencyRow<P extends HubPhase>(
  label: string,
  result: Broadcast<P>,
  ratios: ReturnType<typeof broadcastRatios>,
  setup: BroadcastSetup,
): string[] {
  const paced = okPhases(result.paced);
  const fast = okPhases(result.throughput);
  return [
    label,
    `${setup.clients}`,
    `${setup.rounds}×${setup.pacedEvents} @${setup.intervalMs}ms`,
    ms(pick(paced, (p) => p.p50Us)),
    ms(pick(paced, (p) => p.p99Us)),
    times(medianOf(ratios.p99)),
    spread(ratios.p99),
    ms(pick(paced, (p) => p.maxUs)),
    ms(pick(fast, (p) => p.p99Us)),
    times(medianOf(ratios.loaded)),
    latencyStatus(result, paced, setup.intervalMs),
  ];
}

/** Paced latency means something only if no event waited behind the previous one's fan-out. */
function latencyStatus<P extends HubPhase>(result: Broadcast<P>, paced: P[], intervalMs: number): string {
  if (!result.ok) return `FAILED: ${result.reason}`;
  const queued = paced.filter((p) => p.maxUs > intervalMs * 1000).length;
  return queued === 0
    ? 'ok: every event reached every client within the interval'
    : `${queued} of ${paced.length} rounds had an event slower than the interval (queued)`;
}

/** "met" or by how much it was missed; `higherIsBetter` says which way the goal points. */
export function verdict(
  name: string,
  value: number | undefined,
  goal: number,
  higherIsBetter: boolean,
): string {
  if (value === undefined) return `${name}: not measured`;
  const met = higherIsBetter ? value >= goal : value <= goal;
  const want = `${higherIsBetter ? '≥' : '≤'} ${goal.toFixed(2)}×`;
  if (met) return `${name}: ${value.toFixed(2)}× (goal ${want}) — met`;
  const off = higherIsBetter ? 1 - value / goal : value / goal - 1;
  return `${name}: ${value.toFixed(2)}× (goal ${want}) — MISSED by ${(100 * off).toFixed(0)}%`;
}

/** What run.ts gives every section (this file's and redisSection): the BENCH_SCALE of the run. */
export interface SectionConfig {
  scale: number;
}

/** Section `hub`: every variant at 1,000 and at 5,000 clients, interleaved rounds. */
export async function hubSection({ scale }: SectionConfig): Promise<void> {
  const broadcasts = [
    {
      clients: 1000,
      rounds: 7,
      events: Math.max(20, Math.round(150 * scale)),
      pacedEvents: Math.max(5, Math.round(15 * scale)),
      intervalMs: 100,
      warmup: 50,
    },
    {
      clients: 5000,
      rounds: 5,
      events: Math.max(8, Math.round(40 * scale)),
      pacedEvents: Math.max(4, Math.round(10 * scale)),
      intervalMs: 400,
      warmup: 20,
    },
  ];
  hubRows.push([
    'Hub broadcast',
    'clients',
    'events',
    'delivered/s',
    'vs (a)',
    'round ratios',
    'CPU µs/event',
    'vs (a)',
    'round ratios',
    'busy',
    'client wakeups/event',
    'B/event',
    'status',
  ]);
  latencyRows.push([
    'Publish→receive',
    'clients',
    'paced events',
    'p50 ms',
    'p99 ms',
    'vs (a)',
    'round ratios',
    'max ms',
    'p99 ms full speed',
    'vs (a)',
    'status',
  ]);
  for (const setup of broadcasts) {
    const { clients, rounds, events, pacedEvents, intervalMs } = setup;
    log(
      `Hub broadcast, ${clients} clients, ${rounds} rounds × (${events} events at full speed + ${pacedEvents} every ${intervalMs} ms), variants interleaved`,
    );
    const skipped = new Map<string, string>();
    const ids: string[] = [];
    for (const variant of HUB_VARIANTS) {
      const reason = await unavailable(variant.id);
      if (reason) skipped.set(variant.id, reason);
      else ids.push(variant.id);
    }
    const results = await runHubSuite(ids, clients, { ...setup, timeLimitMs: 60_000 });
    const base = results.get('raw-http');
    for (const variant of HUB_VARIANTS) {
      const result = results.get(variant.id);
      if (!result) {
        const reason = `skipped: ${skipped.get(variant.id)}`;
        hubRows.push([variant.label, `${clients}`, '—', '—', '—', '—', '—', '—', '—', '—', '—', '—', reason]);
        latencyRows.push([variant.label, `${clients}`, '—', '—', '—', '—', '—', '—', '—', '—', reason]);
        continue;
      }
      addBroadcastRows(variant.label, result, base, setup);
    }
    const hub = results.get('hub');
    if (hub && base) {
      const ratios = broadcastRatios(hub, base);
      goalLines.push(
        `${clients} clients: ${verdict('delivered events/s', medianOf(ratios.speed), GOAL.throughput, true)}; ${verdict('CPU per delivered event', medianOf(ratios.cpu), GOAL.cpu, false)}; ${verdict('p99 latency (paced)', medianOf(ratios.p99), GOAL.p99, false)}`,
      );
    }
  }
}

function addBroadcastRows(
  label: string,
  result: HubBroadcastResult,
  base: HubBroadcastResult | undefined,
  setup: BroadcastSetup,
): void {
  const fast = okPhases(result.throughput);
  const ratios = broadcastRatios(result, base);
  logBroadcast(label, result);
  hubRows.push([
    ...throughputCells(label, result, ratios, setup),
    medianOf(fast.map((p) => p.busy))?.toFixed(2) ?? '—',
    medianOf(fast.map((p) => p.wakeupsPerEvent))?.toFixed(3) ?? '—',
    medianOf(fast.map((p) => p.wireBytesPerEvent))?.toFixed(0) ?? '—',
    result.ok ? 'ok: every client got every event' : `FAILED: ${result.reason}`,
  ]);
  latencyRows.push(latencyRow(label, result, ratios, setup));
}

/** Section `burst`: the hub alone, 100 events in one tick against the same events one per tick. */
export async function burstSection({ scale }: SectionConfig): Promise<void> {
  const clients = 1000;
  const burstSize = 100;
  const bursts = Math.max(2, Math.round(5 * scale));
  const rounds = 5;
  log(
    `Hub burst, ${clients} clients, ${rounds} rounds × ${bursts} × ${burstSize} events, burst and per-tick alternating`,
  );
  const result = await runBurst(clients, { bursts, burstSize, rounds, warmup: 50, timeLimitMs: 60_000 });
  burstRows.push([
    `Hub, ${clients} clients`,
    'events',
    'CPU µs/event',
    'vs per tick',
    'round ratios',
    'socket.write /100 ev/client',
    'handle writes /100 ev/client',
    'vs per tick',
    'status',
  ]);
  const cpuRatios = roundRatios(result.burst, result.perTick, (p) => p.cpuUsPerEvent);
  const writeRatios = roundRatios(result.burst, result.perTick, (p) => p.handleWritesPerEvent);
  const status = result.ok ? 'ok: every client got every event' : `FAILED: ${result.reason}`;
  const row = (label: string, phases: HubPhase[], own: boolean) => {
    const ok = okPhases(phases);
    const per100 = (value: (p: HubPhase) => number) => medianOf(ok.map(value).map((v) => v * 100));
    burstRows.push([
      label,
      `${rounds}×${bursts * burstSize}`,
      medianOf(ok.map((p) => p.cpuUsPerEvent))?.toFixed(2) ?? '—',
      own ? times(medianOf(cpuRatios)) : '1.00×',
      own ? spread(cpuRatios) : '—',
      per100((p) => p.writeCallsPerEvent)?.toFixed(2) ?? '—',
      per100((p) => p.handleWritesPerEvent)?.toFixed(2) ?? '—',
      own ? times(medianOf(writeRatios)) : '1.00×',
      status,
    ]);
  };
  row(`${burstSize} published in one tick`, result.burst, true);
  row('one per tick (setImmediate)', result.perTick, false);
  log(
    `  burst vs per tick: CPU ${times(medianOf(cpuRatios))}, handle writes ${times(medianOf(writeRatios))}`,
  );
}

/** The soft limit on open descriptors this process (and so every child) has, from /proc/self/limits. */
function descriptorLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    return Number.isFinite(soft) && soft > 0 ? soft : 1024;
  } catch {
    return 1024;
  }
}

/**
 * Local ports a client may connect from (/proc/sys/net/ipv4/ip_local_port_range; Linux's default
 * 32768–60999 when unreadable): every idle stream comes from 127.0.0.1 to one server port, so one each.
 */
function ephemeralPorts(): number {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const ports = Number(high) - Number(low) + 1;
    if (Number.isFinite(ports) && ports > 0) return ports;
  } catch {}
  return 60999 - 32768 + 1;
}

/** The fewest idle streams the section measures, and the warm-up streams opened before them. */
const IDLE_MIN_STREAMS = 1000;
const IDLE_WARM = 100;
/** Descriptors (or ports) kept for the server's own: listener, IPC, stdio, epoll, … */
const IDLE_HEADROOM = 1000;
/** The most idle streams the section opens at BENCH_SCALE ≥ 1, however high the limits. */
const IDLE_MAX_STREAMS = 20_000;

/**
 * Idle streams per server, in thousands: what the descriptor limit and the local port range both
 * allow, less the headroom, times the scale, at most IDLE_MAX_STREAMS × the scale; or why the
 * section cannot run (fewer than IDLE_MIN_STREAMS + warm-up + headroom descriptors or ports).
 */
function idleStreams(scale: number): { streams: number; limits: string } | { skip: string } {
  const limit = descriptorLimit();
  const ports = ephemeralPorts();
  const limits = `descriptor limit ${limit}, ${ports} local ports`;
  const room = Math.min(limit, ports);
  const needed = IDLE_MIN_STREAMS + IDLE_WARM + IDLE_HEADROOM;
  if (room < needed)
    return { skip: `${limits}: the idle section needs ${needed} of each (raise \`ulimit -n\`)` };
  const share = Math.min(1, scale);
  const wanted = Math.min((room - IDLE_HEADROOM) * share, IDLE_MAX_STREAMS * share);
  return { streams: Math.max(IDLE_MIN_STREAMS, Math.floor(wanted / 1000) * 1000), limits };
}

const timerText = (t: { atStart: TimerCounts; warm: TimerCounts; full: TimerCounts } | undefined) =>
  t === undefined
    ? ['—', '—']
    : [
        `${t.atStart.refTimeouts} → ${t.warm.refTimeouts} → ${t.full.refTimeouts}`,
        `${t.atStart.liveTimers} → ${t.warm.liveTimers} → ${t.full.liveTimers}`,
      ];

/** Bytes of one heartbeat on the wire: `:\n\n` framed as an HTTP/1.1 chunk (`3\r\n:\n\n\r\n`). */
const HEARTBEAT_WIRE_BYTES = 8;

/**
 * Section `idle`: as many idle streams as one process may hold descriptors for (the server holds one
 * per stream, so does the client side, split over client children) and one loopback address has local
 * ports for, up to a cap (idleStreams), one server at a time. Skipped, with a note, when too few.
 */
export async function idleSection({ scale }: SectionConfig): Promise<void> {
  const sizing = idleStreams(scale);
  if ('skip' in sizing) {
    log(`Idle streams: skipped (${sizing.skip})`);
    notes.push(`the idle section was skipped: ${sizing.skip}`);
    return;
  }
  const { streams } = sizing;
  const warm = IDLE_WARM;
  const windows = 5;
  const windowMs = 2_000;
  const heartbeatMs = 1000;
  log(`Idle streams: ${streams} per server (${sizing.limits}), one server at a time`);
  const runs: Array<{
    label: string;
    variant: string;
    heartbeatMs?: number;
    heap: boolean;
    windows: number;
  }> = [
    { label: 'Express 5 alone (res held open)', variant: 'express-alone', heap: true, windows },
    { label: 'res.sse() without source, Express 5', variant: 'sse-express', heap: true, windows: 0 },
    { label: 'hub: res.sse(hub.subscribe()), Express 5', variant: 'hub', heap: true, windows: 0 },
    { label: `hub, heartbeatMs ${heartbeatMs}`, variant: 'hub', heartbeatMs, heap: false, windows },
  ];
  const results: Array<{ label: string; result: IdleResult }> = [];
  for (const run of runs) {
    const result = await runIdle(run.variant, streams, {
      warm,
      heartbeatMs: run.heartbeatMs,
      windows: run.windows,
      windowMs,
      measureHeap: run.heap,
    });
    log(
      `  ${run.label}: ${result.ok ? `${result.streams} streams${result.heapPerStream === undefined ? '' : `, ${Math.round(result.heapPerStream)} B heap/stream`}` : `FAILED (${result.reason})`}`,
    );
    results.push({ label: run.label, result });
  }
  const host = results[0]!.result;
  idleRows.push([
    'Idle streams',
    'streams',
    'heap B/stream',
    'over Express',
    'RSS B/stream',
    'over Express',
    'Timeout (active resources) start→warm→all',
    'live timers start→warm→all',
    'status',
  ]);
  for (const { label, result } of results) {
    const over = (own: number | undefined, hostValue: number | undefined) =>
      own === undefined || hostValue === undefined || result === host ? '—' : signed(own - hostValue);
    let status = result.ok ? 'ok' : `FAILED: ${result.reason}`;
    if (result.ok && result.variant === 'hub' && result.heapPerStream !== undefined && host.heapPerStream) {
      const extra = result.heapPerStream - host.heapPerStream;
      status = extra < 1024 ? 'ok, under the 1 KB target' : 'ok, OVER the 1 KB target';
    }
    idleRows.push([
      label,
      thousands(result.streams),
      thousands(result.heapPerStream),
      over(result.heapPerStream, host.heapPerStream),
      thousands(result.rssPerStream),
      over(result.rssPerStream, host.rssPerStream),
      ...timerText(result.timers),
      status,
    ]);
  }
  heartbeatRows.push([
    'Heartbeat CPU',
    'streams',
    'windows',
    'CPU ms/s',
    'window spread',
    'per 10k streams ms/s',
    'heartbeats/s at clients',
    'CPU µs/heartbeat',
    'GC ms/s',
    'status',
  ]);
  for (const { label, result } of results) {
    if (result.windows.length === 0) continue;
    const cpuPerSec = result.windows.map((w) => (w.cpuUs / w.wallUs) * 1000);
    const beats = result.windows.map((w) => w.bytes / HEARTBEAT_WIRE_BYTES / (w.wallUs / 1e6));
    const cpu = median(cpuPerSec);
    const perBeat = result.windows.map((w) => (w.bytes > 0 ? w.cpuUs / (w.bytes / HEARTBEAT_WIRE_BYTES) : 0));
    heartbeatRows.push([
      label,
      thousands(result.streams),
      `${result.windows.length}×${windowMs / 1000}s`,
      cpu.toFixed(1),
      spread(cpuPerSec),
      ((cpu * 10_000) / (result.streams + warm)).toFixed(1),
      thousands(median(beats)),
      median(perBeat) > 0 ? median(perBeat).toFixed(1) : '—',
      `${median(result.windows.map((w) => (w.gcUs / w.wallUs) * 1000)).toFixed(1)} (max ${Math.max(...result.windows.map((w) => (w.gcUs / w.wallUs) * 1000)).toFixed(1)})`,
      result.ok ? 'ok: no stream closed' : `FAILED: ${result.reason}`,
    ]);
  }
}

/** The hub sections' tables and notes, as far as they ran. */
export function hubReport(): string[] {
  const out: string[] = [];
  out.push(
    ...tableWithNotes(hubRows, [
      'delivered/s = clients × events / wall time from the first publish to the last event at the last client (one event',
      'per setImmediate turn for every variant, a drain check every 16 events, as the SSE section does). CPU = user + system',
      'of the server per delivered event. busy = server CPU / wall: near 1 the server sets the pace, below it the client',
      'child (one process reading every socket) or the machine does. client wakeups/event = voluntary context switches of',
      'the client child per delivered event: a loopback write that must wake a sleeping reader costs the writer more, so a',
      'fan-out loop with more work between writes also pays more per write(2). B/event = bytes per event on the wire, HTTP/1.1',
      "chunk framing included. Ratios are per round against (a)'s phase of the same round; medians, with their spread.",
      '(ref) is not a library: each event framed once as one HTTP/1.1 chunk and written straight to every res.socket in a',
      "bare loop — the hub's wire path without its bookkeeping — to show the floor a fan-out of one write per client has.",
    ]),
  );
  out.push(
    ...tableWithNotes(latencyRows, [
      'Latency = receive time at the client − publish time stamped in the event (process.hrtime: CLOCK_MONOTONIC, shared by',
      'server and clients), every event at every client. "paced": one event every interval, longer than any variant takes to',
      'fan one out, so no event queues behind another: p99 ≈ the time to reach the last client. "full speed": during the',
      'throughput phase, queueing included. Lower is better.',
    ]),
  );
  if (goalLines.length > 0) {
    out.push(
      `Hub goals against (a): ≥ ${GOAL.throughput}× delivered events/s, ≤ ${GOAL.cpu}× CPU per delivered event, p99 no worse:`,
    );
    for (const line of goalLines) out.push(`  ${line}`);
    out.push('');
  }
  out.push(
    ...tableWithNotes(burstRows, [
      'The hub alone. "in one tick": 100 hub.publish() calls in the same tick, which the hub fans out as one write per client;',
      '"one per tick": the same events with a setImmediate turn between publishes. Both wait for drain after every 100 events.',
      'socket.write = calls of net.Socket#write; handle writes = _write/_writev calls, one write(2)/writev(2) attempt each.',
    ]),
  );
  out.push(
    ...tableWithNotes(idleRows, [
      'Heap = heapUsed after gc(), RSS = rss, before and after opening the streams (after 100 warm-up streams); "over Express"',
      'subtracts Express 5 alone holding the same number of responses. Timers: "Timeout (active resources)" counts',
      "process.getActiveResourcesInfo() entries, which list ref'd timers only (the library's is unref'd); \"live timers\"",
      'counts every timer made through the global timer functions and not yet cleared or fired. start = before Express and',
      'the library load, warm = 100 streams open, all = every stream open. Default heartbeatMs (15000).',
    ]),
  );
  out.push(
    ...tableWithNotes(heartbeatRows, [
      'Server CPU (user + system) over fixed 2 s windows with every stream open and nothing else to do; medians of the',
      'windows. Express alone is the floor. heartbeats/s = bytes the clients received / 8 (`3\\r\\n:\\n\\n\\r\\n`) per second.',
      'GC ms/s = time in garbage collection (PerformanceObserver "gc" entries) inside the windows: median (and the worst window).',
    ]),
  );
  for (const note of notes) out.push(`Note: ${note}`);
  return out;
}

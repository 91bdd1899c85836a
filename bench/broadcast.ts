/**
 * The fan-out sections, every variant on one kind of rig (rigs.ts), in interleaved rounds:
 * - broadcast: res.sse() and the hub beside a raw node:http loop and the framed floor (ref), and (with
 *   --peers) better-sse, sse-channel and hono, at 200, 1,000 and 5,000 clients: delivered events/s,
 *   server CPU per delivered event, publish→receive latency; the hub against (ref) is the per-event path;
 * - burst: the hub alone, 100 events in one tick against the same events one per tick;
 * - coalesce: one topic at 2,000 events/s (one publish per tick) to 1,000 clients, the hub with and
 *   without `coalesceMs` beside (ref).
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  BENCH_DIR,
  d0,
  d1,
  d2,
  d3,
  interleavedRounds,
  log,
  medianOf,
  ms,
  newTable,
  pick,
  ratio,
  reportNotes,
  roundRatios,
  statusOf,
  thousands,
  unavailable,
  type VariantResult,
  verdict,
} from './harness';
import { type Pace, type Phase, Rig } from './rigs';

/** What every section gets from run.ts. */
export interface SectionContext {
  scale: number;
  peers: boolean;
  coalesceMs: number;
}

export const LABELS: Record<string, string> = {
  'raw-http': '(a) raw node:http, pre-encoded Buffer',
  'raw-express': '(b) raw loop inside Express 5',
  'es-express': '(c) express-streaming res.sse(), Express 5',
  'es-http': '(d) express-streaming res.sse(), node:http',
  'better-sse': '(e) better-sse 0.16, Express 5',
  'sse-channel': '(f) sse-channel 4, Express 5',
  hono: '(g) hono streamSSE, @hono/node-server',
  hub: '(h) createHub + sseChannel, Express 5',
  'framed-socket': '(ref) one framed chunk → every socket',
};
export const PEERS = new Set(['better-sse', 'sse-channel', 'hono']);

/** Several phases of one variant: one per round (and per kind of phase). */
export interface Phased<P = Phase> extends VariantResult {
  phases: Record<string, P[]>;
}

/** The rigs of `variants` (unloadable peers left out with the reason) taking turns; their results. */
export async function suite<P extends VariantResult = Phase>(
  variants: Array<{ id: string; rig: () => Rig }>,
  rounds: number,
  turn: (rig: Rig, round: number) => Promise<Record<string, P>>,
): Promise<Map<string, Phased<P>>> {
  const results = new Map<string, Phased<P>>();
  const entries: Array<{ variant: string; rig: Rig; result: Phased<P> }> = [];
  for (const { id, rig } of variants) {
    const result: Phased<P> = { ok: false, phases: {} };
    results.set(id, result);
    const missing = await unavailable(id.split(' ')[0]!);
    if (missing) result.reason = `skipped: ${missing}`;
    else entries.push({ variant: id, rig: rig(), result });
  }
  await interleavedRounds(
    entries,
    rounds,
    (rig) => rig.open(),
    async (rig, result, round) => {
      const phases = await turn(rig, round);
      for (const [kind, phase] of Object.entries(phases)) {
        result.phases[kind] ??= [];
        result.phases[kind].push(phase);
      }
      return Object.values(phases).find((phase) => !phase.ok)?.reason;
    },
  );
  return results;
}

/** A row of a fan-out table: a variant's result, its baselines', and how it was run. */
interface Row {
  id: string;
  result: Phased;
  base?: Phased;
  ref?: Phased;
  clients: number;
  runs: string;
}
type Figure = (phase: Phase) => number;
const fast = (row: Row, kind: string, value: Figure) => pick(row.result.phases[kind] ?? [], value);
const vs = (row: Row, base: Phased | undefined, kind: string, value: Figure) =>
  roundRatios(row.result.phases[kind] ?? [], base?.phases[kind] ?? [], value);
const cpu: Figure = (p) => p.cpuUsPerEvent;
const p99: Figure = (p) => p.p99Us;
const inOrder = (row: Row) => statusOf(row.result, 'every client got every event, in order');

export async function broadcastSection({ scale, peers }: SectionContext): Promise<void> {
  const all = Object.keys(LABELS).filter((id) => peers || !PEERS.has(id));
  // at 5,000 clients each variant's streams are held through the suite: 5 × 5,000 fit the local ports
  const few = all.filter((id) =>
    ['raw-http', 'hub', 'framed-socket', 'better-sse', 'sse-channel'].includes(id),
  );
  const sizes = [
    { clients: 1000, rounds: 5, events: 150, paced: 15, intervalMs: 100, warmup: 50, variants: all },
    { clients: 5000, rounds: 5, events: 40, paced: 10, intervalMs: 400, warmup: 20, variants: few },
  ];
  const speed = newTable<Row>(
    `One event (~100-byte JSON, \`event: tick\`, an id) per setImmediate turn, a drain check every 16 events.
delivered/s = clients × events / wall time from the first publish to the last event at the last client. CPU = user +
system of the server per delivered event ("user": without the kernel's time, mostly the loopback write). busy = server
CPU / wall (near 1: the server sets the pace). wakeups = voluntary context switches of the client child per delivered
event (a write that must wake a sleeping reader costs the writer more). B/event: on the wire, chunk framing included.
Ratios: median of per-round ratios to that baseline's phase of the same round (their spread in brackets).
(c)/(d): stream.send() per client; (h): hub.publish(), encoded once. (ref) is not a library: each event framed once
as one HTTP/1.1 chunk and written straight to every socket in a bare loop, the floor of one write per client per event.`,
    [
      ['Broadcast', (r) => LABELS[r.id]!],
      ['clients', (r) => `${r.clients}`],
      ['events', (r) => r.runs],
      ['delivered/s', (r) => thousands(fast(r, 'fast', (p) => p.deliveredPerSec))],
      ['vs (a)', (r) => ratio(vs(r, r.base, 'fast', (p) => p.deliveredPerSec))],
      ['CPU µs/event', (r) => d2(fast(r, 'fast', cpu))],
      ['vs (a)', (r) => ratio(vs(r, r.base, 'fast', cpu))],
      ['vs (ref)', (r) => ratio(vs(r, r.ref, 'fast', cpu))],
      ['user µs/event', (r) => d2(fast(r, 'fast', (p) => p.userUsPerEvent))],
      ['busy', (r) => d2(fast(r, 'fast', (p) => p.busy))],
      ['wakeups/event', (r) => d3(fast(r, 'fast', (p) => p.wakeupsPerEvent))],
      ['B/event', (r) => d0(fast(r, 'fast', (p) => p.wireBytesPerEvent))],
      ['status', inOrder],
    ],
  );
  const latency = newTable<Row & { intervalMs: number }>(
    `Receive time at the client − publish time stamped in the event (CLOCK_MONOTONIC, shared by every process), every
event at every client. "paced": one event per interval, longer than a fan-out takes, so p99 ≈ the time to reach the
last client; "full speed": during the throughput phase, queueing included.`,
    [
      ['Publish→receive', (r) => LABELS[r.id]!],
      ['clients', (r) => `${r.clients}`],
      ['paced events', (r) => r.runs],
      ['p50 ms', (r) => ms(fast(r, 'paced', (p) => p.p50Us))],
      ['p99 ms', (r) => ms(fast(r, 'paced', p99))],
      ['vs (a)', (r) => ratio(vs(r, r.base, 'paced', p99))],
      ['vs (ref)', (r) => ratio(vs(r, r.ref, 'paced', p99))],
      ['max ms', (r) => ms(fast(r, 'paced', (p) => p.maxUs))],
      ['p99 ms full speed', (r) => ms(fast(r, 'fast', p99))],
      [
        'status',
        (r) => {
          const queued = (r.result.phases.paced ?? []).filter((p) => p.maxUs > r.intervalMs * 1000).length;
          return r.result.ok && queued > 0
            ? `ok, but ${queued} rounds had an event slower than the interval`
            : inOrder(r);
        },
      ],
    ],
  );
  for (const size of sizes) {
    const events = Math.max(10, Math.round(size.events * scale));
    const paced = size.paced && Math.max(4, Math.round(size.paced * scale));
    log(`Broadcast, ${size.clients} clients, ${size.rounds} rounds × ${events} events (+ ${paced} paced)`);
    const rig = (id: string) => () => new Rig({ variants: [id], clients: size.clients, warmup: size.warmup });
    const results = await suite(
      size.variants.map((id) => ({ id, rig: rig(id) })),
      size.rounds,
      async (rig) => {
        const phases: Record<string, Phase> = { fast: await rig.phase({ count: events }, 60_000) };
        if (paced && phases.fast!.ok)
          phases.paced = await rig.phase({ count: paced, intervalMs: size.intervalMs }, 60_000);
        return phases;
      },
    );
    const [base, ref] = [results.get('raw-http'), results.get('framed-socket')];
    for (const [id, result] of results) {
      const row = { id, result, base, ref, clients: size.clients, intervalMs: size.intervalMs };
      speed({ ...row, runs: `${size.rounds}×${events}` });
      if (paced) latency({ ...row, runs: `${size.rounds}×${paced} @${size.intervalMs}ms` });
    }
    const hub = { id: 'hub', result: results.get('hub')!, clients: size.clients, runs: '' };
    if (!hub.result.ok || size.clients < 1000) continue;
    reportNotes.push(
      `per-event path, ${size.clients} clients: ${verdict('(h) CPU per delivered event vs (ref)', medianOf(vs(hub, ref, 'fast', cpu)), '≤1.05')}`,
      `hub vs (a), ${size.clients} clients: ${[
        verdict('delivered/s', medianOf(vs(hub, base, 'fast', (p) => p.deliveredPerSec)), '≥1.4'),
        verdict('CPU', medianOf(vs(hub, base, 'fast', cpu)), '≤0.65'),
        verdict('paced p99', medianOf(vs(hub, base, 'paced', p99)), '≤1'),
      ].join('; ')}`,
    );
  }
}

export async function burstSection({ scale }: SectionContext): Promise<void> {
  const [clients, size, rounds] = [1000, 100, 5];
  const count = Math.max(2, Math.round(5 * scale)) * size;
  log(`Burst, ${clients} clients, ${rounds} rounds × ${count} events, in bursts of ${size} and one per tick`);
  const paces: Record<string, Pace> = {
    burst: { count, perTurn: size, drainEvery: size },
    perTick: { count, perTurn: 1, drainEvery: size },
  };
  const rig = () => new Rig({ variants: ['hub'], clients, flags: ['count-writes'], warmup: 50 });
  const results = await suite([{ id: 'hub', rig }], rounds, async (hub, round) => {
    const phases: Record<string, Phase> = {};
    for (const kind of round % 2 ? ['perTick', 'burst'] : ['burst', 'perTick'])
      phases[kind] = await hub.phase(paces[kind]!, 60_000);
    return phases;
  });
  const result = results.get('hub')!;
  const row = newTable<[string, string]>(
    `The hub alone. "in one tick": 100 hub.publish() calls in the same tick, fanned out as one write per client;
"one per tick": the same events a setImmediate turn apart; both wait for drain every 100 events. socket.write =
net.Socket#write calls; handle writes = _write/_writev calls, one write(2)/writev(2) attempt each.`,
    [
      [`Hub burst, ${clients} clients`, ([, label]) => label],
      ['events', () => `${rounds}×${count}`],
      ['CPU µs/event', ([kind]) => d2(pick(result.phases[kind] ?? [], cpu))],
      [
        'vs per tick',
        ([kind]) => ratio(roundRatios(result.phases[kind] ?? [], result.phases.perTick ?? [], cpu)),
      ],
      [
        'socket.write /100 ev/client',
        ([kind]) => d2(pick(result.phases[kind] ?? [], (p) => p.writeCallsPerEvent * 100)),
      ],
      [
        'handle writes /100 ev/client',
        ([kind]) => d2(pick(result.phases[kind] ?? [], (p) => p.handleWritesPerEvent * 100)),
      ],
      ['status', () => statusOf(result, 'every client got every event, in order')],
    ],
  );
  row(['burst', `${size} published in one tick`]);
  row(['perTick', 'one per tick (setImmediate)']);
}

/** Whether the built package declares `coalesceMs` (an older build ignores or refuses it). */
const buildHasCoalesce = () => {
  const types = `${BENCH_DIR}../dist/index.d.ts`;
  return existsSync(types) && readFileSync(types, 'utf8').includes('coalesceMs');
};

export async function coalesceSection({ scale, coalesceMs }: SectionContext): Promise<void> {
  const [clients, ratePerSec, rounds] = [1000, 2000, 5];
  const durationMs = Math.max(500, Math.round(2000 * scale));
  const pace: Pace = { count: Math.ceil((ratePerSec * durationMs) / 1000), ratePerSec, durationMs };
  const coalesced = `hub coalesce=${coalesceMs}`;
  const variants = ['framed-socket', 'hub', ...(coalesceMs > 0 ? [coalesced] : [])];
  const supported = coalesceMs > 0 && buildHasCoalesce();
  log(
    `Coalescing, ${clients} clients, one topic at ${ratePerSec} events/s for ${durationMs} ms, ${rounds} rounds`,
  );
  const rigs = variants
    .filter((id) => id !== coalesced || supported)
    .map((id) => {
      const [variant, option] = id.split(' ');
      const flags = ['count-writes', ...(option ? [option] : [])];
      return { id, rig: () => new Rig({ variants: [variant!], clients, flags, warmup: 50 }) };
    });
  const results = await suite(rigs, rounds, async (rig) => ({ rate: await rig.phase(pace, 60_000) }));
  const ref = results.get('framed-socket');
  const refP99 = ref && pick(ref.phases.rate ?? [], p99);
  const overRef = (r: Row) => {
    const own = fast(r, 'rate', p99);
    return own === undefined || refP99 === undefined ? undefined : (own - refP99) / 1000;
  };
  const unsupported = 'not supported by this build (dist/index.d.ts has no coalesceMs)';
  const row = newTable<Row>(
    `One topic, one publish per tick, due every ${1000 / ratePerSec} ms (a timer while ahead, one per tick while behind)
for ${durationMs} ms, a drain check every 16 events. published/s = what the variant kept up with: (ref) fans each event
out before the next publish, so it falls behind and its p99 is one fan-out; latency from each event's actual publish.
Goal for createHub({ coalesceMs: 10 }): ≤ 0.20× (ref)'s CPU per delivered event, p99 ≤ (ref)'s + 10 ms.`,
    [
      [
        'Coalescing',
        (r) => (r.id === coalesced ? `(h) createHub({ coalesceMs: ${coalesceMs} })` : LABELS[r.id]!),
      ],
      ['clients', () => `${clients}`],
      ['published/s', (r) => thousands(fast(r, 'rate', (p) => p.published / (p.wallUs / 1e6)))],
      ['delivered/s', (r) => thousands(fast(r, 'rate', (p) => p.deliveredPerSec))],
      ['CPU µs/event', (r) => d2(fast(r, 'rate', cpu))],
      ['vs (ref)', (r) => ratio(vs(r, ref, 'rate', cpu))],
      ['handle writes/delivery', (r) => d3(fast(r, 'rate', (p) => p.handleWritesPerEvent))],
      ['p50 ms', (r) => ms(fast(r, 'rate', (p) => p.p50Us))],
      ['p99 ms', (r) => ms(fast(r, 'rate', p99))],
      ['p99 − (ref) ms', (r) => d1(overRef(r))],
      ['max ms', (r) => ms(fast(r, 'rate', (p) => p.maxUs))],
      ['status', (r) => (results.has(r.id) ? inOrder(r) : unsupported)],
    ],
  );
  for (const id of variants)
    row({ id, result: results.get(id) ?? { ok: false, phases: {} }, clients, runs: '' });
  const hub = { id: coalesced, result: results.get(coalesced)!, clients, runs: '' };
  if (!hub.result?.ok) return;
  const over = overRef(hub);
  reportNotes.push(
    `coalescing: ${verdict('CPU per delivered event vs (ref)', medianOf(vs(hub, ref, 'rate', cpu)), '≤0.2')}; p99 ${d1(over)} ms over (ref)'s (goal ≤ +10 ms): ${over !== undefined && over <= 10 ? 'met' : 'MISSED'}`,
  );
}

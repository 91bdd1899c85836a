/**
 * `npm run bench`: express-streaming side by side with its peers, in one run, reported as ratios.
 *
 * 1. SSE broadcast CPU: a server child per variant holds N clients (raw `net` sockets in a client child)
 *    and broadcasts ~100-byte events; server CPU (process.cpuUsage) per delivered event, as a ratio to a
 *    raw node:http loop writing one pre-encoded Buffer per client. Every client must get every event.
 *    All variants are held open at once and take turns in rounds, so machine drift hits them alike.
 * 2. Per-stream memory: server heap growth (after gc) per idle SSE stream.
 * 3. res.stream throughput: 200 MiB from an async generator of 64 KiB Buffers to one client, in rounds.
 * 4. Hub broadcast (hub-sections.ts): createHub() fan-out to 1,000 and 5,000 clients against the raw
 *    loop, better-sse and sse-channel: delivered events/s, CPU per delivered event, p99 latency.
 * 5. Hub burst: 100 events published in one tick against one per tick (CPU, socket writes).
 * 6. Idle hub streams, as many as the descriptor limit and local ports allow (up to 20,000): heap, RSS,
 *    timers, heartbeat CPU; skipped with a note below 2,100 descriptors.
 * 7. Redis store (redis-sections.ts): 1,000 clients split between two server processes on one Redis
 *    (ioredis and node-redis) against the in-process hub: delivered events/s, server and Redis CPU per
 *    delivered event, p99 latency; and publishes/s with 1, 16 and 128 publishes in flight. Needs a Redis
 *    at REDIS_URL (default redis://127.0.0.1:6379), under keys of the run's own; skipped without one.
 *
 * Load goes to 127.0.0.1 only; every loop and wait is bounded; every child is killed at the end.
 * Sizes can be scaled with BENCH_SCALE (e.g. 0.2 for a quick look, 2 for steadier numbers).
 * BENCH_ONLY=sse,memory,stream,hub,burst,idle,redis picks sections.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fixed, medianOf, okPhases, roundRatios, signed, spread, times } from './format';
import { BENCH_DIR, killAll, log, tableWithNotes, unavailable } from './harness';
import { burstSection, hubReport, hubSection, idleSection } from './hub-sections';
import { redisReport, redisSection } from './redis-sections';
import { MEMORY_VARIANTS, type MemoryResult, runBroadcastSuite, runMemory, SSE_VARIANTS } from './sse-bench';
import { runThroughputSuite, STREAM_VARIANTS, summary } from './stream-bench';

const SCALE = Number(process.env.BENCH_SCALE ?? '1') || 1;
const ONLY = new Set((process.env.BENCH_ONLY ?? 'sse,memory,stream,hub,burst,idle,redis').split(','));
/** What each section may take at BENCH_SCALE=1; the watchdog allows the sum of those picked. */
const SECTION_BUDGET_MS: Record<string, number> = {
  sse: 150_000,
  memory: 60_000,
  stream: 75_000,
  hub: 600_000,
  burst: 150_000,
  idle: 300_000,
  redis: 420_000,
};
const WATCHDOG_MS =
  [...ONLY].reduce((sum, section) => sum + (SECTION_BUDGET_MS[section] ?? 0), 0) * Math.max(1, SCALE);
// events per round; every variant broadcasts rounds × events events to each of its clients
const BROADCASTS = [
  { clients: 200, rounds: 7, events: Math.max(10, Math.round(150 * SCALE)), warmup: 50 },
  { clients: 1000, rounds: 7, events: Math.max(4, Math.round(30 * SCALE)), warmup: 20 },
];
const MEMORY_STREAMS = 2000;
const MEMORY_WARM = 100;
const STREAM_BYTES = 200 * 1024 * 1024;
const STREAM_ROUNDS = 11;

const startedAt = Date.now();
const elapsed = () => `${((Date.now() - startedAt) / 1000).toFixed(0)}s`;

function ensureBuilt(): void {
  if (existsSync(`${BENCH_DIR}../dist/index.js`)) return;
  log('dist/ is missing: building it once with `npx tsup`');
  execFileSync('npx', ['tsup'], { cwd: `${BENCH_DIR}..`, stdio: 'inherit' });
}

const bytes = (value: number | undefined) => (value === undefined ? '—' : `${Math.round(value)}`);

const sseRows: string[][] = [];
const memoryRows: string[][] = [];
const streamRows: string[][] = [];
const notes: string[] = [];

async function sseSection(): Promise<void> {
  sseRows.push([
    'SSE broadcast',
    'clients',
    'events',
    'CPU µs/event',
    'vs (a)',
    'round ratios',
    'user µs/event',
    'user vs (a)',
    'status',
  ]);
  for (const { clients, events, rounds, warmup } of BROADCASTS) {
    log(`SSE broadcast, ${clients} clients, ${rounds} rounds × ${events} events, variants interleaved`);
    const skipped = new Map<string, string>();
    const ids: string[] = [];
    for (const variant of SSE_VARIANTS) {
      const reason = await unavailable(variant.id);
      if (reason) {
        skipped.set(variant.id, reason);
        log(`  ${variant.label}: skipped (${reason})`);
      } else ids.push(variant.id);
    }
    const results = await runBroadcastSuite(ids, clients, events, { warmup, rounds, timeLimitMs: 40_000 });
    const base = results.get('raw-http');
    const baseOk = base?.ok === true;
    for (const variant of SSE_VARIANTS) {
      const result = results.get(variant.id);
      if (!result) {
        sseRows.push([
          variant.label,
          `${clients}`,
          '—',
          '—',
          '—',
          '—',
          '—',
          '—',
          `skipped: ${skipped.get(variant.id)}`,
        ]);
        continue;
      }
      const phases = okPhases(result.phases);
      const cpu = medianOf(phases.map((p) => p.cpuUsPerEvent));
      const user = medianOf(phases.map((p) => p.userUsPerEvent));
      // Each round against the baseline's phase of the same round.
      const compared = baseOk && result.ok;
      const cpuRatios = compared ? roundRatios(result.phases, base.phases, (p) => p.cpuUsPerEvent) : [];
      const userRatios = compared ? roundRatios(result.phases, base.phases, (p) => p.userUsPerEvent) : [];
      log(
        `  ${variant.label}: ${result.ok ? `${fixed(cpu, 2)} µs/event, ${times(medianOf(cpuRatios))}` : `FAILED (${result.reason})`}`,
      );
      sseRows.push([
        variant.label,
        `${clients}`,
        `${rounds}×${events}`,
        fixed(cpu, 2),
        times(medianOf(cpuRatios)),
        spread(cpuRatios),
        fixed(user, 2),
        times(medianOf(userRatios)),
        result.ok ? 'ok: every client got every event' : `FAILED: ${result.reason}`,
      ]);
    }
  }
}

async function memorySection(): Promise<void> {
  log(`Per-stream memory, ${MEMORY_STREAMS} idle streams (after ${MEMORY_WARM} warm-up streams)`);
  const results = new Map<string, MemoryResult>();
  const skippedReasons = new Map<string, string>();
  for (const variant of MEMORY_VARIANTS) {
    const skipped = await unavailable(variant.id);
    if (skipped) {
      skippedReasons.set(variant.id, skipped);
      continue;
    }
    const result = await runMemory(variant.id, MEMORY_STREAMS, MEMORY_WARM);
    log(
      `  [${elapsed()}] ${variant.label}: ${result.ok ? `${bytes(result.heapPerStream)} B/stream` : 'FAILED'}`,
    );
    results.set(variant.id, result);
  }
  // What each variant is compared with: the server it runs in, holding the response open by itself.
  const host: Record<string, string> = {
    'raw-express': 'raw-http',
    'es-express': 'raw-express',
    'es-http': 'raw-http',
    'better-sse': 'raw-express',
    'sse-channel': 'raw-express',
    hono: 'raw-http',
  };
  const hostLabel: Record<string, string> = { 'raw-http': 'node:http', 'raw-express': 'Express alone' };
  memoryRows.push(['Per-stream memory', 'streams', 'heap B/stream', 'over its host', 'host', 'status']);
  for (const variant of MEMORY_VARIANTS) {
    const result = results.get(variant.id);
    const skipped = skippedReasons.get(variant.id);
    if (!result) {
      memoryRows.push([variant.label, `${MEMORY_STREAMS}`, '—', '—', '—', `skipped: ${skipped}`]);
      continue;
    }
    const hostId = host[variant.id];
    const hostResult = hostId ? results.get(hostId) : undefined;
    const over = result.ok && hostResult?.ok ? result.heapPerStream! - hostResult.heapPerStream! : undefined;
    let status = result.ok ? 'ok' : `FAILED: ${result.reason}`;
    // The target is per stream on top of what Express itself holds; the node:http row also
    // counts the header map setHeader keeps (the raw loop passes its headers to writeHead).
    if (result.ok && hostId === 'raw-express' && variant.id.startsWith('es-') && over !== undefined) {
      status = over < 1024 ? 'ok, under the 1 KB target' : 'ok, OVER the 1 KB target';
    }
    memoryRows.push([
      variant.label,
      `${result.streams}`,
      bytes(result.heapPerStream),
      signed(over),
      hostId ? hostLabel[hostId]! : '—',
      status,
    ]);
  }
}

async function streamSection(): Promise<void> {
  const mib = STREAM_BYTES / (1024 * 1024);
  log(
    `res.stream throughput, ${mib} MiB in 64 KiB Buffers, ${STREAM_ROUNDS} rounds after 1 warm-up, interleaved`,
  );
  const results = await runThroughputSuite(
    STREAM_VARIANTS.map((v) => v.id),
    STREAM_BYTES,
    STREAM_ROUNDS,
    30_000,
  );
  const base = results.get('pipe');
  streamRows.push([
    `Streaming ${mib} MiB`,
    'MB/s',
    'vs pipe',
    'server CPU µs/MiB',
    'vs pipe',
    'round ratios',
    'status',
  ]);
  for (const variant of STREAM_VARIANTS) {
    const result = results.get(variant.id)!;
    const { mbPerSec, cpuUsPerMiB } = summary(result);
    // Each round against pipe's transfer of the same round.
    const compared = result.ok && base?.ok;
    const speed = compared ? roundRatios(result.transfers, base.transfers, (t) => t.mbPerSec) : [];
    const cpu = compared ? roundRatios(result.transfers, base.transfers, (t) => t.cpuUsPerMiB) : [];
    log(
      `  ${variant.label}: ${result.ok ? `${fixed(mbPerSec, 0)} MB/s, ${fixed(cpuUsPerMiB, 0)} µs/MiB` : 'FAILED'}`,
    );
    streamRows.push([
      variant.label,
      fixed(mbPerSec, 0),
      times(medianOf(speed)),
      fixed(cpuUsPerMiB, 0),
      times(medianOf(cpu)),
      spread(cpu),
      result.ok ? 'ok: every byte arrived' : `FAILED: ${result.reason}`,
    ]);
  }
}

function printReport(partial?: string): void {
  const cpus = os.cpus();
  const out: string[] = [
    '',
    `express-streaming benchmarks${partial ? ` (PARTIAL: ${partial})` : ''}`,
    `Node ${process.version}, ${os.platform()} ${os.arch()}, ${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, BENCH_SCALE=${SCALE}, ${elapsed()}`,
    '',
  ];
  out.push(
    ...tableWithNotes(sseRows, [
      'CPU = user + system time of the server process from the first broadcast of a round to the last event received',
      'by the last client, divided by clients × events; median of the rounds. All variants hold their clients at once and',
      'take turns each round (order rotated), so "vs (a)" is the median of per-round ratios to the baseline\'s phase of',
      'the same round, and "round ratios" shows their spread. "user" leaves out kernel time (mostly writev to loopback).',
      'Lower is better; (a) = 1.00×. (ref) is not a library: it is the framed fast path written by hand (each event',
      'framed once as one HTTP/1.1 chunk, written straight to every res.socket), to show the headroom.',
    ]),
  );
  out.push(
    ...tableWithNotes(memoryRows, [
      'Heap = process.memoryUsage().heapUsed after gc(), before and after opening the streams; "over its host" subtracts',
      'the same server holding its responses open by itself (node:http or Express alone). Target for ours: < 1 KB over Express alone.',
    ]),
  );
  out.push(
    ...tableWithNotes(streamRows, [
      'MB/s seen by the client (request to end of body); CPU = server process per MiB; medians of the rounds, ratios taken',
      'per round against pipe in the same round ("round ratios": spread of the CPU ratio). Higher MB/s, lower CPU is better.',
    ]),
  );
  out.push(...hubReport());
  out.push(...redisReport());
  for (const note of notes) out.push(`Note: ${note}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

async function main(): Promise<void> {
  ensureBuilt();
  const watchdog = setTimeout(() => {
    log(`watchdog: the bench ran past ${WATCHDOG_MS / 1000}s; killing children and printing what there is`);
    killAll();
    printReport('stopped by the watchdog');
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();
  if (ONLY.has('sse')) await sseSection();
  if (ONLY.has('memory')) await memorySection();
  if (ONLY.has('stream')) await streamSection();
  if (ONLY.has('hub')) await hubSection({ scale: SCALE });
  if (ONLY.has('burst')) await burstSection({ scale: SCALE });
  if (ONLY.has('idle')) await idleSection({ scale: SCALE });
  if (ONLY.has('redis')) await redisSection({ scale: SCALE });
  clearTimeout(watchdog);
  printReport();
}

main()
  .catch((error: unknown) => {
    log(`bench failed: ${(error as Error).stack ?? String(error)}`);
    printReport('the bench failed');
    process.exitCode = 1;
  })
  .finally(killAll);

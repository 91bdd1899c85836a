/**
 * The Redis section of `npm run bench` (BENCH_ONLY=redis): runs the measurements of redis-bench.ts
 * and keeps their tables here, so that run.ts can print whatever is done — also when the watchdog
 * stops the run half-way.
 */
import { fixed, medianOf, okPhases, pick, roundRatios, spread, thousands, times } from './format';
import { log, tableWithNotes } from './harness';
import {
  type BroadcastSetup,
  broadcastRatios,
  latencyRow,
  logBroadcast,
  type SectionConfig,
  throughputCells,
  verdict,
} from './hub-sections';
import {
  type BroadcastVariant,
  PIPELINE_VARIANTS,
  type PipelineResult,
  REDIS_URL,
  type RedisBroadcastResult,
  type RedisPhase,
  RedisProbe,
  runPipelining,
  runPrefix,
  runRedisBroadcast,
} from './redis-bench';

/** What the product asks of the Redis store: this share of the in-process hub's delivered events/s. */
const GOAL = { throughput: 0.7 };

const LABELS: Record<BroadcastVariant, string> = {
  memory: '(h) createHub(), memory store, 1 server',
  redis: '(r) redisStore, 2 servers (ioredis + node-redis)',
};

const broadcastRows: string[][] = [];
const latencyRows: string[][] = [];
const pipelineRows: string[][] = [];
const goalLines: string[] = [];
const notes: string[] = [];

/** Section `redis`: the hub across two processes on one Redis against the in-process hub; pipelining. */
export async function redisSection({ scale }: SectionConfig): Promise<void> {
  const probe = await RedisProbe.connect(REDIS_URL);
  if (typeof probe === 'string') {
    log(`Redis store: skipped (${probe})`);
    notes.push(`the Redis section was skipped: ${probe}`);
    return;
  }
  const prefixes = {
    broadcast: runPrefix(),
    'redis-ioredis': runPrefix(),
    'redis-node-redis': runPrefix(),
  };
  try {
    await broadcastPart(probe, prefixes.broadcast, scale);
    await pipelinePart(probe, prefixes, scale);
  } finally {
    await probe.forget(Object.values(prefixes)).catch((error: unknown) => {
      notes.push(
        `could not delete the run's keys (prefixes ${Object.values(prefixes).join(', ')}): ${error}`,
      );
    });
    probe.close();
  }
}

async function broadcastPart(probe: RedisProbe, prefix: string, scale: number): Promise<void> {
  const setup = {
    clients: 1000,
    rounds: 9,
    events: Math.max(20, Math.round(150 * scale)),
    pacedEvents: Math.max(5, Math.round(15 * scale)),
    intervalMs: 100,
    warmup: 50,
    timeLimitMs: 60_000,
  };
  log(
    `Redis store broadcast, ${setup.clients} clients, ${setup.rounds} rounds × (${setup.events} events at full speed + ${setup.pacedEvents} every ${setup.intervalMs} ms), in-process hub and Redis pair interleaved`,
  );
  const results = await runRedisBroadcast(probe, prefix, setup);
  const base = results.get('memory');
  broadcastRows.push([
    'Hub across processes',
    'clients',
    'events',
    'delivered/s',
    'vs (h)',
    'round ratios',
    'server CPU µs/event',
    'vs (h)',
    'round ratios',
    'publisher + follower µs/event',
    'writes/delivery',
    'busy',
    'Redis CPU ms/s',
    'Redis µs/publish over (h)',
    'Redis µs/event over (h)',
    'status',
  ]);
  latencyRows.push([
    'Publish→receive',
    'clients',
    'paced events',
    'p50 ms',
    'p99 ms',
    'vs (h)',
    'round ratios',
    'max ms',
    'p99 ms full speed',
    'vs (h)',
    'status',
  ]);
  for (const [variant, result] of results) addBroadcastRows(LABELS[variant], result, base, setup);
  const redis = results.get('redis');
  if (base && redis) {
    const ratios = broadcastRatios(redis, base);
    const [speed, cpu, p99] = [ratios.speed, ratios.cpu, ratios.p99].map(medianOf);
    goalLines.push(
      `${setup.clients} clients: ${verdict('delivered events/s', speed, GOAL.throughput, true)}; server CPU per delivered event ${times(cpu)} (both processes, Redis not included); p99 latency (paced) ${times(p99)}`,
    );
  }
}

/**
 * Redis's CPU a variant's phase cost beyond the background: per round, its Redis CPU minus the rate
 * Redis burned during (h)'s phase of the same round (which sends nothing to Redis: other tests, the
 * idle readers' timeouts, Redis's own cron) over the phase's wall time.
 */
function redisOverBackground(
  phases: RedisPhase[],
  base: RedisPhase[],
): Array<{ perPublish: number; perEvent: number }> {
  const over: Array<{ perPublish: number; perEvent: number }> = [];
  phases.forEach((phase, i) => {
    const basePhase = base[i];
    if (!phase.ok || !basePhase?.ok) return;
    const extra = phase.redisUs - (basePhase.redisUs / basePhase.wallUs) * phase.wallUs;
    over.push({ perPublish: extra / phase.publishes, perEvent: extra / phase.deliveries });
  });
  return over;
}

function addBroadcastRows(
  label: string,
  result: RedisBroadcastResult,
  base: RedisBroadcastResult | undefined,
  setup: BroadcastSetup,
): void {
  const fast = okPhases(result.throughput);
  const ratios = broadcastRatios(result, base);
  const redisOver = redisOverBackground(result.throughput, base?.throughput ?? []);
  const publisher = pick(fast, (p) => p.publisherUsPerEvent);
  const follower = pick(fast, (p) => p.followerUsPerEvent);
  logBroadcast(label, result);
  broadcastRows.push([
    ...throughputCells(label, result, ratios, setup),
    publisher === undefined ? '—' : `${publisher.toFixed(2)} + ${fixed(follower, 2)}`,
    fixed(
      pick(fast, (p) => p.handleWritesPerEvent),
      2,
    ),
    fixed(
      pick(fast, (p) => p.busy),
      2,
    ),
    fixed(
      pick(fast, (p) => (p.redisUs / p.wallUs) * 1000),
      1,
    ),
    result === base ? '—' : fixed(medianOf(redisOver.map((r) => r.perPublish)), 1),
    result === base ? '—' : fixed(medianOf(redisOver.map((r) => r.perEvent)), 3),
    result.ok ? 'ok: every client got every event, in order' : `FAILED: ${result.reason}`,
  ]);
  latencyRows.push(latencyRow(label, result, ratios, setup));
}

async function pipelinePart(
  probe: RedisProbe,
  prefixes: Record<string, string>,
  scale: number,
): Promise<void> {
  const options = {
    subscribers: 2,
    windows: [1, 16, 128],
    count: Math.max(500, Math.round(5000 * scale)),
    rounds: 7,
    warmup: 200,
    timeLimitMs: 30_000,
  };
  log(
    `Redis store publish pipelining, ${options.rounds} rounds × ${options.count} publishes at ${options.windows.join(', ')} in flight, ${options.subscribers} subscribers on the publisher, stores interleaved`,
  );
  const results = await runPipelining(probe, prefixes, options);
  pipelineRows.push([
    'Publish pipelining',
    'in flight',
    'publishes',
    'publishes/s',
    'vs 1 in flight',
    'round ratios',
    'vs memory',
    'publisher CPU µs/publish',
    'Redis CPU µs/publish',
    'status',
  ]);
  const memory = results.get('hub');
  for (const { id, label } of PIPELINE_VARIANTS) {
    const result = results.get(id)!;
    addPipelineRows(label, result, memory, options);
  }
}

function addPipelineRows(
  label: string,
  result: PipelineResult,
  memory: PipelineResult | undefined,
  options: { windows: number[]; rounds: number; count: number },
): void {
  const single = result.phases.get(1) ?? [];
  for (const window of options.windows) {
    const phases = result.phases.get(window) ?? [];
    const ok = okPhases(phases);
    const speed = medianOf(ok.map((p) => p.publishesPerSec));
    const againstOne = roundRatios(phases, single, (p) => p.publishesPerSec);
    const againstMemory = roundRatios(phases, memory?.phases.get(window) ?? [], (p) => p.publishesPerSec);
    const failed = phases.find((p) => !p.ok);
    log(`  ${label}, ${window} in flight: ${thousands(speed)} publishes/s`);
    pipelineRows.push([
      label,
      `${window}`,
      `${phases.length}×${options.count}`,
      thousands(speed),
      times(medianOf(againstOne)),
      spread(againstOne),
      result.variant === 'hub' ? '1.00×' : times(medianOf(againstMemory)),
      fixed(medianOf(ok.map((p) => p.cpuUsPerPublish)), 2),
      fixed(medianOf(ok.map((p) => p.redisUsPerPublish)), 1),
      failed
        ? `FAILED: ${failed.reason}`
        : result.ok
          ? 'ok: ids in order, every subscriber got every event, in order'
          : `FAILED: ${result.reason}`,
    ]);
  }
}

/** The Redis section's tables and notes, as far as it ran. */
export function redisReport(): string[] {
  const out: string[] = [];
  out.push(
    ...tableWithNotes(broadcastRows, [
      '(h): one server process holds every client, on the memory store. (r): two server processes on one Redis, the clients',
      "split between them; the ioredis one publishes, both fan out what their store's live reader (XREAD) hands them.",
      "Both publish one event per setImmediate turn with a drain check every 16 events (the hub section's pace), on the",
      "publishing process's own sockets. delivered/s = clients × events / wall time from the first publish to the last event",
      'at the last client. server CPU = user + system of the server process(es) per delivered event: for (r) the sum of',
      'both ("publisher + follower" splits it). Redis CPU = used_cpu_sys + used_cpu_user from INFO cpu around the phase',
      '(the whole Redis, so other tests using it count too: the (h) row, whose phases send nothing to Redis, shows that',
      'background). busy = server CPU / wall (up to 2 for (r), two processes on 2 cores shared with Redis and the client).',
      "Ratios are per round against (h)'s phase of the same round; medians, with their spread.",
    ]),
  );
  out.push(
    ...tableWithNotes(latencyRows, [
      'Latency = receive time at the client − publish time stamped in the event by the publishing process (CLOCK_MONOTONIC,',
      'shared by every process of the machine), every event at every client. For (r) it includes the Lua publish, the',
      "live readers' XREAD wake-up and each process's fan-out to its half of the clients. Lower is better.",
    ]),
  );
  if (goalLines.length > 0) {
    out.push(`Redis store goal against (h): ≥ ${GOAL.throughput.toFixed(2)}× delivered events/s:`);
    for (const line of goalLines) out.push(`  ${line}`);
    out.push('');
  }
  out.push(
    ...tableWithNotes(pipelineRows, [
      'One server process publishes with a sliding window of K hub.publish() calls unanswered at once; publishes/s = publishes',
      "/ wall time from the first publish to the last answer; CPU = that process per publish (its 2 subscribers' fan-out",
      'included); Redis CPU from INFO cpu. Each store has its own topic: the ids must come back numbered in publish order,',
      'and each subscriber must get every event, in order. "vs 1 in flight": per round against the same store with one in',
      'flight; "vs memory": per round against the memory store at the same window.',
    ]),
  );
  for (const note of notes) out.push(`Note: ${note}`);
  return out;
}

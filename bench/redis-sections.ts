/**
 * The Redis store's sections (--redis), on the run's own redis-server (redis.ts), each rig under a key
 * prefix of its own:
 * - pair: 1,000 clients split between two processes (ioredis + node-redis) against the in-process hub;
 * - publish: one process's publishes/s and Redis's CPU per publish, with 1, 16 and 128 in flight;
 * - scaleout: Redis's CPU per published event with 1, 2, 4 and 8 processes following the topic;
 * - storm: 4,000 clients over 4 processes drop and resume within 1 s: Redis commands and CPU per
 *   resuming client, and whether each got exactly what it missed.
 */
import { LABELS, type Phased, type SectionContext, suite } from './broadcast';
import {
  d0,
  d1,
  d2,
  firstLine,
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
  verdict,
} from './harness';
import { BenchRedis, commandMix, type RedisDelta } from './redis';
import { checkClients, type Phase, type PipelinePhase, Rig } from './rigs';

type Measured<P> = P & { redis: RedisDelta };

export interface RedisContext extends SectionContext {
  redis: BenchRedis;
}

/** n server processes on the Redis store, on ioredis and node-redis in turn. */
const processes = (n: number) =>
  Array.from({ length: n }, (_, i) => ['redis-ioredis', 'redis-node-redis'][i % 2]!);
const env = (redis: BenchRedis) => ({ REDIS_URL: redis.url, BENCH_REDIS_PREFIX: BenchRedis.prefix() });
/** A rig's phase with Redis's figures around it. */
async function measured<P>(redis: BenchRedis, phase: () => Promise<P>): Promise<Measured<P>> {
  const { value, redis: delta } = await redis.around(phase);
  return { ...value, redis: delta };
}
const inOrder = (result: Phased<unknown>) => statusOf(result, 'every client got every event, in order');

export async function pairSection({ scale, redis }: RedisContext): Promise<void> {
  const [clients, rounds] = [1000, 5];
  const events = Math.max(20, Math.round(150 * scale));
  const paced = Math.max(5, Math.round(15 * scale));
  log(`Redis pair, ${clients} clients, ${rounds} rounds × (${events} events + ${paced} every 100 ms)`);
  const options = { clients, flags: ['count-writes'], warmup: 50 };
  const rigs = [
    { id: 'hub', rig: () => new Rig({ variants: ['hub'], ...options }) },
    { id: 'pair', rig: () => new Rig({ variants: processes(2), env: env(redis), ...options }) },
  ];
  const results = await suite<Measured<Phase>>(rigs, rounds, async (rig) => {
    const phases = { fast: await measured(redis, () => rig.phase({ count: events }, 60_000)) };
    if (!phases.fast.ok) return phases;
    return {
      ...phases,
      paced: await measured(redis, () => rig.phase({ count: paced, intervalMs: 100 }, 60_000)),
    };
  });
  const base = results.get('hub')?.phases ?? {};
  type Row = [string, Phased<Measured<Phase>>];
  const of = ([, r]: Row, value: (p: Measured<Phase>) => number | undefined) =>
    pick(r.phases.fast ?? [], value);
  const vs = ([, r]: Row, kind: string, value: (p: Phase) => number) =>
    ratio(roundRatios(r.phases[kind] ?? [], base[kind] ?? [], value));
  const row = newTable<Row>(
    `(r): two server processes on the run's own Redis, the clients split between them; the ioredis one publishes,
both fan out what their store's live reader (XREAD) hands them. One event per setImmediate turn, a drain check every
16; paced: one every 100 ms. server CPU = both processes per delivered event. Redis CPU = INFO cpu (user + system)
per published event; commands = INFO commandstats calls sent to Redis (not those inside scripts); the (h) row,
which sends Redis nothing, shows the background (the other rig's idle readers).`,
    [
      [
        'Hub across processes',
        ([id]) => (id === 'hub' ? `${LABELS.hub}, memory store` : '(r) redisStore, 2 processes'),
      ],
      ['clients', () => `${clients}`],
      ['delivered/s', (r) => thousands(of(r, (p) => p.deliveredPerSec))],
      ['vs (h)', (r) => vs(r, 'fast', (p) => p.deliveredPerSec)],
      ['server CPU µs/event', (r) => d2(of(r, (p) => p.cpuUsPerEvent))],
      ['vs (h)', (r) => vs(r, 'fast', (p) => p.cpuUsPerEvent)],
      [
        'publisher + follower',
        (r) =>
          r[0] === 'hub'
            ? '—'
            : `${d2(of(r, (p) => p.serverUsPerEvent[0]))} + ${d2(of(r, (p) => p.serverUsPerEvent[1]))}`,
      ],
      ['writes/delivery', (r) => d2(of(r, (p) => p.handleWritesPerEvent))],
      ['Redis CPU µs/publish', (r) => d1(of(r, (p) => p.redis.cpuUs / p.published))],
      ['Redis commands/publish', (r) => d2(of(r, (p) => p.redis.calls / p.published))],
      ['paced p99 ms', ([, r]) => ms(pick(r.phases.paced ?? [], (p) => p.p99Us))],
      ['vs (h)', (r) => vs(r, 'paced', (p) => p.p99Us)],
      ['status', ([, r]) => inOrder(r)],
    ],
  );
  for (const entry of results) row(entry);
  const pair = results.get('pair');
  if (pair?.ok && base.fast) {
    const speed = medianOf(roundRatios(pair.phases.fast ?? [], base.fast, (p) => p.deliveredPerSec));
    reportNotes.push(`Redis pair: ${verdict('(r) delivered/s vs (h)', speed, '≥0.7')}`);
  }
}

export async function publishSection({ scale, redis }: RedisContext): Promise<void> {
  const [windows, rounds] = [[1, 16, 128], 5];
  const count = Math.max(500, Math.round(5000 * scale));
  log(
    `Publish, ${rounds} rounds × ${count} publishes at ${windows.join(', ')} in flight, stores interleaved`,
  );
  const stores: Record<string, string> = {
    hub: 'memory store (in-process)',
    'redis-ioredis': 'redisStore, ioredis',
    'redis-node-redis': 'redisStore, node-redis',
  };
  const rigs = Object.keys(stores).map((id) => ({
    id,
    rig: () =>
      new Rig({ variants: [id], clients: 2, warmup: 200, ...(id === 'hub' ? {} : { env: env(redis) }) }),
  }));
  const results = await suite<Measured<PipelinePhase>>(rigs, rounds, async (rig, round) => {
    const phases: Record<string, Measured<PipelinePhase>> = {};
    for (const window of round % 2 === 0 ? windows : [...windows].reverse()) {
      phases[window] = await measured(redis, () => rig.pipeline(count, window, 30_000));
      if (!phases[window].ok) break;
    }
    return phases;
  });
  type Row = { id: string; window: number; result: Phased<Measured<PipelinePhase>> };
  const of = (r: Row, value: (p: Measured<PipelinePhase>) => number) =>
    pick(r.result.phases[r.window] ?? [], value);
  const speed = (p: PipelinePhase) => p.publishesPerSec;
  const redisOnly = (r: Row, cell: string) => (r.id === 'hub' ? '—' : cell);
  const row = newTable<Row>(
    `One process publishes keeping K hub.publish() calls unanswered (a sliding window); publishes/s from the first
publish to the last answer; its CPU per publish (its 2 subscribers' fan-out included). Redis CPU = INFO cpu of the
run's own Redis per publish; command µs = INFO commandstats usec of the commands sent (a script's inner commands are
inside its time). Ids must come back in publish order, every subscriber get every event, in order.`,
    [
      ['Publish', (r) => stores[r.id]!],
      ['in flight', (r) => `${r.window}`],
      ['publishes/s', (r) => thousands(of(r, speed))],
      [
        'vs 1 in flight',
        (r) => ratio(roundRatios(r.result.phases[r.window] ?? [], r.result.phases[1] ?? [], speed)),
      ],
      [
        'vs memory',
        (r) =>
          redisOnly(
            r,
            ratio(
              roundRatios(r.result.phases[r.window] ?? [], results.get('hub')?.phases[r.window] ?? [], speed),
            ),
          ),
      ],
      ['publisher CPU µs/publish', (r) => d2(of(r, (p) => p.cpuUsPerPublish))],
      ['Redis CPU µs/publish', (r) => redisOnly(r, d1(of(r, (p) => p.redis.cpuUs / count)))],
      ['command µs/publish', (r) => redisOnly(r, d1(of(r, (p) => p.redis.usec / count)))],
      ['commands/publish', (r) => redisOnly(r, d2(of(r, (p) => p.redis.calls / count)))],
      ['status', (r) => statusOf(r.result, 'ids in order, every event at every subscriber')],
    ],
  );
  for (const [id, result] of results) for (const window of windows) row({ id, window, result });
}

export async function scaleoutSection({ scale, redis }: RedisContext): Promise<void> {
  const [counts, clients, rounds, intervalMs] = [[1, 2, 4, 8], 4000, 3, 100];
  const events = Math.max(10, Math.round(40 * scale));
  log(
    `Scale-out, ${clients} clients over 1, 2, 4, 8 processes, ${rounds} rounds × ${events} events, ${intervalMs} ms apart`,
  );
  const rigs = counts.map((n) => ({
    id: `${n}`,
    rig: () => new Rig({ variants: processes(n), clients, env: env(redis), warmup: 20 }),
  }));
  // Redis's CPU with every reader following and nothing published, as long as a phase: its background
  const idle = () => new Promise<void>((resolve) => setTimeout(resolve, events * intervalMs));
  const results = await suite<Measured<Phase> & { quietCpuUs: number }>(rigs, rounds, async (rig) => {
    const paced = await measured(redis, () => rig.phase({ count: events, intervalMs }, 60_000));
    const { redis: quiet } = await redis.around(idle);
    return { paced: { ...paced, quietCpuUs: quiet.cpuUs } };
  });
  type Row = [string, Phased<Measured<Phase> & { quietCpuUs: number }>];
  const of = ([, r]: Row, value: (p: Measured<Phase> & { quietCpuUs: number }) => number) =>
    pick(r.phases.paced ?? [], value);
  const perPublish = (r: Row) => of(r, (p) => p.redis.cpuUs / p.published);
  const abovePerPublish = (r: Row) => of(r, (p) => (p.redis.cpuUs - p.quietCpuUs) / p.published);
  const mix = ([, r]: Row) => {
    const ok = (r.phases.paced ?? []).filter((p) => p.ok);
    return commandMix(
      ok.map((p) => p.redis),
      ok.reduce((sum, p) => sum + p.published, 0),
    );
  };
  const row = newTable<Row>(
    `N server processes (ioredis and node-redis in turn) on the run's own Redis, ${clients} clients split between them,
one topic; the first process publishes one event every ${intervalMs} ms, so every
live reader wakes for every event. Redis CPU = INFO cpu per published event (its cron included); "above idle"
subtracts a window as long with nothing published (every reader following); commands and their µs from INFO
commandstats (the commands sent; a script counted once).`,
    [
      ['Scale-out', ([n]) => `${n} process${n === '1' ? '' : 'es'}`],
      ['clients', () => `${clients}`],
      ['events', () => `${rounds}×${events}`],
      ['Redis CPU µs/publish', (r) => d1(perPublish(r))],
      ['above idle', (r) => d1(abovePerPublish(r))],
      [
        'vs 1 process',
        ([, r]) =>
          ratio(
            roundRatios(r.phases.paced ?? [], results.get('1')?.phases.paced ?? [], (p) => p.redis.cpuUs),
          ),
      ],
      ['command µs/publish', (r) => d1(of(r, (p) => p.redis.usec / p.published))],
      ['commands/publish', (r) => `${d2(of(r, (p) => p.redis.calls / p.published))} (${mix(r)})`],
      ['server CPU µs/event', (r) => d2(of(r, (p) => p.cpuUsPerEvent))],
      ['p99 ms', (r) => ms(of(r, (p) => p.p99Us))],
      ['status', ([, r]) => inOrder(r)],
    ],
  );
  const fit: Array<[number, number]> = [];
  for (const entry of results) {
    row(entry);
    const perEvent = abovePerPublish(entry);
    if (entry[1].ok && perEvent !== undefined) fit.push([Number(entry[0]), perEvent]);
  }
  if (fit.length < 2) return;
  // least squares: Redis CPU per published event ≈ a + b × processes
  const mean = (f: (p: [number, number]) => number) => fit.reduce((s, p) => s + f(p), 0) / fit.length;
  const [mx, my] = [mean((p) => p[0]), mean((p) => p[1])];
  const b = mean((p) => (p[0] - mx) * (p[1] - my)) / mean((p) => (p[0] - mx) ** 2);
  reportNotes.push(
    `scale-out: Redis CPU per published event above idle ≈ ${d0(my - b * mx)} µs + ${d0(b)} µs × processes (least squares)`,
  );
}

export async function stormSection({ scale, redis }: RedisContext): Promise<void> {
  const servers = 4;
  const clients = Math.max(400, Math.round((4000 * Math.min(1, scale)) / 4) * 4);
  const [first, second, rounds, spreadMs] = [25, 25, 3, 1000];
  const modes = { tail: 'tail (default)', 'no-tail': 'tail: null' } as const;
  log(
    `Reconnect storm, ${clients} clients over ${servers} processes, ${rounds} rounds, with the tail and without`,
  );
  type Row = {
    label: string;
    missed: string;
    redis: RedisDelta;
    base?: RedisDelta;
    spanMs?: number;
    status: string;
  };
  const row = newTable<Row>(
    `${clients} clients over ${servers} processes (ioredis and node-redis in turn) on the run's own Redis, once with the hub's
tail (createHub() default for a Redis store) and once with createHub({ tail: null }), both open at once, taking turns.
Each round the first half drops, ${first} events are published, the second half drops, ${second} more; then all reconnect
with their Last-Event-ID, started within ${spreadMs} ms, so the first half misses ${first + second} events and the second ${second}.
Redis figures from INFO cpu and commandstats, from the first reconnect to the last event replayed; "vs tail: null":
the same round of the rig without the tail. exact = each client got exactly what it missed (the count, in publish
order, no reset), none closed.`,
    [
      ['Reconnect storm', (r) => r.label],
      ['clients', () => `${clients}`],
      ['missed', (r) => r.missed],
      ['Redis commands/client', (r) => d2(r.redis.calls / clients)],
      ['vs tail: null', (r) => (r.base ? d2(r.redis.calls / r.base.calls) : '—')],
      ['Redis CPU ms', (r) => d1(r.redis.cpuUs / 1000)],
      ['Redis CPU µs/client', (r) => d1(r.redis.cpuUs / clients)],
      ['vs tail: null', (r) => (r.base ? d2(r.redis.cpuUs / r.base.cpuUs) : '—')],
      ['reconnected in ms', (r) => d0(r.spanMs)],
      ['status', (r) => `${r.status} (${commandMix([r.redis], clients) || 'no command'})`],
    ],
  );
  const rigs = Object.keys(modes).map(
    (mode) =>
      new Rig({
        variants: processes(servers),
        clients,
        env: env(redis),
        warmup: 20,
        trackIds: true,
        flags: mode === 'no-tail' ? ['no-tail'] : [],
      }),
  );
  const stormOf = async (rig: Rig, round: number) => {
    const client = rig.client!;
    const publish = (count: number) =>
      rig.servers[0]!.request({ type: 'run', count, timeLimitMs: 10_000 }, 'sent', 15_000);
    await client.request({ type: 'drop', from: 0, to: clients / 2 }, 'dropped', 10_000);
    await publish(first);
    await client.request({ type: 'drop', from: clients / 2, to: clients }, 'dropped', 10_000);
    await publish(second);
    rig.delivered += first + second;
    const tag = `storm${round}`;
    const { value, redis: storm } = await redis.around(async () => {
      await client.request({ type: 'expect', tag, total: clients * rig.delivered }, 'expecting', 5_000);
      const resumed = await client.request(
        { type: 'resume', groups: rig.shares, spreadMs },
        'resumed',
        spreadMs + 30_000,
      );
      await client.waitFor('reached', 30_000, (m) => m.tag === tag).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 30)); // late or duplicate bytes would show
      return { resumed, status: await client.request({ type: 'status' }, 'status', 10_000) };
    });
    const { resumed, status } = value;
    const problems = [
      checkClients(status, rig.delivered),
      status.resets ? `${status.resets} resets` : undefined,
      resumed.failures ? `${resumed.failures} reconnects failed` : undefined,
    ].filter(Boolean);
    const spanMs = ((resumed.lastHeadUs as number) - (resumed.startedUs as number)) / 1000;
    return { storm, spanMs, status: problems.length === 0 ? 'ok: exact' : `FAILED: ${problems.join('; ')}` };
  };
  try {
    for (const rig of rigs) {
      await rig.connect();
      await rig.warm();
    }
    const results: Array<Array<Awaited<ReturnType<typeof stormOf>>>> = [[], []];
    for (let round = 0; round < rounds; round++) {
      for (const i of round % 2 === 0 ? [0, 1] : [1, 0]) results[i]!.push(await stormOf(rigs[i]!, round));
      log(`  round ${round + 1}: ${results.map((r) => r[round]!.status).join(', ')}`);
      if (results.some((r) => !r[round]!.status.startsWith('ok'))) break;
    }
    const ratios: number[][] = [[], []];
    for (const [i, label] of Object.values(modes).entries()) {
      for (const [round, r] of results[i]!.entries()) {
        const base = i === 0 ? results[1]![round]?.storm : undefined;
        if (base) {
          ratios[0]!.push(r.storm.calls / clients);
          ratios[1]!.push(r.storm.cpuUs / base.cpuUs);
        }
        row({
          label: `${label}, round ${round + 1}`,
          missed: `${second}–${first + second}`,
          redis: r.storm,
          base,
          ...r,
        });
      }
    }
    if (ratios[0]!.length > 0) {
      reportNotes.push(
        `storm: ${verdict('Redis commands per resuming client with the tail', medianOf(ratios[0]!), '≤0.05')}; ${verdict('Redis CPU vs tail: null', medianOf(ratios[1]!), '≤0.1')}`,
      );
    }
  } catch (error) {
    reportNotes.push(`the storm failed: ${firstLine(error)}`);
  } finally {
    for (const rig of rigs) rig.close();
  }
}

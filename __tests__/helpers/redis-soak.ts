import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventSource } from 'eventsource';
import type Redis from 'ioredis';
import { type HubProcess, publishVia, startHubProcess, stopHubProcesses } from './processes';
import { currentClient, findRedisServer, ioredisClient, OwnRedis, uniquePrefix } from './redis';
import { random } from './soak';
import { sleep, until } from './wait';

/**
 * The Redis fault soak: two hub processes (ioredis and node-redis) on a Redis of the soak's own,
 * EventSource clients on both, a publisher per process and topic, and every few seconds a fault —
 * connections killed, Redis paused, restarted empty, flushed, or restarted from an older snapshot.
 * What must hold: every client holds each topic's events with contiguous ids, in order, each once, or a
 * reset (naming why) where that breaks; and once the faults stop, every client gets what is published.
 */

export const FAULTS = ['client-kill', 'pause', 'restart-empty', 'flushall', 'rewind'] as const;
export type Fault = (typeof FAULTS)[number];

export interface RedisSoakOptions {
  durationMs: number;
  faultEveryMs: number;
  topics?: number;
  clientsPerProcess?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface RedisSoakReport {
  seed: number;
  faults: Record<Fault, number>;
  published: number;
  /** Publishes that failed at least once and were retried under their key. */
  retried: number;
  /** Ids acknowledged for two events: Redis gone back below what a lagging process had seen (see reusedIdProblems). */
  reusedIds: number;
  delivered: number;
  resets: Record<string, number>;
  /** Every way a client's events broke the promise, with the client, topic and ids. */
  problems: string[];
  /** Whether every client got the events published after the last fault. */
  liveAfterFaults: boolean;
}

interface Received {
  type: string;
  id: string;
  data: string;
}

/** One EventSource client of one topic on one process, keeping everything it is handed, in order. */
function follow(port: number, topic: string): { source: EventSource; received: Received[] } {
  const source = new EventSource(`http://127.0.0.1:${port}/feed/${topic}`);
  const received: Received[] = [];
  for (const type of ['msg', 'reset', 'hub:position']) {
    source.addEventListener(type, (event) => {
      received.push({ type, id: event.lastEventId, data: event.data });
    });
  }
  source.onerror = () => {}; // it reconnects by itself, with its last id
  return { source, received };
}

/**
 * What is wrong in one client's events: between resets, each event's id must follow the one before in
 * the same epoch (`<epoch>-<seq + 1>`; the position marker counts as the place it names; a client placed
 * at seq 0, before the topic had a log, goes on at seq 1 of the log begun), no payload may come twice,
 * and an id the store acknowledged once must carry that event (`acknowledged`: id → the payloads
 * acknowledged under it; see {@link reusedIdProblems} for an id acknowledged twice).
 */
export function problemsOf(
  name: string,
  received: readonly Received[],
  acknowledged: ReadonlyMap<string, readonly string[]>,
): string[] {
  const problems: string[] = [];
  let place: { epoch: string; seq: number } | undefined;
  let payloads = new Set<string>();
  for (const event of received) {
    if (event.type === 'reset') {
      place = undefined;
      payloads = new Set();
      continue;
    }
    const cut = event.id.lastIndexOf('-');
    const here = { epoch: event.id.slice(0, cut), seq: Number(event.id.slice(cut + 1)) };
    if (event.type === 'hub:position') {
      // a (re)connection's position: where the client already stands, or where it starts
      if (place !== undefined && (here.epoch !== place.epoch || here.seq !== place.seq)) {
        problems.push(`${name}: placed at ${event.id} after ${place.epoch}-${place.seq}, with no reset`);
      }
      place = here;
      continue;
    }
    const follows =
      place === undefined ||
      (place.seq === 0 ? here.seq === 1 : here.epoch === place.epoch && here.seq === place.seq + 1);
    const owners = acknowledged.get(event.id) ?? [];
    if (owners.length === 1 && owners[0] !== event.data) {
      problems.push(`${name}: ${event.id} carried ${event.data}, but the store gave that id to ${owners[0]}`);
    }
    if (!follows && place !== undefined) {
      problems.push(`${name}: ${event.id} (${event.data}) after ${place.epoch}-${place.seq}, with no reset`);
    }
    if (payloads.has(event.data)) problems.push(`${name}: ${event.data} twice, with no reset between`);
    payloads.add(event.data);
    place = here;
  }
  return problems;
}

export async function runRedisSoak(options: RedisSoakOptions): Promise<RedisSoakReport> {
  const log = options.log ?? (() => {});
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rand = random(seed);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'express-streaming-redis-soak-'));
  const server = await OwnRedis.start(findRedisServer()!, dir);
  const admin = ioredisClient(server.url);
  const prefix = uniquePrefix();
  const topics = Array.from({ length: options.topics ?? 3 }, (_, i) => `s${i}`);
  const report: RedisSoakReport = {
    seed,
    faults: Object.fromEntries(FAULTS.map((fault) => [fault, 0])) as Record<Fault, number>,
    published: 0,
    retried: 0,
    reusedIds: 0,
    delivered: 0,
    resets: {},
    problems: [],
    liveAfterFaults: false,
  };
  log(`redis soak: seed ${seed}, Redis on ${server.port}`);
  const acknowledged = new Map<string, string[]>();
  const acks: Ack[] = [];
  const processes = await Promise.all(
    (['ioredis', 'node-redis'] as const).map((kind) =>
      startHubProcess(currentClient(kind), server.url, prefix),
    ),
  );
  const clients = processes.flatMap((process, p) =>
    Array.from({ length: options.clientsPerProcess ?? 2 }, (_, c) =>
      topics.map((topic) => ({ name: `p${p}c${c}/${topic}`, topic, ...follow(process.port, topic) })),
    ).flat(),
  );
  try {
    await until(() => clients.every((c) => c.received.length > 0), 'every client placed', 10_000);
    let faulting = true;
    const publishers = processes.flatMap((process, p) =>
      topics.map((topic) => publishUntil(process, p, topic, () => !faulting, report, { acknowledged, acks })),
    );
    await applyFaults(server, admin, dir, options, rand, report, log);
    faulting = false;
    // the faults are over: what is published from now on reaches every client
    const finals = await Promise.all(publishers);
    const last = new Map(topics.map((topic) => [topic, finals.filter((f) => f.topic === topic)]));
    try {
      await until(
        () =>
          clients.every((client) =>
            last.get(client.topic)!.every(({ final }) => client.received.some((e) => e.data === final)),
          ),
        'every client to get the events published after the last fault',
        20_000,
      );
      report.liveAfterFaults = true;
    } catch (error) {
      report.problems.push(String(error));
    }
    await sleep(200); // a late duplicate would arrive now
    report.reusedIds = [...acknowledged.values()].filter((owners) => owners.length > 1).length;
    report.problems.push(...reusedIdProblems(acknowledged, acks));
    for (const client of clients) {
      report.problems.push(...problemsOf(client.name, client.received, acknowledged));
      for (const event of client.received) {
        if (event.type === 'msg') report.delivered++;
        if (event.type === 'reset') {
          const reason = (JSON.parse(event.data) as { reason: string }).reason;
          report.resets[reason] = (report.resets[reason] ?? 0) + 1;
        }
      }
    }
  } finally {
    for (const client of clients) client.source.close();
    await stopHubProcesses();
    await server.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

/** How many more events of a topic may be acknowledged in an epoch whose ids were given twice, before it ends. */
const REUSE_FOUND_WITHIN = 20;

interface Ack {
  topic: string;
  id: string;
  data: string;
}

/**
 * An id acknowledged for two events: Redis went back in time below ids a process had handed out, and
 * another process — which had not seen them yet when Redis went down — went on from there. Allowed only
 * if the store then finds the rewind (a process that saw more does, at its next command or check) and
 * the topic moves to a new epoch within a few more events; going on in the old one is the silent reuse of
 * ids.
 */
function reusedIdProblems(
  acknowledged: ReadonlyMap<string, readonly string[]>,
  acks: readonly Ack[],
): string[] {
  const problems: string[] = [];
  const epochOf = (id: string) => id.slice(0, id.lastIndexOf('-'));
  for (const [id, owners] of acknowledged) {
    if (owners.length < 2) continue;
    const second = acks.findIndex((ack) => ack.id === id && ack.data === owners[1]);
    const { topic } = acks[second]!;
    const after = acks.slice(second + 1).filter((ack) => ack.topic === topic);
    const stayed = after.findIndex((ack) => epochOf(ack.id) !== epochOf(id));
    // the processes that saw more find it at their next publish: a few acknowledgements at most
    if (stayed === -1 || stayed > REUSE_FOUND_WITHIN) {
      problems.push(`${id} acknowledged for ${owners.join(' and ')}, and its epoch went on`);
    }
  }
  return problems;
}

/**
 * Publishes `<process>:<topic>:<n>` for n = 1, 2, … through one process until `done()`, each retried
 * under its own key until it is taken; then one final event, published once the faults are over.
 */
async function publishUntil(
  process: HubProcess,
  p: number,
  topic: string,
  done: () => boolean,
  report: RedisSoakReport,
  ledger: { acknowledged: Map<string, string[]>; acks: Ack[] },
): Promise<{ topic: string; final: string }> {
  let n = 0;
  let final = '';
  for (let last = false; !last; ) {
    last = done();
    const data = `p${p}:${topic}:${++n}${last ? ':final' : ''}`;
    for (let attempt = 0; ; attempt++) {
      try {
        const id = await publishVia(process.port, topic, data, data);
        const owners = ledger.acknowledged.get(id) ?? [];
        if (!owners.includes(data)) ledger.acknowledged.set(id, [...owners, data]);
        ledger.acks.push({ topic, id, data });
        break;
      } catch {
        if (attempt === 0) report.retried++;
        await sleep(50);
      }
    }
    report.published++;
    final = data;
    await sleep(10);
  }
  return { topic, final };
}

/** Every `faultEveryMs` a fault, each kind in turn in a shuffled order (so a short run has them all). */
async function applyFaults(
  server: OwnRedis,
  admin: Redis,
  dir: string,
  options: RedisSoakOptions,
  rand: () => number,
  report: RedisSoakReport,
  log: (line: string) => void,
): Promise<void> {
  const older = path.join(dir, 'older.rdb');
  const end = Date.now() + options.durationMs;
  let order: Fault[] = [];
  while (Date.now() < end) {
    await sleep(options.faultEveryMs);
    if (order.length === 0) order = [...FAULTS].sort(() => rand() - 0.5);
    const fault = order.shift()!;
    // the snapshot a rewind goes back to: taken a fault ago
    if (fs.existsSync(server.snapshot!)) fs.copyFileSync(server.snapshot!, older);
    await admin.call('SAVE').catch(() => {});
    log(`fault: ${fault}`);
    report.faults[fault]++;
    switch (fault) {
      case 'client-kill':
        await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes').catch(() => {});
        break;
      case 'pause':
        server.pause();
        await sleep(500 + rand() * 1000);
        server.resume();
        break;
      case 'flushall':
        await admin.call('FLUSHALL').catch(() => {});
        break;
      case 'restart-empty':
        await server.kill();
        fs.rmSync(server.snapshot!, { force: true });
        await server.restart();
        break;
      case 'rewind':
        await server.kill();
        if (fs.existsSync(older)) fs.copyFileSync(older, server.snapshot!);
        await server.restart();
        break;
    }
  }
}

/** A report in a few lines. */
export function describeRedisSoak(report: RedisSoakReport): string {
  return [
    `redis soak (seed ${report.seed}): faults ${JSON.stringify(report.faults)}`,
    `published ${report.published} (${report.retried} retried under their key), delivered ${report.delivered}`,
    `ids acknowledged for two events (each must be left for a new epoch at once): ${report.reusedIds}`,
    `resets ${JSON.stringify(report.resets)}; live after the faults: ${report.liveAfterFaults}`,
    `problems: ${report.problems.length === 0 ? 'none' : `\n- ${report.problems.slice(0, 20).join('\n- ')}`}`,
  ].join('\n');
}

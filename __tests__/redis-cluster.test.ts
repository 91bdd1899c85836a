import { Cluster } from 'ioredis';
import { createHub, type Hub } from '../lib';
import { redisStore } from '../lib/redis';
import { clusterLayout, keySlot } from '../lib/redis/layout';
import { requireComponent } from './helpers/components';
import { byTopic, dataOf, parseEvents, publishRounds, serveHub } from './helpers/hub-server';
import { publishVia, startHubProcess, stopHubProcesses } from './helpers/processes';
import {
  currentClient,
  expectRedisContract,
  findRedisServer,
  REDIS_CLIENTS,
  type RedisClientPackage,
  uniquePrefix,
} from './helpers/redis';
import { closeClusterClients, connectCluster, findRedisCli, OwnCluster } from './helpers/redis-cluster';
import { closeAll } from './helpers/servers';
import { RawSseClient } from './helpers/sse-client';
import { sleep, succeeds, until, untilAsync } from './helpers/wait';

const redisServer = findRedisServer();
const redisCli = findRedisCli();
const cluster = requireComponent(
  'redis-server and redis-cli (to start a Redis Cluster)',
  redisServer !== undefined && redisCli !== undefined,
  'REQUIRE_REDIS',
);

const hubs: Hub[] = [];
afterEach(async () => {
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
  await stopHubProcesses();
  await closeAll();
  await closeClusterClients();
});

/** The current major of each client, by name: what the tests of behaviour (not of a client major) run on. */
const BOTH = (['ioredis', 'node-redis'] as const).map((kind) => [kind, currentClient(kind)] as const);

/** The default layout's topics, named `t<n>`, until each of the cluster's primaries holds `each` of them. */
async function topicsOnEveryPrimary(own: OwnCluster, prefix: string, each: number): Promise<string[][]> {
  const layout = clusterLayout(prefix, 16);
  const byNode: string[][] = own.nodes.map(() => []);
  for (let n = 0; byNode.some((topics) => topics.length < each); n++) {
    const topic = `t${n}`;
    const node = await own.ownerOf(keySlot(layout.keysOf(topic).log));
    if (byNode[node]!.length < each) byNode[node]!.push(topic);
  }
  return byNode;
}

/**
 * Publishes `<topic>:<n>` to every topic in rounds n = 1, 2, … until stopped, each publish retried under
 * its own key until it is taken (applied once, whatever the cluster goes through).
 */
function retriedPublishes(hub: Hub, topics: readonly string[]) {
  let stopping = false;
  const state = { published: 0, stop: async () => 0 };
  const running = (async () => {
    for (let n = 1; !stopping; n++) {
      for (const topic of topics) {
        const event = { event: 'msg', data: `${topic}:${n}` };
        await untilAsync(
          () => succeeds(hub.publish(topic, event, { idempotencyKey: String(n) })),
          `publish ${topic}:${n}`,
          20_000,
        );
      }
      state.published = n;
    }
  })();
  state.stop = async () => {
    stopping = true;
    await running;
    return state.published;
  };
  return state;
}

/**
 * What is wrong with a client's events of one topic, `<topic>:1` … `<topic>:<published>`: inside each
 * run between resets the numbers go up by one (a duplicate or a gap with no reset is silent), and every
 * number published arrived.
 */
function problemsOf(
  events: ReadonlyArray<{ event: string; data: string }>,
  topic: string,
  published: number,
) {
  const problems: string[] = [];
  const seen = new Set<number>();
  let last: number | undefined;
  for (const event of events) {
    if (event.event === 'reset') {
      last = undefined;
      continue;
    }
    const n = Number(event.data.slice(topic.length + 1));
    if (last !== undefined && n !== last + 1) problems.push(`${last} then ${n} with no reset between`);
    last = n;
    seen.add(n);
  }
  for (let n = 1; n <= published; n++) if (!seen.has(n)) problems.push(`${n} never arrived`);
  return problems;
}

/** An ioredis Cluster connection for the test's own changes to the keys (losing a log, going back in time). */
function clusterAdmin(own: OwnCluster): Cluster {
  const admin = new Cluster(own.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })));
  admin.on('error', () => {});
  return admin;
}

/**
 * Redis Cluster: three primaries of the test's own. Topics are grouped into hash slots (16 by default)
 * spread over the primaries; every script names keys of one slot, and each process waits on each slot
 * it follows with one blocking read.
 */
cluster.describe(`redisStore on a Redis Cluster of three primaries${cluster.label}`, () => {
  let own: OwnCluster;
  beforeAll(async () => {
    own = await OwnCluster.start(redisServer!, redisCli!, 3);
  }, 30_000);
  afterAll(async () => {
    await own?.stop();
  });

  it('lays the topics out as the cluster hashes them: 16 shards in slots spread over every primary', async () => {
    const layout = clusterLayout('sse', 16);
    const admin = clusterAdmin(own);
    try {
      const keys = ['news', 'room:42', 'ünïcode', '{braced}', 'a}b'].map((topic) => layout.keysOf(topic).log);
      const slots = await Promise.all(keys.map((key) => admin.call('CLUSTER', 'KEYSLOT', key)));
      expect(slots.map(Number)).toEqual(keys.map(keySlot));
    } finally {
      admin.disconnect();
    }
    const shardSlots = Array.from({ length: 16 }, (_, shard) => keySlot(layout.wakeKey(shard)!));
    // the n-th shard in the n-th sixteenth of the slot space
    expect(shardSlots.map((slot) => Math.floor(slot / 1024))).toEqual(
      Array.from({ length: 16 }, (_, n) => n),
    );
    const owners = await Promise.all(shardSlots.map((slot) => own.ownerOf(slot)));
    expect(new Set(owners)).toEqual(new Set([0, 1, 2]));
  });

  it.each(REDIS_CLIENTS.map((client) => [client.label, client] as const))(
    'passes the store contract on %s, nothing skipped',
    async (_label, client) => {
      const prefix = uniquePrefix();
      const admin = clusterAdmin(own);
      try {
        const makeStore = async () => redisStore(await connectCluster(client, own), { prefix });
        await expectRedisContract(makeStore, admin, prefix, clusterLayout(prefix, 16));
      } finally {
        admin.disconnect();
      }
    },
    60_000,
  );

  it('delivers what an ioredis process publishes to a node-redis process, and resumes there, on topics of every primary', async () => {
    const prefix = uniquePrefix();
    const topics = (await topicsOnEveryPrimary(own, prefix, 2)).flat();
    const url = `cluster:${own.rootUrls.join(',')}`;
    const [io, node] = await Promise.all([
      startHubProcess(currentClient('ioredis'), url, prefix),
      startHubProcess(currentClient('node-redis'), url, prefix),
    ]);
    const live = new RawSseClient(node.port, `/topics/${topics.join(',')}`);
    await until(() => live.body.includes('id: '), 'subscribed on the node-redis process', 5000);
    for (const topic of topics) await publishVia(io.port, topic, `${topic}:1`);
    await until(
      () => parseEvents(live.body).events.length === topics.length,
      'an event of every topic',
      5000,
    );
    live.close();
    // missed while away, on every primary: then resumed on the other process
    for (let n = 2; n <= 4; n++)
      for (const topic of topics) await publishVia(node.port, topic, `${topic}:${n}`);
    const again = new RawSseClient(io.port, `/topics/${topics.join(',')}`, {
      'Last-Event-ID': parseEvents(live.body).lastId!,
    });
    await until(() => parseEvents(again.body).events.length === 3 * topics.length, 'the replay', 5000);
    for (const topic of topics) await publishVia(node.port, topic, `${topic}:5`);
    await until(() => parseEvents(again.body).events.length === 4 * topics.length, 'live again', 5000);
    expect(byTopic(parseEvents(again.body).events)).toEqual(
      Object.fromEntries(topics.map((topic) => [topic, [2, 3, 4, 5]])),
    );
  });

  it.each(BOTH)(
    'on %s: a topic followed while its shard is being read joins the pending read at once (it is woken)',
    async (_kind, client: RedisClientPackage) => {
      const prefix = uniquePrefix();
      const layout = clusterLayout(prefix, 16);
      const first = 'w0';
      let second = 'w1';
      for (let n = 2; layout.keysOf(second).shard !== layout.keysOf(first).shard; n++) second = `w${n}`;
      // a read that would otherwise block for 30 s: only a wake gets the second topic read within the wait
      const store = redisStore(await connectCluster(client, own), { prefix, blockMs: 30_000 });
      const hub = createHub({ store });
      hubs.push(hub);
      const app = await serveHub(hub, { retryMs: null });
      const one = new RawSseClient(app.port, `/feed/${first}`);
      await until(() => one.body.includes('id: '), 'the first topic followed', 5000);
      await sleep(200); // its read is pending
      const two = new RawSseClient(app.port, `/feed/${second}`);
      await until(() => two.body.includes('id: '), 'the second topic followed', 5000);
      await hub.publish(second, { event: 'msg', data: 'now' });
      await until(() => dataOf(two).length === 1, 'the event of the topic followed last', 5000);
    },
  );

  it.each(BOTH)(
    "on %s: a topic's slot moved to another primary while publishing: every event once, in order, no reset",
    async (_kind, client: RedisClientPackage) => {
      const prefix = uniquePrefix();
      const [[topic]] = await topicsOnEveryPrimary(own, prefix, 1);
      const hub = createHub({ store: redisStore(await connectCluster(client, own), { prefix }) });
      hubs.push(hub);
      const app = await serveHub(hub, { retryMs: null, heartbeatMs: 200 });
      const sse = new RawSseClient(app.port, `/feed/${topic}`);
      await until(() => sse.body.includes('id: '), 'subscribed', 5000);
      const publisher = retriedPublishes(hub, [topic!]);
      await until(() => publisher.published >= 20, 'publishing under way', 5000);
      const slot = keySlot(clusterLayout(prefix, 16).keysOf(topic!).log);
      await own.moveSlot(slot, 2);
      expect(await own.ownerOf(slot)).toBe(2);
      const moved = publisher.published;
      await until(() => publisher.published >= moved + 20, 'publishing after the move', 10_000);
      const published = await publisher.stop();
      await until(() => dataOf(sse).length >= published, 'every event delivered', 10_000);
      const events = parseEvents(sse.body).events;
      expect(events.filter((e) => e.event !== 'msg')).toEqual([]);
      expect(problemsOf(events, topic!, published)).toEqual([]);
    },
    40_000,
  );

  it.each(BOTH)(
    'on %s: a primary killed and its replica promoted: every event once, in order, or a reset',
    async (_kind, client: RedisClientPackage) => {
      // a cluster of its own: the failover changes which nodes are primaries
      const failing = await OwnCluster.start(redisServer!, redisCli!, 3);
      let hub: Hub | undefined;
      try {
        const prefix = uniquePrefix();
        const byNode = await topicsOnEveryPrimary(failing, prefix, 1);
        const topics = byNode.flat();
        const replica = await failing.addReplica(0, redisCli!);
        hub = createHub({ store: redisStore(await connectCluster(client, failing), { prefix }) });
        const app = await serveHub(hub, { retryMs: null, heartbeatMs: 200 });
        const clients = topics.map((topic) => new RawSseClient(app.port, `/feed/${topic}`));
        await until(() => clients.every((c) => c.body.includes('id: ')), 'subscribed', 5000);
        const publisher = retriedPublishes(hub, topics);
        await until(() => publisher.published >= 10, 'publishing under way', 5000);
        await failing.kill(0);
        const killedAt = publisher.published;
        await until(() => publisher.published >= killedAt + 10, 'publishing after the failover', 20_000);
        expect(await failing.ownerOf(keySlot(clusterLayout(prefix, 16).keysOf(byNode[0]![0]!).log))).toBe(
          replica,
        );
        const published = await publisher.stop();
        await until(() => clients.every((c) => dataOf(c).length >= published), 'every event', 10_000);
        for (const [i, topic] of topics.entries()) {
          expect({
            topic,
            problems: problemsOf(parseEvents(clients[i]!.body).events, topic, published),
          }).toEqual({
            topic,
            problems: [],
          });
        }
      } finally {
        // its readers let go while the cluster still answers, then the app's client, then the cluster
        await hub?.close();
        await closeClusterClients();
        await failing.stop();
      }
    },
    60_000,
  );

  it.each(BOTH)(
    "on %s: a primary's restart resets the subscribers of its topics (a new epoch), and nobody else's",
    async (_kind, client: RedisClientPackage) => {
      const prefix = uniquePrefix();
      const byNode = await topicsOnEveryPrimary(own, prefix, 1);
      const topics = byNode.flat();
      const hub = createHub({ store: redisStore(await connectCluster(client, own), { prefix }) });
      hubs.push(hub);
      const app = await serveHub(hub, { retryMs: null, heartbeatMs: 200 });
      const clients = topics.map((topic) => new RawSseClient(app.port, `/feed/${topic}`));
      await until(() => clients.every((c) => c.body.includes('id: ')), 'subscribed', 5000);
      await publishRounds(hub, topics, 1, 3);
      await until(() => clients.every((c) => dataOf(c).length === 3), 'three events each', 5000);

      await own.restart(1); // the second primary comes back empty, with its slots
      for (const topic of topics) {
        // retried under one key until the cluster answers: applied once however many tries it takes
        const event = { event: 'msg', data: `${topic}:4` };
        await untilAsync(
          () => succeeds(hub.publish(topic, event, { idempotencyKey: `${topic}:4` })),
          `a publish to ${topic} after the restart`,
          15_000,
        );
      }
      await until(() => clients.every((c) => dataOf(c).length === 4), 'the fourth event everywhere', 10_000);
      for (const [i, topic] of topics.entries()) {
        const events = parseEvents(clients[i]!.body).events;
        const restarted = byNode[1]!.includes(topic);
        expect({
          topic,
          events: events.map((e) => (e.event === 'reset' ? `reset ${e.data}` : e.data)),
        }).toEqual({
          topic,
          events: [
            `${topic}:1`,
            `${topic}:2`,
            `${topic}:3`,
            ...(restarted ? [`reset {"reason":"unknown-epoch","topic":"${topic}"}`] : []),
            `${topic}:4`,
          ],
        });
      }
    },
    40_000,
  );
});

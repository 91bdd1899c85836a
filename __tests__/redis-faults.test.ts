import { createHub, type Hub, HubStoreError } from '../lib';
import { type IoRedisLike, redisStore } from '../lib/redis';
import { requireComponent } from './helpers/components';
import { dataOf, serveHub, untilPublished } from './helpers/hub-server';
import {
  closeClients,
  connectRedis,
  currentClient,
  findRedisServer,
  ioredisClient,
  OwnRedis,
  REDIS_CLIENTS,
  type RedisClientPackage,
} from './helpers/redis';
import { closeAll } from './helpers/servers';
import { RawSseClient } from './helpers/sse-client';
import { TcpGate } from './helpers/tcp-gate';
import { sleep, succeeds, until, untilAsync, untilStable } from './helpers/wait';

const redisServer = findRedisServer();
const ownRedis = requireComponent(
  'redis-server (to break one of its own)',
  redisServer !== undefined,
  'REQUIRE_REDIS',
);

const hubs: Hub[] = [];
const closers: Array<() => unknown> = [];
let server: OwnRedis;
beforeEach(async () => {
  if (ownRedis.available) server = await OwnRedis.start(redisServer!);
});
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
  await closeAll();
  await closeClients();
  await server?.kill();
});

/** An ioredis client of `client`'s major with its defaults, as most apps make it (it resends what a lost connection left unanswered). */
function ioredisWithDefaults(client: RedisClientPackage, url: string, options: object = {}): IoRedisLike {
  const IoRedis = require(client.module) as new (url: string, options: object) => IoRedisLike;
  const connection = new IoRedis(url, options);
  connection.on('error', () => {});
  closers.push(() => connection.disconnect());
  return connection;
}

/** The payloads of a topic's log, in order (the store's key layout on one server). */
async function logged(url: string, topic: string): Promise<string[]> {
  const entries = await ioredisClient(url).xrange(`{sse:${topic}}:log`, '-', '+');
  return entries.map(([, fields]) => fields[fields.indexOf('d') + 1]!);
}

/** The number of times Redis ran a command since it started (`INFO commandstats`). */
async function calls(url: string, command: string): Promise<number> {
  const info = String(await ioredisClient(url).info('commandstats'));
  return Number(new RegExp(`cmdstat_${command.replace('|', '\\|')}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
}

/** The id of the live reader's connection, once Redis lists it. */
async function readerId(url: string): Promise<string> {
  for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(20)) {
    const reader = await readerConnection(url);
    if (reader !== undefined) return /\bid=(\d+)/.exec(reader)![1]!;
  }
  throw new Error('timed out waiting for the live reader to connect');
}

/** The live reader's connection, as Redis lists it. */
async function readerConnection(url: string): Promise<string | undefined> {
  const list = String(await ioredisClient(url).call('CLIENT', 'LIST'));
  return list.split('\n').find((line) => line.includes('name=express-streaming:live-reader'));
}

const ioredisMajors = REDIS_CLIENTS.filter((client) => client.kind === 'ioredis');
const current = [currentClient('ioredis'), currentClient('node-redis')];

ownRedis.describe(`the Redis store under faults, each on a Redis of its own${ownRedis.label}`, () => {
  it.each(ioredisMajors.map((client) => [client.label, client] as const))(
    "on %s: the app's connection killed 40 times with 64 publishes in flight: every acknowledged event logged once",
    async (_label, client) => {
      const hub = createHub({ store: redisStore(ioredisWithDefaults(client, server.url)) });
      hubs.push(hub);
      const admin = ioredisClient(server.url);
      const topics = Array.from({ length: 16 }, (_, i) => `k${i}`);
      const acknowledged = new Set<string>();
      let failed = 0;
      let next = 0;
      const total = 3000;
      const workers = Array.from({ length: 64 }, async () => {
        while (next < total) {
          const n = next++;
          const data = `${n}`;
          await hub.publish(topics[n % topics.length]!, { event: 'msg', data }).then(
            () => acknowledged.add(data),
            () => failed++,
          );
        }
      });
      let kills = 0;
      const killing = (async () => {
        while (kills < 40 && next < total) {
          await sleep(5);
          await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
          kills++;
        }
      })();
      await Promise.all([...workers, killing]);
      expect(kills).toBe(40);
      const everything = (await Promise.all(topics.map((topic) => logged(server.url, topic)))).flat();
      const twice = everything.filter((data, i) => everything.indexOf(data) !== i);
      expect(twice).toEqual([]);
      expect([...acknowledged].filter((data) => !everything.includes(data))).toEqual([]);
      // a publish that failed may still have been applied: never more than that
      expect(everything.length - acknowledged.size).toBeGreaterThanOrEqual(0);
      expect(everything.length - acknowledged.size).toBeLessThanOrEqual(failed);
    },
    30_000,
  );

  it.each(current.map((client) => [client.label, client] as const))(
    'on %s: a publish that failed on a hung Redis, retried under its key once Redis answers, is logged once',
    async (_label, client) => {
      const hub = createHub({
        store: redisStore(await connectRedis(client, server.url), { commandTimeoutMs: 300 }),
      });
      hubs.push(hub);
      await hub.publish('r', { event: 'msg', data: 'before' });
      server.pause();
      const failure = await hub
        .publish('r', { event: 'msg', data: 'retried' }, { idempotencyKey: 'retried' })
        .catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(HubStoreError);
      server.resume();
      const [id] = await untilPublished(hub, 'r', 'retried');
      expect(await logged(server.url, 'r')).toEqual(['before', 'retried']);
      const [, [loggedId]] = await ioredisClient(server.url).xrange('{sse:r}:log', '-', '+');
      expect(id!.endsWith(`-${Number.parseInt(loggedId!, 10)}`)).toBe(true);
    },
  );

  it.each([
    ['ioredis, its defaults', currentClient('ioredis'), {}],
    ['ioredis, maxRetriesPerRequest: null', currentClient('ioredis'), { maxRetriesPerRequest: null }],
    ['node-redis', currentClient('node-redis'), undefined],
  ] as Array<[string, RedisClientPackage, object | undefined]>)(
    "on %s: hub.close() settles within seconds while the reader's first connection hangs, and the reader never comes back",
    async (_label, client, ioredisOptions) => {
      const gate = await TcpGate.before(server.port);
      closers.push(() => gate.close());
      // the app's connection is made while the gate is open; the reader's, made at the first subscriber, hangs
      const app =
        ioredisOptions === undefined
          ? await connectRedis(client, gate.url)
          : ioredisWithDefaults(client, gate.url, ioredisOptions);
      const hub = createHub({ store: redisStore(app) });
      await hub.publish('h', { event: 'msg', data: 'warm' });
      gate.open = false;
      const served = await serveHub(hub, { retryMs: null });
      const sse = new RawSseClient(served.port, '/feed/h');
      await until(() => sse.body.includes('id: '), 'subscribed (its head read on the app connection)', 5000);
      await sleep(300); // the reader's connection is being made, and hangs
      const closing = hub.close().then(() => 'closed');
      expect(await Promise.race([closing, sleep(3000).then(() => 'still closing after 3 s')])).toBe('closed');
      gate.open = true;
      await sleep(500); // a reader left trying would be back within its retry
      expect(await readerConnection(server.url)).toBeUndefined();
    },
  );

  it.each(current.map((client) => [client.label, client] as const))(
    'on %s: stats().store tells a hung Redis (readerLagMs past 2 s after 3 s) and counts each lost reader connection',
    async (_label, client) => {
      const hub = createHub({ store: redisStore(await connectRedis(client, server.url)) });
      hubs.push(hub);
      const served = await serveHub(hub, { retryMs: null, heartbeatMs: 200 });
      const sse = new RawSseClient(served.port, '/feed/s');
      await until(() => hub.stats().subscribers === 1 && sse.body.includes('id: '), 'subscribed');
      await until(() => hub.stats().store?.readerTopics === 1, 'the topic followed');
      let lag = 0;
      server.pause();
      try {
        const until3s = Date.now() + 3300;
        while (Date.now() < until3s) {
          lag = Math.max(lag, hub.stats().store?.readerLagMs ?? 0);
          await sleep(50);
        }
      } finally {
        server.resume();
      }
      expect(lag).toBeGreaterThan(2000);
      for (let kill = 1; kill <= 3; kill++) {
        const id = await readerId(server.url);
        await ioredisClient(server.url).call('CLIENT', 'KILL', 'ID', id);
        await until(
          () => (hub.stats().store?.readerReconnects ?? 0) >= kill,
          `reconnect ${kill} counted`,
          5000,
        );
      }
      await untilAsync(() => succeeds(hub.publish('s', { event: 'msg', data: 'after' })), 'a publish', 5000);
      await until(() => dataOf(sse).includes('after'), 'delivered after the kills', 5000);
      expect(hub.stats().store?.readerReconnects).toBe(3);
    },
    20_000,
  );

  it('1,000 clients churning through topics nobody publishes to: no key written, and the reader re-issued at most once per 20 ms', async () => {
    const hub = createHub({ store: redisStore(await connectRedis(currentClient('ioredis'), server.url)) });
    hubs.push(hub);
    await hub.publish('real', { event: 'msg', data: 'x' }); // the realm and one real topic exist
    const served = await serveHub(hub, { retryMs: null });
    const keys = await ioredisClient(server.url).dbsize();
    const [unblocks, reads] = [await calls(server.url, 'client|unblock'), await calls(server.url, 'xread')];
    let next = 0;
    const total = 1000;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (next < total) {
          const sse = new RawSseClient(served.port, `/feed/hostile-${next++}-${Math.random()}`);
          await until(() => sse.body.includes('id: '), 'placed', 5000);
          sse.close();
        }
      }),
    );
    await untilStable(() => hub.stats().subscribers, 'the clients gone', { quietMs: 100 });
    const churnMs = Date.now() - started;
    expect(await ioredisClient(server.url).dbsize()).toBe(keys);
    const reissued = (await calls(server.url, 'client|unblock')) - unblocks;
    const read = (await calls(server.url, 'xread')) - reads;
    process.stdout.write(
      `${total} hostile subscribes in ${churnMs} ms: ${reissued} CLIENT UNBLOCK, ${read} XREAD\n`,
    );
    // re-issued per subscribe, both would be over 1,000; in groups, at most one per 20 ms of churn
    expect(reissued).toBeLessThanOrEqual(churnMs / 20 + 1);
    expect(reissued).toBeLessThan(total / 2);
    expect(read).toBeLessThanOrEqual(churnMs / 20 + churnMs / 1000 + 2);
  }, 60_000);
});

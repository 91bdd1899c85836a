import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHub, type Hub, HubStoreError } from '../lib';
import { redisStore } from '../lib/redis';
import { Seen } from '../lib/redis/seen';
import { requireComponent } from './helpers/components';
import {
  byTopic,
  dataOf,
  numbers,
  parseEvents,
  publishMany,
  publishRounds,
  range,
  serveHub,
  untilPublished,
} from './helpers/hub-server';
import { balancer, publishVia, startHubProcess, stopHubProcesses } from './helpers/processes';
import {
  closeClients,
  connectRedis,
  currentClient,
  findRedisServer,
  ioredisClient,
  loseLog,
  OwnRedis,
  partnerOf,
  REDIS_CLIENTS,
  REDIS_URL,
  type RedisClientPackage,
  redisAnswers,
  rewindTopic,
  uniquePrefix,
} from './helpers/redis';
import { closeAll, httpGet } from './helpers/servers';
import { collectEvents, RawSseClient } from './helpers/sse-client';
import { sleep, succeeds, until, untilAsync, untilStable } from './helpers/wait';

const redis = requireComponent(`Redis at ${REDIS_URL}`, redisAnswers(), 'REQUIRE_REDIS');
const redisServerBinary = findRedisServer();
const ownRedis = requireComponent(
  'redis-server (to stop and restart one)',
  redisServerBinary !== undefined,
  'REQUIRE_REDIS',
);

const hubs: Hub[] = [];
const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
  await closeAll();
  await closeClients();
});

/** Two hubs on one Redis, each on its own connection of `client`, as two processes would have. */
async function twoHubs(client: RedisClientPackage, options: { prefix?: string; maxReplay?: number } = {}) {
  const prefix = options.prefix ?? uniquePrefix();
  const [a, b] = await Promise.all(
    [1, 2].map(async () =>
      createHub({ store: redisStore(await connectRedis(client), { prefix }), maxReplay: options.maxReplay }),
    ),
  );
  hubs.push(a!, b!);
  return { a: a!, b: b!, prefix };
}

/**
 * What the store needs of a client (commands and their replies, a duplicate connection for the live
 * reader, how the client behaves while Redis is away), once per supported major of each client.
 */
redis.describe.each(REDIS_CLIENTS)(
  `redisStore on $label, against a real Redis${redis.label}`,
  (redisClient) => {
    it('delivers what one process publishes to the subscribers of another, with the ids every process agrees on', async () => {
      const { a, b } = await twoHubs(redisClient);
      const onB = await serveHub(b);
      const client = new RawSseClient(onB.port, '/feed/t');
      await until(() => b.stats().subscribers === 1 && client.body.includes('id: '), 'subscribed');
      const ids = [...(await publishMany(a, 't', 1, 3)), ...(await publishMany(b, 't', 4, 5))];
      await until(() => dataOf(client).length === 5, 'five events');
      expect(dataOf(client)).toEqual(range(1, 5));
      expect(parseEvents(client.body).events.map((e) => e.id)).toEqual(ids);
      expect(new Set(ids.map((id) => id.split('-')[0])).size).toBe(1);
    });

    it('resumes a client on another process with exactly what it missed, in pages', async () => {
      const { a, b } = await twoHubs(redisClient, { maxReplay: 1000 });
      const onA = await serveHub(a);
      const onB = await serveHub(b);
      const first = new RawSseClient(onA.port, '/feed/t');
      await until(() => first.body.includes('id: '), 'subscribed');
      await publishMany(a, 't', 1, 2);
      await until(() => dataOf(first).length === 2, 'two events');
      first.close();
      // missed while away: more than one page of the replay
      await publishMany(b, 't', 3, 352);
      const { lastId } = parseEvents(first.body);
      const again = new RawSseClient(onB.port, '/feed/t', { 'Last-Event-ID': lastId! });
      await until(() => dataOf(again).length === 350, 'the replay', 10_000);
      await publishMany(a, 't', 353, 355);
      await until(() => dataOf(again).length === 353, 'live after the replay');
      expect(dataOf(again)).toEqual(range(3, 355));
      expect(b.stats()).toMatchObject({ replays: 1, replayed: 350 });
    });

    it('resumes a many-topic client on another process, each topic exactly, and resets only the topic whose log was lost', async () => {
      const { a: io, b: node, prefix } = await twoHubs(redisClient);
      const onIo = await serveHub(io);
      const onNode = await serveHub(node);
      const first = new RawSseClient(onIo.port, '/topics/a,b,c');
      await until(() => first.body.includes('id: '), 'subscribed');
      await publishRounds(node, ['a', 'b', 'c'], 1, 1);
      await until(() => parseEvents(first.body).events.length === 3, 'three events');
      first.close();
      // while the client is away: events of a and b, and c's log lost (as an eviction would lose it), begun anew
      await publishRounds(io, ['a'], 2, 150);
      await publishRounds(node, ['b'], 2, 3);
      await loseLog(ioredisClient(), prefix, 'c');
      await publishRounds(io, ['c'], 2, 2);
      const again = new RawSseClient(onNode.port, '/topics/a,b,c', {
        'Last-Event-ID': parseEvents(first.body).lastId!,
      });
      await until(() => parseEvents(again.body).events.length === 152, 'the reset and the replays', 10_000);
      const events = parseEvents(again.body).events;
      expect(events[0]).toMatchObject({ event: 'reset', data: '{"reason":"unknown-epoch","topic":"c"}' });
      expect(byTopic(events.slice(1))).toEqual({ a: numbers(2, 150), b: numbers(2, 3) });
      await publishRounds(io, ['c', 'b'], 3, 3);
      await until(() => parseEvents(again.body).events.length === 154, 'live in every topic');
      expect(byTopic(parseEvents(again.body).events.slice(152))).toEqual({ c: [3], b: [3] });
    });

    it('keeps ids contiguous under concurrent publishes from two processes (one script per event)', async () => {
      const { a, b } = await twoHubs(redisClient);
      const ids = await Promise.all(
        Array.from({ length: 400 }, (_, i) =>
          (i % 2 === 0 ? a : b).publish('t', { event: 'msg', data: String(i) }),
        ),
      );
      const seqs = ids.map((id) => Number(id.split('-')[1])).sort((x, y) => x - y);
      expect(seqs).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    });

    it('tells a client whose id names a lost log to reset (unknown-epoch) after the keys were flushed', async () => {
      const { a, b, prefix } = await twoHubs(redisClient);
      const onB = await serveHub(b);
      const live = new RawSseClient(onB.port, '/feed/t');
      await until(() => b.stats().subscribers === 1 && live.body.includes('id: '), 'subscribed');
      const [id] = await publishMany(a, 't', 1, 1);
      await until(() => dataOf(live).length === 1, 'the first event');
      // the log is lost, as a FLUSHALL or an eviction would lose it
      const admin = ioredisClient();
      await loseLog(admin, prefix, 't');
      await publishMany(a, 't', 2, 3);
      await until(() => parseEvents(live.body).events.some((e) => e.event === 'reset'), 'a reset', 5000);
      await until(() => dataOf(live).length === 3, 'the new life of the log', 5000);
      expect(parseEvents(live.body).events.map((e) => e.event)).toEqual(['msg', 'reset', 'msg', 'msg']);
      expect(parseEvents(live.body).events[1]?.data).toBe('{"reason":"unknown-epoch","topic":"t"}');
      // a client resuming from the old life gets the same answer
      const resuming = new RawSseClient(onB.port, '/feed/t', { 'Last-Event-ID': id! });
      await until(() => parseEvents(resuming.body).events.length === 1, 'the reset');
      expect(parseEvents(resuming.body).events[0]?.data).toBe('{"reason":"unknown-epoch","topic":"t"}');
    });

    it('follows a lost log into its new epoch on a process that only subscribes, however busy its other topics', async () => {
      const { a, b, prefix } = await twoHubs(redisClient);
      const onB = await serveHub(b);
      const live = new RawSseClient(onB.port, '/feed/t');
      const busy = new RawSseClient(onB.port, '/feed/busy');
      await until(
        () => b.stats().subscribers === 2 && live.body.includes('id: ') && busy.body.includes('id: '),
        'subscribed',
      );
      await publishMany(a, 't', 1, 2);
      await until(() => dataOf(live).length === 2, 'the first events');
      // another topic keeps B's read from ever coming back empty
      let publishing = true;
      const traffic = (async () => {
        for (let n = 1; publishing && n < 5000; n++) {
          await a.publish('busy', { event: 'msg', data: String(n) });
          await sleep(2);
        }
      })();
      try {
        await loseLog(ioredisClient(), prefix, 't');
        await publishMany(a, 't', 3, 4);
        await until(() => dataOf(live).length === 4, 'the events of the new life, on B', 5000);
      } finally {
        publishing = false;
        await traffic;
      }
      expect(parseEvents(live.body).events.map((e) => e.event)).toEqual([
        'msg',
        'msg',
        'reset',
        'msg',
        'msg',
      ]);
    });

    it('begins a new epoch when Redis went back in time, so that no client skips the events given old ids', async () => {
      const { a, b, prefix } = await twoHubs(redisClient);
      const onB = await serveHub(b);
      const live = new RawSseClient(onB.port, '/feed/t');
      await until(() => b.stats().subscribers === 1 && live.body.includes('id: '), 'subscribed');
      const ids = await publishMany(a, 't', 1, 5);
      await until(() => dataOf(live).length === 5, 'five events');
      // restored from a snapshot taken at 3: ids 4 and 5 would be given again to other events
      await rewindTopic(ioredisClient(), prefix, 't', 3);
      await publishMany(a, 't', 6, 7);
      await until(() => dataOf(live).length === 7, 'the events after the rewind', 5000);
      expect(parseEvents(live.body).events.map((e) => e.event)).toEqual([
        ...Array(5).fill('msg'),
        'reset',
        'msg',
        'msg',
      ]);
      // a client that had read up to 5 in the old life is reset too, never resumed past the new events
      const resuming = new RawSseClient(onB.port, '/feed/t', { 'Last-Event-ID': ids[4]! });
      await until(() => parseEvents(resuming.body).events.length >= 1, 'the answer to a resume');
      expect(parseEvents(resuming.body).events[0]?.event).toBe('reset');
    });

    it('loses nothing when the live reader connection is killed server-side while publishing', async () => {
      const { a, b } = await twoHubs(redisClient);
      const onB = await serveHub(b);
      const client = new RawSseClient(onB.port, '/feed/t');
      await until(() => b.stats().subscribers === 1 && client.body.includes('id: '), 'subscribed');
      const admin = ioredisClient();
      let published = 0;
      const publishing = (async () => {
        for (let i = 1; i <= 200; i++) {
          await a.publish('t', { event: 'msg', data: String(i) });
          published = i;
          if (i % 20 === 0) await sleep(5);
        }
      })();
      await until(() => dataOf(client).length >= 20, 'some events');
      let killed = 0;
      let publishedAtFirstKill: number | undefined;
      for (let kill = 0; kill < 3; kill++) {
        const list = String(await admin.call('CLIENT', 'LIST'));
        const ids = [...list.matchAll(/id=(\d+) .*name=express-streaming:live-reader/g)].map((m) => m[1]!);
        for (const readerId of ids) killed += Number(await admin.call('CLIENT', 'KILL', 'ID', readerId));
        publishedAtFirstKill ??= published;
        await sleep(30);
      }
      await publishing;
      // the reader must have been killed while events were still being published
      expect(publishedAtFirstKill).toBeLessThan(200);
      await until(() => dataOf(client).length >= 200, 'every event', 10_000);
      await untilStable(() => dataOf(client).length, 'no event after the 200th', { quietMs: 300 });
      expect(dataOf(client)).toEqual(range(1, 200));
      // every event published after the kill came through the reader, so it came back: the pending read
      // fails with its connection, and the reader reads again from its cursors on the new one
      expect(killed).toBeGreaterThan(0);
      expect(b.stats().store.readerReconnects).toBeGreaterThanOrEqual(1);
    });

    it('reports its reader in stats(), and close() lets go of the reader connection', async () => {
      const { a } = await twoHubs(redisClient);
      const app = await serveHub(a);
      const client = new RawSseClient(app.port, '/feed/t');
      await until(() => a.stats().subscribers === 1 && client.body.includes('id: '), 'subscribed');
      await publishMany(a, 't', 1, 3);
      const admin = ioredisClient();
      const readers = async () =>
        (String(await admin.call('CLIENT', 'LIST')).match(/name=express-streaming:live-reader/g) ?? [])
          .length;
      await until(() => a.stats().delivered === 3, 'delivered');
      expect(a.stats().store).toMatchObject({ readerTopics: 1, readerReconnects: 0 });
      expect(a.stats().store.readerLagMs).toBeGreaterThanOrEqual(0);
      const before = await readers();
      expect(before).toBeGreaterThanOrEqual(1);
      await a.close();
      let after = before;
      await untilAsync(
        async () => {
          after = await readers();
          return after < before;
        },
        'close() to let go of the reader connection',
        2000,
      );
      expect(after).toBe(before - 1);
    });

    it(`publishes on a process on ${partnerOf(redisClient).label} and on this one, and this one's subscribers receive both`, async () => {
      const prefix = uniquePrefix();
      const [mine, partner] = await Promise.all([
        startHubProcess(redisClient, REDIS_URL, prefix),
        startHubProcess(partnerOf(redisClient), REDIS_URL, prefix),
      ]);
      const onMine = new RawSseClient(mine.port, '/feed/t');
      await until(() => onMine.body.includes('id: '), `subscribed on the ${redisClient.label} process`);
      const ids = [
        await publishVia(partner.port, 't', '1'),
        await publishVia(mine.port, 't', '2'),
        await publishVia(partner.port, 't', '3'),
      ];
      await until(() => dataOf(onMine).length === 3, 'three events');
      expect(parseEvents(onMine.body).events.map((e) => [e.id, e.data])).toEqual(
        ids.map((id, i) => [id, String(i + 1)]),
      );
    });

    ownRedis.describe(`when Redis stops, restarts or hangs${ownRedis.label}`, () => {
      let server: OwnRedis;
      beforeEach(async () => {
        server = await OwnRedis.start(redisServerBinary!);
      });
      afterEach(async () => {
        await stopHubProcesses();
        await server.kill();
      });

      it('sends the publishes of one topic made in one turn as one script call, ids in the order of the calls', async () => {
        const hub = createHub({ store: redisStore(await connectRedis(redisClient, server.url)) });
        hubs.push(hub);
        const admin = ioredisClient(server.url);
        await hub.publish('t', { data: 'warm' }); // loads the script
        const scriptCalls = async () =>
          Number(/cmdstat_evalsha:calls=(\d+)/.exec(String(await admin.info('commandstats')))?.[1] ?? 0);
        const before = await scriptCalls();
        const ids = await Promise.all(range(1, 300).map((n) => hub.publish('t', { data: String(n) })));
        // 300 in one turn: at most 256 per call, so two calls
        expect((await scriptCalls()) - before).toBe(2);
        expect(ids.map((id) => id.split('-')[1])).toEqual(range(2, 301));
        const logged = await admin.xrange(`{sse:t}:log`, '-', '+');
        expect(logged.map(([, fields]) => fields[fields.indexOf('d') + 1])).toEqual([
          'warm',
          ...range(1, 300),
        ]);
      });

      it('rejects publish with an error naming the cause, keeps open streams alive, then resets them once a restarted Redis answers', async () => {
        const hub = createHub({
          store: redisStore(await connectRedis(redisClient, server.url), { commandTimeoutMs: 500 }),
        });
        hubs.push(hub);
        const app = await serveHub(hub, { retryMs: null, heartbeatMs: 100 });
        const client = new RawSseClient(app.port, '/feed/t');
        await until(() => hub.stats().subscribers === 1 && client.body.includes('id: '), 'subscribed');
        await publishMany(hub, 't', 1, 2);
        await until(() => dataOf(client).length === 2, 'two events');
        await server.kill();
        const failure = await hub
          .publish('t', { event: 'msg', data: 'lost' })
          .catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(HubStoreError);
        // the cause as the client gives it (ioredis gives up retrying; node-redis queues the command until
        // commandTimeoutMs), and what the connection was doing
        expect(String(failure)).toMatch(
          redisClient.kind === 'ioredis'
            ? /^HubStoreError: redisStore: could not publish to topic "t": .+ \(ioredis status: \w+\)$/
            : /^HubStoreError: redisStore: could not publish to topic "t": .+ \(node-redis \w+\)$/,
        );
        // the stream stays open on heartbeats while Redis is away
        const heartbeats = client.body.split(':\n\n').length;
        await until(() => client.body.split(':\n\n').length > heartbeats + 2, 'heartbeats');
        expect(client.closed).toBe(false);
        await server.restart();
        // a restarted Redis that kept nothing: a new epoch, so a reset, never a silent gap
        await untilAsync(
          () => succeeds(hub.publish('t', { event: 'msg', data: '3' })),
          'a publish to succeed',
          10_000,
        );
        await until(
          () => parseEvents(client.body).events.some((e) => e.event === 'reset'),
          'the reset',
          10_000,
        );
        await until(() => dataOf(client).includes('3'), 'live again', 10_000);
      });

      it('begins a new epoch when Redis comes back from a snapshot older than the life this process saw, and resets its clients', async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'express-streaming-snapshot-'));
        const snapshots = await OwnRedis.start(redisServerBinary!, dir);
        closers.push(async () => {
          await snapshots.kill();
          fs.rmSync(dir, { recursive: true, force: true });
        });
        const hub = createHub({ store: redisStore(await connectRedis(redisClient, snapshots.url)) });
        hubs.push(hub);
        const app = await serveHub(hub, { retryMs: null });
        const live = new RawSseClient(app.port, '/feed/t');
        await until(() => hub.stats().subscribers === 1 && live.body.includes('id: '), 'subscribed');
        const admin = ioredisClient(snapshots.url);
        const old = await publishMany(hub, 't', 1, 5);
        await admin.call('SAVE'); // the snapshot: the old life at 5
        await publishMany(hub, 't', 6, 8);
        await admin.flushall(); // a loss: the next publish begins a new life
        await publishMany(hub, 't', 9, 10);
        await until(() => dataOf(live).length === 10, 'ten events');
        // back from the snapshot: the old life at 5, whose ids 6 to 8 were given once already
        await snapshots.kill();
        await snapshots.restart();
        const [next] = await untilPublished(hub, 't', '11');
        const epochOf = (id: string) => id.slice(0, id.lastIndexOf('-'));
        expect(epochOf(next!)).not.toBe(epochOf(old[0]!));
        await until(() => dataOf(live).includes('11'), 'the event after the restore', 5000);
        const events = parseEvents(live.body).events;
        expect(events.map((e) => (e.event === 'msg' ? e.data : e.event))).toEqual([
          ...range(1, 8),
          'reset',
          '9',
          '10',
          'reset',
          '11',
        ]);
      });

      it('answers the first subscriber of a topic while Redis is down with the head and an end, in bounded time, and closes at once', async () => {
        const hub = createHub({
          store: redisStore(await connectRedis(redisClient, server.url), { commandTimeoutMs: 300 }),
        });
        const app = await serveHub(hub, { retryMs: null });
        await server.kill();
        const client = new RawSseClient(app.port, '/feed/never-followed');
        await until(
          () => client.terminated,
          () => `the response to end while Redis is down: ${JSON.stringify(client.head + client.body)}`,
          5000,
        );
        expect(client.head).toMatch(/^HTTP\/1\.1 200/);
        const closing = hub.close().then(() => 'closed');
        expect(await Promise.race([closing, sleep(3000).then(() => 'still closing after 3 s')])).toBe(
          'closed',
        );
      });

      it('lets go of its reader connection on close() while Redis is down: nothing of it reconnects once Redis is back', async () => {
        const hub = createHub({ store: redisStore(await connectRedis(redisClient, server.url)) });
        const app = await serveHub(hub, { retryMs: null });
        const client = new RawSseClient(app.port, '/feed/t');
        await until(() => hub.stats().subscribers === 1 && client.body.includes('id: '), 'subscribed');
        await server.kill();
        await hub.close();
        await server.restart();
        // the app's own client reconnects (it is the app's to close); the reader's connection must not
        const admin = ioredisClient(server.url);
        let connections = 0;
        const polling = setInterval(() => {
          admin.call('CLIENT', 'LIST').then(
            (list) => {
              connections = String(list).trim().split('\n').length;
            },
            () => {},
          );
        }, 20);
        closers.push(() => clearInterval(polling));
        await until(() => connections >= 2, "the app's client back", 5000);
        // a reader connection left trying would be back within its 50 ms retry
        expect(await untilStable(() => connections, 'the connections to settle', { quietMs: 300 })).toBe(2);
      });

      it('delivers, once Redis answers again after hanging, every event it took, with nothing lost', async () => {
        const hub = createHub({
          store: redisStore(await connectRedis(redisClient, server.url), { commandTimeoutMs: 300 }),
        });
        hubs.push(hub);
        const app = await serveHub(hub, { retryMs: null });
        const client = new RawSseClient(app.port, '/feed/t');
        await until(() => hub.stats().subscribers === 1 && client.body.includes('id: '), 'subscribed');
        await publishMany(hub, 't', 1, 5);
        server.pause();
        const failure = await hub
          .publish('t', { event: 'msg', data: 'during' })
          .catch((error: unknown) => error);
        expect(String(failure)).toMatch(/no answer within 300 ms/);
        server.resume();
        await untilAsync(
          () => succeeds(hub.publish('t', { event: 'msg', data: '7' })),
          'a publish to succeed',
          10_000,
        );
        await until(() => dataOf(client).includes('7'), 'live again', 10_000);
        // the publish that timed out may still have been taken by Redis: then it is delivered, in its place
        const got = dataOf(client);
        expect(got.slice(0, 5)).toEqual(range(1, 5));
        expect(got.filter((d) => d !== 'during')).toEqual([...range(1, 5), '7']);
        expect(parseEvents(client.body).events.filter((e) => e.event === 'reset')).toEqual([]);
      });
    });

    afterEach(stopHubProcesses);
  },
);

/** What does not depend on the client: options, unused logs, processes that die; on the current majors. */
redis.describe(`redisStore(client, options) against a real Redis${redis.label}`, () => {
  afterEach(stopHubProcesses);

  it('refuses bad options with TypeErrors naming them, null included where it means nothing', async () => {
    const client = ioredisClient();
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ prefix: 'a{b}' }, /^redisStore: expected `prefix` to be a non-empty string without \{ or \}/],
      [{ maxLen: 0 }, /^redisStore: expected `maxLen` to be an integer of at least 1, got number \(0\)$/],
      [{ maxLen: null }, /^redisStore: expected `maxLen` to be an integer of at least 1, got null$/],
      [
        { blockMs: null },
        /^redisStore: expected `blockMs` to be a positive number of milliseconds up to \d+, got null$/,
      ],
      [{ commandTimeoutMs: null }, /^redisStore: expected `commandTimeoutMs` to be a positive number/],
      [
        { idempotencyWindow: 0 },
        /^redisStore: expected `idempotencyWindow` to be an integer of at least 1, got number \(0\)$/,
      ],
      [
        { clusterShards: 2.5 },
        /^redisStore: expected `clusterShards` to be an integer of at least 1, got number \(2\.5\)$/,
      ],
    ];
    for (const [options, message] of bad) expect(() => redisStore(client, options)).toThrow(message);
  });

  it('refuses a client it cannot drive with a TypeError naming the supported majors: redis 3 (callbacks), or anything else', async () => {
    const supported = /ioredis 4, 5 or 6\).+"redis" 4\.5\.1\+, 5 or 6\)/;
    expect(() => redisStore({} as never)).toThrow(TypeError);
    expect(() => redisStore({} as never)).toThrow(/^redisStore: expected an ioredis client/);
    expect(() => redisStore({} as never)).toThrow(supported);
    expect(() => redisStore({} as never)).toThrow(/, got an object \(\{\}\)$/);
    const { createClient } = require('redis3') as {
      createClient(url: string): { quit(done: () => void): void; on(event: 'error', f: () => void): void };
    };
    const legacy = createClient(REDIS_URL);
    legacy.on('error', () => {});
    closers.push(() => new Promise<void>((resolve) => legacy.quit(() => resolve())));
    expect(() => redisStore(legacy as never)).toThrow(TypeError);
    expect(() => redisStore(legacy as never)).toThrow(/node-redis 3 .*callback/);
    expect(() => redisStore(legacy as never)).toThrow(supported);
  });

  it('writes nothing for a topic nobody publishes to: subscribers place themselves at head 0, and the first publish begins the log', async () => {
    const prefix = uniquePrefix();
    const hub = createHub({ store: redisStore(ioredisClient(), { prefix }) });
    hubs.push(hub);
    const app = await serveHub(hub);
    const admin = ioredisClient();
    const topicKeys = async () => (await admin.keys(`{${prefix}:*`)).sort();
    const quiet = new RawSseClient(app.port, '/feed/quiet');
    await until(
      () => quiet.body.includes('event: hub:position'),
      'subscribed to a topic nobody published to',
    );
    const position = /id: (\S+)/.exec(quiet.body)![1]!;
    expect(position).toMatch(/-0$/);
    const resumed = new RawSseClient(app.port, '/feed/never', { 'Last-Event-ID': position });
    await until(() => resumed.head.startsWith('HTTP/1.1 200'), 'a resume on a topic never published');
    expect(await topicKeys()).toEqual([]);
    await hub.publish('quiet', { event: 'msg', data: 'now used' });
    await until(() => dataOf(quiet).includes('now used'), 'the first event');
    expect(await topicKeys()).toEqual([
      `{${prefix}:quiet}:keys`,
      `{${prefix}:quiet}:log`,
      `{${prefix}:quiet}:meta`,
    ]);
  });

  it.each([
    ['a client', ['t'], 300],
    ['a client of many topics on one stream', ['x', 'y', 'z'], 100],
  ])(
    '%s whose process is SIGKILLed mid-stream resumes on another: every event exactly once, in order',
    async (_, topics, rounds) => {
      const prefix = uniquePrefix();
      const [a, b, c] = await Promise.all([
        startHubProcess(currentClient('ioredis'), REDIS_URL, prefix),
        startHubProcess(currentClient('node-redis'), REDIS_URL, prefix),
        startHubProcess(currentClient('ioredis'), REDIS_URL, prefix),
      ]);
      // the client reaches the processes through a balancer: first A, then whichever answers
      let alive = [a.port, b.port];
      const front = await balancer(() => alive);
      const path = topics.length === 1 ? `/feed/${topics[0]}` : `/topics/${topics.join(',')}`;
      const source = collectEvents(`http://127.0.0.1:${front.port}${path}`, ['msg']);
      closers.push(
        () => source.source.close(),
        () => front.close(),
      );
      await until(() => source.source.readyState === 1, 'connected through the balancer');
      const total = rounds * topics.length;
      let published = 0;
      const publishing = (async () => {
        for (let i = 1; i <= rounds; i++) {
          for (const topic of topics) await publishVia(c.port, topic, `${topic}:${i}`);
          published = i;
          if (i % Math.ceil(10 / topics.length) === 0) await sleep(2);
        }
      })();
      await until(() => source.events.length >= 60, 'the first events, through A');
      a.kill();
      // the kill must fall inside the run, or the resume on B would have nothing to recover
      const publishedAtKill = published;
      alive = [b.port];
      await publishing;
      expect(publishedAtKill).toBeLessThan(rounds);
      await until(
        () => source.events.length >= total,
        () =>
          `every event, after resuming on B: ${source.events.length} of ${total}, last ${source.events.at(-1)?.data}, readyState ${source.source.readyState}`,
        15_000,
      );
      // a late duplicate would still arrive: wait for the count to settle, not a guessed time
      await untilStable(() => source.events.length, `no event after the ${total}th`, { quietMs: 300 });
      expect(byTopic(source.events)).toEqual(Object.fromEntries(topics.map((t) => [t, numbers(1, rounds)])));
    },
  );

  it("reports how far behind its event's publish the live reader delivered it (readerLagMs)", async () => {
    const prefix = uniquePrefix();
    const [a, b] = await Promise.all([
      startHubProcess(currentClient('ioredis'), REDIS_URL, prefix),
      startHubProcess(currentClient('node-redis'), REDIS_URL, prefix),
    ]);
    const onB = new RawSseClient(b.port, '/feed/t');
    await until(() => onB.body.includes('id: '), 'subscribed on B');
    // B is frozen while the event is published, and for 300 ms more: it cannot read it any sooner
    b.child.kill('SIGSTOP');
    try {
      await publishVia(a.port, 't', 'late');
      await sleep(300);
    } finally {
      b.child.kill('SIGCONT');
    }
    await until(() => dataOf(onB).length === 1, 'the event, once B runs again');
    const { body } = await httpGet(`http://127.0.0.1:${b.port}/stats`);
    const stats = JSON.parse(body.toString()) as { store: { readerLagMs: number } };
    expect(stats.store.readerLagMs).toBeGreaterThanOrEqual(290);
  });
});

describe('what a process remembers of the logs it saw (to tell a rewind from new events)', () => {
  it('forgets the topics seen least recently first, however early a busy topic was first seen', () => {
    const seen = new Seen();
    seen.saw('busy', 'E', 1);
    const forgotten: number[] = [];
    for (let n = 1; n <= 150_000; n++) {
      seen.saw(`t${n}`, 'E', 1);
      if (n % 1000 !== 0) continue;
      // seen every 1,000 topics: never among the 100,000 seen least recently
      if (seen.args('busy', 0)[0] !== 'E') forgotten.push(n);
      seen.saw('busy', 'E', n);
    }
    expect(forgotten).toEqual([]);
    expect(seen.args('busy', 0)).toEqual(['E', '150000', '']);
    // 100,000 remembered: the first of the others is forgotten
    expect(seen.args('t1', 0)).toEqual(['', '0', '']);
    expect(seen.args('t150000', 0)).toEqual(['E', '1', '']);
  });
});

import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import net from 'node:net';
import express from 'express';
import {
  createHub,
  type EventsListener,
  type Hub,
  HubClosedError,
  type HubMessage,
  type HubStore,
  HubStoreError,
  memoryStore,
  type ResetReason,
  sseChannel,
} from '../lib';
import { dataOf, hubsClosedAfterEach, parseEvents, publishMany, range, serveHub } from './helpers/hub-server';
import { listen } from './helpers/servers';
import { collectEvents, RawSseClient } from './helpers/sse-client';
import { forwarding } from './helpers/store-doubles';
import { sleep, trackTimers, until, untilStable } from './helpers/wait';

const hubOf = hubsClosedAfterEach();

describe('createHub(options?)', () => {
  describe('publish(topic, event) and subscribe(topic, req)', () => {
    it('gives each event the next id <epoch>-<seq> and writes it to every subscriber of the topic', async () => {
      const hub = hubOf();
      const app = await serveHub(hub);
      const a = new RawSseClient(app.port, '/feed/room');
      const b = new RawSseClient(app.port, '/feed/room');
      const other = new RawSseClient(app.port, '/feed/elsewhere');
      await until(() => hub.stats().subscribers === 3, 'three subscribers');
      await until(() => [a, b, other].every((c) => c.body.includes('id: ')), 'each positioned');
      const ids = await publishMany(hub, 'room', 1, 3);
      const epoch = ids[0]!.split('-')[0];
      expect(ids).toEqual([`${epoch}-1`, `${epoch}-2`, `${epoch}-3`]);
      await until(() => dataOf(a).length === 3 && dataOf(b).length === 3, 'three events each');
      expect(parseEvents(a.body).events.map((e) => [e.event, e.id, e.data])).toEqual([
        ['msg', `${epoch}-1`, '1'],
        ['msg', `${epoch}-2`, '2'],
        ['msg', `${epoch}-3`, '3'],
      ]);
      expect(b.body).toBe(a.body);
      expect(dataOf(other)).toEqual([]);
    });

    it("opens a subscriber's stream only once it is positioned: what is published after the client's open arrives", async () => {
      // A store that answers position() late, as a remote one (Redis) does: the head must wait for it.
      const store = memoryStore();
      const slowStore: HubStore = {
        append: (topic, record, options) => store.append(topic, record, options),
        position: (topic) => sleep(50).then(() => store.position(topic)),
        read: (topic, after, limit) => store.read(topic, after, limit),
        listen: (topic, onEvents) => store.listen(topic, onEvents),
        unlisten: (topic) => store.unlisten(topic),
        close: () => store.close(),
      };
      const hub = hubOf({ store: slowStore });
      await hub.publish('t', 'before');
      const app = await serveHub(hub);
      const client = new RawSseClient(app.port, '/feed/t');
      await until(() => client.head !== '', 'the head: the client opened');
      await hub.publish('t', { event: 'msg', data: 'after the open' });
      await until(
        () => dataOf(client).length === 1,
        () => `the event published after the open: ${client.body}`,
      );
      expect(dataOf(client)).toEqual(['after the open']);
    });

    it("commits the head of a subscriber's stream whose store fails, so that EventSource retries", async () => {
      const store = memoryStore();
      const failing: HubStore = {
        append: (topic, record, options) => store.append(topic, record, options),
        position: () => Promise.reject(new HubStoreError('the store is down')),
        read: (topic, after, limit) => store.read(topic, after, limit),
        listen: (topic, onEvents) => store.listen(topic, onEvents),
        unlisten: (topic) => store.unlisten(topic),
        close: () => store.close(),
      };
      const hub = hubOf({ store: failing });
      const app = await serveHub(hub);
      const client = new RawSseClient(app.port, '/feed/t');
      await client.waitEnded();
      expect(client.head).toMatch(/^HTTP\/1\.1 200 /);
      expect(client.head).toMatch(/content-type: text\/event-stream/i);
      expect(client.body).toBe('');
      expect(client.terminated).toBe(true);
      await until(() => hub.stats().subscribers === 0, 'the subscriber gone');
    });

    it('answers a subscriber whose store cannot follow its topic with the SSE head and an end; the next one asks again', async () => {
      const store = memoryStore();
      let refusals = 1;
      const flaky: HubStore = {
        append: (topic, record, options) => store.append(topic, record, options),
        position: (topic) => store.position(topic),
        read: (topic, after, limit) => store.read(topic, after, limit),
        listen: (topic, onEvents) =>
          refusals-- > 0
            ? Promise.reject(new HubStoreError('the store is down'))
            : store.listen(topic, onEvents),
        unlisten: (topic) => store.unlisten(topic),
        close: () => store.close(),
      };
      const hub = hubOf({ store: flaky });
      const app = await serveHub(hub);
      const refused = new RawSseClient(app.port, '/feed/t');
      await refused.waitEnded();
      expect(refused.header('content-type')).toBe('text/event-stream; charset=utf-8');
      expect(refused.terminated).toBe(true);
      expect(hub.stats().topics).toEqual({});
      const next = new RawSseClient(app.port, '/feed/t');
      await until(() => next.body.includes('id: '), 'the next one positioned');
      await hub.publish('t', { event: 'msg', data: 'live' });
      await until(() => dataOf(next).length === 1, 'live');
    });

    it('positions a first connection at the head with a hub:position event, so a reconnect resumes from there', async () => {
      const hub = hubOf();
      await hub.publish('t', 'before');
      const app = await serveHub(hub);
      const client = new RawSseClient(app.port, '/feed/t');
      await until(() => client.body.includes('id: '), 'the position');
      // named, so onmessage never sees it; with a data line, so EventSource dispatches it with its id
      expect(client.body).toMatch(/^event: hub:position\nid: [A-Za-z0-9]+-1\ndata: ?\n\n$/);
      const { events, lastId } = parseEvents(client.body);
      expect(events).toEqual([]);
      expect(lastId).toMatch(/^[A-Za-z0-9]+-1$/);
    });

    it('encodes once with the hub serialize and sends bare data as unnamed events', async () => {
      const serialize = jest.fn((data: unknown) => `<${JSON.stringify(data)}>`);
      const hub = hubOf({ serialize });
      const app = await serveHub(hub);
      const clientsOf = Array.from({ length: 5 }, () => new RawSseClient(app.port, '/feed/t'));
      await until(() => hub.stats().subscribers === 5, 'five subscribers');
      await until(() => clientsOf.every((c) => c.body.includes('id: ')), 'positioned');
      await hub.publish('t', { n: 1 });
      await until(() => clientsOf.every((c) => dataOf(c, 'message').length === 1), 'the event');
      expect(dataOf(clientsOf[0]!, 'message')).toEqual(['<{"n":1}>']);
      expect(serialize).toHaveBeenCalledTimes(1);
    });

    it('writes byte-identical blocks to 1,000 subscribers', async () => {
      const hub = hubOf();
      const app = await serveHub(hub);
      const many = Array.from({ length: 1000 }, () => new RawSseClient(app.port, '/feed/wide'));
      await until(() => hub.stats().subscribers === 1000, '1,000 subscribers', 20_000);
      await until(() => many.every((c) => c.body.includes('id: ')), 'every one positioned', 20_000);
      const before = many.map((c) => c.body.length);
      for (let i = 0; i < 20; i++)
        void hub.publish('wide', { event: 'msg', data: { i, text: 'a'.repeat(80) } });
      await until(() => many.every((c) => dataOf(c).length === 20), 'twenty events everywhere', 20_000);
      const blocks = new Set(many.map((c, i) => c.body.slice(before[i])));
      expect(blocks.size).toBe(1);
      expect(hub.stats().delivered).toBe(20 * 1000);
    }, 60_000);

    it('refuses bad input with TypeErrors that name it, before the store gives an id', async () => {
      const hub = hubOf();
      // publish returns a promise: every refusal is a rejection, which `.catch()` and `.then(…, next)` see
      await expect(hub.publish('', 'x')).rejects.toThrow(
        /hub.publish: expected `topic` to be a non-empty string/,
      );
      await expect(hub.publish('t', { id: 'x', data: 1 } as never)).rejects.toThrow(/the hub assigns ids/);
      await expect(hub.publish('t', { event: 'a\nb', data: 'x' })).rejects.toThrow(
        /`event` must not contain CR or LF/,
      );
      await expect(hub.publish('t', 'x', { idempotencyKey: '' })).rejects.toThrow(
        /^hub\.publish: expected `idempotencyKey` to be a string of 1 to 200 characters, got a string \(""\)$/,
      );
      await expect(hub.publish('t', 'x', 'key' as never)).rejects.toThrow(
        /^hub\.publish: expected options to be an object/,
      );
      expect(() => hub.subscribe('t', {} as never)).toThrow(/expected `req` to be the request/);
      expect(() => hub.subscribe('t', { headers: {} }, { from: 'latest' as never })).toThrow(/`from`/);
      expect(() => createHub({ maxReplay: -1 })).toThrow(/maxReplay/);
      expect(() => createHub({ maxReplay: null as never })).toThrow(
        /^createHub: expected `maxReplay` to be an integer of at least 0, got null$/,
      );
      await expect(hub.close({ retryMs: null as never })).rejects.toThrow(/^hub\.close: expected `retryMs`/);
      expect(() => createHub({ store: {} as never })).toThrow(/createHub: expected `store` to be a store/);
      expect(await hub.publish('t', 'ok')).toMatch(/-1$/);
    });
  });

  describe('publish(topic, event, { idempotencyKey })', () => {
    it('applies a key once: a retry resolves with the first id and adds nothing', async () => {
      const hub = hubOf();
      const app = await serveHub(hub);
      const client = new RawSseClient(app.port, '/feed/t');
      await until(() => client.body.includes('id: '), 'positioned');
      const first = await hub.publish('t', 'a', { idempotencyKey: 'order-17' });
      const again = await hub.publish('t', 'a (sent again)', { idempotencyKey: 'order-17' });
      const next = await hub.publish('t', 'b', { idempotencyKey: 'order-18' });
      expect(again).toBe(first);
      expect(next).toBe(first.replace(/-1$/, '-2'));
      await until(() => dataOf(client, 'message').length === 2, 'two events');
      await untilStable(() => dataOf(client, 'message').length, 'no third event');
      expect(dataOf(client, 'message')).toEqual(['a', 'b']);
      expect(hub.stats().published).toBe(3);
    });

    it("recognises a key only among the topic's recent events (the memory store: its size)", async () => {
      const hub = hubOf({ store: memoryStore({ size: 2 }) });
      const first = await hub.publish('t', 'a', { idempotencyKey: 'k' });
      await hub.publish('t', 'b');
      expect(await hub.publish('t', 'a', { idempotencyKey: 'k' })).toBe(first);
      await hub.publish('t', 'c');
      // 'k' left the window with its event: the same key is a new event now
      expect(await hub.publish('t', 'a', { idempotencyKey: 'k' })).toBe(first.replace(/-1$/, '-4'));
    });
  });

  describe('a topic nobody published to', () => {
    it('costs the store nothing: a subscriber that comes and goes leaves no log behind', async () => {
      const hub = hubOf();
      const app = await serveHub(hub);
      const clients = Array.from({ length: 20 }, (_, i) => new RawSseClient(app.port, `/feed/nobody${i}`));
      await until(() => clients.every((c) => c.body.includes('id: ')), 'each positioned');
      expect(hub.stats().store).toEqual({ topics: 0, keptEvents: 0 });
      for (const client of clients) client.close();
      await until(() => hub.stats().subscribers === 0, 'every subscriber gone');
      expect(hub.stats().store).toEqual({ topics: 0, keptEvents: 0 });
    });

    it('goes live on the log begun after the client came, and resumes a client that left before it began', async () => {
      const hub = hubOf();
      const app = await serveHub(hub);
      const live = new RawSseClient(app.port, '/feed/t');
      const leaving = new RawSseClient(app.port, '/feed/t');
      await until(() => [live, leaving].every((c) => c.body.includes('id: ')), 'both positioned');
      const placed = parseEvents(leaving.body).lastId!;
      expect(placed).toMatch(/^[A-Za-z0-9]+-0$/);
      leaving.close();
      const ids = await publishMany(hub, 't', 1, 3);
      await until(() => dataOf(live).length === 3, 'three live events');
      expect(parseEvents(live.body).events.map((e) => e.id)).toEqual(ids);
      const back = new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': placed });
      await until(() => dataOf(back).length === 3, 'the three it missed');
      expect(parseEvents(back.body).events.map((e) => [e.event, e.id])).toEqual(ids.map((id) => ['msg', id]));
      expect(hub.stats().resets['unknown-epoch']).toBe(0);
    });

    it('tells a client placed before a log that was since let go to reset: its life may be lost', async () => {
      const hub = hubOf({ store: memoryStore({ maxAgeMs: 20 }) });
      const app = await serveHub(hub);
      const leaving = new RawSseClient(app.port, '/feed/quiet');
      await until(() => leaving.body.includes('id: '), 'positioned');
      const placed = parseEvents(leaving.body).lastId!;
      leaving.close();
      await until(() => hub.stats().subscribers === 0, 'gone');
      // a life of the log the client missed: begun, then let go once every event expired
      await hub.publish('quiet', 'missed');
      await until(() => hub.stats().store.topics === 0, 'the expired log let go', 5000);
      const ids = await publishMany(hub, 'quiet', 1, 2);
      const back = new RawSseClient(app.port, '/feed/quiet', { 'Last-Event-ID': placed });
      await until(() => parseEvents(back.body).events.length === 1, 'the reset');
      expect(parseEvents(back.body).events[0]).toEqual({
        event: 'reset',
        id: ids[1],
        data: '{"reason":"unknown-epoch","topic":"quiet"}',
      });
    });
  });

  describe('resume after Last-Event-ID', () => {
    it('replays exactly seq+1 … head, then goes live', async () => {
      const hub = hubOf();
      const app = await serveHub(hub);
      const ids = await publishMany(hub, 't', 1, 5);
      const client = new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': ids[1]! });
      await until(() => dataOf(client).length === 3, 'the replay');
      await hub.publish('t', { event: 'msg', data: '6' });
      await until(() => dataOf(client).length === 4, 'live');
      expect(dataOf(client)).toEqual(['3', '4', '5', '6']);
      expect(hub.stats()).toMatchObject({ replays: 1, replayed: 3 });
    });

    it('reads the id from the lastEventId query when there is no header', async () => {
      const hub = hubOf();
      const app = await serveHub(hub);
      const ids = await publishMany(hub, 't', 1, 3);
      const client = new RawSseClient(app.port, `/feed/t?lastEventId=${ids[0]}`);
      await until(() => dataOf(client).length === 2, 'the replay');
      expect(dataOf(client)).toEqual(['2', '3']);
    });

    it('resumes a real EventSource after closeAll(): every event exactly once, in order', async () => {
      const hub = hubOf();
      const app = await serveHub(hub, { retryMs: 50 });
      const source = collectEvents(`${app.url}/feed/t`, ['msg']);
      await until(() => hub.stats().subscribers === 1, 'subscribed');
      await publishMany(hub, 't', 1, 5);
      await until(() => source.events.length === 5, 'five events');
      await app.sse.closeAll({ retryMs: 300 });
      // published while the client is away
      await publishMany(hub, 't', 6, 10);
      await until(() => hub.stats().subscribers === 1, 'reconnected', 5000);
      await publishMany(hub, 't', 11, 15);
      await until(() => source.events.length === 15, 'fifteen events', 5000);
      expect(source.events.map((e) => e.data)).toEqual(range(1, 15));
    });

    it.each<[ResetReason, (ids: string[]) => string, Parameters<typeof createHub>[0]]>([
      ['malformed', () => 'not-an-id!', {}],
      ['unknown-epoch', () => 'someoneelse-3', {}],
      ['ahead', (ids) => ids[0]!.replace(/-\d+$/, '-99'), {}],
      ['too-old', (ids) => ids[0]!, { store: memoryStore({ size: 5 }) }],
      ['too-many', (ids) => ids[0]!, { maxReplay: 5 }],
    ])('sends event: reset (%s) first, then goes live from the head', async (reason, idOf, options) => {
      const hub = hubOf(options);
      const app = await serveHub(hub);
      const ids = await publishMany(hub, 't', 1, 20);
      const client = new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': idOf(ids) });
      await until(() => parseEvents(client.body).events.length === 1, 'the reset');
      const [reset] = parseEvents(client.body).events;
      expect(reset).toEqual({ event: 'reset', id: ids[19], data: JSON.stringify({ reason, topic: 't' }) });
      await hub.publish('t', { event: 'msg', data: '21' });
      await until(() => dataOf(client).length === 1, 'live');
      expect(dataOf(client)).toEqual(['21']);
      expect(hub.stats().resets[reason]).toBe(1);
    });

    it('gives ids of an earlier store (an earlier run) a reset: unknown-epoch', async () => {
      const before = hubOf();
      const [id] = await publishMany(before, 't', 1, 1);
      const hub = hubOf();
      await publishMany(hub, 't', 1, 1);
      const app = await serveHub(hub);
      const client = new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': id! });
      await until(() => parseEvents(client.body).events.length === 1, 'the reset');
      expect(parseEvents(client.body).events[0]?.data).toBe('{"reason":"unknown-epoch","topic":"t"}');
    });

    it('replays everything kept to a first connection with from: "earliest"', async () => {
      const hub = hubOf();
      await publishMany(hub, 't', 1, 4);
      const app = await serveHub(hub, { retryMs: null }, () => ({ from: 'earliest' }));
      const client = new RawSseClient(app.port, '/feed/t');
      await until(() => dataOf(client).length === 4, 'everything kept');
      expect(dataOf(client)).toEqual(range(1, 4));
    });

    it('hands off from replay to live with no gap and no duplicate while publishing goes on and clients are not reading', async () => {
      const hub = hubOf({ store: memoryStore({ size: 5000 }), maxReplay: 5000 });
      // bufferBytes is far below the replay: a replay is paced by the client, never counted against it
      const app = await serveHub(hub, { retryMs: null, bufferBytes: 256 * 1024, heartbeatMs: null });
      const old = await publishMany(hub, 't', 1, 2000, 8000); // 16 MB to replay: more than socket buffers hold
      const resuming = Array.from({ length: 4 }, () => {
        const client = new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': old[0]! });
        client.socket.pause();
        return client;
      });
      await until(() => hub.stats().subscribers === 4, 'four resuming subscribers');
      // the replays are stuck on full sockets while hundreds of events are published
      for (let i = 2001; i <= 2300; i++) await hub.publish('t', { event: 'msg', data: `${i}:live` });
      // still replaying: the live events are held, not written (nor lost)
      expect(hub.stats().replays).toBe(0);
      for (const client of resuming) client.socket.resume();
      await until(() => resuming.every((c) => dataOf(c).length === 2299), 'every event', 30_000);
      for (const client of resuming) {
        expect(dataOf(client).map((data) => data.split(':')[0])).toEqual(range(2, 2300));
      }
      expect(hub.stats().slowCloses).toBe(0);
    }, 60_000);

    it('catches up from the log when more arrives during a replay than it can hold', async () => {
      const hub = hubOf({ maxReplay: 100 });
      const app = await serveHub(hub, { retryMs: null, heartbeatMs: null });
      const old = await publishMany(hub, 't', 1, 100, 20_000); // 2 MB
      const client = new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': old[0]! });
      client.socket.pause();
      await until(() => hub.stats().subscribers === 1, 'subscribed');
      for (let i = 101; i <= 400; i++) await hub.publish('t', { event: 'msg', data: `${i}:live` });
      client.socket.resume();
      await until(() => dataOf(client).length === 399, 'every event', 30_000);
      expect(dataOf(client).map((data) => data.split(':')[0])).toEqual(range(2, 400));
    }, 60_000);
  });

  describe('live delivery', () => {
    it('closes a subscriber more than bufferBytes behind as slow, without waiting on it; it resumes with nothing lost', async () => {
      const hub = hubOf();
      const app = await serveHub(hub, { retryMs: null, bufferBytes: 64 * 1024, heartbeatMs: null });
      const slow = new RawSseClient(app.port, '/feed/t');
      slow.socket.pause();
      const reader = new RawSseClient(app.port, '/feed/t');
      await until(() => hub.stats().subscribers === 2, 'two subscribers');
      await until(() => reader.body.includes('id: '), 'positioned');
      // 8 MB, one event per turn of the event loop: more than the kernel's socket buffers can hide
      for (let i = 1; i <= 400; i++) {
        await hub.publish('t', { event: 'msg', data: `${i}:${'y'.repeat(20_000)}` });
        await new Promise((resolve) => setImmediate(resolve));
      }
      await until(() => dataOf(reader).length === 400, 'the reader has everything', 10_000);
      await until(() => hub.stats().slowCloses === 1, 'the slow close');
      expect(hub.stats().subscribers).toBe(1);
      // what the slow one saw last is where it resumes
      slow.socket.resume();
      await slow.waitClosed();
      const { lastId } = parseEvents(slow.body);
      const again = new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': lastId! });
      const seen = dataOf(slow).length;
      await until(() => dataOf(again).length === 400 - seen, 'the rest, after resuming', 10_000);
      expect([...dataOf(slow), ...dataOf(again)].map((d) => d.split(':')[0])).toEqual(range(1, 400));
    });

    it("writes nothing after the app's own res.end(), even in the same tick: the connection's next response is intact", async () => {
      const hub = hubOf();
      const app = express();
      app.use(sseChannel({ retryMs: null, heartbeatMs: null }));
      app.get('/feed', (req, res) => {
        res.sse(hub.subscribe('t', req));
        // the app ends the stream itself (its own timeout, say) just as an event is fanned out
        setTimeout(() => {
          void hub.publish('t', { event: 'msg', data: 'in flight' });
          res.end();
          void hub.publish('t', { event: 'msg', data: 'after the end' });
        }, 50);
      });
      app.get('/next', (_req, res) => res.send('next'));
      const { port } = await listen(http.createServer(app));
      const socket = net.connect(port, '127.0.0.1');
      let received = '';
      socket.on('data', (data: Buffer) => {
        received += data.toString('latin1');
      });
      socket.write('GET /feed HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => received.includes('\r\n0\r\n\r\n'), 'the end of the stream');
      await untilStable(() => received.length, 'nothing more');
      expect(received.endsWith('\r\n0\r\n\r\n')).toBe(true);
      socket.write('GET /next HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => received.endsWith('next'), 'the next response');
      const next = received.slice(received.indexOf('\r\n0\r\n\r\n') + 7);
      expect(next).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      socket.destroy();
    });

    it('paces a burst bigger than bufferBytes to a client that keeps up from the log, instead of closing it as slow', async () => {
      const hub = hubOf();
      const app = await serveHub(hub, { retryMs: null, bufferBytes: 16 * 1024, heartbeatMs: null });
      const client = new RawSseClient(app.port, '/feed/t');
      await until(() => client.body.includes('id: '), 'positioned');
      // 100 KB in one tick: one batch, six times the client's buffer
      for (let i = 1; i <= 100; i++)
        void hub.publish('t', { event: 'msg', data: `${i}:${'z'.repeat(1000)}` });
      await until(() => dataOf(client).length === 100, 'the whole burst', 10_000);
      expect(dataOf(client).map((d) => d.split(':')[0])).toEqual(range(1, 100));
      expect(hub.stats()).toMatchObject({ slowCloses: 0, subscribers: 1 });
      // and live again afterwards
      await hub.publish('t', { event: 'msg', data: '101:' });
      await until(() => dataOf(client).length === 101, 'live again');
    });

    it("with onSlowClient: 'drop', paces a client that stopped reading from the log: nothing dropped, nothing closed", async () => {
      const hub = hubOf();
      const sse = { retryMs: null, bufferBytes: 64 * 1024, heartbeatMs: null, onSlowClient: 'drop' } as const;
      const app = await serveHub(hub, sse);
      const slow = new RawSseClient(app.port, '/feed/t');
      slow.socket.pause();
      const reader = new RawSseClient(app.port, '/feed/t');
      await until(() => hub.stats().subscribers === 2, 'two subscribers');
      await until(() => reader.body.includes('id: '), 'positioned');
      // 8 MB, one event per turn of the event loop: more than the kernel's socket buffers can hide
      for (let i = 1; i <= 400; i++) {
        await hub.publish('t', { event: 'msg', data: `${i}:${'y'.repeat(20_000)}` });
        await new Promise((resolve) => setImmediate(resolve));
      }
      await until(() => dataOf(reader).length === 400, 'the reader has everything', 10_000);
      slow.socket.resume();
      await until(() => dataOf(slow).length === 400, 'the slow one has everything too', 10_000);
      expect(dataOf(slow).map((d) => d.split(':')[0])).toEqual(range(1, 400));
      expect(hub.stats()).toMatchObject({ slowCloses: 0, subscribers: 2 });
    });

    it('takes a seq at or below the position, in the same epoch, as the log gone back in time: a reset, never a skip', async () => {
      // A store that went back in time (restored from an older snapshot) hands over seqs 2… again.
      const store = memoryStore();
      let deliver: EventsListener | undefined;
      const rewinding: HubStore = {
        ...store,
        append: (topic, record, options) => store.append(topic, record, options),
        position: (topic) => store.position(topic),
        read: (topic, after, limit) => store.read(topic, after, limit),
        listen: (topic, onEvents) => {
          deliver = onEvents;
          return store.listen(topic, onEvents);
        },
        unlisten: (topic) => store.unlisten(topic),
        close: () => store.close(),
      };
      const hub = hubOf({ store: rewinding });
      const app = await serveHub(hub);
      const client = new RawSseClient(app.port, '/feed/t');
      await until(() => client.body.includes('id: '), 'positioned');
      const ids = await publishMany(hub, 't', 1, 3);
      await until(() => dataOf(client).length === 3, 'three events');
      const epoch = ids[0]!.split('-')[0]!;
      deliver!(epoch, [{ seq: 2, record: { event: 'msg', data: 'after the rewind' } }]);
      await until(() => parseEvents(client.body).events.length === 5, 'the reset and the event');
      expect(parseEvents(client.body).events.slice(3)).toEqual([
        { event: 'reset', id: `${epoch}-1`, data: '{"reason":"unknown-epoch","topic":"t"}' },
        { event: 'msg', id: `${epoch}-2`, data: 'after the rewind' },
      ]);
    });

    it('lets a filter pick events; the others still advance the position', async () => {
      const hub = hubOf();
      const only = (message: HubMessage) => message.event === 'msg' && message.data !== '2';
      const app = await serveHub(hub, { retryMs: null }, () => ({ filter: only }));
      const client = new RawSseClient(app.port, '/feed/t');
      await until(() => client.body.includes('id: '), 'positioned');
      await hub.publish('t', { event: 'msg', data: '1' });
      await hub.publish('t', { event: 'msg', data: '2' });
      await hub.publish('t', { event: 'other', data: '3' });
      const last = await hub.publish('t', { event: 'msg', data: '4' });
      await until(() => dataOf(client).length === 2, 'two picked events');
      expect(dataOf(client)).toEqual(['1', '4']);
      expect(parseEvents(client.body).lastId).toBe(last);
      // resuming from the first id: the filtered ones are skipped, not replayed
      const first = parseEvents(client.body).events[0]!.id!;
      const resumed = new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': first });
      await until(() => dataOf(resumed).length === 1, 'the replay');
      expect(dataOf(resumed)).toEqual(['4']);
    });

    it('closes only the subscription whose filter throws; the others get their events', async () => {
      const hub = hubOf();
      const app = await serveHub(hub, { retryMs: null }, (req) =>
        req.url?.includes('broken')
          ? {
              filter: () => {
                throw new Error('a broken filter');
              },
            }
          : {},
      );
      const broken = new RawSseClient(app.port, '/feed/t?broken');
      const fine = new RawSseClient(app.port, '/feed/t');
      await until(() => [broken, fine].every((c) => c.body.includes('id: ')), 'positioned');
      await hub.publish('t', { event: 'msg', data: '1' });
      await hub.publish('t', { event: 'msg', data: '2' });
      await until(() => dataOf(fine).length === 2, 'the events, for the other subscriber');
      await broken.waitEnded();
      expect(dataOf(broken)).toEqual([]);
      expect(hub.stats().subscribers).toBe(1);
    });

    /** One client of `hub`'s topic `t`, with the sizes of the writes its server socket takes. */
    async function countedClient(hub: Hub): Promise<{ client: RawSseClient; writes: number[] }> {
      const writes: number[] = [];
      const app = await serveHub(hub, { retryMs: null, heartbeatMs: null });
      const client = new RawSseClient(app.port, '/feed/t');
      await until(() => client.body.includes('id: '), 'positioned');
      const [serverSocket] = [...app.connections];
      expect(app.connections.size).toBe(1);
      const write = serverSocket!.write.bind(serverSocket);
      serverSocket!.write = ((...args: Parameters<typeof write>) => {
        writes.push(Buffer.byteLength(args[0] as string | Buffer));
        return write(...args);
      }) as typeof write;
      return { client, writes };
    }

    it('writes a burst published in one tick to each socket as one write', async () => {
      const hub = hubOf();
      const { client, writes } = await countedClient(hub);
      for (let i = 1; i <= 100; i++) void hub.publish('t', { event: 'msg', data: String(i) });
      await until(() => dataOf(client).length === 100, 'the burst');
      expect(writes).toHaveLength(1);
      // one event per turn of the event loop: one write each
      for (let i = 101; i <= 110; i++) {
        await hub.publish('t', { event: 'msg', data: String(i) });
        await new Promise((resolve) => setImmediate(resolve));
      }
      await until(() => dataOf(client).length === 110, 'one per turn');
      expect(writes).toHaveLength(11);
    });

    it('with coalesceMs, writes the events of a topic that arrive within the window as one write', async () => {
      const hub = hubOf({ coalesceMs: 1000 });
      const { client, writes } = await countedClient(hub);
      // one event per turn of the event loop, well inside the window
      for (let i = 1; i <= 10; i++) {
        await hub.publish('t', { event: 'msg', data: String(i) });
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(writes).toEqual([]);
      await until(() => dataOf(client).length === 10, 'the window to end', 5000);
      expect(dataOf(client)).toEqual(range(1, 10));
      expect(writes).toHaveLength(1);
      expect(() => createHub({ coalesceMs: -1 })).toThrow(/^createHub: expected `coalesceMs`/);
    });
  });

  describe('stats(), close() and clean-up', () => {
    it('counts a known scenario', async () => {
      const hub = hubOf({ maxReplay: 3 });
      const app = await serveHub(hub);
      const ids = await publishMany(hub, 'a', 1, 5);
      const live = new RawSseClient(app.port, '/feed/a');
      const resumed = new RawSseClient(app.port, '/feed/a', { 'Last-Event-ID': ids[2]! });
      const reset = new RawSseClient(app.port, '/feed/a', { 'Last-Event-ID': 'garbage' });
      new RawSseClient(app.port, '/feed/b');
      await until(() => hub.stats().subscribers === 4, 'four subscribers');
      await until(() => [live, resumed, reset].every((c) => c.body.includes('id: ')), 'positioned');
      await until(() => dataOf(resumed).length === 2, 'the replay');
      await publishMany(hub, 'a', 6, 7);
      await until(() => [live, resumed].every((c) => dataOf(c).length >= 2), 'live events');
      await until(() => hub.stats().delivered === 6, 'six deliveries');
      expect(hub.stats()).toEqual({
        topics: { a: 3, b: 1 },
        subscribers: 4,
        published: 7,
        delivered: 6,
        replays: 1,
        replayed: 2,
        resets: { 'unknown-epoch': 0, 'too-old': 0, ahead: 0, malformed: 1, 'too-many': 0 },
        slowCloses: 0,
        // the memory store keeps no tail: it is one itself
        answeredFromTail: 0,
        // b has a subscriber but no event: no log
        store: { topics: 1, keptEvents: 7 },
      });
    });

    it('close(): every subscription gets a jittered retry and ends; publish then rejects', async () => {
      const hub = createHub();
      const app = await serveHub(hub);
      const subscribers = Array.from({ length: 3 }, () => new RawSseClient(app.port, '/feed/t'));
      await until(() => hub.stats().subscribers === 3, 'three subscribers');
      await hub.close({ retryMs: 1000 });
      for (const client of subscribers) {
        await client.waitEnded();
        expect(client.terminated).toBe(true);
        const retry = Number(/retry: (\d+)/.exec(client.body)?.[1]);
        expect(retry).toBeGreaterThanOrEqual(666);
        expect(retry).toBeLessThanOrEqual(1667);
      }
      await expect(hub.publish('t', 'late')).rejects.toBeInstanceOf(HubClosedError);
      expect(hub.stats().subscribers).toBe(0);
    });

    it('counts a topic named __proto__ like any other', async () => {
      const hub = hubOf();
      const app = await serveHub(hub);
      const client = new RawSseClient(app.port, '/feed/__proto__');
      await until(() => client.body.includes('id: '), 'positioned');
      expect(Object.entries(hub.stats().topics)).toEqual([['__proto__', 1]]);
    });

    it('leaves no subscriber, map entry, listener or timer behind once every subscriber left', async () => {
      const timers = trackTimers();
      try {
        const hub = hubOf();
        const app = await serveHub(hub, { retryMs: null, heartbeatMs: 20 });
        const many = Array.from({ length: 50 }, (_, i) => new RawSseClient(app.port, `/feed/t${i % 5}`));
        await until(() => hub.stats().subscribers === 50, 'fifty subscribers');
        // one heartbeat timer for the fifty streams; the hub and its memory store hold none
        expect(timers.live()).toBe(1);
        for (const client of many) client.close();
        await until(() => hub.stats().subscribers === 0, 'every subscriber gone');
        expect(hub.stats().topics).toEqual({});
        expect(hub.stats().store).toEqual({ topics: 0, keptEvents: 0 });
        expect(app.sse.size).toBe(0);
        expect(timers.live()).toBe(0);
      } finally {
        timers.restore();
      }
    });
  });

  describe('diagnostics_channel', () => {
    it('publishes sse:open, sse:close (with its reason), hub:publish and hub:reset', async () => {
      const seen: Array<[string, Record<string, unknown>]> = [];
      const names = ['sse:open', 'sse:close', 'hub:publish', 'hub:reset'];
      const listeners = names.map((name) => {
        const listener = (message: unknown) => seen.push([name, message as Record<string, unknown>]);
        diagnostics.subscribe(`express-streaming:${name}`, listener);
        return [name, listener] as const;
      });
      try {
        const hub = hubOf();
        const app = await serveHub(hub);
        const client = new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': 'bad' });
        await until(() => parseEvents(client.body).events.length === 1, 'the reset');
        const id = await hub.publish('t', { event: 'msg', data: 'x' });
        client.close();
        await until(() => seen.some(([name]) => name === 'sse:close'), 'the close');
        expect(seen.map(([name]) => name)).toEqual(['sse:open', 'hub:reset', 'hub:publish', 'sse:close']);
        expect(seen[1]?.[1]).toMatchObject({ topic: 't', reason: 'malformed', lastEventId: 'bad' });
        expect(seen[2]?.[1]).toMatchObject({ topic: 't', id, event: 'msg', subscribers: 1 });
        expect(seen[3]?.[1]).toMatchObject({ reason: 'client' });
      } finally {
        for (const [name, listener] of listeners)
          diagnostics.unsubscribe(`express-streaming:${name}`, listener);
      }
    });
  });
});

describe("the hub's tail of each followed topic, for a store in another process", () => {
  /** A memory store as a remote one looks to the hub, counting the commands the hub sends it. */
  function remoteStore(options: { listenDelayMs?: number } = {}) {
    const inner = memoryStore();
    const commands = { position: 0, read: 0, listen: 0, unlisten: 0 };
    const store = forwarding(inner, {
      position: (topic) => {
        commands.position++;
        return inner.position(topic);
      },
      read: (topic, after, limit) => {
        commands.read++;
        return inner.read(topic, after, limit);
      },
      listen: (topic, onEvents) => {
        commands.listen++;
        // a live reader that lags behind the log, as Redis's does by a round trip
        const delay = options.listenDelayMs ?? 0;
        return inner.listen(topic, (epoch, events) =>
          delay === 0 ? onEvents(epoch, events) : void setTimeout(() => onEvents(epoch, events), delay),
        );
      },
      unlisten: (topic) => {
        commands.unlisten++;
        inner.unlisten(topic);
      },
    });
    return { store, commands };
  }

  it('resumes a client whose place is in the tail with no store command: exactly what it missed, then live', async () => {
    const { store, commands } = remoteStore();
    const hub = hubOf({ store });
    const app = await serveHub(hub);
    const first = new RawSseClient(app.port, '/feed/t');
    await until(() => first.body.includes('id: '), 'the first subscriber positioned');
    const ids = await publishMany(hub, 't', 1, 10);
    await until(() => dataOf(first).length === 10, 'ten live events');
    const before = { ...commands };
    const resuming = Array.from(
      { length: 20 },
      () => new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': ids[4]! }),
    );
    await until(() => resuming.every((c) => dataOf(c).length === 5), 'the five each missed');
    await hub.publish('t', { event: 'msg', data: '11' });
    await until(() => resuming.every((c) => dataOf(c).length === 6), 'live again');
    for (const client of resuming) expect(dataOf(client)).toEqual(range(6, 11));
    expect(commands).toEqual(before);
    expect(hub.stats().answeredFromTail).toBe(40);
  });

  it('asks the store what the tail cannot vouch for: a place older than the tail, or one past its head', async () => {
    const { store, commands } = remoteStore({ listenDelayMs: 30 });
    const hub = hubOf({ store, tail: { events: 5 } });
    const app = await serveHub(hub);
    const first = new RawSseClient(app.port, '/feed/t');
    await until(() => first.body.includes('id: '), 'positioned');
    const ids = await publishMany(hub, 't', 1, 20);
    await until(() => dataOf(first).length === 20, 'twenty live events');
    // older than the five kept: the store has it
    const old = new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': ids[2]! });
    await until(() => dataOf(old).length === 17, 'the seventeen it missed');
    expect(dataOf(old)).toEqual(range(4, 20));
    // past the tail's head (the live feed lags): the store says it is at the head, not ahead
    const reads = commands.position;
    const more = await publishMany(hub, 't', 21, 22);
    const ahead = new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': more[1]! });
    // the head goes out once the subscriber is positioned
    await until(() => ahead.head !== '', 'positioned');
    await hub.publish('t', { event: 'msg', data: '23' });
    await until(() => dataOf(ahead).length === 1, 'the next live event');
    expect(parseEvents(ahead.body).events.map((e) => e.event)).toEqual(['msg']);
    expect(dataOf(ahead)).toEqual(['23']);
    expect(commands.position).toBeGreaterThan(reads);
    expect(hub.stats().resets.ahead).toBe(0);
  });

  it('keeps a topic whose last subscriber left followed for lingerMs, so that clients coming back find it warm', async () => {
    const { store, commands } = remoteStore();
    const hub = hubOf({ store, tail: { lingerMs: 300 } });
    const app = await serveHub(hub);
    const leaving = new RawSseClient(app.port, '/feed/t');
    await until(() => leaving.body.includes('id: '), 'positioned');
    const ids = await publishMany(hub, 't', 1, 3);
    await until(() => dataOf(leaving).length === 3, 'three events');
    leaving.close();
    await until(() => hub.stats().subscribers === 0, 'gone');
    await publishMany(hub, 't', 4, 5);
    const positions = commands.position;
    const back = new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': ids[2]! });
    await until(() => dataOf(back).length === 2, 'the two it missed, from the tail');
    expect(commands.position).toBe(positions);
    back.close();
    await until(() => commands.unlisten === 1, 'let go after lingerMs', 5000);
    expect(hub.stats().topics).toEqual({});
  });

  it('lets a topic nobody publishes to go at once, and keeps no tail for the memory store', async () => {
    const { store, commands } = remoteStore();
    const hub = hubOf({ store });
    const app = await serveHub(hub);
    const client = new RawSseClient(app.port, '/feed/quiet');
    await until(() => client.body.includes('id: '), 'positioned');
    client.close();
    await until(() => commands.unlisten === 1, 'let go at once');
    const local = hubOf();
    const localApp = await serveHub(local);
    const ids = await publishMany(local, 't', 1, 3);
    const resuming = new RawSseClient(localApp.port, '/feed/t', { 'Last-Event-ID': ids[0]! });
    await until(() => dataOf(resuming).length === 2, 'replayed by the store itself');
    expect(local.stats().answeredFromTail).toBe(0);
    expect(() => createHub({ tail: { events: 0 } })).toThrow(/^createHub: expected `tail.events`/);
  });
});

describe('memoryStore({ size, maxAgeMs })', () => {
  it('lets events older than maxAgeMs go, so a client that missed them is told to reset (too-old)', async () => {
    const hub = hubOf({ store: memoryStore({ maxAgeMs: 50 }) });
    const ids = await publishMany(hub, 't', 1, 3);
    await sleep(80); // past maxAgeMs
    await hub.publish('t', { event: 'msg', data: '4' });
    const app = await serveHub(hub);
    const client = new RawSseClient(app.port, '/feed/t', { 'Last-Event-ID': ids[0]! });
    await until(() => parseEvents(client.body).events.length === 1, 'the reset');
    expect(parseEvents(client.body).events[0]?.data).toBe('{"reason":"too-old","topic":"t"}');
  });

  it('never gives a log the epoch it gives topics with no log, however many logs begin', async () => {
    const store = memoryStore();
    const epochs = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      epochs.add((await store.append(`t${i}`, { data: 'x' }, { idempotencyKey: 'k' })).epoch);
    }
    const { emptyEpoch } = await store.position('never published');
    expect(epochs.size).toBe(2000);
    expect(epochs.has(emptyEpoch)).toBe(false);
    await store.close();
  });

  it('rejects bad options with TypeErrors naming them', () => {
    expect(() => memoryStore({ size: 0 })).toThrow(/memoryStore: expected `size`/);
    expect(() => memoryStore({ maxAgeMs: 2 ** 31 })).toThrow(/memoryStore: expected `maxAgeMs`/);
    expect(() => memoryStore({ size: null as never })).toThrow(
      /^memoryStore: expected `size` to be an integer of at least 1, got null$/,
    );
    expect(() => memoryStore({ maxAgeMs: null })).not.toThrow();
  });
});

import { createHub, type EventsListener, HubStoreError, memoryStore } from '../lib';
import { readCursor, topicHash } from '../lib/hub/cursor';
import {
  byTopic,
  hubsClosedAfterEach,
  numbered,
  numbers,
  type ParsedEvent,
  parseEvents,
  publishRounds,
  serveHub,
} from './helpers/hub-server';
import { collectEvents, RawSseClient } from './helpers/sse-client';
import { forwarding } from './helpers/store-doubles';
import { afterPendingEvents, sleep, trackTimers, until, untilStable } from './helpers/wait';

// Many topics on one stream: `hub.subscribe([…topics], req)`. The app in ./helpers/hub-server.ts
// subscribes `/topics/a,b,c` to the topics a, b and c. Every event published here is a `msg` whose
// data is `<topic>:<n>`, n counting that topic's events from 1 — its seq in the topic's log.

const hubOf = hubsClosedAfterEach();

const topicsOf = (count: number): string[] => Array.from({ length: count }, (_, i) => `t${i}`);

/** Where a cursor says the client stands, by topic ('epoch-seq'), for the topics given. */
function placesIn(cursor: string, topics: readonly string[]): Record<string, string> {
  const entries = readCursor(cursor, 256);
  if (entries === 'malformed') throw new Error(`not a cursor: ${cursor}`);
  const places: Record<string, string> = {};
  for (const topic of topics) {
    const entry = entries.find((e) => e.hash === topicHash(topic));
    if (entry) places[topic] = `${entry.epoch}-${entry.seq}`;
  }
  return places;
}

/** The stream's events as a page sees them, the hub:position event included. */
function allEvents(body: string): ParsedEvent[] {
  const events: ParsedEvent[] = [];
  for (const block of body.split('\n\n').slice(0, -1)) {
    const field = (name: string) =>
      block
        .split('\n')
        .filter((line) => line.startsWith(`${name}:`))
        .map((line) => line.slice(name.length + 1).replace(/^ /, ''));
    if (field('id').length === 0) continue;
    events.push({
      event: field('event')[0] ?? 'message',
      id: field('id')[0],
      data: field('data').join('\n'),
    });
  }
  return events;
}

/**
 * Checks that each event's cursor is where the client stands once it has the event: the cursor before
 * it with the event's topic moved to the event's seq, every other topic unchanged.
 */
function expectExactCursors(body: string, topics: readonly string[]): void {
  const events = allEvents(body);
  let places = placesIn(events[0]!.id!, topics);
  for (const event of events.slice(1)) {
    const now = placesIn(event.id!, topics);
    if (event.event === 'msg') {
      const [topic, n] = numbered(event.data);
      const epoch = now[topic]!.replace(/-\d+$/, '');
      places = { ...places, [topic]: `${epoch}-${n}` };
    } else {
      places = { ...places, [JSON.parse(event.data).topic]: now[JSON.parse(event.data).topic] };
    }
    expect(now).toEqual(places);
  }
}

/** A raw client that drops its connection after every few events and reconnects with its last id. */
async function dropAndReconnect(
  port: number,
  path: string,
  done: () => boolean,
  total: number,
): Promise<ParsedEvent[]> {
  const events: ParsedEvent[] = [];
  let lastId: string | undefined;
  for (let round = 0; events.length < total; round++) {
    const client = new RawSseClient(port, path, lastId === undefined ? {} : { 'Last-Event-ID': lastId });
    const before = events.length;
    // a few events, then away — unless publishing is over: then stay for the rest
    await until(
      () =>
        client.body.includes('id: ') && (parseEvents(client.body).events.length >= 7 + (round % 5) || done()),
      'some events',
      10_000,
    );
    if (done()) {
      await until(() => before + parseEvents(client.body).events.length >= total, 'the rest', 10_000);
    }
    client.close();
    const parsed = parseEvents(client.body);
    events.push(...parsed.events);
    lastId = parsed.lastId ?? lastId;
  }
  return events;
}

describe('hub.subscribe([...topics], req): many topics on one stream', () => {
  it("streams every topic's events, each id a cursor of where the client stands in every topic", async () => {
    const hub = hubOf();
    const app = await serveHub(hub);
    await publishRounds(hub, ['b'], 1, 1);
    const client = new RawSseClient(app.port, '/topics/a,b,c');
    await until(() => client.body.includes('id: '), 'positioned');
    // one hub:position event, with the cursor, before anything else
    expect(client.body).toMatch(/^event: hub:position\nid: ~1[0-9A-Za-z.~-]+\ndata: ?\n\n$/);
    expect(Object.keys(placesIn(allEvents(client.body)[0]!.id!, ['a', 'b', 'c']))).toEqual(['a', 'b', 'c']);
    for (let n = 1; n <= 5; n++) {
      await hub.publish('a', { event: 'msg', data: `a:${n}` });
      await hub.publish('b', { event: 'msg', data: `b:${n + 1}` });
      await afterPendingEvents();
    }
    await until(() => parseEvents(client.body).events.length === 10, 'ten events');
    const events = parseEvents(client.body).events;
    // interleaved as published (one per turn of the event loop), in each topic's order
    expect(events.map((e) => e.data)).toEqual(numbers(1, 5).flatMap((n) => [`a:${n}`, `b:${n + 1}`]));
    for (const event of events) expect(event.id).toMatch(/^~1[0-9A-Za-z.-]+$/);
    expectExactCursors(client.body, ['a', 'b', 'c']);
    expect(hub.stats()).toMatchObject({ topics: { a: 1, b: 1, c: 1 }, subscribers: 1, delivered: 10 });
  });

  it('opens the stream only once every topic is positioned: what is published after the open arrives', async () => {
    const store = memoryStore();
    const slowStore = forwarding(store, {
      // one topic's position answers late, as a remote store's may
      position: (topic) =>
        (topic === 'slow' ? sleep(80) : Promise.resolve()).then(() => store.position(topic)),
    });
    const hub = hubOf({ store: slowStore });
    await publishRounds(hub, ['fast', 'slow'], 1, 2);
    const app = await serveHub(hub);
    const client = new RawSseClient(app.port, '/topics/fast,slow');
    await until(() => client.head !== '', 'the head: the client opened');
    await publishRounds(hub, ['slow', 'fast'], 3, 3);
    await until(
      () => parseEvents(client.body).events.length === 2,
      () => client.body,
    );
    expect(byTopic(parseEvents(client.body).events)).toEqual({ slow: [3], fast: [3] });
  });

  it('answers a subscriber whose store cannot follow one of its topics with the SSE head and an end; the next one asks again', async () => {
    const store = memoryStore();
    let refusals = 1;
    const flaky = forwarding(store, {
      listen: (topic, onEvents) =>
        topic === 'b' && refusals-- > 0
          ? Promise.reject(new HubStoreError('the store is down'))
          : store.listen(topic, onEvents),
    });
    const hub = hubOf({ store: flaky });
    const app = await serveHub(hub);
    const refused = new RawSseClient(app.port, '/topics/a,b');
    await refused.waitEnded();
    expect(refused.header('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(refused.terminated).toBe(true);
    await until(() => hub.stats().subscribers === 0, 'gone');
    expect(hub.stats().topics).toEqual({});
    const next = new RawSseClient(app.port, '/topics/a,b');
    await until(() => next.body.includes('id: '), 'the next one positioned');
    await publishRounds(hub, ['a', 'b'], 1, 1);
    await until(() => parseEvents(next.body).events.length === 2, 'live in both');
  });

  it('resumes each topic exactly from any id of the stream: the replay, per topic, merged on the stream', async () => {
    const hub = hubOf();
    const app = await serveHub(hub);
    const topics = ['a', 'b', 'c'];
    const first = new RawSseClient(app.port, '/topics/a,b,c');
    await until(() => first.body.includes('id: '), 'positioned');
    const counts: Record<string, number> = {};
    for (let n = 1; n <= 6; n++) {
      for (const topic of topics.slice(0, (n % 3) + 1)) {
        counts[topic] = (counts[topic] ?? 0) + 1;
        await hub.publish(topic, { event: 'msg', data: `${topic}:${counts[topic]}` });
        await afterPendingEvents();
      }
    }
    // the hub:position event and twelve events
    await until(() => allEvents(first.body).length === 13, 'every event');
    const seen = allEvents(first.body);
    const all = byTopic(seen);
    // from every id the stream gave, the hub:position one included: exactly what came after it
    for (let k = 0; k < seen.length; k++) {
      const resumed = new RawSseClient(app.port, '/topics/a,b,c', { 'Last-Event-ID': seen[k]!.id! });
      const expected = byTopic(seen.slice(k + 1));
      const count = seen.length - k - 1;
      await until(
        () => parseEvents(resumed.body).events.length === count && resumed.head !== '',
        'the replay',
      );
      await untilStable(() => resumed.body.length, 'nothing more', { quietMs: 30 });
      expect(byTopic(parseEvents(resumed.body).events)).toEqual(expected);
      resumed.close();
    }
    expect(all).toEqual({ a: numbers(1, 6), b: numbers(1, 4), c: numbers(1, 2) });
    expect(hub.stats().resets).toMatchObject({ malformed: 0, 'unknown-epoch': 0 });
  });

  it.each([2, 10])(
    '%i topics, published into all while raw clients drop and reconnect: every event of every topic exactly once, in order',
    async (count) => {
      const hub = hubOf({ store: memoryStore({ size: 5000 }) });
      const app = await serveHub(hub, { retryMs: null, heartbeatMs: null });
      const topics = topicsOf(count);
      const rounds = Math.ceil(400 / count);
      let done = false;
      const followers = Array.from({ length: 3 }, () =>
        dropAndReconnect(app.port, `/topics/${topics.join(',')}`, () => done, rounds * count),
      );
      await until(() => hub.stats().subscribers === 3, 'three subscribers');
      for (let n = 1; n <= rounds; n++) {
        await publishRounds(hub, topics, n, n);
        if (n % 3 === 0) await sleep(1);
      }
      done = true;
      for (const events of await Promise.all(followers)) {
        const seen = byTopic(events);
        expect(Object.keys(seen).sort()).toEqual([...topics].sort());
        for (const topic of topics) expect(seen[topic]).toEqual(numbers(1, rounds));
        expect(events.every((e) => e.event === 'msg')).toBe(true);
      }
      expect(hub.stats().replays).toBeGreaterThan(3);
    },
    60_000,
  );

  it.each([2, 10])(
    '%i topics, published into all while EventSource clients are dropped and reconnect: every event exactly once, in order',
    async (count) => {
      const hub = hubOf({ store: memoryStore({ size: 5000 }) });
      const app = await serveHub(hub, { retryMs: 20 });
      const topics = topicsOf(count);
      const rounds = Math.ceil(300 / count);
      const sources = Array.from({ length: 2 }, () =>
        collectEvents(`${app.url}/topics/${topics.join(',')}`, ['msg']),
      );
      await until(
        () => sources.every((s) => s.source.readyState === 1) && hub.stats().subscribers === 2,
        'open',
      );
      for (let n = 1; n <= rounds; n++) {
        await publishRounds(hub, topics, n, n);
        // every few rounds, every stream ends with a retry: the clients reconnect with their cursors
        if (n % 7 === 0) void app.sse.closeAll({ retryMs: 20 });
        await afterPendingEvents();
      }
      for (const { events } of sources) {
        await until(
          () => events.length >= rounds * count,
          () => `every event: ${events.length}`,
          10_000,
        );
        await untilStable(() => events.length, 'nothing more', { quietMs: 100 });
        const seen = byTopic(events);
        for (const topic of topics) expect(seen[topic]).toEqual(numbers(1, rounds));
      }
      expect(hub.stats().resets).toMatchObject({ malformed: 0, 'unknown-epoch': 0, 'too-old': 0 });
    },
    60_000,
  );
});

describe('a reconnect with a cursor: each topic resumed or reset on its own', () => {
  it('resets a topic whose events are gone (too-old) while the others resume exactly', async () => {
    const hub = hubOf({ store: memoryStore({ size: 5 }) });
    const app = await serveHub(hub);
    const first = new RawSseClient(app.port, '/topics/busy,calm');
    await until(() => first.body.includes('id: '), 'positioned');
    await publishRounds(hub, ['busy', 'calm'], 1, 2);
    await until(() => parseEvents(first.body).events.length === 4, 'four events');
    first.close();
    // while the client is away: more than the store keeps of one topic, little of the other
    await publishRounds(hub, ['busy'], 3, 20);
    await publishRounds(hub, ['calm'], 3, 4);
    const back = new RawSseClient(app.port, '/topics/busy,calm', {
      'Last-Event-ID': parseEvents(first.body).lastId!,
    });
    await until(() => parseEvents(back.body).events.length === 3, 'a reset and two events');
    const events = parseEvents(back.body).events;
    expect(events[0]).toMatchObject({ event: 'reset', data: '{"reason":"too-old","topic":"busy"}' });
    expect(placesIn(events[0]!.id!, ['busy', 'calm'])).toMatchObject({
      busy: expect.stringMatching(/-20$/),
      calm: expect.stringMatching(/-2$/),
    });
    expect(byTopic(events)).toEqual({ calm: [3, 4] });
    // and live in both
    await publishRounds(hub, ['busy', 'calm'], 21, 21);
    await until(() => parseEvents(back.body).events.length === 5, 'live');
    expect(byTopic(parseEvents(back.body).events)).toEqual({ calm: [3, 4, 21], busy: [21] });
    expect(hub.stats().resets['too-old']).toBe(1);
  });

  it("gives each topic of a cursor from another process's memory store its own reset (unknown-epoch)", async () => {
    const elsewhere = hubOf();
    const appElsewhere = await serveHub(elsewhere);
    const there = new RawSseClient(appElsewhere.port, '/topics/a,b');
    await until(() => there.body.includes('id: '), 'positioned there');
    await publishRounds(elsewhere, ['a', 'b'], 1, 2);
    await until(() => parseEvents(there.body).events.length === 4, 'events there');
    const hub = hubOf();
    const app = await serveHub(hub);
    const ids = await publishRounds(hub, ['a', 'b'], 1, 3);
    const here = new RawSseClient(app.port, '/topics/a,b', {
      'Last-Event-ID': parseEvents(there.body).lastId!,
    });
    await until(() => parseEvents(here.body).events.length === 2, 'two resets');
    expect(parseEvents(here.body).events.map((e) => e.data)).toEqual([
      '{"reason":"unknown-epoch","topic":"a"}',
      '{"reason":"unknown-epoch","topic":"b"}',
    ]);
    // each reset places the client at the heads
    expect(placesIn(parseEvents(here.body).events[1]!.id!, ['a', 'b'])).toEqual({ a: ids[4], b: ids[5] });
    expect(hub.stats().resets['unknown-epoch']).toBe(2);
  });

  it.each([
    ['a cursor no hub writes', '~1garbage'],
    ['neither a cursor nor an id', 'not an id'],
    [
      'a cursor naming more topics than maxTopics',
      `~1${Array.from({ length: 33 }, (_, i) => `${topicHash(`x${i}`)}0abc-1`).join('.')}`,
    ],
  ])('resets every topic (malformed) for %s, then goes live', async (_, lastEventId) => {
    const hub = hubOf();
    const app = await serveHub(hub);
    await publishRounds(hub, ['a', 'b'], 1, 2);
    const client = new RawSseClient(app.port, '/topics/a,b', { 'Last-Event-ID': lastEventId });
    await until(() => parseEvents(client.body).events.length === 2, 'two resets');
    expect(parseEvents(client.body).events.map((e) => [e.event, e.data])).toEqual([
      ['reset', '{"reason":"malformed","topic":"a"}'],
      ['reset', '{"reason":"malformed","topic":"b"}'],
    ]);
    await publishRounds(hub, ['b'], 3, 3);
    await until(() => parseEvents(client.body).events.length === 3, 'live');
    expect(byTopic(parseEvents(client.body).events)).toEqual({ b: [3] });
  });

  it('takes a topic the cursor does not name as new to the client, and ignores a cursor topic no longer subscribed', async () => {
    const hub = hubOf();
    const app = await serveHub(hub);
    const before = new RawSseClient(app.port, '/topics/a,gone');
    await until(() => before.body.includes('id: '), 'positioned');
    await publishRounds(hub, ['a', 'gone', 'new'], 1, 2);
    await until(() => parseEvents(before.body).events.length === 4, 'four events');
    before.close();
    await publishRounds(hub, ['a', 'gone', 'new'], 3, 4);
    const after = new RawSseClient(app.port, '/topics/a,new', {
      'Last-Event-ID': parseEvents(before.body).lastId!,
    });
    await until(() => byTopic(parseEvents(after.body).events).a?.length === 2, 'the replay of a');
    // 'new' is a first connection: positioned at its head, told so with one hub:position event
    const [position] = allEvents(after.body);
    expect(position!.event).toBe('hub:position');
    expect(placesIn(position!.id!, ['a', 'new', 'gone'])).toEqual({
      a: expect.stringMatching(/-2$/),
      new: expect.stringMatching(/-4$/),
    });
    await publishRounds(hub, ['new', 'gone'], 5, 5);
    await until(() => parseEvents(after.body).events.length === 3, 'live');
    expect(byTopic(parseEvents(after.body).events)).toEqual({ a: [3, 4], new: [5] });
    expect(hub.stats().resets).toMatchObject({ malformed: 0, 'unknown-epoch': 0 });
  });

  it('tells apart two topics of the set whose hashes in the cursor are the same, by their logs', async () => {
    const [early, late] = ['room:3481', 'room:5250'];
    expect(topicHash(early)).toBe(topicHash(late));
    const hub = hubOf();
    const app = await serveHub(hub);
    // the later name's log begins first: its entry comes first in the cursor
    await publishRounds(hub, [late, early], 1, 1);
    const first = new RawSseClient(app.port, `/topics/${early},${late}`);
    await until(() => first.body.includes('id: '), 'positioned');
    await publishRounds(hub, [early, late], 2, 2);
    await until(() => parseEvents(first.body).events.length === 2, 'two events');
    first.close();
    await publishRounds(hub, [early, late], 3, 4);
    const back = new RawSseClient(app.port, `/topics/${early},${late}`, {
      'Last-Event-ID': parseEvents(first.body).lastId!,
    });
    await until(() => parseEvents(back.body).events.length === 4, 'the replay');
    expect(byTopic(parseEvents(back.body).events)).toEqual({ [early]: [3, 4], [late]: [3, 4] });
    expect(hub.stats().resets['unknown-epoch']).toBe(0);
  });

  it("replays everything kept, with from: 'earliest', of each topic new to the client", async () => {
    const hub = hubOf();
    const app = await serveHub(hub, { retryMs: null }, () => ({ from: 'earliest' }));
    await publishRounds(hub, ['a', 'b'], 1, 2);
    const first = new RawSseClient(app.port, '/topics/a');
    await until(() => parseEvents(first.body).events.length === 2, 'all of a');
    // no hub:position: the replay's ids say where the client is
    expect(allEvents(first.body).map((e) => e.event)).toEqual(['msg', 'msg']);
    await publishRounds(hub, ['a', 'b'], 3, 3);
    await until(() => parseEvents(first.body).events.length === 3, 'a:3');
    const both = new RawSseClient(app.port, '/topics/a,b', {
      'Last-Event-ID': parseEvents(first.body).lastId!,
    });
    await until(() => parseEvents(both.body).events.length === 3, 'all of b');
    expect(byTopic(parseEvents(both.body).events)).toEqual({ b: [1, 2, 3] });
  });

  it("resumes the one topic whose log a single-topic id names, the others new; resets them all when no topic's log does", async () => {
    const hub = hubOf();
    const app = await serveHub(hub);
    const ids = await publishRounds(hub, ['a'], 1, 3);
    await publishRounds(hub, ['b'], 1, 2);
    const attributed = new RawSseClient(app.port, '/topics/a,b', { 'Last-Event-ID': ids[0]! });
    await until(() => parseEvents(attributed.body).events.length === 2, 'the replay of a');
    expect(allEvents(attributed.body)[0]!.event).toBe('hub:position');
    expect(byTopic(parseEvents(attributed.body).events)).toEqual({ a: [2, 3] });
    // an id of a log no topic of the set has (another topic's, or one lost): every topic resets
    const other = await hub.publish('elsewhere', 'x');
    const unattributed = new RawSseClient(app.port, '/topics/a,b', { 'Last-Event-ID': other });
    await until(() => parseEvents(unattributed.body).events.length === 2, 'two resets');
    expect(parseEvents(unattributed.body).events.map((e) => JSON.parse(e.data))).toEqual([
      { reason: 'unknown-epoch', topic: 'a' },
      { reason: 'unknown-epoch', topic: 'b' },
    ]);
  });

  it("resumes a single-topic stream given a cursor from its topic's entry; a cursor without the topic is a first connection", async () => {
    const hub = hubOf();
    const app = await serveHub(hub);
    const many = new RawSseClient(app.port, '/topics/a,b');
    await until(() => many.body.includes('id: '), 'positioned');
    await publishRounds(hub, ['a', 'b'], 1, 3);
    await until(() => parseEvents(many.body).events.length === 6, 'six events');
    const cursor = parseEvents(many.body).events[1]!.id!; // after a:1 and b:1
    const one = new RawSseClient(app.port, '/feed/a', { 'Last-Event-ID': cursor });
    await until(() => parseEvents(one.body).events.length === 2, 'the replay');
    expect(parseEvents(one.body).events.map((e) => e.data)).toEqual(['a:2', 'a:3']);
    // the events of a single-topic stream keep their plain ids
    expect(parseEvents(one.body).events[1]!.id).toMatch(/^[A-Za-z0-9]+-3$/);
    const unnamed = new RawSseClient(app.port, '/feed/c', { 'Last-Event-ID': cursor });
    await until(() => unnamed.body.includes('id: '), 'positioned');
    expect(unnamed.body).toMatch(/^event: hub:position\nid: [A-Za-z0-9]+-0\n/);
    expect(hub.stats().resets).toMatchObject({ malformed: 0, 'unknown-epoch': 0 });
  });
});

describe('the topics of a subscription', () => {
  it('is a set: order and repeats do not matter, and an array of one topic is a many-topic stream of one', async () => {
    const hub = hubOf();
    const app = await serveHub(hub);
    const ab = new RawSseClient(app.port, '/topics/b,a,b');
    const one = new RawSseClient(app.port, '/topics/a');
    await until(() => [ab, one].every((c) => c.body.includes('id: ')), 'positioned');
    expect(hub.stats()).toMatchObject({ topics: { a: 2, b: 1 }, subscribers: 2 });
    await publishRounds(hub, ['a', 'b'], 1, 1);
    await until(
      () => parseEvents(ab.body).events.length === 2 && parseEvents(one.body).events.length === 1,
      'events',
    );
    expect(parseEvents(one.body).events[0]!.id).toMatch(/^~1/);
    // what the client had of b is in the cursor; resuming with it in the other order is the same set
    const again = new RawSseClient(app.port, '/topics/a,b', {
      'Last-Event-ID': parseEvents(ab.body).lastId!,
    });
    await publishRounds(hub, ['b'], 2, 2);
    await until(() => parseEvents(again.body).events.length === 1, 'b:2');
    expect(byTopic(parseEvents(again.body).events)).toEqual({ b: [2] });
  });

  it('refuses bad topics and maxTopics with TypeErrors naming them', () => {
    const hub = hubOf();
    const req = { headers: {} };
    expect(() => hub.subscribe([], req)).toThrow(
      /^hub\.subscribe: expected `topics` to be an array of at least one topic, got an array \(\[\]\)$/,
    );
    expect(() => hub.subscribe(['a', 7 as never], req)).toThrow(
      /^hub\.subscribe: expected `topics\[1\]` to be a topic \(a non-empty string\), got number \(7\)$/,
    );
    expect(() => hub.subscribe(['a', ''], req)).toThrow(/`topics\[1\]`/);
    expect(() => hub.subscribe(5 as never, req)).toThrow(
      /^hub\.subscribe: expected `topics` to be a topic \(a non-empty string\) or an array of topics, got number \(5\)$/,
    );
    expect(() => hub.subscribe('', req)).toThrow(/expected `topics` to be a topic/);
    expect(() => hub.subscribe(topicsOf(33), req)).toThrow(
      /^hub\.subscribe: expected at most 32 distinct topics \(the `maxTopics` option\), got 33$/,
    );
    expect(() => hub.subscribe(topicsOf(40), req, { maxTopics: 40 })).not.toThrow();
    expect(() => hub.subscribe(['a', 'a', 'b'], req, { maxTopics: 2 })).not.toThrow();
    expect(() => hub.subscribe('a', req, { maxTopics: 0 })).toThrow(
      /^hub\.subscribe: expected `maxTopics` to be an integer of at least 1, got number \(0\)$/,
    );
    expect(() => hub.subscribe('a', req, { maxTopics: 257 })).toThrow(
      /`maxTopics` to be an integer from 1 to 256/,
    );
  });

  it('writes ids of 32 topics in a few hundred characters, with nothing to escape', async () => {
    const hub = hubOf();
    const topics = Array.from({ length: 32 }, (_, i) => `user:${1000 + i}:notifications`);
    for (const topic of topics) await publishRounds(hub, [topic], 1, 3);
    const app = await serveHub(hub);
    const client = new RawSseClient(app.port, `/topics/${topics.join(',')}`);
    await until(() => client.body.includes('id: '), 'positioned');
    const cursor = allEvents(client.body)[0]!.id!;
    expect(cursor).toMatch(/^~1[0-9A-Za-z.-]+$/);
    expect(cursor.length).toBeLessThan(400);
    expect(Object.keys(placesIn(cursor, topics))).toHaveLength(32);
  });
});

describe('encoded once per topic set', () => {
  /** Records, per server socket, the chunks written to it after `start()`. */
  function recordWrites(connections: Iterable<import('node:net').Socket>) {
    const written = new Map<import('node:net').Socket, unknown[]>();
    for (const socket of connections) {
      const chunks: unknown[] = [];
      written.set(socket, chunks);
      const write = socket.write.bind(socket);
      socket.write = ((...args: Parameters<typeof write>) => {
        chunks.push(args[0]);
        return write(...args);
      }) as typeof write;
    }
    return written;
  }

  it('writes the same bytes — one Buffer, encoded once — to 1,000 subscribers of one topic set', async () => {
    const hub = hubOf();
    // the logs exist: the first event of a log is judged by each subscriber's lane on its own
    await publishRounds(hub, ['a', 'b', 'c'], 0, 0);
    const app = await serveHub(hub, { retryMs: null, heartbeatMs: null });
    const many = Array.from({ length: 1000 }, () => new RawSseClient(app.port, '/topics/a,b,c'));
    await until(() => hub.stats().subscribers === 1000, '1,000 subscribers', 20_000);
    await until(() => many.every((c) => c.body.includes('id: ')), 'every one positioned', 20_000);
    // every one caught up (from nothing) and stepped into its set
    await afterPendingEvents();
    const written = recordWrites(app.connections);
    for (let n = 1; n <= 10; n++) {
      await publishRounds(hub, ['a', 'b', 'c'], n, n);
      await afterPendingEvents();
    }
    await until(
      () => many.every((c) => parseEvents(c.body).events.length === 30),
      '30 events everywhere',
      20_000,
    );
    const chunks = [...written.values()];
    expect(chunks.every((c) => c.length === 30)).toBe(true);
    // the k-th write of every socket is the very same Buffer: made once, for the set
    for (let k = 0; k < 30; k++) expect(new Set(chunks.map((c) => c[k])).size).toBe(1);
    expect(new Set(many.map((c) => c.body)).size).toBe(1);
    expect(hub.stats().delivered).toBe(30 * 1000);
  }, 60_000);

  it('encodes per subscriber only while its bytes differ (a filter, a catch-up), then steps back in', async () => {
    const hub = hubOf();
    const app = await serveHub(hub, { retryMs: null, heartbeatMs: null }, (req) =>
      req.url?.includes('filtered') ? { filter: () => true } : {},
    );
    const plain = [0, 1].map(() => new RawSseClient(app.port, '/topics/a,b'));
    const filtered = new RawSseClient(app.port, '/topics/a,b?filtered');
    await until(() => [...plain, filtered].every((c) => c.body.includes('id: ')), 'positioned');
    await publishRounds(hub, ['a', 'b'], 1, 2);
    await until(
      () => [...plain, filtered].every((c) => parseEvents(c.body).events.length === 4),
      'four events',
    );
    // a third comes back from its first id: it catches up, then writes what the others write
    const late = new RawSseClient(app.port, '/topics/a,b', {
      'Last-Event-ID': parseEvents(plain[0]!.body).events[0]!.id!,
    });
    await until(() => parseEvents(late.body).events.length === 3, 'the replay');
    await afterPendingEvents();
    const sockets = [...app.connections];
    const written = recordWrites(sockets);
    await publishRounds(hub, ['b'], 3, 3);
    await until(
      () => [...plain, filtered, late].every((c) => byTopic(parseEvents(c.body).events).b?.includes(3)),
      'b:3',
    );
    const chunks = [...written.values()].map((c) => c[0]);
    // the three unfiltered share one Buffer; the filtered one's bytes are its own, though equal
    expect(new Set(chunks).size).toBe(2);
    expect(new Set(chunks.map((c) => String(c))).size).toBe(1);
  });
});

describe('live delivery on a many-topic stream', () => {
  it('lets a filter pick events of every topic; the others still move the cursor', async () => {
    const hub = hubOf();
    const app = await serveHub(hub, { retryMs: null }, () => ({ filter: (m) => !m.data?.endsWith(':2') }));
    const client = new RawSseClient(app.port, '/topics/a,b');
    await until(() => client.body.includes('id: '), 'positioned');
    await publishRounds(hub, ['a', 'b'], 1, 3);
    await until(() => parseEvents(client.body).events.length === 4, 'four picked events');
    expect(byTopic(parseEvents(client.body).events)).toEqual({ a: [1, 3], b: [1, 3] });
    // the cursor of a:3 says b is at 2: b:2 was not missed, only not picked
    expect(placesIn(parseEvents(client.body).events[2]!.id!, ['a', 'b'])).toEqual({
      a: expect.stringMatching(/-3$/),
      b: expect.stringMatching(/-2$/),
    });
    const resumed = new RawSseClient(app.port, '/topics/a,b', {
      'Last-Event-ID': parseEvents(client.body).events[0]!.id!,
    });
    await until(() => parseEvents(resumed.body).events.length === 3, 'the replay');
    expect(byTopic(parseEvents(resumed.body).events)).toEqual({ a: [3], b: [1, 3] });
  });

  it('paces a burst bigger than bufferBytes from the log, and resumes a client closed as slow with nothing lost', async () => {
    const B = 800;
    const hub = hubOf({ store: memoryStore({ size: 2000 }) });
    const app = await serveHub(hub, { retryMs: null, bufferBytes: 32 * 1024, heartbeatMs: null });
    const keeping = new RawSseClient(app.port, '/topics/a,b');
    const slow = new RawSseClient(app.port, '/topics/a,b');
    await until(() => [keeping, slow].every((c) => c.body.includes('id: ')), 'positioned');
    slow.socket.pause();
    // a burst in one tick on a (100 KB), then one event per turn on b: 16 MB, more than loopback's socket
    // buffers take (they grow to several MB each), so the paused client's backlog stays in the process
    for (let n = 1; n <= 100; n++)
      void hub.publish('a', { event: 'msg', data: `a:${n} ${'z'.repeat(1000)}` });
    for (let n = 1; n <= B; n++) {
      await hub.publish('b', { event: 'msg', data: `b:${n} ${'y'.repeat(20_000)}` });
      await afterPendingEvents();
    }
    await until(() => parseEvents(keeping.body).events.length === 100 + B, 'every event', 20_000);
    expect(byTopic(parseEvents(keeping.body).events)).toEqual({ a: numbers(1, 100), b: numbers(1, B) });
    expectExactCursors(keeping.body, ['a', 'b']);
    await until(() => hub.stats().slowCloses === 1, 'the slow one closed');
    slow.socket.resume();
    await slow.waitClosed();
    const got = parseEvents(slow.body);
    const again = new RawSseClient(app.port, '/topics/a,b', { 'Last-Event-ID': got.lastId! });
    await until(
      () => got.events.length + parseEvents(again.body).events.length === 100 + B,
      'the rest',
      20_000,
    );
    expect(byTopic([...got.events, ...parseEvents(again.body).events])).toEqual({
      a: numbers(1, 100),
      b: numbers(1, B),
    });
  });

  it('resets only the topic whose live feed went back in time', async () => {
    const store = memoryStore();
    const deliver = new Map<string, EventsListener>();
    const rewinding = forwarding(store, {
      listen: (topic, onEvents) => {
        deliver.set(topic, onEvents);
        return store.listen(topic, onEvents);
      },
    });
    const hub = hubOf({ store: rewinding });
    const app = await serveHub(hub);
    const client = new RawSseClient(app.port, '/topics/a,b');
    await until(() => client.body.includes('id: '), 'positioned');
    const ids = await publishRounds(hub, ['a', 'b'], 1, 3);
    await until(() => parseEvents(client.body).events.length === 6, 'six events');
    const epochOfA = ids[0]!.replace(/-\d+$/, '');
    deliver.get('a')!(epochOfA, [{ seq: 2, record: { event: 'msg', data: 'a:2 again' } }]);
    await publishRounds(hub, ['b'], 4, 4);
    await until(() => parseEvents(client.body).events.length === 9, 'the reset and the events');
    const after = parseEvents(client.body).events.slice(6);
    expect(after.map((e) => [e.event, e.data])).toEqual([
      ['reset', '{"reason":"unknown-epoch","topic":"a"}'],
      ['msg', 'a:2 again'],
      ['msg', 'b:4'],
    ]);
    expect(placesIn(after[0]!.id!, ['a', 'b'])).toEqual({ a: `${epochOfA}-1`, b: ids[5] });
    expect(hub.stats().resets['unknown-epoch']).toBe(1);
  });
});

describe('stats() and clean-up', () => {
  it('leaves no subscriber, topic set, listener or timer behind once every subscriber left', async () => {
    const timers = trackTimers();
    try {
      // no expiry: the store keeps no timer of its own
      const hub = hubOf({ store: memoryStore({ maxAgeMs: null }) });
      const app = await serveHub(hub, { retryMs: null, heartbeatMs: 20 });
      const clients = Array.from(
        { length: 30 },
        (_, i) => new RawSseClient(app.port, `/topics/t${i % 3},t${(i % 3) + 1},u`),
      );
      await until(() => clients.every((c) => c.body.includes('id: ')), 'positioned');
      await publishRounds(hub, ['t1', 'u'], 1, 2);
      expect(hub.stats()).toMatchObject({
        subscribers: 30,
        topics: { t0: 10, t1: 20, t2: 20, t3: 10, u: 30 },
      });
      expect(timers.live()).toBe(1);
      for (const client of clients) client.close();
      await until(() => hub.stats().subscribers === 0, 'every subscriber gone');
      expect(hub.stats().topics).toEqual({});
      // the store keeps the logs of topics with events; topics with none cost it nothing
      expect(hub.stats().store).toEqual({ topics: 2, keptEvents: 4 });
      expect(app.sse.size).toBe(0);
      expect(timers.live()).toBe(0);
    } finally {
      timers.restore();
    }
  });

  it('close(): every many-topic subscription gets a retry and ends', async () => {
    const hub = createHub();
    const app = await serveHub(hub);
    const clients = [0, 1].map(() => new RawSseClient(app.port, '/topics/a,b'));
    await until(() => clients.every((c) => c.body.includes('id: ')), 'positioned');
    await hub.close({ retryMs: 1000 });
    for (const client of clients) {
      await client.waitEnded();
      expect(client.body).toMatch(/retry: \d+/);
    }
    expect(hub.stats()).toMatchObject({ subscribers: 0, topics: {} });
  });
});

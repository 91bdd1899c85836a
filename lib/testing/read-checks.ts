import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { appendAll, assertSeqs, oneEpoch, placeOf, range, type StoreCheck, WIRE } from './check';

export const readChecks: readonly StoreCheck[] = [
  {
    name: "position and read of a topic never published write nothing: head 0 of the store's emptyEpoch",
    async run(t) {
      const store = await t.store();
      const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((label) => t.topic(`never published ${label}`));
      // A store may keep one emptyEpoch per part that fails on its own (a Redis Cluster's shard): each
      // topic is compared with itself.
      const first = await store.position(a!);
      const none = (position: { emptyEpoch: string }) => ({ epoch: position.emptyEpoch, first: 1, head: 0 });
      assert.deepEqual(placeOf(first), none(first), 'the position of a topic never published');
      const read = await store.read(b!, 0, 10);
      assert.deepEqual(
        { ...placeOf(read.position), events: read.events.length },
        { ...none(read.position), events: 0 },
        'read of a topic never published',
      );
      const before = await store.position(c!);
      await store.append(c!, { data: 'on another topic' });
      const published = await store.position(c!);
      assert.equal(
        published.emptyEpoch,
        before.emptyEpoch,
        'the emptyEpoch of a published topic, no log lost since',
      );
      for (const [topic, earlier] of [
        [a!, first],
        [b!, read.position],
      ] as const) {
        const again = await store.position(topic);
        assert.deepEqual(
          { ...placeOf(again), emptyEpoch: again.emptyEpoch },
          { ...none(earlier), emptyEpoch: earlier.emptyEpoch },
          'the position of a topic read before: positioning it began no log',
        );
      }
      const id = await store.append(a!, { data: 'first' });
      assert.equal(id.seq, 1, 'the first append to a topic positioned before');
      const untouched = await store.position(d!);
      assert.deepEqual(placeOf(untouched), none(untouched), 'another topic never published, after all that');
    },
  },
  {
    name: 'read pages exactly: the events above `after`, at most `limit`, in order',
    async run(t) {
      const store = await t.store();
      const topic = t.topic('paged');
      const epoch = oneEpoch(await appendAll(store, topic, 10, 'event'), 'ten appends');
      const pages: Array<[after: number, limit: number, seqs: number[]]> = [
        [0, 3, [1, 2, 3]],
        [3, 3, [4, 5, 6]],
        [6, 100, [7, 8, 9, 10]],
        [4, 1, [5]],
        [9, 5, [10]],
        [0, 10, range(1, 10)],
        [10, 5, []],
        [20, 5, []],
      ];
      for (const [after, limit, seqs] of pages) {
        const page = await store.read(topic, after, limit);
        const what = `read(topic, ${after}, ${limit})`;
        assertSeqs(
          page.events.map((event) => event.seq),
          seqs,
          what,
        );
        assert.deepEqual(
          page.events.map((event) => event.record.data),
          seqs.map((seq) => `event ${seq}`),
          `${what}: the records`,
        );
        assert.deepEqual(placeOf(page.position), { epoch, first: 1, head: 10 }, `${what}: the position`);
      }
    },
  },
  {
    name: "read's position is taken with its events, even while appends go on",
    async run(t) {
      const store = await t.store();
      const topic = t.topic('moving');
      const producer = t.producer(store, topic);
      await producer.reached(10);
      let head = 0;
      for (let round = 0; round < 40; round++) {
        // the whole log, then a small page at its end: each must agree with the head it came with
        const [after, limit] = round % 2 === 0 ? [0, 1000] : [Math.max(0, head - 1), 2];
        const page = await store.read(topic, after, limit);
        head = page.position.head;
        assertSeqs(
          page.events.map((event) => event.seq),
          range(after + 1, Math.min(head, after + limit)),
          `read(topic, ${after}, ${limit}) with its position at head ${head}, while appends went on`,
        );
        await nextTurn();
      }
      await producer.stop();
    },
  },
  {
    name: "the events it hands over take the hub's `wire` cache, which the store never sets itself",
    async run(t) {
      const { store, topic, recorder } = await t.listening('cached');
      const epoch = oneEpoch(await appendAll(store, topic, 2, 'event'), 'two appends');
      await recorder.untilHanded(epoch, 2);
      const { events } = await store.read(topic, 0, 10);
      for (const h of recorder.handed) {
        assert.equal(
          h.event.wire,
          undefined,
          `the listener: seq ${h.event.seq} came with a wire the hub did not set`,
        );
      }
      for (const event of events) {
        assert.equal(event.wire, undefined, `read: seq ${event.seq} came with a wire the hub did not set`);
      }
      for (const [what, event] of [
        ...events.map((event) => ['read', event] as const),
        ...recorder.handed.map((h) => ['the listener', h.raw] as const),
      ]) {
        assert.ok(
          Reflect.set(event, 'wire', WIRE) && event.wire === WIRE,
          `${what}: the hub cannot cache its bytes on seq ${event.seq} (a frozen or read-only event)`,
        );
      }
      const again = await store.read(topic, 0, 10);
      for (const event of again.events) {
        assert.ok(
          event.wire === undefined || event.wire === WIRE,
          `read again: seq ${event.seq} came with a wire the hub did not set`,
        );
      }
    },
  },
];

import assert from 'node:assert/strict';
import { quoted, settles } from './bounded';
import { appendAll, assertSeqs, oneEpoch, range, type StoreCheck } from './check';
import type { CheckedStore } from './checked-store';
import type { CheckContext } from './context';
import { summarize } from './recorder';

/**
 * Topic names an engine might take apart or fold together: a subject's `.` and wildcards (NATS), a
 * case-insensitive or normalizing collation (SQL), a trimmed space, a key's braces, a long name.
 */
const NAMES = [
  'room',
  'room.1',
  'room.*',
  'room.>',
  'Room',
  'room ',
  'room/{1}',
  'caf\u00e9',
  'cafe\u0301',
  '😀',
  'r'.repeat(200),
];

/**
 * One round of the readiness rule: appends go on from another loop while the check listens; every
 * event above the head read right after `listen` resolved must be handed over, once each, in order.
 */
async function readinessRound(t: CheckContext, store: CheckedStore, topic: string): Promise<void> {
  const producer = t.producer(store, topic);
  await producer.reached(5);
  const recorder = t.recorder(`the listener of ${quoted(topic)}`);
  await store.listen(topic, recorder.listener);
  const { head } = await store.position(topic);
  await producer.reached(head + 30);
  await producer.stop();
  const epoch = producer.epoch!;
  const last = producer.highest;
  await recorder.until(
    (handed) => handed.some((h) => h.event.seq === last),
    `every event above the head read after listen resolved (${head}), up to ${last}`,
  );
  // one more, handed over after the rest: anything handed twice came by then
  const marker = await store.append(topic, { data: 'marker' });
  await recorder.untilHanded(epoch, marker.seq);
  const seqs = recorder.seqs();
  assert.ok(
    seqs.length > 0 && seqs[0]! <= head + 1,
    `the listener missed events above the head read after listen resolved (${head}): it was handed [${summarize(seqs)}]`,
  );
  assertSeqs(seqs, range(seqs[0]!, marker.seq), `the listener, with head ${head} read after listen resolved`);
  for (const { epoch: handedEpoch, event } of recorder.handed) {
    assert.equal(handedEpoch, epoch, `the epoch seq ${event.seq} was handed over in`);
    const data = event.seq === marker.seq ? 'marker' : producer.dataBySeq.get(event.seq);
    assert.equal(event.record.data, data, `the record handed over as seq ${event.seq}`);
  }
}

export const liveChecks: readonly StoreCheck[] = [
  {
    name: "listen hands over new events only, not the log's past",
    async run(t) {
      const store = await t.store();
      const topic = t.topic('past');
      await appendAll(store, topic, 5, 'past');
      const recorder = t.recorder();
      await store.listen(topic, recorder.listener);
      const epoch = oneEpoch(await appendAll(store, topic, 2, 'new'), 'the new appends');
      await recorder.untilHanded(epoch, 7);
      assertSeqs(recorder.seqs(), [6, 7], 'the listener, after five events appended before listen');
    },
  },
  {
    name: 'listen on a topic with no log yet hands over the log from its first event',
    async run(t) {
      const { store, topic, recorder } = await t.listening('begun');
      const epoch = oneEpoch(await appendAll(store, topic, 3, 'event'), 'three appends');
      await recorder.untilHanded(epoch, 3);
      assertSeqs(recorder.seqs(), [1, 2, 3], 'the listener of a log begun after listen');
    },
  },
  {
    name: "once listen's promise resolves, every event appended is handed over once, in order",
    async run(t) {
      const store = await t.store();
      // each round on a topic of its own, the earlier ones still followed
      for (const round of [1, 2, 3]) await readinessRound(t, store, t.topic(`ready ${round}`));
    },
  },
  {
    name: 'events of different topics never mix, whatever their names',
    async run(t) {
      const store = await t.store();
      const topics = NAMES.map((name) => t.topic(name));
      const recorders = topics.map((topic) => t.recorder(`the listener of ${quoted(topic)}`));
      for (const [i, topic] of topics.entries()) await store.listen(topic, recorders[i]!.listener);
      for (const n of [1, 2]) {
        const ids = await Promise.all(topics.map((topic, i) => store.append(topic, { data: `${i} ${n}` })));
        for (const [i, id] of ids.entries()) assert.equal(id.seq, n, `append ${n} to ${quoted(topics[i]!)}`);
      }
      for (const [i, topic] of topics.entries()) {
        const recorder = recorders[i]!;
        await recorder.until((handed) => handed.length >= 2, `two events on ${quoted(topic)}`);
        const page = await store.read(topic, 0, 10);
        for (const [what, records] of [
          ['handed over', recorder.handed.map((h) => h.event.record)],
          ['read', page.events.map((event) => event.record)],
        ] as const) {
          assert.deepEqual(
            records.map((record) => record.data),
            [`${i} 1`, `${i} 2`],
            `the events ${what} for ${quoted(topic)}`,
          );
        }
      }
    },
  },
  {
    name: 'unlisten stops the hand-over; listening again hands over to the new listener only',
    async run(t) {
      const store = await t.store();
      const [topic, witness] = [t.topic('unlistened'), t.topic('witness')];
      const before = t.recorder('the first listener');
      const seen = t.recorder('the listener of another topic');
      await store.listen(topic, before.listener);
      await store.listen(witness, seen.listener);
      const epoch = (await store.append(topic, { data: 'listened' })).epoch;
      await before.untilHanded(epoch, 1);
      store.unlisten(topic);
      await store.append(topic, { data: 'not listened' });
      // two events of a followed topic handed over after it: the store had its chance to misdeliver
      const witnessIds = await appendAll(store, witness, 2, 'witness');
      await seen.untilHanded(witnessIds[0]!.epoch, 2);
      assertSeqs(before.seqs(), [1], 'the listener after unlisten');
      const after = t.recorder('the second listener');
      await store.listen(topic, after.listener);
      await appendAll(store, topic, 2, 'listened again');
      await after.untilHanded(epoch, 4);
      assertSeqs(after.seqs(), [3, 4], 'the second listener (seq 2 came while nobody listened)');
      assertSeqs(before.seqs(), [1], 'the first listener, after the second one started');
    },
  },
  {
    name: "listen's promise settles even when unlisten comes first, and the topic can be listened to again",
    async run(t) {
      const store = await t.store();
      const topic = t.topic('cancelled');
      const dropped = t.recorder('the cancelled listener');
      const listening = settles(
        `listen(${quoted(topic)})'s promise, with unlisten called before it resolved`,
        t.ms,
        () => store.raw.listen(topic, dropped.listener),
        true,
      );
      listening.catch(() => undefined); // awaited below, unless unlisten throws first
      store.unlisten(topic);
      // resolved or rejected, either is fine: the hub only needs it settled
      await listening;
      const recorder = t.recorder();
      await store.listen(topic, recorder.listener);
      const id = await store.append(topic, { data: 'listened again' });
      await recorder.untilHanded(id.epoch, id.seq);
      assertSeqs(dropped.seqs(), [], 'the listener unlistened before listen resolved');
    },
  },
];

import assert from 'node:assert/strict';
import { describeValue } from '../core/util';
import { isThenable, quoted, settles } from './bounded';
import { appendAll, assertSeqs, oneEpoch, placeOf, range, type StoreCheck, sortedSeqs, WIRE } from './check';

/** The lives of a log — lost, gone back in time — across processes, and the store's own end. */
export const lifeChecks: readonly StoreCheck[] = [
  {
    name: 'a lost log comes back as a new epoch, and the emptyEpoch changes so that no id resumes past it',
    needs: ['loseLog'],
    async run(t) {
      const store = await t.store();
      const topic = t.topic('lost');
      const old = oneEpoch(await appendAll(store, topic, 3, 'old'), 'three appends');
      const { emptyEpoch } = await store.position(topic);
      // as the hub does: its bytes cached on the events it replayed
      for (const event of (await store.read(topic, 0, 10)).events) Reflect.set(event, 'wire', WIRE);
      await t.loseLog(topic, store);
      const lost = await store.position(topic);
      assert.notEqual(lost.epoch, old, 'the epoch of a topic whose log was lost: never the lost one');
      assert.notEqual(
        lost.emptyEpoch,
        emptyEpoch,
        `the emptyEpoch once a log was lost: ids <${emptyEpoch}>-0 (clients placed before the lost log began) would resume the next log as if they had missed nothing`,
      );
      assert.deepEqual(
        placeOf(lost),
        { epoch: lost.emptyEpoch, first: 1, head: 0 },
        'the position of a topic whose log was lost: no log, at head 0 of the emptyEpoch',
      );
      const fresh = await store.append(topic, { data: 'new 1' });
      assert.ok(
        fresh.epoch !== old && fresh.epoch !== emptyEpoch && fresh.seq === 1,
        `the first append after the loss got ${fresh.epoch}-${fresh.seq}: seq 1 of an epoch neither the lost log's (${old}) nor the emptyEpoch of before (${emptyEpoch})`,
      );
      const page = await store.read(topic, 0, 10);
      assert.deepEqual(
        { ...placeOf(page.position), events: page.events.map((event) => [event.seq, event.record.data]) },
        { epoch: fresh.epoch, first: 1, head: 1, events: [[1, 'new 1']] },
        'read of the log begun after the loss',
      );
      assert.ok(
        page.events[0]!.wire !== WIRE,
        'seq 1 of the new log came with the wire the hub cached on seq 1 of the lost one (an id of the lost epoch)',
      );
    },
  },
  {
    name: 'a listener follows a lost log into its new epoch, from its first event',
    needs: ['loseLog', 'losesListenedLogs'],
    async run(t) {
      const { store, topic, recorder } = await t.listening('lost while listened');
      const old = oneEpoch(await appendAll(store, topic, 2, 'old'), 'two appends');
      await recorder.untilHanded(old, 2);
      await t.loseLog(topic, store);
      const fresh = oneEpoch(await appendAll(store, topic, 2, 'new'), 'two appends after the loss');
      assert.notEqual(fresh, old, 'the epoch of the log begun after the loss');
      await recorder.untilHanded(fresh, 2);
      assert.deepEqual(
        recorder.handed.map((h) => [h.epoch === old ? 'old' : 'new', h.event.seq, h.event.record.data]),
        [
          ['old', 1, 'old 1'],
          ['old', 2, 'old 2'],
          ['new', 1, 'new 1'],
          ['new', 2, 'new 2'],
        ],
        'what the listener was handed, across the loss',
      );
    },
  },
  {
    name: 'a log gone back in time goes on in its epoch or begins a new one, and its listener is handed what is appended since',
    needs: ['rewind'],
    async run(t) {
      const { store, topic, recorder } = await t.listening('rewound');
      const epoch = oneEpoch(await appendAll(store, topic, 5, 'before'), 'five appends');
      await recorder.untilHanded(epoch, 5);
      const seen = recorder.handed.length;
      await t.rewind(topic, 2, store);
      // A store that sees the log below what it handed out may begin a new life (its clients then
      // reset); one that goes on in the epoch numbers on from the log's head. Either way no id is
      // given to two events within what the store can tell apart, and nothing appended is skipped.
      const back = await store.position(topic);
      const renewed = back.epoch !== epoch;
      assert.deepEqual(
        placeOf(back),
        renewed ? { epoch: back.epoch, first: 1, head: 0 } : { epoch, first: 1, head: 2 },
        renewed
          ? 'the position once the log went back to 2, in a new life'
          : 'the position once the log went back to 2, in its epoch',
      );
      const ids = await appendAll(store, topic, 2, 'after');
      assert.deepEqual(
        ids,
        (renewed ? [1, 2] : [3, 4]).map((seq) => ({ epoch: back.epoch, seq })),
        'the appends after the log went back to 2',
      );
      await recorder.until(
        (handed) => handed.slice(seen).some((h) => h.event.record.data === 'after 2'),
        'the events appended after the log went back',
      );
      // handing over again what the log kept (1, 2) is allowed; skipping the new ones is not
      const since = recorder.handed.slice(seen).filter((h) => h.epoch === back.epoch);
      const seqs = since.map((h) => h.event.seq);
      const last = ids[1]!.seq;
      assert.ok(
        seqs[0]! <= last - 1,
        `handed over after the log went back: [${seqs.join(', ')}], from ${last - 1} at the latest`,
      );
      assertSeqs(seqs, range(seqs[0]!, last), 'handed over after the log went back');
      assert.deepEqual(
        since.slice(-2).map((h) => [h.epoch, h.event.record.data]),
        [
          [back.epoch, 'after 1'],
          [back.epoch, 'after 2'],
        ],
        'the two events handed over after the log went back',
      );
      const page = await store.read(topic, 0, 10);
      assert.deepEqual(
        page.events.map((event) => event.record.data),
        renewed ? ['after 1', 'after 2'] : ['before 1', 'before 2', 'after 1', 'after 2'],
        'read of the log gone back in time',
      );
    },
  },
  {
    name: 'appends through two stores on one engine share one sequence, and a resend through either applies once',
    needs: ['sharedEngine'],
    async run(t) {
      const [one, two] = [await t.store(), await t.store()];
      const topic = t.topic('shared');
      const ids = await Promise.all(
        range(1, 40).map((n) => (n % 2 === 0 ? one : two).append(topic, { data: `shared ${n}` })),
      );
      const epoch = oneEpoch(ids, 'appends through two stores');
      assertSeqs(sortedSeqs(ids), range(1, 40), '40 appends at once, through two stores');
      const key = `${topic}:key`;
      const first = await one.append(topic, { data: 'resent' }, key);
      assert.deepEqual(
        await two.append(topic, { data: 'resent' }, key),
        first,
        'a resend through the other store',
      );
      for (const store of [one, two]) {
        assert.deepEqual(
          placeOf(await store.position(topic)),
          { epoch, first: 1, head: 41 },
          'each store’s position',
        );
      }
    },
  },
  {
    name: 'a listener is handed what another store on the engine appends',
    needs: ['sharedEngine'],
    async run(t) {
      const { store, topic, recorder } = await t.listening('across');
      await appendAll(await t.store(), topic, 3, 'from the other store');
      const own = await store.append(topic, { data: 'from this store' });
      await recorder.untilHanded(own.epoch, 4);
      assertSeqs(recorder.seqs(), [1, 2, 3, 4], 'the listener, three events appended through another store');
    },
  },
  {
    name: 'stats(), where there is one, gives finite numbers by name, at once',
    async run(t) {
      const { store, topic } = await t.listening('counted');
      await store.append(topic, { data: 'counted' });
      const stats: unknown = store.raw.stats;
      if (stats === undefined) return;
      assert.ok(typeof stats === 'function', `stats is ${describeValue(stats)}, not a method`);
      let counts: unknown;
      try {
        counts = store.raw.stats!();
      } catch (error) {
        throw new Error(`stats() threw: ${(error as Error)?.message}`, { cause: error });
      }
      assert.ok(
        typeof counts === 'object' && counts !== null && !isThenable(counts),
        `stats() gave ${describeValue(counts)}: hub.stats() is synchronous and wants an object of numbers`,
      );
      for (const [name, value] of Object.entries(counts)) {
        assert.ok(Number.isFinite(value), `stats().${name} is ${describeValue(value)}, not a finite number`);
      }
    },
  },
  {
    name: 'close() settles, and so does a listen still pending then',
    async run(t) {
      const store = await t.store();
      const topic = t.topic('closing');
      const listening = settles(
        `listen(${quoted(topic)})'s promise, pending when close() was called`,
        t.ms,
        () => store.raw.listen(topic, t.recorder().listener),
        true,
      );
      listening.catch(() => undefined); // awaited below, unless close fails first
      await store.close();
      await listening;
    },
  },
  {
    name: 'position and read after close() settle, and neither throws synchronously',
    async run(t) {
      const store = await t.store();
      const topic = t.topic('closed');
      await store.append(topic, { data: 'before close' });
      await store.close();
      // a subscriber the hub was placing when it closed still asks: it must get an answer or an error
      await settles(`position(${quoted(topic)}) after close()`, t.ms, () => store.raw.position(topic));
      await settles(`read(${quoted(topic)}, 0, 10) after close()`, t.ms, () => store.raw.read(topic, 0, 10));
    },
  },
];

import assert from 'node:assert/strict';
import { formatId, parseId } from '../hub/ids';
import type { HubRecord } from '../hub/store';
import { appendAll, assertSeqs, oneEpoch, range, type StoreCheck, sortedSeqs } from './check';

/** Records with every field the hub writes, and the text a careless engine changes. */
const RECORDS: readonly HubRecord[] = [
  { data: 'plain' },
  { event: 'update', data: 'line one\nline two\r\nline three\rline four' },
  { data: '' },
  { comment: 'only a comment' },
  { event: 'all', data: '{"json":[1,2]}', comment: 'with every field', retry: 2500 },
  { data: '  padded with spaces  ' },
  { data: 'ünïcödé, 漢字, 😀, \u2028' },
  { event: 'big', data: 'x'.repeat(64 * 1024) },
];

const FIELDS = ['event', 'data', 'comment', 'retry'] as const;

/** Fails unless `got` has each field of `sent`, and leaves `undefined` what `sent` leaves out. */
function assertSameRecord(got: HubRecord, sent: HubRecord, what: string): void {
  for (const field of FIELDS) {
    const shown = (value: unknown) =>
      typeof value === 'string' && value.length > 40
        ? `${value.length} characters`
        : (JSON.stringify(value) ?? 'undefined');
    assert.ok(
      got[field] === sent[field],
      `${what}: ${field} came back as ${shown(got[field])}, appended as ${shown(sent[field])}` +
        (sent[field] === undefined ? ' (a field left out stays undefined: not null, not "")' : ''),
    );
  }
}

export const appendChecks: readonly StoreCheck[] = [
  {
    name: 'append numbers the events of a topic 1, 2, 3 … in one epoch',
    async run(t) {
      const store = await t.store();
      const topic = t.topic('numbered');
      const ids = await appendAll(store, topic, 10, 'event');
      const epoch = oneEpoch(ids, 'the ids of ten appends');
      assertSeqs(
        ids.map((id) => id.seq),
        range(1, 10),
        'ten appends, one after another',
      );
      const position = await store.position(topic);
      assert.deepEqual(
        { epoch: position.epoch, first: position.first, head: position.head },
        { epoch, first: 1, head: 10 },
        'the position after ten appends',
      );
    },
  },
  {
    name: 'ids are <epoch>-<seq> the hub can parse: an epoch is 1 to 64 letters and digits',
    async run(t) {
      const store = await t.store();
      const published = t.topic('published');
      const id = await store.append(published, { data: 'one' });
      const page = await store.read(published, 0, 1);
      const empty = await store.position(t.topic('never published'));
      const named: Array<[string, string, number]> = [
        ['the epoch append gave', id.epoch, id.seq],
        ['the epoch read gave', page.position.epoch, page.position.head],
        ['the emptyEpoch', empty.emptyEpoch, 0],
      ];
      for (const [what, epoch, seq] of named) {
        const text = formatId(epoch, seq);
        assert.deepEqual(
          parseId(text),
          { epoch, seq },
          `${what} makes the id ${JSON.stringify(text)}, which the hub cannot read back (an epoch is 1 to 64 letters and digits: a UUID loses its dashes)`,
        );
      }
    },
  },
  {
    name: 'concurrent appends get distinct seqs with no hole, and read finds each under its id',
    async run(t) {
      const store = await t.store();
      const topic = t.topic('concurrent');
      const data = range(1, 100).map((n) => `concurrent ${n}`);
      const ids = await Promise.all(data.map((text) => store.append(topic, { data: text })));
      const epoch = oneEpoch(ids, 'the ids of 100 concurrent appends');
      assertSeqs(sortedSeqs(ids), range(1, 100), '100 appends at once');
      const page = await store.read(topic, 0, 100);
      assertSeqs(
        page.events.map((event) => event.seq),
        range(1, 100),
        'read after 100 appends',
      );
      assert.equal(page.position.epoch, epoch, 'the epoch read gives after the appends');
      ids.forEach((id, i) => {
        assert.equal(
          page.events[id.seq - 1]!.record.data,
          data[i],
          `the event read under seq ${id.seq}, the id the append of ${JSON.stringify(data[i])} resolved with`,
        );
      });
    },
  },
  {
    name: 'an idempotency key is applied once: a resend gets the first id and adds nothing',
    async run(t) {
      const store = await t.store();
      const topic = t.topic('resent');
      const first = await store.append(topic, { data: 'sent once' }, `${topic}:key`);
      await store.append(topic, { data: 'another' });
      const again = await store.append(topic, { data: 'sent once' }, `${topic}:key`);
      assert.deepEqual(again, first, 'a resend with the key of the first append');
      const page = await store.read(topic, 0, 10);
      assert.equal(page.position.head, 2, 'the head after two appends and a resend');
      assert.deepEqual(
        page.events.map((event) => event.record.data),
        ['sent once', 'another'],
        'the log after two appends and a resend',
      );
    },
  },
  {
    name: 'an idempotency key is applied once even when resends race the first append',
    async run(t) {
      const store = await t.store();
      const topic = t.topic('raced');
      const key = `${topic}:key`;
      const ids = await Promise.all(range(1, 5).map(() => store.append(topic, { data: 'raced' }, key)));
      for (const id of ids) assert.deepEqual(id, ids[0], 'five appends with one key, at once');
      const page = await store.read(topic, 0, 10);
      assertSeqs(
        page.events.map((event) => event.seq),
        [1],
        'the log after five appends with one key',
      );
    },
  },
  {
    name: 'an idempotency key belongs to its topic: the same key on another topic is another event',
    async run(t) {
      const store = await t.store();
      const [one, other] = [t.topic('one'), t.topic('other')];
      const key = `${one}:key`;
      await store.append(one, { data: 'on one' }, key);
      const id = await store.append(other, { data: 'on the other' }, key);
      const page = await store.read(other, 0, 10);
      assert.deepEqual(
        { id, data: page.events.map((event) => event.record.data) },
        { id: { epoch: page.position.epoch, seq: 1 }, data: ['on the other'] },
        'the append to another topic with a key the first topic used',
      );
    },
  },
  {
    name: 'records come back as appended, through read and through listen: every field, absent ones absent',
    async run(t) {
      const { store, topic, recorder } = await t.listening('records');
      const ids = [];
      for (const record of RECORDS) ids.push(await store.append(topic, record));
      const epoch = oneEpoch(ids, 'the ids');
      const page = await store.read(topic, 0, 100);
      assertSeqs(
        page.events.map((event) => event.seq),
        range(1, RECORDS.length),
        'read',
      );
      await recorder.untilHanded(epoch, RECORDS.length);
      RECORDS.forEach((sent, i) => {
        assertSameRecord(page.events[i]!.record, sent, `read, seq ${i + 1}`);
        const handed = recorder.handed.find((h) => h.event.seq === i + 1);
        assert.ok(handed !== undefined, `the listener was not handed seq ${i + 1}`);
        assertSameRecord(handed.event.record, sent, `the listener, seq ${i + 1}`);
      });
    },
  },
];

import assert from 'node:assert/strict';
import { describeValue } from '../core/util';
import type {
  EventsListener,
  HubRecord,
  HubStore,
  LogId,
  LogPage,
  LogPosition,
  StoredEvent,
} from '../hub/store';
import { bounded, isThenable, promised, quoted, thrownSynchronously } from './bounded';

const METHODS = ['append', 'position', 'read', 'listen', 'unlisten', 'close'] as const;

/** Whether `value` has every method of a `HubStore` (what `createHub` asks of its `store` too). */
export function missingMethod(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return 'append';
  return METHODS.find((method) => typeof (value as Record<string, unknown>)[method] !== 'function');
}

/**
 * The store under test as the checks call it: every call bounded by the timeout, a synchronous throw
 * turned into a failure, and every answer checked for the types the hub relies on (a seq that is a
 * number, not the string some database drivers give for a 64-bit integer) before a check looks at it.
 */
export class CheckedStore {
  readonly raw: HubStore;
  readonly #ms: number;
  readonly #nextKey: () => string;
  closed = false;

  constructor(raw: HubStore, ms: number, nextKey: () => string) {
    this.raw = raw;
    this.#ms = ms;
    this.#nextKey = nextKey;
  }

  async append(topic: string, record: HubRecord, idempotencyKey = this.#nextKey()): Promise<LogId> {
    const what = `append(${quoted(topic)})`;
    const id = await promised(what, this.#ms, () => this.raw.append(topic, record, { idempotencyKey }));
    assert.ok(isObject(id), `${what} resolved with ${describeValue(id)}, not { epoch, seq }`);
    checkEpochType(id.epoch, `${what}: epoch`);
    checkInteger(id.seq, `${what}: seq`, 1);
    return id;
  }

  async position(topic: string): Promise<LogPosition> {
    const what = `position(${quoted(topic)})`;
    return checkPosition(await promised(what, this.#ms, () => this.raw.position(topic)), what);
  }

  async read(topic: string, after: number, limit: number): Promise<LogPage> {
    const what = `read(${quoted(topic)}, ${after}, ${limit})`;
    const page = await promised(what, this.#ms, () => this.raw.read(topic, after, limit));
    assert.ok(isObject(page), `${what} resolved with ${describeValue(page)}, not { position, events }`);
    checkPosition(page.position, `${what}: position`);
    assert.ok(Array.isArray(page.events), `${what}: events is ${describeValue(page.events)}, not an array`);
    for (const [i, event] of page.events.entries()) checkEvent(event, `${what}: events[${i}]`);
    return page;
  }

  /** Starts listening; resolves once the store says it follows (at once for a store that returns nothing). */
  async listen(topic: string, onEvents: EventsListener): Promise<void> {
    const what = `listen(${quoted(topic)})`;
    let result: unknown;
    try {
      result = this.raw.listen(topic, onEvents);
    } catch (error) {
      throw thrownSynchronously(what, error);
    }
    if (result === undefined) return;
    assert.ok(isThenable(result), `${what} returned ${describeValue(result)}, not a promise or nothing`);
    await bounded(result, this.#ms, `${what}'s promise`);
  }

  unlisten(topic: string): void {
    try {
      this.raw.unlisten(topic);
    } catch (error) {
      throw new Error(`unlisten(${quoted(topic)}) threw: ${(error as Error)?.message}`, { cause: error });
    }
  }

  close(): Promise<void> {
    this.closed = true;
    return promised('close()', this.#ms, () => this.raw.close());
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function checkPosition(position: unknown, what: string): LogPosition {
  assert.ok(
    isObject(position),
    `${what} is ${describeValue(position)}, not { epoch, first, head, emptyEpoch }`,
  );
  checkEpochType(position.epoch, `${what}: epoch`);
  checkEpochType(position.emptyEpoch, `${what}: emptyEpoch`);
  const head = checkInteger(position.head, `${what}: head`, 0);
  const first = checkInteger(position.first, `${what}: first`, 1);
  assert.ok(first <= head + 1, `${what}: first (${first}) is above head + 1 (${head + 1})`);
  return position as unknown as LogPosition;
}

/** Checks an event handed over by `read` or a listener: a seq, a record of text fields. */
export function checkEvent(event: unknown, what: string): asserts event is StoredEvent {
  assert.ok(isObject(event), `${what} is ${describeValue(event)}, not { seq, record }`);
  checkInteger(event.seq, `${what}: seq`, 1);
  assert.ok(isObject(event.record), `${what}: record is ${describeValue(event.record)}, not an object`);
}

function checkEpochType(epoch: unknown, what: string): asserts epoch is string {
  assert.ok(typeof epoch === 'string', `${what} is ${describeValue(epoch)}, not a string`);
}

function checkInteger(value: unknown, what: string, min: number): number {
  assert.ok(
    typeof value === 'number' && Number.isSafeInteger(value) && value >= min,
    `${what} is ${describeValue(value)}, not an integer of at least ${min}`,
  );
  return value as number;
}

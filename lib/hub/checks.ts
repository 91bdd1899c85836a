import { checkCount, checkDuration, checkFunction, checkOptionsObject, optionError } from '../core/options';
import { describeValue } from '../core/util';
import type { HubStore } from './store';
import type { TailLimits } from './tail';
import type { HubOptions, PublishOptions, SubscribeOptions } from './types';

/** Long enough for a UUID with a prefix, short enough to keep a store's window of keys small. */
const MAX_KEY_LENGTH = 200;

const STORE_METHODS = ['append', 'position', 'read', 'listen', 'unlisten', 'close'] as const;

export function checkStore(store: unknown, owner: string): HubStore {
  for (const method of STORE_METHODS) {
    if (typeof (store as Record<string, unknown> | null)?.[method] !== 'function') {
      throw optionError(owner, 'store', `a store (memoryStore(), redisStore(…)) with ${method}()`, store);
    }
  }
  return store as HubStore;
}

/** A hub's tail of each followed topic (`HubOptions.tail`), or none. */
export function checkTail(tail: unknown, store: HubStore, owner: string): TailLimits | null {
  if (tail === null || (tail === undefined && store.inProcess === true)) return null;
  const given = (tail ?? {}) as HubOptions['tail'] & object;
  checkOptionsObject(given, `${owner}: tail`);
  return {
    events: checkCount(given.events, 'tail.events', owner, 100, 1),
    bytes: checkCount(given.bytes, 'tail.bytes', owner, 128 * 1024, 1),
    lingerMs: given.lingerMs === 0 ? 0 : checkDuration(given.lingerMs, 'tail.lingerMs', owner, 5000),
  };
}

export function checkTopic(topic: unknown, owner: string): asserts topic is string {
  if (typeof topic !== 'string' || topic === '') {
    throw new TypeError(`${owner}: expected \`topic\` to be a non-empty string, got ${describeValue(topic)}`);
  }
}

/**
 * The most topics one stream may follow: every event's id names each of them (about a dozen
 * characters apiece), and a client sends the id back in a header, which servers and proxies bound.
 */
export const MAX_TOPICS_LIMIT = 256;

/** Checks a subscription's options; returns its `maxTopics`. */
export function checkSubscribeOptions(options: SubscribeOptions): number {
  const owner = 'hub.subscribe';
  checkOptionsObject(options, owner);
  checkFunction(options.filter, 'filter', owner);
  if (options.from !== undefined && options.from !== 'earliest') {
    throw optionError(owner, 'from', "'earliest' or undefined", options.from);
  }
  const maxTopics = checkCount(options.maxTopics, 'maxTopics', owner, 32, 1);
  if (maxTopics > MAX_TOPICS_LIMIT) {
    throw optionError(owner, 'maxTopics', `an integer from 1 to ${MAX_TOPICS_LIMIT}`, maxTopics);
  }
  return maxTopics;
}

/**
 * What a subscription follows: `undefined` for one topic (a string), else its topics sorted and
 * distinct — a set, whatever the order or repeats it was given in.
 */
export function checkTopics(topics: unknown, maxTopics: number): readonly string[] | undefined {
  const owner = 'hub.subscribe';
  if (!Array.isArray(topics)) {
    if (typeof topics === 'string' && topics !== '') return undefined;
    throw optionError(owner, 'topics', 'a topic (a non-empty string) or an array of topics', topics);
  }
  topics.forEach((topic: unknown, i) => {
    if (typeof topic !== 'string' || topic === '') {
      throw optionError(owner, `topics[${i}]`, 'a topic (a non-empty string)', topic);
    }
  });
  const set = [...new Set(topics as string[])].sort();
  if (set.length === 0) throw optionError(owner, 'topics', 'an array of at least one topic', topics);
  if (set.length > maxTopics) {
    throw new TypeError(
      `${owner}: expected at most ${maxTopics} distinct topics (the \`maxTopics\` option), got ${set.length}`,
    );
  }
  return set;
}

/** The caller's idempotency key, if it gave one. */
export function checkPublishOptions(options: PublishOptions | undefined): string | undefined {
  const owner = 'hub.publish';
  if (options === undefined) return undefined;
  checkOptionsObject(options, owner);
  const key = options.idempotencyKey;
  if (key === undefined) return undefined;
  if (typeof key !== 'string' || key === '' || key.length > MAX_KEY_LENGTH) {
    throw optionError(owner, 'idempotencyKey', `a string of 1 to ${MAX_KEY_LENGTH} characters`, key);
  }
  return key;
}

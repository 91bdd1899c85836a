import { checkFunction, checkOptionsObject, optionError } from '../core/options';
import { describeValue } from '../core/util';
import type { HubStore } from './store';
import type { PublishOptions, SubscribeOptions } from './types';

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

export function checkTopic(topic: unknown, owner: string): asserts topic is string {
  if (typeof topic !== 'string' || topic === '') {
    throw new TypeError(`${owner}: expected \`topic\` to be a non-empty string, got ${describeValue(topic)}`);
  }
}

export function checkSubscribeOptions(options: SubscribeOptions): void {
  const owner = 'hub.subscribe';
  checkOptionsObject(options, owner);
  checkFunction(options.filter, 'filter', owner);
  if (options.from !== undefined && options.from !== 'earliest') {
    throw optionError(owner, 'from', "'earliest' or undefined", options.from);
  }
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

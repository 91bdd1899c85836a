import { describeValue, isPlainObject } from './util';

/**
 * The option checks every factory runs once, when it is made. Each message names its owner (the
 * factory or call), the option, what was expected and what was received:
 * "sseChannel: expected `heartbeatMs` to be …, got a string ("fast")".
 */
export function optionError(owner: string, name: string, expected: string, value: unknown): TypeError {
  return new TypeError(`${owner}: expected \`${name}\` to be ${expected}, got ${describeValue(value)}`);
}

export function checkOptionsObject<T>(options: T, owner: string): T {
  if (!isPlainObject(options)) {
    throw new TypeError(`${owner}: expected options to be an object, got ${describeValue(options)}`);
  }
  return options;
}

export function checkFunction<F>(value: F, name: string, owner: string): F {
  if (value !== undefined && typeof value !== 'function') throw optionError(owner, name, 'a function', value);
  return value;
}

/** The longest a Node timer can wait: a longer delay overflows and fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A positive number of milliseconds a timer can wait (at most {@link MAX_TIMER_MS}), or `null` to
 * disable; `undefined` gives the default.
 */
export function checkDuration(value: unknown, name: string, owner: string, fallback: number): number | null {
  if (value === undefined) return fallback;
  if (value === null) return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TIMER_MS) {
    throw optionError(owner, name, `a positive number of milliseconds up to ${MAX_TIMER_MS}, or null`, value);
  }
  return value;
}

/** An integer of at least `min`, or `null` to disable; `undefined` gives the default. */
export function checkCount<F extends number | null>(
  value: unknown,
  name: string,
  owner: string,
  fallback: F,
  min: number,
): number | F {
  if (value === undefined) return fallback;
  if (value === null) return null as F;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw optionError(owner, name, `an integer of at least ${min} or null`, value);
  }
  return value;
}

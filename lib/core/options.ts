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

// Each check comes in two kinds: where `null` disables something, and where it means nothing and is
// refused like any other wrong value. `undefined` gives the default in both.

/** A positive number of milliseconds a timer can wait (at most {@link MAX_TIMER_MS}). */
export function checkDuration(value: unknown, name: string, owner: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (isDuration(value)) return value;
  throw optionError(owner, name, `a positive number of milliseconds up to ${MAX_TIMER_MS}`, value);
}

/** {@link checkDuration}, or `null` to disable. */
export function checkDurationOrNull(
  value: unknown,
  name: string,
  owner: string,
  fallback: number | null,
): number | null {
  if (value === undefined) return fallback;
  if (value === null || isDuration(value)) return value;
  throw optionError(owner, name, `a positive number of milliseconds up to ${MAX_TIMER_MS}, or null`, value);
}

/** An integer of at least `min`. */
export function checkCount(
  value: unknown,
  name: string,
  owner: string,
  fallback: number,
  min: number,
): number {
  if (value === undefined) return fallback;
  if (isCount(value, min)) return value;
  throw optionError(owner, name, `an integer of at least ${min}`, value);
}

/** {@link checkCount}, or `null` to disable. */
export function checkCountOrNull(
  value: unknown,
  name: string,
  owner: string,
  fallback: number | null,
  min: number,
): number | null {
  if (value === undefined) return fallback;
  if (value === null || isCount(value, min)) return value;
  throw optionError(owner, name, `an integer of at least ${min} or null`, value);
}

function isDuration(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 && value <= MAX_TIMER_MS;
}

function isCount(value: unknown, min: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min;
}

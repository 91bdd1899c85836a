import { describeValue } from '../core/util';
import { Ring } from './ring';

/**
 * Where a channel keeps values that were put but not yet taken. Get one from {@link fixedBuffer},
 * {@link droppingBuffer} or {@link slidingBuffer}; a buffer belongs to one channel and must not be shared.
 *
 * The channel calls `add` only when `full` is `false`, and `remove` only when `length` is above 0.
 */
export interface ChannelBuffer<T> {
  /** The capacity: how many values the buffer holds at most. */
  readonly size: number;
  /** How many values the buffer holds now. */
  readonly length: number;
  /** `true` when a put has to wait for a taker. Dropping and sliding buffers are never full. */
  readonly full: boolean;
  /** Stores `value`, or drops a value as the buffer's policy says. */
  add(value: T): void;
  /** Removes and returns the oldest value. */
  remove(): T;
}

// Big buffers start small and grow, so `fixedBuffer(1e6)` costs nothing until values arrive.
const initialBufferCapacity = 16;

abstract class RingBuffer<T> implements ChannelBuffer<T> {
  readonly size: number;
  readonly #values: Ring<T>;

  constructor(size: number) {
    this.size = size;
    this.#values = new Ring<T>(Math.min(size, initialBufferCapacity));
  }

  get length(): number {
    return this.#values.length;
  }

  abstract get full(): boolean;
  abstract add(value: T): void;

  remove(): T {
    return this.#values.shift();
  }

  protected push(value: T): void {
    this.#values.push(value);
  }
}

class FixedBuffer<T> extends RingBuffer<T> {
  get full(): boolean {
    return this.length >= this.size;
  }

  add(value: T): void {
    if (this.full) throw new RangeError(`fixedBuffer: cannot add to a full buffer (size ${this.size})`);
    this.push(value);
  }
}

class DroppingBuffer<T> extends RingBuffer<T> {
  get full(): boolean {
    return false;
  }

  add(value: T): void {
    if (this.length < this.size) this.push(value);
  }
}

class SlidingBuffer<T> extends RingBuffer<T> {
  get full(): boolean {
    return false;
  }

  add(value: T): void {
    if (this.length >= this.size) this.remove();
    this.push(value);
  }
}

/**
 * A rendezvous is a buffer that is always full: every put waits for a taker. Stateless, so one serves all
 * channels, and the channel needs no separate code path for "no buffer".
 */
const rendezvous: ChannelBuffer<never> = new FixedBuffer<never>(0);

/**
 * A buffer of `n` values: puts are accepted at once while fewer than `n` wait, then they wait for a taker.
 * `new Channel(n)` is short for `new Channel(fixedBuffer(n))`.
 *
 * @param n the capacity, a positive integer.
 * @throws TypeError when `n` is not a positive integer.
 */
export function fixedBuffer<T>(n: number): ChannelBuffer<T> {
  return new FixedBuffer<T>(checkSize('fixedBuffer', n));
}

/**
 * A buffer of `n` values that never makes a put wait: when it is full, new values are dropped (the put still
 * resolves `true`). Suits events where the first ones matter, or where losing the newest is acceptable.
 *
 * @param n the capacity, a positive integer.
 * @throws TypeError when `n` is not a positive integer.
 */
export function droppingBuffer<T>(n: number): ChannelBuffer<T> {
  return new DroppingBuffer<T>(checkSize('droppingBuffer', n));
}

/**
 * A buffer of `n` values that never makes a put wait: when it is full, the oldest value is dropped to make
 * room. Suits "latest state" feeds where a slow consumer should skip ahead.
 *
 * @param n the capacity, a positive integer.
 * @throws TypeError when `n` is not a positive integer.
 */
export function slidingBuffer<T>(n: number): ChannelBuffer<T> {
  return new SlidingBuffer<T>(checkSize('slidingBuffer', n));
}

function checkSize(factory: string, n: unknown): number {
  if (isPositiveInteger(n)) return n;
  throw new TypeError(`${factory}: expected \`n\` to be a positive integer, got ${describeValue(n)}`);
}

function isPositiveInteger(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) > 0;
}

function isChannelBuffer(value: unknown): value is ChannelBuffer<unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const buffer = value as Partial<Record<keyof ChannelBuffer<unknown>, unknown>>;
  return (
    typeof buffer.add === 'function' &&
    typeof buffer.remove === 'function' &&
    typeof buffer.length === 'number' &&
    typeof buffer.full === 'boolean'
  );
}

export function toBuffer<T>(buffer: unknown): ChannelBuffer<T> {
  if (buffer === undefined || buffer === 0) return rendezvous;
  if (isPositiveInteger(buffer)) return new FixedBuffer<T>(buffer);
  if (isChannelBuffer(buffer)) return buffer as ChannelBuffer<T>;
  throw new TypeError(
    'Channel: expected `buffer` to be a non-negative integer or a buffer from ' +
      `fixedBuffer/droppingBuffer/slidingBuffer, got ${describeValue(buffer)}`,
  );
}

/**
 * `Channel<T>`: a CSP channel with Clojure core.async semantics, the ready-made source for `res.sse()` and
 * `res.stream()`. Producers `put`, consumers `take` (or `for await`), and the buffer decides whether a
 * producer waits: no buffer is a rendezvous, `fixedBuffer(n)` lets `n` values wait, `droppingBuffer(n)` and
 * `slidingBuffer(n)` never make a producer wait and drop the newest or the oldest value instead.
 *
 * `undefined` is not a value a channel can carry: `take()` uses it to say "closed and drained".
 */

import { describeValue, resolvedFalse, resolvedTrue } from '../core/util';
import { type ChannelBuffer, toBuffer } from './buffers';
import { Ring } from './ring';

/**
 * The most `put()` calls, and separately the most `take()` calls, that may wait on one channel at a time
 * (buffered values do not count). Past it the operation rejects with {@link ChannelOverflowError}, so a
 * producer that never awaits shows up as an error where it happens instead of as an out-of-memory crash.
 */
export const MAX_PENDING = 1024;

/** The error a `put()` or `take()` rejects with when {@link MAX_PENDING} of its kind are already waiting. */
export class ChannelOverflowError extends Error {
  /** Which operation overflowed. */
  readonly operation: 'put' | 'take';

  /** @param operation the operation that found {@link MAX_PENDING} others of its kind waiting. */
  constructor(operation: 'put' | 'take') {
    super(overflowMessage(operation));
    // Non-enumerable like the built-in errors' own `name`, so logs show the class and not an extra field.
    Object.defineProperty(this, 'name', {
      value: 'ChannelOverflowError',
      configurable: true,
      writable: true,
    });
    this.operation = operation;
  }
}

function overflowMessage(operation: 'put' | 'take'): string {
  const waiting = `Channel: ${MAX_PENDING} ${operation}() calls are already waiting on this channel, the most allowed.`;
  return operation === 'put'
    ? `${waiting} Give the channel a buffer (new Channel(fixedBuffer(n)), droppingBuffer(n) or slidingBuffer(n)) or await each put() before the next one.`
    : `${waiting} Await each take() (or use for await) before starting the next one.`;
}

/** Marks channels so that a second copy of this package (the ESM and the CJS build) recognises them. */
const channelBrand = Symbol.for('express-streaming.channel');

/**
 * `Symbol.asyncDispose` exists from Node 20.4 (our `engines`). Where it does not yet, use the registry symbol
 * Node's own polyfill installs (`Symbol.for('nodejs.asyncDispose')`), so the method still matches it if it
 * is installed after this module loads. TypeScript's lib may lack the symbol, hence the optional lookup.
 */
const asyncDisposeSymbol: typeof Symbol.asyncDispose =
  (Symbol as { asyncDispose?: typeof Symbol.asyncDispose }).asyncDispose ??
  (Symbol.for('nodejs.asyncDispose') as typeof Symbol.asyncDispose);

type Resolve<V> = (value: V) => void;

const resolvedUndefined: Promise<undefined> = Promise.resolve(undefined);
const iterationDone: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });
const resolvedIterationDone: Promise<IteratorReturnResult<undefined>> = Promise.resolve(iterationDone);

function checkValue(operation: 'put' | 'offer', value: unknown): void {
  if (value !== undefined) return;
  throw new TypeError(
    `Channel.${operation}: expected \`value\` to be anything but undefined ` +
      `(take() returns undefined to mean "closed"), got ${describeValue(value)}`,
  );
}

/**
 * A CSP channel with core.async semantics.
 *
 * - `put` waits while the buffer is full (always, without a buffer) and resolves `false` once closed.
 * - `take` waits while nothing is there and resolves `undefined` once closed and drained.
 * - `close()` keeps buffered values takeable, but releases waiting puts with `false` and discards their
 *   values. (Clojure keeps parked puts parked until taken; here closing usually means the consumer went
 *   away, so producers must not hang.)
 * - At most {@link MAX_PENDING} puts and {@link MAX_PENDING} takes may wait at once.
 *
 * Values that are promises or thenables are adopted by the promise `take()` returns, as with any promise.
 *
 * @example
 * const events = new Channel<string>(16);
 * void (async () => {
 *   for (const word of ['a', 'b', 'c']) await events.put(word);
 *   events.close();
 * })();
 * for await (const word of events) console.log(word); // a, b, c
 */
export class Channel<T> implements AsyncIterable<T>, AsyncDisposable {
  static {
    Object.defineProperty(Channel.prototype, channelBrand, { value: true });
  }

  readonly #buffer: ChannelBuffer<T>;
  // Waiting puts as two parallel rings rather than one object per put.
  readonly #putValues = new Ring<T>(4);
  readonly #putResolvers = new Ring<Resolve<boolean>>(4);
  readonly #takeResolvers = new Ring<Resolve<T | undefined>>(4);
  #closed = false;

  /**
   * @param buffer the buffer. Defaults to none (`0` says the same): a rendezvous, where each put waits for a
   *   taker. A positive integer `n` means `fixedBuffer(n)`; or pass `fixedBuffer(n)`, `droppingBuffer(n)`
   *   or `slidingBuffer(n)`.
   * @throws TypeError when `buffer` is none of those.
   */
  constructor(buffer?: number | ChannelBuffer<T>) {
    this.#buffer = toBuffer<T>(buffer);
  }

  /** `true` once {@link Channel.close} has been called. Buffered values may still be waiting to be taken. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Puts `value` on the channel.
   *
   * @returns a promise that resolves `true` once the value is accepted (buffered or handed to a taker), and
   *   `false` if the channel is closed first (the value is then discarded). It rejects with
   *   {@link ChannelOverflowError} when {@link MAX_PENDING} puts are already waiting.
   * @throws TypeError (synchronously) when `value` is `undefined`.
   */
  put(value: T): Promise<boolean> {
    checkValue('put', value);
    if (this.#closed) return resolvedFalse;
    if (this.#deliver(value)) return resolvedTrue;
    if (this.#putResolvers.length >= MAX_PENDING) return Promise.reject(new ChannelOverflowError('put'));
    this.#putValues.push(value);
    return new Promise<boolean>((resolve) => this.#putResolvers.push(resolve));
  }

  /**
   * Puts `value` only if that needs no waiting: a taker is waiting, or the buffer has room (dropping and
   * sliding buffers always do).
   *
   * @returns `true` if the value was accepted, `false` if it would have had to wait or the channel is closed.
   * @throws TypeError when `value` is `undefined`.
   */
  offer(value: T): boolean {
    checkValue('offer', value);
    return !this.#closed && this.#deliver(value);
  }

  /**
   * Takes the next value, waiting for one if need be.
   *
   * @returns a promise of the value, or of `undefined` once the channel is closed and drained. It rejects
   *   with {@link ChannelOverflowError} when {@link MAX_PENDING} takes are already waiting.
   */
  take(): Promise<T | undefined> {
    const value = this.#poll();
    if (value !== undefined) return Promise.resolve(value);
    if (this.#closed) return resolvedUndefined;
    if (this.#takeResolvers.length >= MAX_PENDING) return Promise.reject(new ChannelOverflowError('take'));
    return new Promise<T | undefined>((resolve) => this.#takeResolvers.push(resolve));
  }

  /**
   * Takes the next value only if one is there now (buffered, or from a waiting put).
   *
   * @returns the value, or `undefined` if there is none right now.
   */
  poll(): T | undefined {
    return this.#poll();
  }

  /**
   * Closes the channel; calling it again does nothing. Later puts resolve `false`. Buffered values stay
   * takeable; waiting puts resolve `false` and their values are discarded; waiting takes resolve `undefined`.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#putValues.clear();
    const puts = this.#putResolvers;
    while (puts.length > 0) puts.shift()(false);
    // Takes only wait while nothing is buffered, so there is nothing left for them.
    const takes = this.#takeResolvers;
    while (takes.length > 0) takes.shift()(undefined);
  }

  /**
   * Iterates over the values until the channel is closed and drained. Leaving the loop early (`break`,
   * `return`, a throw) calls the iterator's `return()`, which closes the channel, so a producer blocked in
   * `put()` is released with `false`. Values still buffered stay takeable with `take()`.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return new ChannelIterator(this);
  }

  /** Closes the channel, for `await using channel = new Channel()`. */
  [asyncDisposeSymbol](): Promise<void> {
    this.close();
    return resolvedUndefined;
  }

  /** Hands `value` to a waiting taker or to the buffer; `false` when it would have to wait. */
  #deliver(value: T): boolean {
    // Takes only wait while the buffer is empty, so handing over directly keeps FIFO order.
    if (this.#takeResolvers.length > 0) {
      this.#takeResolvers.shift()(value);
      return true;
    }
    if (this.#buffer.full) return false;
    this.#buffer.add(value);
    return true;
  }

  #poll(): T | undefined {
    const buffer = this.#buffer;
    if (buffer.length > 0) {
      const value = buffer.remove();
      // A waiting put was waiting for exactly this room; moving it in keeps FIFO order and frees its producer.
      if (this.#putResolvers.length > 0) buffer.add(this.#acceptWaitingPut());
      return value;
    }
    return this.#putResolvers.length > 0 ? this.#acceptWaitingPut() : undefined;
  }

  #acceptWaitingPut(): T {
    this.#putResolvers.shift()(true);
    return this.#putValues.shift();
  }
}

/** One `for await` over a channel. After `return()` it is done, even if the channel still holds values. */
class ChannelIterator<T> implements AsyncIterableIterator<T> {
  readonly #channel: Channel<T>;
  #returned = false;

  constructor(channel: Channel<T>) {
    this.#channel = channel;
  }

  next(): Promise<IteratorResult<T, undefined>> {
    if (this.#returned) return resolvedIterationDone;
    // Skip take()'s extra promise when a value is already there: the common case for a busy stream.
    const value = this.#channel.poll();
    if (value !== undefined) return Promise.resolve({ done: false, value });
    if (this.#channel.closed) return resolvedIterationDone;
    return this.#channel.take().then(toIteratorResult);
  }

  return(): Promise<IteratorResult<T, undefined>> {
    this.#returned = true;
    this.#channel.close();
    return resolvedIterationDone;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}

function toIteratorResult<T>(value: T | undefined): IteratorResult<T, undefined> {
  return value === undefined ? iterationDone : { done: false, value };
}

/**
 * Whether `value` is a {@link Channel}, from this copy of the package or another (ESM and CJS builds each
 * have their own class, so `instanceof` is not enough).
 */
export function isChannel(value: unknown): value is Channel<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { [channelBrand]?: unknown })[channelBrand] === true
  );
}

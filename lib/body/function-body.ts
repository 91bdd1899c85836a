import { type Readable, Writable } from 'node:stream';
import { destroyQuietly } from '../core/release';
import { ignore, isPromiseLike } from '../core/util';
import type { ChunkSource } from '../core/write-loop';

/**
 * Turns a function body `(out, ctx) => …` into a pull source: `out` is a real Writable (so
 * `src.pipe(out)` and `pipeline(src, out)` work) whose chunks are taken by the write loop one at a
 * time; `out`'s own buffer plus the loop's wait for `'drain'` give the producer backpressure.
 */
export class BodyWriterSource implements ChunkSource {
  readonly itemName = 'a chunk written to out';
  readonly out: Writable;
  readonly #piped = new Set<Readable>();
  #held: { chunk: Buffer; callback: (error?: Error | null) => void } | undefined;
  #waiter: { resolve: (step: IteratorResult<Buffer>) => void; reject: (error: unknown) => void } | undefined;
  #ended = false;
  #failure: { error: unknown } | undefined;
  #released = false;

  constructor() {
    this.out = new Writable({
      write: (chunk: Buffer, _encoding, callback) => this.#accept(chunk, callback),
      final: (callback) => {
        this.#end();
        callback();
      },
      destroy: (error, callback) => {
        if (!this.#released && !this.#ended) {
          this.#fail(error ?? new Error('out was destroyed before it ended'));
        }
        callback(null);
      },
    });
    // Failures reach the loop through next(); an 'error' event with no listener would crash the process.
    this.out.on('error', ignore);
    this.out.on('pipe', (source: Readable) => this.#piped.add(source));
    this.out.on('unpipe', (source: Readable) => this.#piped.delete(source));
  }

  /**
   * Watches what the function returned: a rejection is an error; a promise that settles while
   * `out` is still open and nothing is piped into it ends the body.
   */
  settleWith(returned: unknown): void {
    if (!isPromiseLike(returned)) return;
    returned.then(
      () => {
        if (!this.out.writableEnded && !this.out.destroyed && this.#piped.size === 0) this.out.end();
      },
      (error: unknown) => {
        // A falsy rejection reason is still a failure: it must not look like a clean end.
        this.#fail(error ?? new Error('the function body rejected without a reason'));
      },
    );
  }

  next(): Promise<IteratorResult<Buffer>> | IteratorResult<Buffer> {
    const held = this.#held;
    if (held) {
      this.#held = undefined;
      held.callback();
      return { done: false, value: held.chunk };
    }
    if (this.#failure) throw this.#failure.error;
    if (this.#ended) return { done: true, value: undefined };
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const source of this.#piped) destroyQuietly(source);
    this.#piped.clear();
    this.out.destroy();
  }

  /** Fails the body: `out` is destroyed and the loop's pending read rejects. */
  fail(error: unknown): void {
    this.#fail(error);
  }

  #accept(chunk: Buffer, callback: (error?: Error | null) => void): void {
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter.resolve({ done: false, value: chunk });
      callback();
    } else {
      this.#held = { chunk, callback };
    }
  }

  #end(): void {
    this.#ended = true;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve({ done: true, value: undefined });
  }

  #fail(error: unknown): void {
    if (this.#failure || this.#released) return;
    this.#failure = { error };
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(error);
    if (!this.out.destroyed) this.out.destroy();
  }
}

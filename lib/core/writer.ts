import { createDebug } from './debug';
import { type Deferred, deferred } from './deferred';
import { type Hook, type Hooks, runHooks, withHook } from './hooks';
import { isHttp2, isResponseGone, type ResponseLike } from './response';
import { ignore } from './util';

const debug = createDebug('write');

/** How a streamed response ended; `res.stream()` resolves with it and never rejects. */
export type StreamOutcome = 'finished' | 'aborted' | 'errored';

/** What a waiting write or read resolves to when the client has gone away meanwhile. */
export const GONE: unique symbol = Symbol('express-streaming.gone');

type WriterState = 'open' | 'ending' | 'done';

/**
 * Owns one response while the library writes to it: it notices the client leaving (`res` `'close'`
 * while `!res.writableEnded`, which is right on HTTP/1 and on HTTP/2's compatibility API — `req`
 * `'close'` fires as soon as a request body is read), races every wait against that, and ends the
 * response cleanly or visibly truncated. Listeners are removed once the response is done.
 */
export class ResponseWriter {
  readonly res: ResponseLike;
  /** What {@link whenAborted} registered. */
  #abortHooks: Hooks;
  readonly #controller = new AbortController();
  readonly #flush: (() => void) | undefined;
  #gone = false;
  #state: WriterState = 'open';
  /** The one pending {@link untilGone}: settled by what it waits for, or by GONE, whichever comes first. */
  #wait: Deferred<unknown> | undefined;
  #drain: Deferred<boolean> | undefined;
  #listensForDrain = false;
  #settled: Deferred<StreamOutcome> | undefined;
  #outcome: StreamOutcome = 'finished';

  constructor(res: ResponseLike) {
    this.res = res;
    // The writer is made once the route runs, after compression() put its flush there (or not).
    this.#flush = typeof res.flush === 'function' ? (res.flush as () => void).bind(res) : undefined;
    res.on('close', this.#handleClose);
    res.on('error', this.#handleError);
    res.on('finish', this.#handleFinish);
  }

  /**
   * Runs `hook` once if the response is over before the writer's owner ended it — the client left, the
   * app ended or destroyed the response itself — which is where a producer is released. Hooks add up,
   * so two users of one writer never replace each other's.
   */
  whenAborted(hook: Hook): void {
    this.#abortHooks = withHook(this.#abortHooks, hook);
  }

  /** Aborted when the client leaves, or when the stream fails. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** True once the response is over — finished, aborted or failed — and the writer let go of it. */
  get done(): boolean {
    return this.#state === 'done';
  }

  /** True once the client is gone or the response was torn down: nothing more can be written. */
  get gone(): boolean {
    return this.#gone;
  }

  /**
   * Writes one chunk now, flushing compression; `false` means wait for {@link drained}. Once the
   * response has ended (the app may end it under us) nothing is written: Node would emit a
   * write-after-end `'error'` that nobody listens to, and crash the process.
   */
  write(chunk: string | Uint8Array): boolean {
    if (this.res.writableEnded) {
      this.#handleEndedElsewhere();
      return false;
    }
    const belowHighWaterMark = this.res.write(chunk);
    this.#flush?.();
    return belowHighWaterMark;
  }

  /** Resolves `true` on `'drain'`, `false` if the client leaves first (HTTP/2 never drains then). */
  drained(): Promise<boolean> {
    if (this.#state === 'done' || this.gone) return Promise.resolve(false);
    if (!this.#drain) {
      this.#drain = deferred();
      // One listener for the writer's whole life: compression() moves 'drain' listeners onto its zlib
      // stream, where a `once` wrapper's self-removal (aimed at res) never reaches, one per wait.
      if (!this.#listensForDrain) {
        this.#listensForDrain = true;
        this.res.on('drain', this.#handleDrain);
      }
    }
    return this.#drain.promise;
  }

  /**
   * Waits for `pending`, unless the response is done first (the client left). One such wait at a time:
   * the writer's owner reads its source one item after another, and a second wait would leave the
   * first unanswered when the client leaves — so it is refused.
   */
  untilGone<T>(pending: PromiseLike<T>): Promise<T | typeof GONE> {
    if (this.#state === 'done' || this.#gone) {
      Promise.resolve(pending).catch(ignore);
      return Promise.resolve(GONE);
    }
    if (this.#wait !== undefined) {
      Promise.resolve(pending).catch(ignore);
      return Promise.reject(new Error('ResponseWriter.untilGone: one wait at a time; await the first'));
    }
    const wait = deferred<unknown>();
    this.#wait = wait;
    pending.then(
      (value) => this.#endWait(wait, value),
      (error: unknown) => {
        if (this.#wait === wait) this.#wait = undefined;
        wait.reject(error);
      },
    );
    return wait.promise as Promise<T | typeof GONE>;
  }

  #endWait(wait: Deferred<unknown>, value: unknown): void {
    if (this.#wait === wait) this.#wait = undefined;
    wait.resolve(value);
  }

  /** Resolves with how the response ended, whoever ended it. */
  settled(): Promise<StreamOutcome> {
    if (this.#state === 'done') return Promise.resolve(this.#outcome);
    this.#settled ??= deferred();
    return this.#settled.promise;
  }

  /** Ends the response cleanly and resolves once it has been handed to the OS, or the client left. */
  end(chunk?: string | Uint8Array): Promise<StreamOutcome> {
    if (this.#state === 'open') {
      this.#state = 'ending';
      if (chunk === undefined) this.res.end();
      else this.res.end(chunk);
    }
    return this.settled();
  }

  /** The owner is about to end the response itself (`res.chunk`'s app calls `res.end()`): not a cut. */
  willEnd(): void {
    if (this.#state === 'open') this.#state = 'ending';
  }

  /** Gives up on the response without writing to it: the app's error handling answers it instead. */
  abandon(reason: unknown): void {
    if (this.#state !== 'done') this.#finish('errored', reason);
  }

  /**
   * Makes the failure visible to the client: on HTTP/1.1 the socket is destroyed with no final
   * zero-length chunk (without an error object, which would surface as the server's `clientError`);
   * a close-delimited body (HTTP/1.0, nginx's default upstream protocol) has no final chunk to leave
   * out, so its connection is reset instead of closed; on HTTP/2 the stream is reset with an error
   * code rather than NO_ERROR.
   */
  truncate(error: unknown): void {
    if (this.#state === 'done') return;
    this.#finish('errored', error);
    const res = this.res;
    if (isHttp2(res.req)) {
      res.destroy(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    const reset = isCloseDelimited(res);
    // Node corks chunked writes until the next tick: destroying now would drop bytes already written.
    setImmediate(() => {
      const socket = res.socket;
      if (reset && socket && !socket.destroyed && typeof socket.resetAndDestroy === 'function') {
        socket.resetAndDestroy();
      } else {
        res.destroy();
      }
    });
  }

  /** Aborts {@link signal} (the stream is ending) without touching the response; idempotent. */
  abort(reason: unknown): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#controller.abort(reason);
  }

  /** Stops watching the response without touching it (someone else answers it now). */
  detach(): void {
    if (this.#state === 'done') return;
    this.#state = 'done';
    this.#removeListeners();
  }

  readonly #handleDrain = (): void => {
    const drain = this.#drain;
    this.#drain = undefined;
    // Node may emit 'drain' for a socket it is destroying: that is no room to write.
    drain?.resolve(!isResponseGone(this.res));
  };

  readonly #handleFinish = (): void => {
    // HTTP/2's compatibility API also emits 'finish' when the client cancels (RST_STREAM), before
    // 'close' and with `writableEnded` false: that is the client leaving, not the end of the body.
    if (!this.res.writableEnded) {
      this.#handleClose();
      return;
    }
    this.#finish('finished');
  };

  /** The response ended while the writer still had it open: the app (or a timeout) ended it itself. */
  #handleEndedElsewhere(): void {
    if (this.#state !== 'open') return;
    debug('the response was ended by someone else while the body was being written');
    this.#finish('finished');
  }

  readonly #handleClose = (): void => {
    if (this.#state === 'done') return;
    if (this.res.writableEnded) {
      // Ended by us or by someone else (send answers HEAD and 304 itself): clean unless bytes were lost.
      const finished = (this.res as { writableFinished?: boolean }).writableFinished !== false;
      this.#finish(finished ? 'finished' : 'aborted');
      return;
    }
    debug('client went away before the end of the response');
    this.#finish('aborted');
  };

  readonly #handleError = (error: unknown): void => {
    debug('response error: %s', error);
    this.#handleClose();
  };

  #finish(outcome: StreamOutcome, reason?: unknown): void {
    const wasOpen = this.#state !== 'done';
    // Still 'open': the writer's owner never ended the response, so its producer must be let go.
    const cutShort = outcome !== 'finished' || this.#state === 'open';
    this.#state = 'done';
    this.#outcome = outcome;
    this.#removeListeners();
    if (cutShort) this.abort(reason ?? cutShortReason(outcome));
    // Nothing more will drain or arrive: wake whoever waits, so that no caller hangs.
    if (this.#wait !== undefined) this.#endWait(this.#wait, GONE);
    const drain = this.#drain;
    this.#drain = undefined;
    drain?.resolve(false);
    const hooks = this.#abortHooks;
    this.#abortHooks = undefined;
    if (wasOpen && cutShort) runHooks(hooks);
    const settled = this.#settled;
    this.#settled = undefined;
    settled?.resolve(outcome);
  }

  #removeListeners(): void {
    this.res.off('close', this.#handleClose);
    this.res.off('error', this.#handleError);
    this.res.off('drain', this.#handleDrain);
    this.res.off('finish', this.#handleFinish);
  }
}

/** A body whose end is the connection's close (no chunked coding, no Content-Length): HTTP/1.0. */
function isCloseDelimited(res: ResponseLike): boolean {
  return res.chunkedEncoding !== true && !res.hasHeader('content-length');
}

function cutShortReason(outcome: StreamOutcome): Error {
  return new Error(
    outcome === 'finished' ? 'the response was ended before the body was complete' : 'the client went away',
  );
}

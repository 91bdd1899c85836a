import type { Socket } from 'node:net';
import { Channel } from '../channel/channel';
import { createDebug } from '../core/debug';
import { releaseIterable } from '../core/release';
import type { AnyRequest, AnyResponse, ResponseLike } from '../core/response';
import type { Ticking, TickScheduler } from '../core/scheduler';
import { describeValue, ignore, isPromiseLike, resolvedFalse, resolvedTrue } from '../core/util';
import { GONE, ResponseWriter } from '../core/writer';
import { encodeComment, encodeEvent, encodeRetry, type SseEventInput } from './encoder';
import { directSocket, frameChunk } from './framed-socket';
import { jitter, writeSseHead } from './head';
import { readLastEventId } from './last-event-id';
import { DEFAULT_RETRY_MS, type SseSettings } from './options';
import {
  type SseCloseReason,
  type SseContext,
  type SseReadyFunction,
  type SseStream,
  SseSubscription,
} from './types';

const debug = createDebug('sse');

/** A middleware's settings as its connections read them: the options, and the heartbeat in ticks. */
export interface ConnectionSettings extends SseSettings {
  /** Whole ticks of silence after which a heartbeat goes out; `null`: no heartbeat. */
  readonly heartbeatTicks: number | null;
  /** Ticks a client may stay blocked before it is closed as slow; `null`: no deadline. */
  readonly deadlineTicks: number | null;
}

const HEARTBEAT = encodeComment('');

/**
 * One open stream. It is its own context object (`req`, `res`, `signal`, `lastEventId`, `stream`), so
 * that a stream costs one object beyond the response's writer.
 */
export class SseConnection<D> implements SseStream<D>, SseContext<D>, Ticking {
  readonly lastEventId: string | undefined;
  readonly #writer: ResponseWriter;
  readonly #streams: TickScheduler;
  readonly #settings: ConnectionSettings;
  #closed = false;
  #lastWriteTick: number;
  #blockedSinceTick = -1;
  #backedUp = false;
  /** A `bufferBytes` below the socket's high-water mark must be checked on every write. */
  #smallBuffer = false;
  /** Set where each event can go to the socket as one framed chunk (see {@link directSocket}). */
  #socket: Socket | undefined;
  #socketDrain: { promise: Promise<boolean>; resolve: (drained: boolean) => void } | undefined;
  #releaseSource: (() => void) | undefined;

  constructor(res: ResponseLike, streams: TickScheduler, settings: ConnectionSettings) {
    this.#writer = new ResponseWriter(res);
    this.#streams = streams;
    this.#settings = settings;
    this.#lastWriteTick = streams.now;
    this.lastEventId = readLastEventId(res.req);
  }

  get req(): AnyRequest {
    return this.#writer.res.req as AnyRequest;
  }

  get res(): AnyResponse {
    return this.#writer.res as unknown as AnyResponse;
  }

  get stream(): SseStream<D> {
    return this;
  }

  get signal(): AbortSignal {
    return this.#writer.signal;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Commits the SSE head at once, so `EventSource.onopen` fires and proxies see the stream start. */
  start(): void {
    const res = this.#writer.res;
    writeSseHead(res, this.#settings.headers);
    this.#socket = directSocket(res);
    const { bufferBytes } = this.#settings;
    this.#smallBuffer = bufferBytes !== null && bufferBytes < res.writableHighWaterMark;
    this.#writer.whenAborted(() => this.#teardown('client'));
    this.#streams.add(this);
    if (this.#settings.retryMs !== null) this.#write(encodeRetry(jitter(this.#settings.retryMs)));
  }

  /** Admission control: 200, a jittered `retry:` and an end — a 5xx or 429 would make EventSource give up for good. */
  turnAway(): void {
    writeSseHead(this.#writer.res, this.#settings.headers);
    this.#write(encodeRetry(jitter(this.#settings.retryMs ?? DEFAULT_RETRY_MS)));
    this.#teardown('server');
  }

  send(event: SseEventInput<D>): Promise<boolean> {
    if (this.#closed) return resolvedFalse;
    return this.#write(encodeEvent(event, this.#settings.serialize));
  }

  comment(text: string): boolean {
    if (typeof text !== 'string') {
      throw new TypeError(`SseStream.comment: expected \`text\` to be a string, got ${describeValue(text)}`);
    }
    if (this.#closed) return false;
    void this.#write(encodeComment(text));
    return !this.#closed;
  }

  close(): void {
    this.#teardown('server');
  }

  /** Graceful shutdown: a jittered `retry:` first, then a clean end. */
  shutdown(retryMs: number): Promise<unknown> {
    if (this.#closed) return Promise.resolve();
    this.#write(encodeRetry(jitter(retryMs)));
    const ended = this.#writer.settled();
    this.#teardown('server');
    return ended;
  }

  tick(now: number): void {
    const { heartbeatTicks, deadlineTicks } = this.#settings;
    const blocked = this.#socket ? this.#socket.writableNeedDrain : needsDrain(this.#writer.res);
    if (deadlineTicks !== null) {
      if (!blocked) this.#blockedSinceTick = -1;
      else if (this.#blockedSinceTick < 0) this.#blockedSinceTick = now;
      else if (now - this.#blockedSinceTick >= deadlineTicks) {
        debug('client left written bytes unread past the write deadline');
        this.#teardown('slow');
        return;
      }
    }
    if (heartbeatTicks !== null && !blocked && now - this.#lastWriteTick >= heartbeatTicks)
      this.#write(HEARTBEAT);
  }

  runReadyFunction(ready: SseReadyFunction<D>): void {
    const events = new Channel<SseEventInput<D>>(10);
    this.#releaseSource = () => events.close();
    try {
      const returned: unknown = ready(events, this);
      if (isPromiseLike(returned)) returned.then(ignore, (error: unknown) => this.#teardown('error', error));
    } catch (error) {
      this.#teardown('error', error);
      return;
    }
    void this.consume(events);
  }

  runSubscription(subscription: SseSubscription<D>): void {
    try {
      subscription[SseSubscription](this, this);
    } catch (error) {
      this.#teardown('error', error);
    }
  }

  /** Writes every event of the source, paced by the client; the source's end ends the stream. */
  async consume(source: AsyncIterable<SseEventInput<D>>): Promise<void> {
    if (this.#closed) {
      releaseIterable(source, undefined);
      return;
    }
    const iterator = source[Symbol.asyncIterator]();
    this.#releaseSource ??= () => releaseIterable(source, iterator);
    try {
      for (;;) {
        const step = await this.#writer.untilGone(iterator.next());
        if (step === GONE || this.#closed) return;
        if (step.done) {
          this.#teardown('server');
          return;
        }
        await this.send(step.value);
        if (this.#closed) return;
      }
    } catch (error) {
      this.#teardown('error', error);
    }
  }

  #write(text: string): Promise<boolean> {
    if (this.#closed) return resolvedFalse;
    // Below the high-water mark the queue is small: read `writableLength` (slow on Express's
    // re-prototyped res) only while the socket is backed up.
    if ((this.#backedUp || this.#smallBuffer) && this.#overBufferBytes(text)) {
      if (this.#settings.onSlowClient === 'drop') return resolvedFalse;
      this.#teardown('slow');
      return resolvedFalse;
    }
    this.#lastWriteTick = this.#streams.now;
    const socket = this.#socket;
    if (socket !== undefined) return this.#writeFramed(socket, text);
    if (this.#writer.write(text)) return resolvedTrue;
    const drained = this.#writer.drained();
    if (!this.#backedUp) {
      this.#backedUp = true;
      drained.then(this.#handleDrain);
    }
    return drained;
  }

  #overBufferBytes(text: string): boolean {
    const queued = this.#writer.res.writableLength;
    const { bufferBytes } = this.#settings;
    const over = bufferBytes !== null && queued > 0 && queued + Buffer.byteLength(text) > bufferBytes;
    if (over)
      debug(
        'slow client: %d bytes queued (%s)',
        queued,
        this.#settings.onSlowClient === 'drop' ? 'event dropped' : 'closing',
      );
    return over;
  }

  /** One handler for both paths: `res`'s drain (through the writer) or the socket's own. */
  readonly #handleDrain = (): void => {
    if (this.#socketDrain) this.#settleSocketDrain(true);
    else this.#backedUp = false;
  };

  /**
   * The fast path: the same bytes `res.write` would send for one chunk (size line, data, CRLF), as one
   * socket write, skipping Node's per-write corking and Express's megamorphic `res.write`. The
   * socket's own `'drain'` paces the producer, since `res` only drains what went through `res.write`.
   */
  #writeFramed(socket: Socket, text: string): Promise<boolean> {
    if (socket.write(frameChunk(text))) return resolvedTrue;
    if (this.#socketDrain === undefined) {
      let resolve!: (drained: boolean) => void;
      const promise = new Promise<boolean>((r) => {
        resolve = r;
      });
      this.#socketDrain = { promise, resolve };
      this.#backedUp = true;
      socket.once('drain', this.#handleDrain);
    }
    return this.#socketDrain.promise;
  }

  #settleSocketDrain(drained: boolean): void {
    const wait = this.#socketDrain;
    if (wait === undefined) return;
    this.#socketDrain = undefined;
    this.#backedUp = false;
    this.#socket?.off('drain', this.#handleDrain);
    wait.resolve(drained && !this.#closed);
  }

  /** Runs exactly once, whatever the cause: releases the source, the timer slot and the listeners, then tells onClose. */
  #teardown(reason: SseCloseReason, error?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#streams.delete(this);
    this.#writer.abort(error ?? new Error(`the SSE stream closed (${reason})`));
    const release = this.#releaseSource;
    this.#releaseSource = undefined;
    release?.();
    this.#settleSocketDrain(false);
    this.#socket = undefined;
    if (reason === 'server') void this.#writer.end();
    else if (reason === 'client') this.#writer.detach();
    else this.#writer.truncate(error ?? new Error(`the SSE stream closed (${reason})`));
    if (reason === 'error') debug('stream failed: %s', error);
    const onClose = this.#settings.onClose;
    if (!onClose) return;
    try {
      onClose(reason, this as SseContext<D> as SseContext);
    } catch (thrown) {
      debug('onClose threw: %s', thrown);
    }
  }
}

function needsDrain(res: ResponseLike): boolean {
  const needDrain = (res as { writableNeedDrain?: boolean }).writableNeedDrain;
  return needDrain ?? res.writableLength >= res.writableHighWaterMark;
}

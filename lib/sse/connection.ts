import { AsyncResource } from 'node:async_hooks';
import { createDebug } from '../core/debug';
import { channels } from '../core/diagnostics';
import { reportUnheard } from '../core/errors';
import { type Hook, type Hooks, runHooks, withHook } from '../core/hooks';
import type { AnyRequest, AnyResponse, ResponseLike } from '../core/response';
import type { Ticking, TickScheduler } from '../core/scheduler';
import { describeValue, resolvedFalse, resolvedTrue } from '../core/util';
import type { GONE } from '../core/writer';
import { type EncodedEvent, encodedText } from './encoded';
import { encodeComment, encodeEvent, encodeRetry, type SseEventInput } from './encoder';
import { jitter } from './head';
import { readLastEventId } from './last-event-id';
import { DEFAULT_RETRY_MS, type SseSettings } from './options';
import { type LiveDelivery, STREAM_SINK, type StreamSink } from './sink';
import type { SseCloseReason, SseContext, SseStream } from './types';
import { type SseChunk, SseWriter } from './writer';

const debug = createDebug('sse');

/** A middleware's settings as its connections read them: the options, and the heartbeat in ticks. */
export interface ConnectionSettings extends SseSettings {
  /** Whole ticks of silence after which a heartbeat goes out; `null`: no heartbeat. */
  readonly heartbeatTicks: number | null;
  /** Ticks a client may stay blocked before it is closed as slow; `null`: no deadline. */
  readonly deadlineTicks: number | null;
}

/** Encoded once for every stream: its framed chunk is made once, too. */
const HEARTBEAT = encodedText(encodeComment(''));

/**
 * One open stream's life: when it opens and its head goes out, what it may queue (the slow-client
 * rule), heartbeats and the write deadline on the shared scheduler's ticks, and its teardown, which
 * runs once whatever the cause. Its bytes go through an {@link SseWriter}. It is its own context
 * object (`req`, `res`, `signal`, `lastEventId`, `stream`) and its own {@link StreamSink}, so a
 * stream costs one object beyond its writers.
 */
export class SseConnection<D> implements SseStream<D>, SseContext<D>, Ticking, StreamSink {
  readonly lastEventId: string | undefined;
  readonly #writer: SseWriter;
  readonly #streams: TickScheduler;
  readonly #settings: ConnectionSettings;
  /**
   * The request's async context, where `onClose` and the close diagnostics run (request-scoped
   * loggers, tracing): a stream ends on a socket event, outside of it. Made only when they exist.
   */
  readonly #context: AsyncResource | undefined;
  #closed: SseCloseReason | undefined;
  #lastWriteTick: number;
  #blockedSinceTick = -1;
  /** A `bufferBytes` below the socket's high-water mark must be checked on every write. */
  #smallBuffer = false;
  /** What teardown lets go of: the stream's source, a hub subscription. */
  #onClosed: Hooks;

  constructor(res: ResponseLike, streams: TickScheduler, settings: ConnectionSettings) {
    this.#writer = new SseWriter(res);
    this.#streams = streams;
    this.#settings = settings;
    this.#lastWriteTick = streams.tick;
    this.lastEventId = readLastEventId(res.req);
    if (settings.onClose !== undefined || channels.sseClose.hasSubscribers) {
      this.#context = new AsyncResource('express-streaming:sse', { requireManualDestroy: true });
    }
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
    return this.#writer.response.signal;
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  get closeReason(): SseCloseReason | undefined {
    return this.#closed;
  }

  get [STREAM_SINK](): StreamSink {
    return this;
  }

  whenClosed(hook: Hook): void {
    if (this.#closed) hook();
    else this.#onClosed = withHook(this.#onClosed, hook);
  }

  /**
   * Opens the stream: it counts, hears its client leave and is reached by `closeAll()`. The SSE head
   * goes out at once, so `EventSource.onopen` fires and proxies see the stream start — unless its
   * source holds it (a subscription, until it knows where its client starts; see
   * {@link StreamSink.commitHead}).
   */
  start(holdHead: boolean): void {
    this.#announce();
    // The client left, or the app ended the response itself (its own timeout, an error handler).
    const response = this.#writer.response;
    response.whenAborted(() => this.#teardown(response.res.writableEnded ? 'server' : 'client'));
    this.#streams.add(this);
    if (!holdHead) this.#commitHead();
  }

  commitHead(): void {
    if (!this.#closed) this.#commitHead();
  }

  #commitHead(): void {
    if (!this.#writer.writeHead(this.#settings.headers)) return;
    const { bufferBytes } = this.#settings;
    this.#smallBuffer = bufferBytes !== null && bufferBytes < this.#writer.res.writableHighWaterMark;
    this.#lastWriteTick = this.#streams.tick;
    if (this.#settings.retryMs !== null) this.#put(encodeRetry(jitter(this.#settings.retryMs)));
  }

  /**
   * Ends at once with the SSE head: a HEAD request (no body at all), or admission control past
   * `maxStreams` (a jittered `retry:` first — a 5xx or 429 would make EventSource give up for good).
   */
  endAtOnce(retry: boolean): void {
    this.#announce();
    this.#writer.writeHead(this.#settings.headers);
    if (retry) this.#writer.res.write(encodeRetry(jitter(this.#settings.retryMs ?? DEFAULT_RETRY_MS)));
    this.#teardown('server');
  }

  /** The client left before the stream could start: nothing is written, `onClose` hears `'client'`. */
  abandon(): void {
    this.#announce();
    this.#teardown('client');
  }

  send(event: SseEventInput<D>): Promise<boolean> {
    if (this.#closed) return resolvedFalse;
    return this.#paced(encodeEvent(event, this.#settings.serialize));
  }

  comment(text: string): boolean {
    if (typeof text !== 'string') {
      throw new TypeError(`SseStream.comment: expected \`text\` to be a string, got ${describeValue(text)}`);
    }
    if (this.#closed) return false;
    void this.#paced(encodeComment(text));
    return !this.#closed;
  }

  close(): void {
    this.#teardown('server');
  }

  /** Ends the stream as failed: the source threw, or a subscription could not go on. */
  fail(error: unknown): void {
    this.#teardown('error', error);
  }

  /** Waits for `pending` (a source's next event), unless the stream ends first. */
  untilGone<T>(pending: PromiseLike<T>): Promise<T | typeof GONE> {
    return this.#writer.response.untilGone(pending);
  }

  deliverLive(event: EncodedEvent): LiveDelivery {
    if (this.#closed) return 'closed';
    const admitted = this.#admit(event, true);
    if (admitted === 'written') this.#put(event);
    return admitted;
  }

  deliverPaced(event: EncodedEvent): Promise<boolean> {
    if (this.#closed) return resolvedFalse;
    return this.#put(event) ? resolvedTrue : this.#writer.drained();
  }

  /** Graceful shutdown: a jittered `retry:` first, then a clean end; resolves once the response is done. */
  shutdown(retryMs: number): Promise<unknown> {
    if (this.#closed) return this.#writer.response.settled();
    this.#put(encodeRetry(jitter(retryMs)));
    this.#teardown('server');
    return this.#writer.response.settled();
  }

  /** After a shutdown's grace period: a response still not handed to the OS is cut off. */
  destroyUnfinished(): void {
    if (!this.#writer.response.done) this.#writer.res.destroy();
  }

  tick(now: number): void {
    // a held head: nothing written yet, so nothing to keep alive or to wait for
    if (!this.#writer.headSent) return;
    const { heartbeatTicks, deadlineTicks } = this.#settings;
    const blocked = this.#writer.blocked;
    if (deadlineTicks !== null) {
      if (!blocked) this.#blockedSinceTick = -1;
      else if (this.#blockedSinceTick < 0) this.#blockedSinceTick = now;
      else if (now - this.#blockedSinceTick >= deadlineTicks) {
        debug('client left written bytes unread past the write deadline');
        this.#teardown('slow');
        return;
      }
    }
    if (heartbeatTicks !== null && !blocked && now - this.#lastWriteTick >= heartbeatTicks) {
      this.#put(HEARTBEAT);
    }
  }

  /** A write a producer may await: admitted against `bufferBytes`, resolved once below the high-water mark. */
  #paced(chunk: SseChunk): Promise<boolean> {
    if (this.#admit(chunk, false) !== 'written') return resolvedFalse;
    return this.#put(chunk) ? resolvedTrue : this.#writer.drained();
  }

  /**
   * Whether one more chunk keeps this client within `bufferBytes` of unsent bytes. The queue is read
   * only when it may matter — `writableLength` is slow on Express's re-prototyped `res` — and the cap
   * holds for a first chunk too: one bigger than `bufferBytes` is never queued. A chunk that does not
   * fit is `dropped` where a hub can send it later from its log (`paceable`) while the client keeps up
   * (a burst, not a slow reader: its socket is not backed up); otherwise `onSlowClient` decides:
   * dropped, or the stream closes as `'slow'`.
   */
  #admit(chunk: SseChunk, paceable: boolean): LiveDelivery {
    const { bufferBytes } = this.#settings;
    if (bufferBytes === null) return 'written';
    const large =
      typeof chunk === 'string' ? chunk.length * 3 > bufferBytes : chunk.bytes.length > bufferBytes;
    if (!this.#writer.backedUp && !this.#smallBuffer && !large) return 'written';
    const size = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.bytes.length;
    const queued = this.#writer.queued;
    if (queued + size <= bufferBytes) return 'written';
    // Not backed up: the client takes what it is sent, and the chunk is merely big (a burst).
    const keepingUp = paceable && !this.#writer.backedUp;
    if (keepingUp || this.#settings.onSlowClient === 'drop') {
      debug('%d bytes queued, %d more: not taken now (%s)', queued, size, keepingUp ? 'a burst' : 'dropped');
      return 'dropped';
    }
    debug('slow client: %d bytes queued, %d more: closing', queued, size);
    this.#teardown('slow');
    return 'closed';
  }

  /** Writes one chunk now (the head first, if it is still held); `false` means the client is backed up. */
  #put(chunk: SseChunk): boolean {
    if (!this.#writer.headSent) this.#commitHead();
    this.#lastWriteTick = this.#streams.tick;
    return this.#writer.write(chunk);
  }

  /** Runs exactly once, whatever the cause: releases the source, the timer slot and the listeners, then tells onClose. */
  #teardown(reason: SseCloseReason, error?: unknown): void {
    if (this.#closed) return;
    this.#closed = reason;
    this.#streams.delete(this);
    const cause = error ?? new Error(`the SSE stream closed (${reason})`);
    this.#writer.response.abort(cause);
    const closed = this.#onClosed;
    this.#onClosed = undefined;
    runHooks(closed);
    this.#writer.release();
    this.#writer.end(reason, cause, this.#settings.headers, this.#settings.writeTimeoutMs);
    if (reason === 'error') reportUnheard(error);
    const context = this.#context;
    if (context === undefined) this.#tellClosed(reason, error);
    else {
      context.runInAsyncScope(this.#tellClosed, this, reason, error);
      context.emitDestroy();
    }
  }

  /** Tells diagnostics subscribers and `onClose`, in the request's async context. */
  #tellClosed(reason: SseCloseReason, error: unknown): void {
    if (channels.sseClose.hasSubscribers) {
      channels.sseClose.publish({ req: this.req, res: this.res, stream: this, reason, error });
    }
    const onClose = this.#settings.onClose;
    if (!onClose) return;
    try {
      onClose(reason, this as SseContext<D> as SseContext);
    } catch (thrown) {
      debug('onClose threw: %s', thrown);
      reportUnheard(thrown);
    }
  }

  /** Tells diagnostics_channel subscribers (APM agents) that a stream began. */
  #announce(): void {
    if (!channels.sseOpen.hasSubscribers) return;
    channels.sseOpen.publish({ req: this.req, res: this.res, stream: this, lastEventId: this.lastEventId });
  }
}

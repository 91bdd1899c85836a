import type { Socket } from 'node:net';
import { Channel } from '../channel/channel';
import { createDebug } from '../core/debug';
import { channels } from '../core/diagnostics';
import { reportUnheard } from '../core/errors';
import { type Hook, type Hooks, runHooks, withHook } from '../core/hooks';
import { releaseIterable } from '../core/release';
import type { AnyRequest, AnyResponse, ResponseLike } from '../core/response';
import type { Ticking, TickScheduler } from '../core/scheduler';
import { describeValue, ignore, isPromiseLike, resolvedFalse, resolvedTrue } from '../core/util';
import { GONE, ResponseWriter } from '../core/writer';
import {
  closeReason,
  commitHead,
  deliverLive,
  deliverPaced,
  type EncodedEvent,
  type EncodedSink,
  encodedText,
  framedBytes,
  whenClosed,
} from './encoded';
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

/** Encoded once for every stream: its framed chunk is made once, too. */
const HEARTBEAT = encodedText(encodeComment(''));

/** What a stream writes: wire text it made, or bytes a hub encoded once for every subscriber. */
type Chunk = string | EncodedEvent;

/**
 * One open stream. It is its own context object (`req`, `res`, `signal`, `lastEventId`, `stream`), so
 * that a stream costs one object beyond the response's writer.
 */
export class SseConnection<D> implements SseStream<D>, SseContext<D>, Ticking, EncodedSink {
  readonly lastEventId: string | undefined;
  readonly #writer: ResponseWriter;
  readonly #streams: TickScheduler;
  readonly #settings: ConnectionSettings;
  #closed: SseCloseReason | undefined;
  /** The SSE head is out: the client saw the stream open. */
  #headSent = false;
  #lastWriteTick: number;
  #blockedSinceTick = -1;
  /** A write returned false and no `'drain'` came yet: only then is the queue measured. */
  #backedUp = false;
  /** A `bufferBytes` below the socket's high-water mark must be checked on every write. */
  #smallBuffer = false;
  /** Set where each event can go to the socket as one framed chunk (see {@link directSocket}). */
  #socket: Socket | undefined;
  /** While backed up: resolves `true` on `'drain'`, `false` once the stream is closed. */
  #drain: Promise<boolean> | undefined;
  #resolveSocketDrain: ((drained: boolean) => void) | undefined;
  /** What teardown lets go of: the stream's source, a hub subscription. */
  #onClosed: Hooks;

  constructor(res: ResponseLike, streams: TickScheduler, settings: ConnectionSettings) {
    this.#writer = new ResponseWriter(res);
    this.#streams = streams;
    this.#settings = settings;
    this.#lastWriteTick = streams.tick;
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
    return this.#closed !== undefined;
  }

  get [closeReason](): SseCloseReason | undefined {
    return this.#closed;
  }

  [whenClosed](hook: Hook): void {
    if (this.#closed) hook();
    else this.#onClosed = withHook(this.#onClosed, hook);
  }

  /**
   * Opens the stream: it counts, hears its client leave and is reached by `closeAll()`. The SSE head
   * goes out at once, so `EventSource.onopen` fires and proxies see the stream start — unless its
   * source holds it (see {@link holdsHead}); then it goes out at the source's word, or with the first
   * byte written, or as the stream ends, whichever comes first.
   */
  start(holdHead = false): void {
    this.#announce();
    // The client left, or the app ended the response itself (its own timeout, an error handler).
    this.#writer.whenAborted(() => this.#teardown(this.#writer.res.writableEnded ? 'server' : 'client'));
    this.#streams.add(this);
    if (!holdHead) this.#commitHead();
  }

  [commitHead](): void {
    if (!this.#closed) this.#commitHead();
  }

  #commitHead(): void {
    if (!this.#writeHead()) return;
    const res = this.#writer.res;
    this.#socket = directSocket(res);
    const { bufferBytes } = this.#settings;
    this.#smallBuffer = bufferBytes !== null && bufferBytes < res.writableHighWaterMark;
    this.#lastWriteTick = this.#streams.tick;
    if (this.#settings.retryMs !== null) this.#put(encodeRetry(jitter(this.#settings.retryMs)));
  }

  /**
   * Ends at once with the SSE head: a HEAD request (no body at all), or admission control past
   * `maxStreams` (a jittered `retry:` first — a 5xx or 429 would make EventSource give up for good).
   */
  endAtOnce(retry: boolean): void {
    this.#announce();
    this.#writeHead();
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
    return this.#paced(encodeEvent(event, this.#settings.serialize), true);
  }

  comment(text: string): boolean {
    if (typeof text !== 'string') {
      throw new TypeError(`SseStream.comment: expected \`text\` to be a string, got ${describeValue(text)}`);
    }
    if (this.#closed) return false;
    void this.#paced(encodeComment(text), true);
    return !this.#closed;
  }

  close(): void {
    this.#teardown('server');
  }

  [deliverLive](event: EncodedEvent): boolean {
    if (this.#closed || !this.#admit(event, false)) return false;
    this.#put(event);
    return true;
  }

  [deliverPaced](event: EncodedEvent): Promise<boolean> {
    if (this.#closed) return resolvedFalse;
    return this.#put(event) ? resolvedTrue : this.#drained();
  }

  /** Graceful shutdown: a jittered `retry:` first, then a clean end; resolves once the response is done. */
  shutdown(retryMs: number): Promise<unknown> {
    if (this.#closed) return this.#writer.settled();
    this.#put(encodeRetry(jitter(retryMs)));
    this.#teardown('server');
    return this.#writer.settled();
  }

  /** After a shutdown's grace period: a response still not handed to the OS is cut off. */
  destroyUnfinished(): void {
    if (!this.#writer.done) this.#writer.res.destroy();
  }

  tick(now: number): void {
    // a held head: nothing written yet, so nothing to keep alive or to wait for
    if (!this.#headSent) return;
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
    if (heartbeatTicks !== null && !blocked && now - this.#lastWriteTick >= heartbeatTicks) {
      this.#put(HEARTBEAT);
    }
  }

  runReadyFunction(ready: SseReadyFunction<D>): void {
    const events = new Channel<SseEventInput<D>>(10);
    // Before `ready` runs: a stream it closes at once must refuse its puts from then on.
    this[whenClosed](() => events.close());
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

  /** Writes every event of the source, paced by the client; the source's end ends the stream. Never rejects. */
  async consume(source: AsyncIterable<SseEventInput<D>>): Promise<void> {
    let iterator: AsyncIterator<SseEventInput<D>> | undefined;
    this[whenClosed](() => releaseIterable(source, iterator));
    if (this.#closed) return;
    try {
      // Inside the try: a source can refuse to be iterated (a locked ReadableStream throws here).
      iterator = source[Symbol.asyncIterator]();
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

  /** A write a producer may await: admitted against `bufferBytes`, resolved once below the high-water mark. */
  #paced(chunk: Chunk, dropAllowed: boolean): Promise<boolean> {
    if (!this.#admit(chunk, dropAllowed)) return resolvedFalse;
    return this.#put(chunk) ? resolvedTrue : this.#drained();
  }

  /**
   * Whether one more chunk keeps this client within `bufferBytes` of unsent bytes; if not, the slow
   * client policy applies (`'drop'` where allowed, else the stream closes as `'slow'`). The queue is
   * read only when it may matter — `writableLength` is slow on Express's re-prototyped `res` — and the
   * cap holds for a first chunk too: one bigger than `bufferBytes` is never queued.
   */
  #admit(chunk: Chunk, dropAllowed: boolean): boolean {
    const { bufferBytes } = this.#settings;
    if (bufferBytes === null) return true;
    const large =
      typeof chunk === 'string' ? chunk.length * 3 > bufferBytes : chunk.bytes.length > bufferBytes;
    if (!this.#backedUp && !this.#smallBuffer && !large) return true;
    const size = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.bytes.length;
    const queued = this.#writer.res.writableLength;
    if (queued + size <= bufferBytes) return true;
    const drop = dropAllowed && this.#settings.onSlowClient === 'drop';
    debug('slow client: %d bytes queued, %d more (%s)', queued, size, drop ? 'event dropped' : 'closing');
    if (!drop) this.#teardown('slow');
    return false;
  }

  /**
   * Writes one chunk now; `false` means the client is backed up. Where it applies (see
   * {@link directSocket}) the chunk goes to the socket framed as one HTTP/1.1 chunk — the same bytes
   * `res.write` would send — skipping Node's per-write corking and Express's megamorphic `res.write`.
   */
  #put(chunk: Chunk): boolean {
    if (!this.#headSent) this.#commitHead();
    this.#lastWriteTick = this.#streams.tick;
    const socket = this.#socket;
    let belowHighWaterMark: boolean;
    if (socket !== undefined) {
      // The app may have ended the response itself: a chunk after its final one would corrupt the next.
      // (`finished` is what `writableEnded` reads: a plain field, where the getter is slow on Express's res.)
      if ((this.#writer.res as unknown as { finished: boolean }).finished) {
        this.#teardown('server');
        return false;
      }
      belowHighWaterMark = socket.write(typeof chunk === 'string' ? frameChunk(chunk) : framedBytes(chunk));
    } else {
      belowHighWaterMark = this.#writer.write(typeof chunk === 'string' ? chunk : chunk.bytes);
    }
    if (!belowHighWaterMark && !this.#closed) this.#noteBackedUp();
    return belowHighWaterMark;
  }

  #drained(): Promise<boolean> {
    return this.#drain ?? (this.#closed !== undefined ? resolvedFalse : resolvedTrue);
  }

  /** One drain wait per backed-up spell, on the socket (framed path) or on `res` (through the writer). */
  #noteBackedUp(): void {
    if (this.#drain !== undefined) return;
    this.#backedUp = true;
    const socket = this.#socket;
    if (socket !== undefined) {
      this.#drain = new Promise<boolean>((resolve) => {
        this.#resolveSocketDrain = resolve;
      });
      socket.once('drain', this.#handleDrain);
    } else {
      this.#drain = this.#writer.drained();
      this.#drain.then(this.#handleDrain);
    }
  }

  readonly #handleDrain = (): void => {
    this.#backedUp = false;
    this.#drain = undefined;
    const resolve = this.#resolveSocketDrain;
    this.#resolveSocketDrain = undefined;
    resolve?.(this.#closed === undefined);
  };

  /** Runs exactly once, whatever the cause: releases the source, the timer slot and the listeners, then tells onClose. */
  #teardown(reason: SseCloseReason, error?: unknown): void {
    if (this.#closed) return;
    this.#closed = reason;
    this.#streams.delete(this);
    const cause = error ?? new Error(`the SSE stream closed (${reason})`);
    this.#writer.abort(cause);
    const closed = this.#onClosed;
    this.#onClosed = undefined;
    runHooks(closed);
    if (this.#resolveSocketDrain !== undefined) {
      this.#socket?.off('drain', this.#handleDrain);
      this.#handleDrain();
    }
    this.#socket = undefined;
    this.#endResponse(reason, cause);
    if (reason === 'error') reportUnheard(error);
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

  /** Writes the SSE head unless it is out already; true if it wrote it. */
  #writeHead(): boolean {
    if (this.#headSent) return false;
    this.#headSent = true;
    writeSseHead(this.#writer.res, this.#settings.headers);
    return true;
  }

  /** Tells diagnostics_channel subscribers (APM agents) that a stream began. */
  #announce(): void {
    if (!channels.sseOpen.hasSubscribers) return;
    channels.sseOpen.publish({ req: this.req, res: this.res, stream: this, lastEventId: this.lastEventId });
  }

  #endResponse(reason: SseCloseReason, cause: unknown): void {
    if (reason === 'client') {
      this.#writer.detach();
      return;
    }
    // A stream that ends before its held head went out still answers as a stream, so that EventSource
    // reconnects: any other answer would make it give up for good.
    this.#writeHead();
    if (reason !== 'server') {
      this.#writer.truncate(cause);
      return;
    }
    void this.#writer.end();
    // A client that stopped reading would hold the ended response (and its socket) forever: the
    // socket's own timeout cuts it off, as Node does for idle sockets with no 'timeout' listener.
    const bound = this.#settings.writeTimeoutMs;
    if (bound !== null && !this.#writer.done) this.#writer.res.setTimeout(bound);
  }
}

function needsDrain(res: ResponseLike): boolean {
  const needDrain = (res as { writableNeedDrain?: boolean }).writableNeedDrain;
  return needDrain ?? res.writableLength >= res.writableHighWaterMark;
}

import { OutgoingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { releaseIterable } from './bodies';
import { Channel } from './channel';
import { createDebug } from './internal/debug';
import { describeValue, ignore, isPlainObject, isPromiseLike } from './internal/util';
import {
  type AnyRequest,
  type AnyResponse,
  asResponse,
  isHttp2,
  type RequestLike,
  type ResponseLike,
} from './response';
import { type Ticking, TickScheduler } from './scheduler';
import {
  defaultSerialize,
  encodeComment,
  encodeEvent,
  encodeRetry,
  type Serialize,
  type SseEventInput,
} from './sse-encoder';
import { GONE, ResponseWriter } from './write-loop';

const debug = createDebug('sse');

/** Why a stream ended: the client left, the app (or its source) ended it, it failed, or it was too slow. */
export type SseCloseReason = 'client' | 'server' | 'error' | 'slow';

/** The handle `res.sse()` returns. Network conditions never throw here: sends resolve `false` instead. */
export interface SseStream<D = unknown> {
  /**
   * Sends one event: an object whose keys are all among `event`, `data`, `id`, `retry`, `comment`, or
   * anything else as the data of an unnamed event. Resolves `true` once the event is handed to the
   * socket below its high-water mark (so a producer that awaits it is paced by its client), `false`
   * once the stream is closed. An invalid event (CR/LF in `event` or `id`, …) throws a `TypeError`.
   */
  send(event: SseEventInput<D>): Promise<boolean>;
  /** Writes a `:` comment (split per line); `false` if the stream is closed. */
  comment(text: string): boolean;
  /** Ends the stream from the server side (`onClose` hears `'server'`); idempotent. */
  close(): void;
  /** The client's `Last-Event-ID` header, or its `lastEventId` query parameter on a first connection. */
  readonly lastEventId: string | undefined;
  /** Aborted when the stream ends, whatever the cause: hand it to producers. */
  readonly signal: AbortSignal;
  readonly closed: boolean;
}

/** What a ready function and `onClose` are handed. */
export interface SseContext<D = unknown> {
  readonly req: AnyRequest;
  readonly res: AnyResponse;
  readonly signal: AbortSignal;
  readonly lastEventId: string | undefined;
  readonly stream: SseStream<D>;
}

/**
 * Pedestal's `start-stream` ready function: it gets a channel to put events on and must return at once
 * while its producer runs; closing the channel ends the stream. If it throws, the stream is torn down.
 */
export type SseReadyFunction<D = unknown> = (
  events: Channel<SseEventInput<D>>,
  ctx: SseContext<D>,
) => void | Promise<void>;

/**
 * The protocol a hub subscription implements to plug into `res.sse()`: it is handed the stream and
 * drives it. `Symbol.for` keeps the ESM and CommonJS builds in agreement.
 */
export const SseSubscription: unique symbol = Symbol.for('express-streaming.SseSubscription') as never;
export interface SseSubscription<D = unknown> {
  [SseSubscription](stream: SseStream<D>, ctx: SseContext<D>): void;
}

/** What `res.sse(source)` accepts: a ready function, a Channel or any AsyncIterable of events, a subscription. */
export type SseSource<D = unknown> =
  | SseReadyFunction<D>
  | AsyncIterable<SseEventInput<D>>
  | SseSubscription<D>;

/** Options of {@link sseChannel}, checked once when the middleware is made; `null` disables. */
export interface SseOptions {
  /** The longest silence a client sees: a `:` comment goes out when nothing else was written for that long. Default `15000`. */
  heartbeatMs?: number | null;
  /** `retry:` sent on connect, jittered per connection (×0.67–1.67) so reconnects spread out. Default `3000`. */
  retryMs?: number | null;
  /** Most unsent bytes one client may have queued before `onSlowClient` applies. Default 1 MiB. */
  bufferBytes?: number | null;
  /** `'close'` (default: the client reconnects and resumes) or `'drop'` (the event is skipped). */
  onSlowClient?: 'close' | 'drop';
  /** Longest time a client may leave written bytes unread before it is closed as slow. Default `30000`. */
  writeTimeoutMs?: number | null;
  /** Turns non-string `data` into text. Default: `JSON.stringify`. */
  serialize?: Serialize;
  /** Extra response headers, set after the SSE defaults. */
  headers?: Readonly<Record<string, string>>;
  /** Most open streams of this middleware; past it a client gets 200, a jittered `retry:` and an end. Default: no limit. */
  maxStreams?: number | null;
  /** Called exactly once for every end of a stream, with why it ended (Pedestal's `on-client-disconnect`). */
  onClose?: (reason: SseCloseReason, ctx: SseContext) => void;
}

/** The options one `res.sse()` call may set for its own stream. */
export type SseStreamOptions = Pick<SseOptions, 'retryMs' | 'serialize' | 'headers' | 'onClose'>;

/** `res.sse` as Connect and node:http users type it once `sseChannel()` is mounted. */
export interface SseResponse {
  sse<D = unknown>(source?: SseSource<D>, options?: SseStreamOptions): SseStream<D>;
}

/** The `sseChannel()` middleware, with graceful shutdown. */
export interface SseMiddleware {
  (req: AnyRequest, res: AnyResponse, next: (error?: unknown) => void): void;
  /** Sends every open stream a jittered `retry:` and ends it, so clients reconnect spread out elsewhere. */
  closeAll(options?: { retryMs?: number }): Promise<void>;
  /** How many streams are open now. */
  readonly size: number;
}

interface Settings {
  readonly heartbeatTicks: number | null;
  readonly deadlineTicks: number | null;
  readonly retryMs: number | null;
  readonly bufferBytes: number | null;
  readonly dropSlowEvents: boolean;
  readonly serialize: Serialize;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly maxStreams: number | null;
  readonly onClose: SseOptions['onClose'];
}

const DEFAULT_RETRY_MS = 3000;
const HEARTBEAT = encodeComment('');
const TRUE = Promise.resolve(true);
const FALSE = Promise.resolve(false);
let warnedAboutReplacedSse = false;

/**
 * Adds `res.sse(source?, options?)`: a Server-Sent Events stream with spec-exact encoding, heartbeats
 * from one shared timer, per-client buffering limits, resume ids, and a teardown that runs exactly once.
 * @example app.get('/counter', (req, res) => res.sse((events) => { … events.put({ event: 'counter', data: i }) … }))
 */
export function sseChannel(options: SseOptions = {}): SseMiddleware {
  const heartbeatMs = checkDuration(options.heartbeatMs, 'heartbeatMs', 15_000);
  const writeTimeoutMs = checkDuration(options.writeTimeoutMs, 'writeTimeoutMs', 30_000);
  const periods = [heartbeatMs, writeTimeoutMs].filter((ms): ms is number => ms !== null).map((ms) => ms / 2);
  const periodMs = periods.length > 0 ? Math.max(1, Math.min(...periods)) : null;
  const onSlowClient = options.onSlowClient ?? 'close';
  if (onSlowClient !== 'close' && onSlowClient !== 'drop') {
    throw new TypeError(
      `sseChannel: expected \`onSlowClient\` to be 'close' or 'drop', got ${describeValue(onSlowClient)}`,
    );
  }
  const base = checkStreamOptions(options, 'sseChannel');
  const settings: Settings = {
    // heartbeat after n whole ticks of silence: the silence a client sees is then at most n × period
    heartbeatTicks: heartbeatMs === null || periodMs === null ? null : Math.floor(heartbeatMs / periodMs),
    deadlineTicks: writeTimeoutMs === null || periodMs === null ? null : Math.ceil(writeTimeoutMs / periodMs),
    retryMs: base.retryMs === undefined ? DEFAULT_RETRY_MS : base.retryMs,
    bufferBytes: checkCount(options.bufferBytes, 'bufferBytes', 1024 * 1024, 1),
    dropSlowEvents: onSlowClient === 'drop',
    serialize: base.serialize ?? defaultSerialize,
    headers: base.headers ?? [],
    maxStreams: checkCount(options.maxStreams, 'maxStreams', null, 0),
    onClose: base.onClose,
  };
  const streams = new TickScheduler(periodMs);

  function sse<D>(this: AnyResponse, source?: SseSource<D>, callOptions?: SseStreamOptions): SseStream<D> {
    return openStream(asResponse(this), streams, withCallOptions(settings, callOptions), source);
  }

  const middleware = function sseChannel(
    _req: AnyRequest,
    res: AnyResponse,
    next: (error?: unknown) => void,
  ) {
    const current = (res as Partial<SseResponse>).sse;
    if (current !== undefined && current !== sse && !isOurs(current)) warnReplacedSse();
    (res as unknown as SseResponse).sse = sse;
    next();
  } as SseMiddleware;
  Object.defineProperty(sse, OURS, { value: true });
  Object.defineProperties(middleware, {
    size: { get: () => streams.size },
    closeAll: {
      value: (shutdown: { retryMs?: number } = {}) => {
        const retryMs = checkCount(
          shutdown.retryMs,
          'retryMs',
          settings.retryMs ?? DEFAULT_RETRY_MS,
          0,
          'sseChannel.closeAll',
        );
        const ended = [...streams.members()].map((stream) =>
          (stream as SseConnection<unknown>).shutdown(retryMs),
        );
        return Promise.all(ended).then(ignore);
      },
    },
  });
  return middleware;
}

const OURS = Symbol('express-streaming.sse');
function isOurs(value: unknown): boolean {
  return typeof value === 'function' && (value as unknown as Record<symbol, unknown>)[OURS] === true;
}

function warnReplacedSse(): void {
  if (warnedAboutReplacedSse) return;
  warnedAboutReplacedSse = true;
  process.emitWarning(
    'res.sse was already set by another library; sseChannel() replaces it on the responses it handles',
    {
      code: 'EXPRESS_STREAMING_SSE_REPLACED',
    },
  );
}

function openStream<D>(
  res: ResponseLike,
  streams: TickScheduler,
  settings: Settings,
  source: SseSource<D> | undefined,
): SseStream<D> {
  if (res.headersSent) {
    throw new TypeError(
      'res.sse: the response head was already sent; call res.sse() before writing anything',
    );
  }
  const attach = sourceAttacher(source);
  const stream = new SseConnection<D>(res, streams, settings);
  if (settings.maxStreams !== null && streams.size >= settings.maxStreams) {
    stream.turnAway();
    attach.dispose();
    return stream;
  }
  stream.start();
  attach.start(stream);
  return stream;
}

/** How a source feeds a stream; validated before the response head goes out. */
function sourceAttacher<D>(source: SseSource<D> | undefined): {
  start(stream: SseConnection<D>): void;
  dispose(): void;
} {
  if (source === undefined || source === null) return { start: ignore, dispose: ignore };
  if (typeof (source as Partial<SseSubscription<D>>)[SseSubscription] === 'function') {
    const subscription = source as SseSubscription<D>;
    return { start: (stream) => stream.runSubscription(subscription), dispose: ignore };
  }
  if (typeof (source as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function') {
    const iterable = source as AsyncIterable<SseEventInput<D>>;
    return {
      start: (stream) => stream.consume(iterable),
      dispose: () => releaseIterable(iterable, undefined),
    };
  }
  if (typeof source === 'function') {
    const ready = source as SseReadyFunction<D>;
    return { start: (stream) => stream.runReadyFunction(ready), dispose: ignore };
  }
  throw new TypeError(
    `res.sse: expected the source to be a function (events, ctx), a Channel or AsyncIterable of events, or a hub subscription, got ${describeValue(source)}`,
  );
}

/**
 * One open stream. It is its own context object (`req`, `res`, `signal`, `lastEventId`, `stream`), so
 * that a stream costs one object beyond the response's writer.
 */
class SseConnection<D> implements SseStream<D>, SseContext<D>, Ticking {
  readonly lastEventId: string | undefined;
  readonly #writer: ResponseWriter;
  readonly #streams: TickScheduler;
  readonly #settings: Settings;
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

  constructor(res: ResponseLike, streams: TickScheduler, settings: Settings) {
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
    writeHead(res, this.#settings);
    this.#socket = directSocket(res);
    const { bufferBytes } = this.#settings;
    this.#smallBuffer = bufferBytes !== null && bufferBytes < res.writableHighWaterMark;
    this.#writer.onAbort = () => this.#teardown('client');
    this.#streams.add(this);
    if (this.#settings.retryMs !== null) this.#write(encodeRetry(jitter(this.#settings.retryMs)));
  }

  /** Admission control: 200, a jittered `retry:` and an end — a 5xx or 429 would make EventSource give up for good. */
  turnAway(): void {
    writeHead(this.#writer.res, this.#settings);
    this.#write(encodeRetry(jitter(this.#settings.retryMs ?? DEFAULT_RETRY_MS)));
    this.#teardown('server');
  }

  send(event: SseEventInput<D>): Promise<boolean> {
    if (this.#closed) return FALSE;
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
    if (this.#closed) return FALSE;
    // Below the high-water mark the queue is small: read `writableLength` (slow on Express's
    // re-prototyped res) only while the socket is backed up.
    if ((this.#backedUp || this.#smallBuffer) && this.#overBufferBytes(text)) {
      if (this.#settings.dropSlowEvents) return FALSE;
      this.#teardown('slow');
      return FALSE;
    }
    this.#lastWriteTick = this.#streams.now;
    const socket = this.#socket;
    if (socket !== undefined) return this.#writeFramed(socket, text);
    if (this.#writer.write(text)) return TRUE;
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
        this.#settings.dropSlowEvents ? 'event dropped' : 'closing',
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
    if (socket.write(`${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`)) return TRUE;
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

function writeHead(res: ResponseLike, settings: Settings): void {
  res.statusCode = 200;
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
  if (!res.hasHeader('cache-control')) res.setHeader('Cache-Control', 'no-cache, no-transform');
  if (!res.hasHeader('x-accel-buffering')) res.setHeader('X-Accel-Buffering', 'no');
  res.removeHeader('content-length');
  const http1 = !isHttp2(res.req);
  // Connection is forbidden on HTTP/2, and its socket is the whole session's: socket calls are HTTP/1-only.
  if (http1) res.setHeader('Connection', 'keep-alive');
  for (const [name, value] of settings.headers) res.setHeader(name, value);
  res.setTimeout(0);
  if (http1) res.socket?.setNoDelay(true);
  res.flushHeaders();
}

/**
 * The socket an event may be written to directly, as one framed HTTP/1.1 chunk — only where that is
 * byte for byte what `res.write` would do: HTTP/1.1 with chunked coding chosen by Node, `res.write`
 * not patched (compression and the like fall back to it), the socket this response's own, and nothing
 * queued inside `res` ahead of it. HTTP/1.0 and HTTP/2 always use `res.write`.
 */
function directSocket(res: ResponseLike): Socket | undefined {
  const socket = res.socket;
  const eligible =
    socket !== null &&
    !socket.destroyed &&
    res.req.httpVersionMajor === 1 &&
    res.req.httpVersionMinor === 1 &&
    (res as { chunkedEncoding?: boolean }).chunkedEncoding === true &&
    res.write === OutgoingMessage.prototype.write &&
    res.writableLength === socket.writableLength;
  return eligible ? socket : undefined;
}

function readLastEventId(req: RequestLike): string | undefined {
  const header = req.headers['last-event-id'];
  if (typeof header === 'string') return header;
  const url = req.url ?? '';
  if (!url.includes('lastEventId=')) return undefined;
  return new URL(url, 'http://localhost').searchParams.get('lastEventId') ?? undefined;
}

function needsDrain(res: ResponseLike): boolean {
  const needDrain = (res as { writableNeedDrain?: boolean }).writableNeedDrain;
  return needDrain ?? res.writableLength >= res.writableHighWaterMark;
}

/** Spreads reconnects: each connection gets ×0.67–1.67 of the base. */
function jitter(ms: number): number {
  return Math.round(ms * (2 / 3 + Math.random()));
}

function withCallOptions(settings: Settings, options: SseStreamOptions | undefined): Settings {
  if (options === undefined) return settings;
  const call = checkStreamOptions(options, 'res.sse');
  return {
    ...settings,
    retryMs: call.retryMs === undefined ? settings.retryMs : call.retryMs,
    serialize: call.serialize ?? settings.serialize,
    headers: call.headers ? [...settings.headers, ...call.headers] : settings.headers,
    onClose: call.onClose ?? settings.onClose,
  };
}

function checkStreamOptions(
  options: SseStreamOptions,
  owner: string,
): {
  retryMs: number | null | undefined;
  serialize: Serialize | undefined;
  headers: Array<[string, string]> | undefined;
  onClose: SseOptions['onClose'];
} {
  if (!isPlainObject(options)) {
    throw new TypeError(`${owner}: expected options to be an object, got ${describeValue(options)}`);
  }
  const { serialize, headers, onClose } = options;
  if (serialize !== undefined && typeof serialize !== 'function') {
    throw new TypeError(`${owner}: expected \`serialize\` to be a function, got ${describeValue(serialize)}`);
  }
  if (onClose !== undefined && typeof onClose !== 'function') {
    throw new TypeError(`${owner}: expected \`onClose\` to be a function, got ${describeValue(onClose)}`);
  }
  let headerList: Array<[string, string]> | undefined;
  if (headers !== undefined) {
    if (!isPlainObject(headers)) {
      throw new TypeError(
        `${owner}: expected \`headers\` to be an object of strings, got ${describeValue(headers)}`,
      );
    }
    headerList = Object.entries(headers).map(([name, value]) => {
      if (typeof value !== 'string') {
        throw new TypeError(
          `${owner}: expected header \`${name}\` to be a string, got ${describeValue(value)}`,
        );
      }
      return [name, value];
    });
  }
  return {
    retryMs:
      options.retryMs === undefined ? undefined : checkCount(options.retryMs, 'retryMs', null, 0, owner),
    serialize,
    headers: headerList,
    onClose,
  };
}

function checkDuration(value: unknown, name: string, fallback: number): number | null {
  if (value === undefined) return fallback;
  if (value === null) return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new TypeError(
      `sseChannel: expected \`${name}\` to be a positive number of milliseconds or null, got ${describeValue(value)}`,
    );
  }
  return value;
}

function checkCount<F extends number | null>(
  value: unknown,
  name: string,
  fallback: F,
  min: number,
  owner = 'sseChannel',
): number | F {
  if (value === undefined) return fallback;
  if (value === null) return null as F;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new TypeError(
      `${owner}: expected \`${name}\` to be an integer of at least ${min} or null, got ${describeValue(value)}`,
    );
  }
  return value;
}

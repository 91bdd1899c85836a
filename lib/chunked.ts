import { createDebug } from './internal/debug';
import { describeValue } from './internal/util';
import {
  type AnyRequest,
  type AnyResponse,
  asResponse,
  isBodyless,
  isHttp2,
  isResponseGone,
  type RequestLike,
  type ResponseLike,
} from './response';
import { ResponseWriter, toChunk } from './write-loop';

const debug = createDebug('chunked');

/** The window {@link ChunkedOptions.coalesce} gathers small chunks in. */
export interface CoalesceOptions {
  /**
   * The longest a chunk may wait for others before it is written, in milliseconds. `0` gathers the
   * chunks of one turn of the event loop. Default: `10`.
   */
  maxDelayMs?: number;
  /** Gathered bytes that are written at once, without waiting for the delay. Default: `16384`. */
  maxBytes?: number;
}

/** Options of {@link chunked}, checked once when the middleware is made. */
export interface ChunkedOptions {
  /**
   * Trailer names announced (in a `Trailer` header) on every response streamed with `res.chunk()`,
   * so that `res.setTrailer()` may set them after the headers went out. A name may also be declared
   * per response by calling `res.setTrailer()` before the first chunk. Names are matched
   * case-insensitively; fields that frame, route or control the message (`Content-Length`,
   * `Transfer-Encoding`, `Host`, …) are refused. Default: `[]`.
   * @example chunked({ trailers: ['x-checksum'] })
   */
  trailers?: readonly string[];
  /**
   * Sends `Cache-Control: no-transform` from the first chunk, unless the app set its own
   * `Cache-Control`, so proxies and `compression()` leave the stream as it is. Give `false` to let
   * `compression()` compress the stream (it is then flushed after every chunk). Default: `true`.
   */
  noTransform?: boolean;
  /**
   * Gathers small chunks (an LLM's tokens, say) into one write: what arrives within `maxDelayMs` of
   * the first gathered chunk, or until `maxBytes` are gathered, goes out as one chunk. Gathered
   * chunks resolve `true` at once; the window is written before `res.end()` ends the response.
   * While it is on, write the body through `res.chunk()` only. Default: `null` (every chunk is
   * written as it comes).
   * @example chunked({ coalesce: { maxDelayMs: 20, maxBytes: 8192 } })
   */
  coalesce?: CoalesceOptions | null;
}

/** What `chunked()` adds to a response; Connect and node:http users type their `res` with it. */
export interface ChunkedResponse {
  /**
   * Writes `data` as one chunk now (flushed through `compression()` when it is there). Resolves
   * `true` once the response accepted it — after `'drain'` when the client reads slower than the app
   * writes — and `false` once the client is gone or the response has ended: stop producing then.
   * The promise never rejects; `data` that is not a string or a Uint8Array throws a `TypeError` at
   * the call. An empty chunk only commits the headers.
   */
  chunk(data: string | Uint8Array): Promise<boolean>;
  /**
   * Sets a trailer field, sent after the last chunk. Returns `false`, dropping it quietly, where the
   * request or the status rules trailers out (HEAD, an HTTP/1.0 client, 1xx/204/304) or the response
   * is over; throws a `TypeError` where the app's own doing does (its own `Content-Length`, a name not
   * declared before the headers went out, a bad name or value). On node:http2's compatibility API
   * `res.setTrailer` is Node's own and is left as it is.
   */
  setTrailer(name: string, value: string): boolean;
}

type Next = (error?: unknown) => void;
type Middleware = (req: AnyRequest, res: AnyResponse, next: Next) => void;

interface Config {
  readonly trailers: readonly string[];
  readonly noTransform: boolean;
  readonly coalesce: { readonly maxDelayMs: number; readonly maxBytes: number } | null;
}

const STATE = Symbol('express-streaming.chunked');
type WithState = { [STATE]?: ChunkedStream };

// Shared settled promises: the common, unblocked path allocates nothing per chunk.
const ACCEPTED: Promise<boolean> = Promise.resolve(true);
const REFUSED: Promise<boolean> = Promise.resolve(false);

/**
 * Adds `res.chunk(data)` and `res.setTrailer(name, value)` (see {@link ChunkedResponse}): flushed
 * chunked transfer with backpressure and trailers.
 *
 * Nothing changes on a response until its first `res.chunk()`, so `res.json()` and `res.sendFile()`
 * routes behave as before. The first chunk commits the headers with `X-Accel-Buffering: no` (unless
 * set), `Cache-Control: no-transform` (see {@link ChunkedOptions.noTransform}) and the `Trailer`
 * header, and turns Nagle off on HTTP/1. The app ends the response with `res.end()` as usual.
 * HTTP/1.0 clients get a close-delimited body; HTTP/2 streams get the same `res.chunk()`.
 * @example
 * app.use(chunked({ trailers: ['x-checksum'] }));
 * app.get('/export', async (req, res) => {
 *   const hash = createHash('sha256');
 *   for await (const row of rows()) {
 *     hash.update(row);
 *     if (!(await res.chunk(row))) return; // the client left
 *   }
 *   res.setTrailer('x-checksum', hash.digest('hex'));
 *   res.end();
 * });
 */
export function chunked(options: ChunkedOptions = {}): Middleware {
  const config = checkOptions(options);
  // One method per middleware, shared by every response: per-response state lives on `res`.
  function chunk(this: AnyResponse, data: string | Uint8Array): Promise<boolean> {
    const bytes = toChunk(data, 'res.chunk: data');
    return streamOf(asResponse(this), config).chunk(bytes);
  }
  function setTrailer(this: AnyResponse, name: string, value: string): boolean {
    return streamOf(asResponse(this), config).setTrailer(name, value);
  }
  return function chunked(req, res, next) {
    const decorated = res as unknown as ChunkedResponse;
    decorated.chunk = chunk;
    // Http2ServerResponse has a setTrailer of its own, which already works: keep it.
    if (!isHttp2(req as unknown as RequestLike)) decorated.setTrailer = setTrailer;
    next();
  };
}

function streamOf(res: ResponseLike, config: Config): ChunkedStream {
  const holder = res as ResponseLike & WithState;
  let stream = holder[STATE];
  if (stream === undefined) {
    stream = new ChunkedStream(res, config);
    holder[STATE] = stream;
  }
  return stream;
}

/**
 * Where a response stands with trailers: names and values are `collecting` until the first chunk
 * (or until the app commits the headers itself); then the `Trailer` header is `open` with the
 * announced names, or trailers were `dropped` (request or status rules them out), or the body is
 * `length`-delimited by the app's own Content-Length.
 */
type TrailerPhase = 'collecting' | 'open' | 'dropped' | 'length';

/** The state of one response that `res.chunk()` or `res.setTrailer()` was called on. */
class ChunkedStream {
  readonly res: ResponseLike;
  readonly #config: Config;
  #writer: ResponseWriter | undefined;
  #window: CoalescingWindow | undefined;
  #originalEnd: ((...args: unknown[]) => unknown) | undefined;
  #ended = false;
  #bodyless = false;
  #phase: TrailerPhase = 'collecting';
  #names: Set<string> | undefined;
  #values: Record<string, string> | undefined;

  constructor(res: ResponseLike, config: Config) {
    this.res = res;
    this.#config = config;
  }

  chunk(bytes: string | Uint8Array): Promise<boolean> {
    const res = this.res;
    // A write after the end is refused like a gone client: a producer racing the app's own res.end()
    // (a timeout, an error handler) must stop, not crash; compression() answers such writes with
    // false too.
    if (this.#ended || res.writableEnded) {
      debug('res.chunk() after the response ended: refused');
      return REFUSED;
    }
    let writer = this.#writer;
    if (writer === undefined) {
      if (isResponseGone(res)) {
        debug('res.chunk() after the client went away: refused');
        return REFUSED;
      }
      writer = this.#start();
    }
    if (writer.gone) return REFUSED;
    // HEAD, 204 and 304 carry no body: the chunk is accepted and dropped, as Node itself would.
    if (this.#bodyless) return ACCEPTED;
    if (bytes.length === 0) {
      // Writing nothing would still commit the head; do that on purpose and leave the body alone.
      if (!res.headersSent) res.flushHeaders();
      return ACCEPTED;
    }
    if (this.#window) return this.#window.add(bytes);
    return this.write(bytes);
  }

  /** Writes through the shared write path; backpressure turns into a wait for `'drain'`. */
  write(bytes: string | Uint8Array): Promise<boolean> {
    const writer = this.#writer!;
    if (writer.write(bytes)) return ACCEPTED;
    // The writer wakes a drain wait with false whenever the response is over (HTTP/2 never drains
    // after a cancel, a finished response may never drain either).
    return writer.drained().then((drained) => {
      if (drained) return !writer.gone;
      // Woken without a drain, the response is over: a chunk written before a clean end went out with it.
      if (writer.gone) return false;
      return writer.settled().then((outcome) => outcome === 'finished');
    });
  }

  get gone(): boolean {
    return this.#writer?.gone === true;
  }

  setTrailer(name: unknown, value: unknown): boolean {
    const key = checkTrailerName(name, 'res.setTrailer: name');
    checkTrailerValue(key, value);
    const res = this.res;
    if (this.#ended || res.writableEnded || this.gone || isResponseGone(res)) {
      debug('trailer %s dropped: the response is over', key);
      return false;
    }
    if (this.#phase === 'collecting' && res.headersSent) this.#settleTrailersAfterHeaders();
    switch (this.#phase) {
      case 'collecting': {
        const ruledOut = trailersRuledOut(res);
        if (ruledOut !== undefined) {
          debug('trailer %s dropped: %s', key, ruledOut);
          return false;
        }
        if (res.hasHeader('content-length')) throw contentLengthError(key);
        this.#names ??= new Set();
        this.#names.add(key);
        this.#values ??= {};
        this.#values[key] = value;
        return true;
      }
      case 'dropped':
        debug('trailer %s dropped: this response cannot carry trailers', key);
        return false;
      case 'length':
        throw contentLengthError(key);
      case 'open': {
        if (!this.#names?.has(key)) throw undeclaredError(key);
        this.#values ??= {};
        this.#values[key] = value;
        // Node keeps them until the final chunk, whoever calls res.end(): nothing else to hook.
        res.addTrailers!(this.#values);
        return true;
      }
    }
  }

  /** Runs `res.end(...)` for the app: the window goes out first, then the final chunk. */
  end(args: unknown[]): unknown {
    if (!this.#ended) {
      this.#ended = true;
      const window = this.#window;
      if (window !== undefined) {
        if (this.gone) window.discard();
        else void window.flush();
      }
    }
    return this.#originalEnd!.apply(this.res, args);
  }

  /** The first chunk: decide trailers, set the streaming headers, and start watching the response. */
  #start(): ResponseWriter {
    const res = this.res;
    const http2 = isHttp2(res.req);
    if (!res.headersSent) {
      // Trailers first: a TypeError must leave the response as the app had it.
      if (!http2) this.#announceTrailers();
      if (!res.hasHeader('x-accel-buffering')) res.setHeader('X-Accel-Buffering', 'no');
      if (this.#config.noTransform && !res.hasHeader('cache-control')) {
        res.setHeader('Cache-Control', 'no-transform');
      }
    } else if (!http2) {
      this.#settleTrailersAfterHeaders();
    }
    // Node >= 18 servers default to noDelay, custom ones may not; on HTTP/2 the socket is the session's.
    if (!http2) res.socket?.setNoDelay(true);
    this.#bodyless = isBodyless(res);
    const writer = new ResponseWriter(res);
    this.#writer = writer;
    const coalesce = this.#config.coalesce;
    if (coalesce !== null) {
      const window = new CoalescingWindow(this, coalesce.maxDelayMs, coalesce.maxBytes);
      this.#window = window;
      writer.onAbort = () => window.discard();
    }
    // A gathered first chunk or a bodyless response writes nothing yet: commit the head anyway.
    if (!res.headersSent && (this.#bodyless || this.#window)) res.flushHeaders();
    // Hooked from the first chunk only, so other responses keep their own res.end. Captured now so
    // that compression()'s res.end, mounted before or after us, is the one called.
    this.#originalEnd = res.end as (...args: unknown[]) => unknown;
    (res as { end: unknown }).end = endThroughChunked;
    return writer;
  }

  /** Headers not out yet (HTTP/1): announce the declared names, or decide that there will be none. */
  #announceTrailers(): void {
    const res = this.res;
    if (this.#dropIfRuledOut()) return;
    if (res.hasHeader('content-length')) {
      if (this.#values !== undefined) throw contentLengthError(Object.keys(this.#values).join(', '));
      this.#phase = 'length';
      return;
    }
    const names = new Set([
      ...this.#config.trailers,
      ...(this.#names ?? []),
      ...headerNames(res.getHeader('trailer')),
    ]);
    this.#names = names;
    this.#phase = 'open';
    if (names.size === 0) return;
    res.setHeader('Trailer', [...names].join(', '));
    if (this.#values !== undefined) res.addTrailers!(this.#values);
  }

  /** The app committed the head itself: only what its `Trailer` header announced can follow. */
  #settleTrailersAfterHeaders(): void {
    const res = this.res;
    if (this.#dropIfRuledOut()) return;
    if ((res as { chunkedEncoding?: boolean }).chunkedEncoding !== true) {
      if (!res.hasHeader('content-length')) {
        debug('trailers dropped: the response is not chunked');
        this.#drop();
        return;
      }
      this.#phase = 'length';
      if (this.#values !== undefined) throw contentLengthError(Object.keys(this.#values).join(', '));
      return;
    }
    const announced = new Set(headerNames(res.getHeader('trailer')));
    const values = this.#values;
    this.#names = announced;
    this.#phase = 'open';
    if (values === undefined) return;
    for (const name of Object.keys(values)) {
      if (!announced.has(name)) {
        this.#values = undefined;
        throw undeclaredError(name);
      }
    }
    res.addTrailers!(values);
  }

  /** Drops trailers quietly where the request or the status rules them out; true if it did. */
  #dropIfRuledOut(): boolean {
    const ruledOut = trailersRuledOut(this.res);
    if (ruledOut === undefined) return false;
    if (this.#names !== undefined) debug('trailers %s dropped: %s', [...this.#names].join(', '), ruledOut);
    this.#drop();
    return true;
  }

  #drop(): void {
    this.#phase = 'dropped';
    this.#names = undefined;
    this.#values = undefined;
  }
}

/** Stands in for `res.end` once a response has chunks; shared by all of them, like the methods. */
function endThroughChunked(this: ResponseLike & WithState, ...args: unknown[]): unknown {
  return this[STATE]!.end(args);
}

/**
 * Gathers small chunks and writes them as one, after `maxDelayMs` or at `maxBytes`, whichever is
 * first. Held bytes are copies: a gathered chunk resolves at once, so its caller may reuse its buffer.
 */
class CoalescingWindow {
  readonly #stream: ChunkedStream;
  readonly #maxDelayMs: number;
  readonly #maxBytes: number;
  #parts: Buffer[] = [];
  #size = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(stream: ChunkedStream, maxDelayMs: number, maxBytes: number) {
    this.#stream = stream;
    this.#maxDelayMs = maxDelayMs;
    this.#maxBytes = maxBytes;
  }

  add(data: string | Uint8Array): Promise<boolean> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (this.#size === 0 && bytes.byteLength >= this.#maxBytes) return this.#stream.write(bytes);
    this.#parts.push(typeof data === 'string' ? (bytes as Buffer) : Buffer.from(bytes));
    this.#size += bytes.byteLength;
    if (this.#size >= this.#maxBytes) return this.flush();
    this.#timer ??= setTimeout(this.#onTimer, this.#maxDelayMs);
    return ACCEPTED;
  }

  flush(): Promise<boolean> {
    this.#clearTimer();
    if (this.#size === 0) return ACCEPTED;
    const parts = this.#parts;
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.#size);
    this.#parts = [];
    this.#size = 0;
    return this.#stream.write(data);
  }

  discard(): void {
    this.#clearTimer();
    this.#parts = [];
    this.#size = 0;
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    if (this.#stream.gone) this.discard();
    // Whoever waits on the drain is the next chunk past the window; this flush has no caller.
    else void this.flush();
  };

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** Why the request or the status rules trailers out, if they do: these are dropped quietly. */
function trailersRuledOut(res: ResponseLike): string | undefined {
  const req = res.req;
  if (req.method === 'HEAD') return 'a HEAD response has no body';
  // Node answers HTTP/1.0 with a close-delimited body (and would throw ERR_HTTP_TRAILER_INVALID).
  if (
    (req.httpVersionMajor === 1 && req.httpVersionMinor === 0) ||
    (res as { useChunkedEncodingByDefault?: boolean }).useChunkedEncodingByDefault === false
  ) {
    return 'an HTTP/1.0 client gets a close-delimited body, which has no trailers';
  }
  if (isBodyless(res)) return `a ${res.statusCode} response has no body`;
  return undefined;
}

function headerNames(value: number | string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const joined = Array.isArray(value) ? value.join(',') : String(value);
  return joined
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== '');
}

function contentLengthError(names: string): TypeError {
  return new TypeError(
    `res.setTrailer: cannot send trailer ${names}: the app set Content-Length, so the body is not ` +
      'chunked and has no trailers; remove Content-Length to use trailers',
  );
}

function undeclaredError(name: string): TypeError {
  return new TypeError(
    `res.setTrailer: trailer ${name} was not announced before the headers went out; declare it with ` +
      `chunked({ trailers: ['${name}'] }) or call res.setTrailer() before the first res.chunk()`,
  );
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const INVALID_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;

/** RFC 9110 section 6.5.1: fields that frame, route, authenticate or control the message are no trailers. */
const FORBIDDEN_TRAILERS = new Set([
  'authorization',
  'cache-control',
  'connection',
  'content-encoding',
  'content-length',
  'content-range',
  'content-type',
  'host',
  'keep-alive',
  'proxy-authorization',
  'set-cookie',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

function checkTrailerName(name: unknown, what: string): string {
  if (typeof name !== 'string' || !TOKEN.test(name)) {
    throw new TypeError(`${what} must be a header name (an RFC 9110 token), got ${describeValue(name)}`);
  }
  const key = name.toLowerCase();
  if (FORBIDDEN_TRAILERS.has(key)) {
    throw new TypeError(
      `${what} must not be ${key}: it frames, routes or controls the message, so it cannot be a trailer`,
    );
  }
  return key;
}

function checkTrailerValue(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || INVALID_VALUE_CHAR.test(value)) {
    throw new TypeError(
      `res.setTrailer: the value of ${name} must be a string without CR, LF or other control ` +
        `characters, got ${describeValue(value)}`,
    );
  }
}

function checkOptions(options: ChunkedOptions): Config {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`chunked: expected options to be an object, got ${describeValue(options)}`);
  }
  const { trailers = [], noTransform = true, coalesce = null } = options;
  if (!Array.isArray(trailers)) {
    throw new TypeError(
      `chunked: expected \`trailers\` to be an array of header names, got ${describeValue(trailers)}`,
    );
  }
  const names = [
    ...new Set(trailers.map((name: unknown, i) => checkTrailerName(name, `chunked: \`trailers[${i}]\``))),
  ];
  if (typeof noTransform !== 'boolean') {
    throw new TypeError(
      `chunked: expected \`noTransform\` to be a boolean, got ${describeValue(noTransform)}`,
    );
  }
  return { trailers: names, noTransform, coalesce: checkCoalesce(coalesce) };
}

function checkCoalesce(coalesce: unknown): Config['coalesce'] {
  if (coalesce === null) return null;
  if (typeof coalesce !== 'object' || Array.isArray(coalesce)) {
    throw new TypeError(
      `chunked: expected \`coalesce\` to be { maxDelayMs, maxBytes } or null, got ${describeValue(coalesce)}`,
    );
  }
  const { maxDelayMs = 10, maxBytes = 16384 } = coalesce as CoalesceOptions;
  if (typeof maxDelayMs !== 'number' || !Number.isFinite(maxDelayMs) || maxDelayMs < 0) {
    throw new TypeError(
      `chunked: expected \`coalesce.maxDelayMs\` to be a finite number >= 0, got ${describeValue(maxDelayMs)}`,
    );
  }
  if (typeof maxBytes !== 'number' || !Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new TypeError(
      `chunked: expected \`coalesce.maxBytes\` to be an integer >= 1, got ${describeValue(maxBytes)}`,
    );
  }
  return { maxDelayMs, maxBytes };
}

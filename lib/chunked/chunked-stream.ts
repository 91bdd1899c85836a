import { createDebug } from '../core/debug';
import { isBodyless, isHttp2, isResponseGone, type ResponseLike } from '../core/response';
import { resolvedFalse, resolvedTrue } from '../core/util';
import { ResponseWriter } from '../core/writer';
import { CoalescingWindow } from './coalesce';
import {
  checkTrailerName,
  checkTrailerValue,
  contentLengthError,
  headerNames,
  trailersRuledOut,
  undeclaredError,
} from './trailers';

const debug = createDebug('chunked');

/** What `chunked()` was configured with, checked. */
export interface Config {
  readonly trailers: readonly string[];
  readonly noTransform: boolean;
  readonly coalesce: { readonly maxDelayMs: number; readonly maxBytes: number } | null;
}

const STATE = Symbol('express-streaming.chunked');
type WithState = { [STATE]?: ChunkedStream };

export function streamOf(res: ResponseLike, config: Config): ChunkedStream {
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
export class ChunkedStream {
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
      return resolvedFalse;
    }
    let writer = this.#writer;
    if (writer === undefined) {
      if (isResponseGone(res)) {
        debug('res.chunk() after the client went away: refused');
        return resolvedFalse;
      }
      writer = this.#start();
    }
    if (writer.gone) return resolvedFalse;
    // HEAD, 204 and 304 carry no body: the chunk is accepted and dropped, as Node itself would.
    if (this.#bodyless) return resolvedTrue;
    if (bytes.length === 0) {
      // Writing nothing would still commit the head; do that on purpose and leave the body alone.
      if (!res.headersSent) res.flushHeaders();
      return resolvedTrue;
    }
    if (this.#window) return this.#window.add(bytes);
    return this.write(bytes);
  }

  /** Writes through the shared write path; backpressure turns into a wait for `'drain'`. */
  write(bytes: string | Uint8Array): Promise<boolean> {
    const writer = this.#writer!;
    if (writer.write(bytes)) return resolvedTrue;
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
      this.#writer?.willEnd();
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
      writer.whenAborted(() => window.discard());
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
    if (res.chunkedEncoding !== true) {
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

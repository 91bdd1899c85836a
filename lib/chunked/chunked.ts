import { answeredAsUncalledFactory } from '../core/misuse';
import { checkOptionsObject, MAX_TIMER_MS, optionError } from '../core/options';
import { type AnyRequest, type AnyResponse, asResponse, isHttp2, type RequestLike } from '../core/response';
import { toChunk } from '../core/write-loop';
import { type Config, streamOf } from './chunked-stream';
import { checkTrailerName } from './trailers';

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
export function chunked(options?: ChunkedOptions): Middleware;
export function chunked(...args: unknown[]): Middleware | undefined {
  if (answeredAsUncalledFactory('chunked', args)) return undefined;
  const config = checkOptions((args[0] === undefined ? {} : args[0]) as ChunkedOptions);
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

const OWNER = 'chunked';

function checkOptions(options: ChunkedOptions): Config {
  checkOptionsObject(options, OWNER);
  const { trailers = [], noTransform = true, coalesce = null } = options;
  if (!Array.isArray(trailers)) throw optionError(OWNER, 'trailers', 'an array of header names', trailers);
  const names = [
    ...new Set(trailers.map((name: unknown, i) => checkTrailerName(name, `chunked: \`trailers[${i}]\``))),
  ];
  if (typeof noTransform !== 'boolean') throw optionError(OWNER, 'noTransform', 'a boolean', noTransform);
  return { trailers: names, noTransform, coalesce: checkCoalesce(coalesce) };
}

function checkCoalesce(coalesce: unknown): Config['coalesce'] {
  if (coalesce === null) return null;
  if (typeof coalesce !== 'object' || Array.isArray(coalesce)) {
    throw optionError(OWNER, 'coalesce', '{ maxDelayMs, maxBytes } or null', coalesce);
  }
  const { maxDelayMs = 10, maxBytes = 16384 } = coalesce as CoalesceOptions;
  if (
    typeof maxDelayMs !== 'number' ||
    !Number.isFinite(maxDelayMs) ||
    maxDelayMs < 0 ||
    maxDelayMs > MAX_TIMER_MS
  ) {
    throw optionError(OWNER, 'coalesce.maxDelayMs', `a number from 0 to ${MAX_TIMER_MS}`, maxDelayMs);
  }
  if (typeof maxBytes !== 'number' || !Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw optionError(OWNER, 'coalesce.maxBytes', 'an integer >= 1', maxBytes);
  }
  return { maxDelayMs, maxBytes };
}

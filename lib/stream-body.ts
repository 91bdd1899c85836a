import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import {
  type BodyPlan,
  planBody,
  readableSource,
  type StreamBody,
  type StreamContext,
  type StreamPlan,
} from './bodies';
import { type ErrorHandler, failStream } from './errors';
import { sendFile } from './file';
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
import { type ChunkSource, pump, ResponseWriter, type StreamOutcome } from './write-loop';

const debug = createDebug('stream');

/** Options of {@link streamBody}, checked once when the middleware is made. */
export interface StreamBodyOptions {
  /**
   * Hears about every error of a streamed body — before the first byte (the app's error handling then
   * answers with a real status) and after it (the client sees a truncated response). Not called when
   * the client simply leaves: that is normal. Default: none (errors are logged under `DEBUG`).
   */
  onError?: ErrorHandler | undefined;
}

/** Options of one `res.stream()` / `sendStream()` call. */
export interface StreamOptions {
  /** Replaces the middleware's `onError` for this call. */
  onError?: ErrorHandler | undefined;
}

/** Connect and node:http users type their `res` with this once `streamBody()` is mounted. */
export interface StreamBodyResponse {
  stream(body: StreamBody, options?: StreamOptions): Promise<StreamOutcome>;
}

type Next = (error?: unknown) => void;
type Middleware = (req: AnyRequest, res: AnyResponse, next: Next) => void;

/** Where a Connect app's `next` is kept: Connect, unlike Express, gives the route no `req.next`. */
const MIDDLEWARE_NEXT = Symbol('express-streaming.next');
type WithNext = { [MIDDLEWARE_NEXT]?: Next };

/**
 * Adds `res.stream(body, options?)`: strings, bytes and JSON are sent whole; files, streams,
 * iterables, channels and functions are streamed through one write loop with backpressure, flushing
 * and clean-up when the client leaves. The promise resolves `'finished'`, `'aborted'` or `'errored'`
 * and never rejects.
 *
 * On node:http2's compatibility API `res.stream` is Node's own getter: the middleware leaves it alone
 * there, and apps call {@link sendStream}.
 * @example app.use(streamBody()); app.get('/rows', (req, res) => res.stream(ndjson(cursor)));
 */
export function streamBody(options: StreamBodyOptions = {}): Middleware {
  const defaults = checkStreamOptions(options, 'streamBody');
  function stream(this: AnyResponse, body: StreamBody, callOptions?: StreamOptions): Promise<StreamOutcome> {
    const next = (this as WithNext)[MIDDLEWARE_NEXT];
    return respond(asResponse(this), body, mergeOptions(defaults, callOptions), next);
  }
  return function streamBody(req, res, next) {
    if (!isHttp2(req as unknown as RequestLike)) {
      (res as WithNext)[MIDDLEWARE_NEXT] = next;
      (res as unknown as StreamBodyResponse).stream = stream;
    }
    next();
  };
}

/**
 * `res.stream()` without the middleware: streams `body` to `res` (it reads `res.req`). Errors before
 * the first byte go to Express's `req.next`, or become a plain-text response with `err.status` or 500.
 * The only form on node:http2's compatibility API.
 */
export function sendStream(
  res: AnyResponse,
  body: StreamBody,
  options?: StreamOptions,
): Promise<StreamOutcome> {
  return respond(asResponse(res), body, checkStreamOptions(options ?? {}, 'sendStream'), undefined);
}

function checkStreamOptions(options: StreamOptions, owner: string): StreamOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${owner}: expected options to be an object, got ${describeValue(options)}`);
  }
  if (options.onError !== undefined && typeof options.onError !== 'function') {
    throw new TypeError(
      `${owner}: expected \`onError\` to be a function, got ${describeValue(options.onError)}`,
    );
  }
  return { onError: options.onError };
}

function mergeOptions(defaults: StreamOptions, callOptions: StreamOptions | undefined): StreamOptions {
  if (callOptions === undefined) return defaults;
  const checked = checkStreamOptions(callOptions, 'res.stream');
  return { onError: checked.onError ?? defaults.onError };
}

/** Sends one body; resolves with the outcome and never rejects. */
function respond(
  res: ResponseLike,
  body: unknown,
  options: StreamOptions,
  next: Next | undefined,
): Promise<StreamOutcome> {
  return new Responder(res, options, next).send(body).catch((error: unknown) => {
    debug('unexpected failure: %s', error);
    return 'errored' as const;
  });
}

/** One call of `res.stream()`: what was decided about the response, and how to fail it. */
class Responder {
  readonly #writer: ResponseWriter;
  readonly #ctx: StreamContext;
  readonly #options: StreamOptions;
  readonly #next: Next | undefined;
  readonly #hadContentType: boolean;

  constructor(res: ResponseLike, options: StreamOptions, next: Next | undefined) {
    this.#writer = new ResponseWriter(res);
    this.#ctx = {
      signal: this.#writer.signal,
      req: res.req as AnyRequest,
      res: res as unknown as AnyResponse,
    };
    this.#options = options;
    this.#next = next;
    this.#hadContentType = res.hasHeader('content-type');
  }

  get #res(): ResponseLike {
    return this.#writer.res;
  }

  async send(body: unknown): Promise<StreamOutcome> {
    let plan: BodyPlan;
    try {
      plan = planBody(body);
    } catch (error) {
      return this.#fail(error);
    }
    if (isResponseGone(this.#res)) {
      this.#writer.detach();
      if (plan.kind === 'stream') plan.dispose();
      return 'aborted';
    }
    if (this.#res.writableEnded) {
      if (plan.kind === 'stream') plan.dispose();
      return this.#fail(new TypeError('res.stream: the response has already ended'));
    }
    switch (plan.kind) {
      case 'empty':
        return this.#writer.end();
      case 'whole':
        return this.#sendWhole(plan.bytes, plan.type);
      case 'file':
        return this.#sendFile(plan);
      case 'stream':
        return this.#sendStream(plan);
    }
  }

  #sendWhole(bytes: string | Uint8Array, type: string): Promise<StreamOutcome> {
    this.#setDefaultType(type);
    this.#res.setHeader(
      'Content-Length',
      typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength,
    );
    if (this.#stripBodyHeadersIfBodyless()) return this.#writer.end();
    return this.#writer.end(bytes);
  }

  #sendFile(plan: Extract<BodyPlan, { kind: 'file' }>): Promise<StreamOutcome> {
    return new Promise<StreamOutcome>((resolve) => {
      // send answers HEAD, 304 and 416 itself; the writer tells when it did, or when the client left.
      this.#writer.settled().then(resolve);
      sendFile(this.#res.req as unknown as Readable, this.#res as unknown as ServerResponse, plan.file, {
        onStream: (stream) => resolve(this.#pump(readableSource(stream, 'a chunk of the file'))),
        onError: (error) => resolve(this.#fail(error)),
      });
    });
  }

  #sendStream(plan: StreamPlan): Promise<StreamOutcome> {
    const res = this.#res;
    if (plan.response) applyResponseHead(res, plan.response);
    this.#setDefaultType(plan.type);
    if (plan.length !== undefined) res.setHeader('Content-Length', plan.length);
    if (this.#stripBodyHeadersIfBodyless()) {
      plan.dispose();
      return this.#writer.end();
    }
    let source: ChunkSource;
    try {
      source = plan.open(this.#ctx);
    } catch (error) {
      plan.dispose();
      return Promise.resolve(this.#fail(error));
    }
    return this.#pump(source);
  }

  async #pump(source: ChunkSource): Promise<StreamOutcome> {
    try {
      return await pump(this.#writer, source);
    } catch (error) {
      source.release(error);
      return this.#fail(error);
    }
  }

  #fail(error: unknown): StreamOutcome {
    if (!this.#res.headersSent) this.#forgetBodyHeaders();
    return failStream(this.#writer, this.#ctx, error, this.#options.onError, this.#next);
  }

  /** The error handler answers with a body of its own: drop what described ours (the app's type stays). */
  #forgetBodyHeaders(): void {
    const res = this.#res;
    for (const name of ['content-length', 'content-range']) res.removeHeader(name);
    if (!this.#hadContentType) res.removeHeader('content-type');
  }

  #setDefaultType(type: string | undefined): void {
    if (type !== undefined && !this.#res.hasHeader('content-type')) this.#res.setHeader('Content-Type', type);
  }

  /** HEAD keeps its headers (it mirrors GET); 204 and 304 carry none that describe a body. */
  #stripBodyHeadersIfBodyless(): boolean {
    const res = this.#res;
    if (!isBodyless(res)) return false;
    if (res.req.method !== 'HEAD') {
      for (const name of ['content-type', 'content-length', 'transfer-encoding']) res.removeHeader(name);
    }
    return true;
  }
}

function applyResponseHead(res: ResponseLike, head: NonNullable<StreamPlan['response']>): void {
  res.statusCode = head.status;
  if (head.statusText && !isHttp2(res.req))
    (res as unknown as ServerResponse).statusMessage = head.statusText;
  for (const [name, value] of head.headers) res.setHeader(name, value);
}

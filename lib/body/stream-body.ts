import type { ErrorHandler } from '../core/errors';
import { answeredAsUncalledFactory } from '../core/misuse';
import { checkFunction, checkOptionsObject, optionError } from '../core/options';
import { type AnyRequest, type AnyResponse, asResponse, isHttp2, type RequestLike } from '../core/response';
import type { StreamOutcome } from '../core/writer';
import type { StreamBody } from './plan';
import { type ResponderOptions, respond } from './responder';

/** Options of {@link streamBody}, checked once when the middleware is made; a call's own override them. */
export interface StreamBodyOptions {
  /**
   * Hears about every error of a streamed body — before the first byte (the app's error handling then
   * answers with a real status) and after it (the client sees a truncated response). Not called when
   * the client simply leaves: that is normal. Default: none, and an error after the first byte (which
   * no error handler can answer any more) is written to `console.error`, as Express's final handler
   * does, except under `NODE_ENV=test`.
   */
  onError?: ErrorHandler | undefined;
  /**
   * Bodies made over time (functions, iterables, channels, Node and web streams) are sent with
   * `X-Accel-Buffering: no`, unless the app set that header, so that nginx passes each chunk on as it
   * comes. `true` leaves the proxy's buffering on. Files and whole bodies never send it. Default `false`.
   */
  proxyBuffering?: boolean | undefined;
}

/** Options of one `res.stream()` / `sendStream()` call: each replaces the middleware's. */
export type StreamOptions = StreamBodyOptions;

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
export function streamBody(options?: StreamBodyOptions): Middleware;
export function streamBody(...args: unknown[]): Middleware | undefined {
  if (answeredAsUncalledFactory('streamBody', args)) return undefined;
  const defaults = checkStreamOptions(
    (args[0] === undefined ? {} : args[0]) as StreamBodyOptions,
    'streamBody',
  );
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

function checkStreamOptions(options: StreamOptions, owner: string): ResponderOptions {
  checkOptionsObject(options, owner);
  const { proxyBuffering } = options;
  if (proxyBuffering !== undefined && typeof proxyBuffering !== 'boolean') {
    throw optionError(owner, 'proxyBuffering', 'a boolean', proxyBuffering);
  }
  return { onError: checkFunction(options.onError, 'onError', owner), proxyBuffering };
}

function mergeOptions(defaults: ResponderOptions, callOptions: StreamOptions | undefined): ResponderOptions {
  if (callOptions === undefined) return defaults;
  const checked = checkStreamOptions(callOptions, 'res.stream');
  return {
    onError: checked.onError ?? defaults.onError,
    proxyBuffering: checked.proxyBuffering ?? defaults.proxyBuffering,
  };
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';

/** A request as node:http or node:http2's compatibility API gives it. */
export type AnyRequest = IncomingMessage | Http2ServerRequest;
/** A response as node:http or node:http2's compatibility API gives it (Express and Connect ones included). */
export type AnyResponse = ServerResponse | Http2ServerResponse;

/** What a streaming producer is handed: its signal aborts when the client leaves or the stream fails. */
export interface StreamContext {
  readonly signal: AbortSignal;
  readonly req: AnyRequest;
  readonly res: AnyResponse;
}

/**
 * The part of a response the library uses, common to HTTP/1 and HTTP/2's compatibility API.
 * `flush` is what `compression()` adds (zlib buffers until told to flush); without it, it is absent.
 */
export interface ResponseLike {
  readonly req: RequestLike;
  statusCode: number;
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly writableLength: number;
  readonly writableHighWaterMark: number;
  readonly socket: import('node:net').Socket | null;
  write(chunk: string | Uint8Array): boolean;
  end(chunk?: string | Uint8Array): unknown;
  destroy(error?: Error): unknown;
  setHeader(name: string, value: number | string | readonly string[]): unknown;
  getHeader(name: string): number | string | string[] | undefined;
  hasHeader(name: string): boolean;
  removeHeader(name: string): void;
  flushHeaders(): void;
  setTimeout(ms: number): unknown;
  addTrailers?(headers: Record<string, string>): void;
  /** Node's own flag, set once the head is made: the body goes out in chunked coding (absent on HTTP/2). */
  readonly chunkedEncoding?: boolean;
  flush?: unknown;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
}

export interface RequestLike {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Set by Express's router: the `next` of the layer being run. */
  next?: unknown;
}

export function asResponse(res: AnyResponse | ResponseLike): ResponseLike {
  return res as unknown as ResponseLike;
}

export function isHttp2(req: RequestLike): boolean {
  return req.httpVersionMajor >= 2;
}

/** Statuses and methods that never carry a body: the producer must not even start. */
export function isBodyless(res: ResponseLike): boolean {
  const status = res.statusCode;
  return res.req.method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}

/** The client left (or the response was destroyed) before a writer could see `'close'`. */
export function isResponseGone(res: ResponseLike): boolean {
  if ((res as { destroyed?: boolean }).destroyed === true) return true;
  // HTTP/2's compatibility response has no `destroyed` and its socket is the session's: ask its Http2Stream.
  if (isHttp2(res.req)) return (res as { stream?: { destroyed?: unknown } }).stream?.destroyed === true;
  return res.socket?.destroyed === true;
}

import { isHttp2, type ResponseLike } from '../core/response';

/**
 * Commits the SSE head at once, so `EventSource.onopen` fires and proxies see the stream start.
 * Headers the app (or `cors()`) set earlier are kept; `extra` comes from the `headers` option.
 */
export function writeSseHead(res: ResponseLike, extra: ReadonlyArray<readonly [string, string]>): void {
  res.statusCode = 200;
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
  if (!res.hasHeader('cache-control')) res.setHeader('Cache-Control', 'no-cache, no-transform');
  if (!res.hasHeader('x-accel-buffering')) res.setHeader('X-Accel-Buffering', 'no');
  res.removeHeader('content-length');
  const http1 = !isHttp2(res.req);
  // Connection is forbidden on HTTP/2, and its socket is the whole session's: socket calls are HTTP/1-only.
  // Not where the connection will close anyway (the client sent `Connection: close`, or HTTP/1.0 without
  // keep-alive): the header would keep Node from closing it after the end, and lie to the client.
  const keepsAlive = (res as { shouldKeepAlive?: boolean }).shouldKeepAlive !== false;
  if (http1 && keepsAlive) res.setHeader('Connection', 'keep-alive');
  for (const [name, value] of extra) res.setHeader(name, value);
  res.setTimeout(0);
  if (http1) res.socket?.setNoDelay(true);
  res.flushHeaders();
}

/** Spreads reconnects: each connection gets ×0.67–1.67 of the base. */
export function jitter(ms: number): number {
  return Math.round(ms * (2 / 3 + Math.random()));
}

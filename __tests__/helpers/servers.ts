import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import connect from 'connect';
import express5 from 'express';
import express4 from 'express4';
import { closeHttp2 } from './http2';

export type Handler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  next: (err?: unknown) => void,
) => void;
export type ErrorHandler = (
  err: unknown,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  next: (err?: unknown) => void,
) => void;

export interface AppSpec {
  /** Middleware mounted in order before the routes (e.g. compression(), streamBody()). */
  use?: Handler[];
  /** Exact paths to handlers; every method is routed. */
  routes: Record<string, Handler>;
  /** An error handler mounted after the routes (node:http: called by the middleware chain's `next(err)`). */
  onError?: ErrorHandler;
}

export interface Running {
  readonly server: http.Server;
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

export interface Framework {
  readonly name: string;
  listen(spec: AppSpec): Promise<Running>;
}

const running = new Set<Running>();
const clients = new Set<{ close(): void }>();

/** Has the next {@link closeAll} close `client` (before the servers): for clients a test leaves open. */
export function closeWithServers<T extends { close(): void }>(client: T): T {
  clients.add(client);
  return client;
}

/** Closes every client left open, then every server (HTTP/1 and HTTP/2) a test started; call from afterEach. */
export async function closeAll(): Promise<void> {
  for (const client of clients) client.close();
  clients.clear();
  const servers = [...running];
  running.clear();
  await Promise.all([...servers.map((s) => s.close()), closeHttp2()]);
}

export async function listen(server: http.Server): Promise<Running> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const handle: Running = {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  running.add(handle);
  return handle;
}

type ExpressLike = {
  use(...handlers: unknown[]): unknown;
  all(path: string, handler: unknown): unknown;
};

function expressFramework(name: string, create: () => ExpressLike): Framework {
  return {
    name,
    listen(spec) {
      const app = create();
      for (const mw of spec.use ?? []) app.use(mw);
      for (const [path, handler] of Object.entries(spec.routes)) app.all(path, handler);
      if (spec.onError) app.use(spec.onError);
      return listen(http.createServer(app as unknown as http.RequestListener));
    },
  };
}

export const express5Framework = expressFramework('Express 5', () => express5() as unknown as ExpressLike);
export const express4Framework = expressFramework('Express 4', () => express4() as unknown as ExpressLike);

export const connectFramework: Framework = {
  name: 'Connect',
  listen(spec) {
    const app = connect();
    for (const mw of spec.use ?? []) app.use(mw as connect.NextHandleFunction);
    for (const [path, handler] of Object.entries(spec.routes)) {
      app.use(path, ((req, res, next) => {
        // connect matches prefixes; routes here are exact
        if (req.url !== '/' && !req.url?.startsWith('/?')) return next();
        handler(req, res, next);
      }) as connect.NextHandleFunction);
    }
    if (spec.onError) app.use(spec.onError as connect.ErrorHandleFunction);
    return listen(http.createServer(app));
  },
};

/** Plain node:http, with the middleware chain run by hand (compression's own test helper does the same). */
export const nodeHttpFramework: Framework = {
  name: 'node:http',
  listen(spec) {
    const middleware = spec.use ?? [];
    const fail = (err: unknown, req: http.IncomingMessage, res: http.ServerResponse) => {
      if (spec.onError) return spec.onError(err, req, res, () => defaultError(err, res));
      defaultError(err, res);
    };
    return listen(
      http.createServer((req, res) => {
        let index = 0;
        const next = (err?: unknown): void => {
          if (err) {
            fail(err, req, res);
            return;
          }
          const mw = middleware[index++];
          if (mw) {
            mw(req, res, next);
            return;
          }
          const path = new URL(req.url ?? '/', 'http://x').pathname;
          const handler = spec.routes[path];
          if (!handler) {
            res.statusCode = 404;
            res.end('no route');
            return;
          }
          handler(req, res, next);
        };
        next();
      }),
    );
  },
};

function defaultError(err: unknown, res: http.ServerResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const status = (err as { status?: number }).status ?? 500;
  res.statusCode = status;
  res.end(String((err as Error).message));
}

export const frameworks: Framework[] = [
  express5Framework,
  express4Framework,
  connectFramework,
  nodeHttpFramework,
];

export interface RawResponse {
  readonly statusLine: string;
  readonly headers: Record<string, string>;
  /** The body bytes as they were on the wire (chunk framing included). */
  readonly raw: Buffer;
  /** The de-chunked body, when chunked; otherwise the raw body. */
  readonly body: Buffer;
  /** True when a chunked body ended with its zero-length chunk. */
  readonly terminated: boolean;
  readonly chunked: boolean;
  readonly trailers: Record<string, string>;
}

/** Sends one request over a raw socket and reads until the server closes it; nothing is smoothed over. */
export function rawRequest(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; version?: '1.0' | '1.1'; body?: string } = {},
): Promise<RawResponse> {
  const { method = 'GET', headers = {}, version = '1.1' } = options;
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    socket.on('data', (data) => parts.push(data));
    socket.on('error', reject);
    socket.on('close', () => {
      try {
        resolve(parseRaw(Buffer.concat(parts)));
      } catch (error) {
        reject(error);
      }
    });
    const lines = [`${method} ${path} HTTP/${version}`, 'Host: 127.0.0.1', 'Connection: close'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    if (options.body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(options.body)}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n${options.body ?? ''}`);
  });
}

export function parseRaw(bytes: Buffer): RawResponse {
  const headEnd = bytes.indexOf('\r\n\r\n');
  if (headEnd === -1) throw new Error(`no response head in ${JSON.stringify(bytes.toString('latin1'))}`);
  const [statusLine = '', ...headerLines] = bytes.subarray(0, headEnd).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const raw = bytes.subarray(headEnd + 4);
  const chunked = /chunked/i.test(headers['transfer-encoding'] ?? '');
  if (!chunked) return { statusLine, headers, raw, body: raw, terminated: false, chunked, trailers: {} };
  const { body, terminated, trailers } = dechunk(raw);
  return { statusLine, headers, raw, body, terminated, chunked, trailers };
}

/** Decodes chunked framing strictly; `terminated` is whether the final `0\r\n…\r\n` arrived. */
export function dechunk(raw: Buffer): {
  body: Buffer;
  terminated: boolean;
  trailers: Record<string, string>;
} {
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', offset);
    if (lineEnd === -1) return { body: Buffer.concat(parts), terminated: false, trailers: {} };
    const size = Number.parseInt(raw.subarray(offset, lineEnd).toString('latin1'), 16);
    if (Number.isNaN(size)) throw new Error(`bad chunk size at ${offset}`);
    if (size === 0) {
      const rest = raw.subarray(lineEnd + 2).toString('latin1');
      const end =
        rest.indexOf('\r\n\r\n') !== -1 ? rest.indexOf('\r\n\r\n') : rest.startsWith('\r\n') ? 0 : -1;
      if (end === -1) return { body: Buffer.concat(parts), terminated: false, trailers: {} };
      const trailers: Record<string, string> = {};
      for (const line of rest.slice(0, end).split('\r\n').filter(Boolean)) {
        const colon = line.indexOf(':');
        trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      return { body: Buffer.concat(parts), terminated: true, trailers };
    }
    const start = lineEnd + 2;
    if (start + size + 2 > raw.length) {
      parts.push(raw.subarray(start, Math.min(raw.length, start + size)));
      return { body: Buffer.concat(parts), terminated: false, trailers: {} };
    }
    parts.push(raw.subarray(start, start + size));
    offset = start + size + 2;
  }
}

/** `http.get` that reports whether the body arrived complete (`res.complete`), as a client library sees it. */
export function httpGet(
  url: string,
  options: http.RequestOptions = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { ...options, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      const done = () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(parts),
          complete: res.complete,
        });
      res.on('end', done);
      res.on('aborted', done);
      res.on('error', done);
    });
    req.on('error', reject);
  });
}

/** Opens a request, reads until `predicate(bytesSoFar)` holds, then destroys the socket (a client leaving). */
export function abortAfter(
  port: number,
  path: string,
  predicate: (soFar: Buffer) => boolean,
  headers: Record<string, string> = {},
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    socket.on('error', reject);
    socket.on('data', (data) => {
      parts.push(data);
      const soFar = Buffer.concat(parts);
      if (predicate(soFar)) {
        socket.destroy();
        resolve(soFar);
      }
    });
    const lines = [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  });
}

/** A port nothing listens on now (for a server started by another process: nginx, redis-server). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

type Http2App = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

const servers = new Set<{ server: http2.Http2Server; sessions: Set<http2.ServerHttp2Session> }>();
const clients = new Set<http2.ClientHttp2Session>();

/** Closes every HTTP/2 server and client session a test opened; `closeAll` of servers.ts calls it. */
export async function closeHttp2(): Promise<void> {
  for (const client of clients) client.destroy();
  clients.clear();
  const open = [...servers];
  servers.clear();
  await Promise.all(
    open.map(
      ({ server, sessions }) =>
        new Promise<void>((resolve) => {
          for (const session of sessions) session.destroy();
          server.close(() => resolve());
        }),
    ),
  );
}

/** An h2c server (HTTP/2 without TLS, through the compatibility API) on an ephemeral port. */
export async function listenHttp2(app: unknown): Promise<{ port: number; url: string }> {
  const server = http2.createServer(app as Http2App);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  servers.add({ server, sessions });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { port, url: `http://127.0.0.1:${port}` };
}

/** A client session, destroyed by {@link closeHttp2}. */
export function http2Client(port: number): http2.ClientHttp2Session {
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => {});
  clients.add(client);
  return client;
}

export interface Http2Result {
  status: number;
  headers: http2.IncomingHttpHeaders;
  /** The body so far: all of it once the stream closed. */
  readonly body: Buffer;
  trailers: http2.IncomingHttpHeaders | undefined;
  /** The stream ended cleanly ('end'). */
  ended: boolean;
  error: Error | undefined;
  rstCode: number | undefined;
}

/**
 * One request on a fresh session, watched as it goes: `got` fills in as the response arrives, and
 * `closed` resolves with it once the stream closes (the session is closed then). `cancelWhen` closes
 * the stream with CANCEL once the body so far matches.
 */
export function http2Open(
  port: number,
  path: string,
  headers: http2.OutgoingHttpHeaders = {},
  options: { cancelWhen?: (soFar: Buffer) => boolean } = {},
): { stream: http2.ClientHttp2Stream; got: Http2Result; closed: Promise<Http2Result> } {
  const client = http2Client(port);
  const stream = client.request({ ':path': path, ...headers });
  const parts: Buffer[] = [];
  const got: Http2Result = {
    status: 0,
    headers: {},
    get body() {
      return Buffer.concat(parts);
    },
    trailers: undefined,
    ended: false,
    error: undefined,
    rstCode: undefined,
  };
  stream.on('response', (responseHeaders) => {
    got.headers = responseHeaders;
    got.status = Number(responseHeaders[':status']);
  });
  stream.on('data', (data: Buffer) => {
    parts.push(data);
    if (options.cancelWhen?.(got.body)) stream.close(http2.constants.NGHTTP2_CANCEL);
  });
  stream.on('trailers', (trailers) => {
    got.trailers = trailers;
  });
  stream.on('end', () => {
    got.ended = true;
  });
  stream.on('error', (error) => {
    got.error = error;
  });
  const closed = new Promise<Http2Result>((resolve) => {
    stream.on('close', () => {
      got.rstCode = stream.rstCode;
      client.close();
      resolve(got);
    });
  });
  stream.end();
  return { stream, got, closed };
}

/** {@link http2Open}, for the response once its stream closed. */
export function http2Request(
  port: number,
  path: string,
  headers: http2.OutgoingHttpHeaders = {},
  options: { cancelWhen?: (soFar: Buffer) => boolean } = {},
): Promise<Http2Result> {
  return http2Open(port, path, headers, options).closed;
}

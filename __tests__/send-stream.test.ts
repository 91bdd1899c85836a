import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import connect from 'connect';
import express from 'express';
import {
  type AnyResponse,
  file,
  type StreamBody,
  type StreamContext,
  type StreamOutcome,
  sendStream,
  streamBody,
} from '../lib';
import { http2Client, http2Request, listenHttp2 } from './helpers/http2';
import { nodeProcess } from './helpers/resources';
import { closeAll, httpGet, listen, rawRequest } from './helpers/servers';
import { endlessTicks } from './helpers/sources';
import { deferred, sleep, until, untilStable } from './helpers/wait';

const FILES = path.join(__dirname, 'fixtures', 'files');
const BIG_PATH = path.join(FILES, 'big.txt');
const BIG = fs.readFileSync(BIG_PATH);

/** How many of this process's open file descriptors point at `file`. */
function descriptorsOf(file: string): number {
  let count = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === file) count++;
    } catch {
      // closed while we looked
    }
  }
  return count;
}

afterEach(closeAll);

/** What sendStream resolved with, and what onError heard (with whether headers were sent then). */
function recorder() {
  const outcomes: StreamOutcome[] = [];
  const heard: Array<{ error: unknown; headersSent: boolean }> = [];
  const onError = (error: unknown, ctx: StreamContext) => {
    heard.push({ error, headersSent: ctx.res.headersSent });
  };
  return { outcomes, heard, onError };
}

/** A plain node:http server whose only handler is `handler`: no middleware, no framework. */
function serveNodeHttp(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  return listen(http.createServer(handler));
}

function failingBeforeFirstByte(error: Error): Readable {
  return new Readable({
    read() {
      this.destroy(error);
    },
  });
}

/** Keeps libuv's thread pool, where fs calls run, busy until the returned function is called. */
function keepThreadPoolBusy(): () => void {
  let busy = true;
  const work = () => {
    if (busy) crypto.pbkdf2('x', 'y', 20_000, 32, 'sha256', work);
  };
  for (let i = 0; i < Number(process.env.UV_THREADPOOL_SIZE ?? 4); i++) work();
  return () => {
    busy = false;
  };
}

function httpError(message: string, fields: Record<string, unknown>): Error {
  return Object.assign(new Error(message), fields);
}

describe('sendStream(res, body, options?)', () => {
  describe('on plain node:http with no middleware', () => {
    it('streams a body and resolves "finished"', async () => {
      const { outcomes } = recorder();
      const app = await serveNodeHttp((_req, res) => {
        void sendStream(
          res,
          (async function* () {
            yield 'one ';
            await sleep(5);
            yield Buffer.from('two');
          })(),
        ).then((o) => outcomes.push(o));
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.statusLine).toMatch(/^HTTP\/1\.1 200 /);
      expect(raw.headers['content-type']).toBe('application/octet-stream');
      expect(raw.chunked).toBe(true);
      expect(raw.terminated).toBe(true);
      expect(raw.body.toString()).toBe('one two');
      await until(() => outcomes.length === 1, 'outcome');
      expect(outcomes).toEqual(['finished']);
    });

    it("streams after the app's own writeHead() (Node's fast path, where hasHeader() says nothing)", async () => {
      const { outcomes } = recorder();
      const app = await serveNodeHttp((_req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/csv' });
        void sendStream(
          res,
          (async function* () {
            yield 'a,b\n';
            yield '1,2\n';
          })(),
        ).then((o) => outcomes.push(o));
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.headers['content-type']).toBe('text/csv');
      expect(raw.terminated).toBe(true);
      expect(raw.body.toString()).toBe('a,b\n1,2\n');
      await until(() => outcomes.length === 1, 'outcome');
      expect(outcomes).toEqual(['finished']);
    });

    it('answers an error before the first byte with err.status and its status text, as plain text', async () => {
      const { outcomes, heard, onError } = recorder();
      const error = httpError('the secret reason', { status: 410 });
      const app = await serveNodeHttp((_req, res) => {
        void sendStream(res, failingBeforeFirstByte(error), { onError }).then((o) => outcomes.push(o));
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.statusLine).toMatch(/^HTTP\/1\.1 410 /);
      expect(raw.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(raw.headers['content-length']).toBe('4');
      expect(raw.body.toString()).toBe('Gone');
      await until(() => outcomes.length === 1, 'outcome');
      expect(outcomes).toEqual(['errored']);
      expect(heard).toEqual([{ error, headersSent: false }]);
    });

    it('answers an error with no status with 500 and never leaks its message', async () => {
      const { heard, onError } = recorder();
      const app = await serveNodeHttp((_req, res) => {
        void sendStream(
          res,
          // biome-ignore lint/correctness/useYield: it fails before its first item
          (async function* () {
            throw new Error('database password is hunter2');
          })(),
          { onError },
        );
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.statusLine).toMatch(/^HTTP\/1\.1 500 /);
      expect(raw.body.toString()).toBe('Internal Server Error');
      expect(raw.raw.includes('hunter2')).toBe(false);
      expect(heard).toHaveLength(1);
    });

    it.each([
      ['expose === true', { status: 422, expose: true }, 'name is required'],
      ['expose truthy but not true', { status: 422, expose: 'yes' }, 'Unprocessable Entity'],
      ['no expose', { status: 422 }, 'Unprocessable Entity'],
    ])('shows the message only when %s', async (_name, fields, expected) => {
      const app = await serveNodeHttp((_req, res) => {
        void sendStream(res, failingBeforeFirstByte(httpError('name is required', fields)));
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.statusLine).toMatch(/ 422 /);
      expect(raw.body.toString()).toBe(expected);
    });

    it('truncates on an error after the headers: no final chunk, "errored", onError hears it', async () => {
      const { outcomes, heard, onError } = recorder();
      const app = await serveNodeHttp((_req, res) => {
        void sendStream(
          res,
          (async function* () {
            yield 'partial';
            await sleep(10);
            throw new Error('producer failed');
          })(),
          { onError },
        ).then((o) => outcomes.push(o));
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.statusLine).toMatch(/ 200 /);
      expect(raw.body.toString()).toBe('partial');
      expect(raw.terminated).toBe(false);
      expect(raw.raw.includes('0\r\n\r\n')).toBe(false);
      expect(raw.raw.includes('producer failed')).toBe(false);
      await until(() => outcomes.length === 1, 'outcome');
      expect(outcomes).toEqual(['errored']);
      expect(heard).toHaveLength(1);
      expect(heard[0]?.error).toHaveProperty('message', 'producer failed');
      expect(heard[0]?.headersSent).toBe(true);
      expect((await httpGet(`${app.url}/`)).complete).toBe(false);
    });

    it('answers HEAD with the headers only: the producer never starts and is disposed of', async () => {
      let started = false;
      const readable = new PassThrough();
      const outcomes: StreamOutcome[] = [];
      const app = await serveNodeHttp((req, res) => {
        const body: StreamBody =
          req.url === '/readable'
            ? readable
            : (async function* () {
                started = true;
                yield 'never';
              })();
        void sendStream(res, body).then((o) => outcomes.push(o));
      });
      for (const route of ['/gen', '/readable']) {
        const raw = await rawRequest(app.port, route, { method: 'HEAD' });
        expect(raw.statusLine).toMatch(/ 200 /);
        expect(raw.headers['content-type']).toBe('application/octet-stream');
        expect(raw.raw.length).toBe(0);
      }
      expect(started).toBe(false);
      expect(readable.destroyed).toBe(true);
      await until(() => outcomes.length === 2, 'outcomes');
      expect(outcomes).toEqual(['finished', 'finished']);
    });

    it('answers a bad body (a number) with a 500 before any byte, naming it to onError', async () => {
      const { outcomes, heard, onError } = recorder();
      const app = await serveNodeHttp((_req, res) => {
        void sendStream(res, 42 as unknown as StreamBody, { onError }).then((o) => outcomes.push(o));
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.statusLine).toMatch(/ 500 /);
      expect(raw.body.toString()).toBe('Internal Server Error');
      await until(() => outcomes.length === 1, 'outcome');
      expect(outcomes).toEqual(['errored']);
      expect(heard[0]?.error).toBeInstanceOf(TypeError);
      expect(heard[0]?.error).toMatchObject({ message: expect.stringMatching(/number \(42\)/) });
    });

    it('resolves "aborted" at once when the client left before it was called, disposing of the body', async () => {
      const outcomes: StreamOutcome[] = [];
      const readable = new PassThrough();
      const app = await serveNodeHttp((req, res) => {
        req.socket.once('close', () => {
          void sendStream(res, readable).then((o) => outcomes.push(o));
        });
      });
      const socket = net.connect(app.port, '127.0.0.1');
      socket.on('error', () => {});
      socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await sleep(20);
      socket.destroy();
      await until(() => outcomes.length === 1, 'outcome');
      expect(outcomes).toEqual(['aborted']);
      expect(readable.destroyed).toBe(true);
    });

    it('ends a file body at its last byte, not once the file has closed: a client that hangs up then saw it finish', async () => {
      const outcomes: StreamOutcome[] = [];
      const app = await serveNodeHttp((_req, res) => {
        void sendStream(res, file('name.txt', { root: FILES })).then((o) => outcomes.push(o));
      });
      // A slow disk: every fs call (stat, open, read, close) waits its turn behind other work.
      const stopSlowDisk = keepThreadPoolBusy();
      const heads: string[] = [];
      try {
        for (let i = 1; i <= 20; i++) {
          const socket = net.connect(app.port, '127.0.0.1');
          let got = '';
          socket.on('data', (data) => {
            got += data.toString('latin1');
            // Content-Length: 4 — the client has everything and leaves, as HTTP lets it.
            if (got.endsWith('\r\n\r\ntobi')) socket.destroy();
          });
          socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
          await until(() => outcomes.length === i && socket.destroyed, `outcome ${i} and client gone`);
          heads.push(got);
        }
      } finally {
        stopSlowDisk();
      }
      for (const head of heads) expect(head).toMatch(/content-length: 4/i);
      expect(outcomes).toEqual(Array(20).fill('finished'));
    });

    it('throws a TypeError naming onError when it is not a function', async () => {
      const thrown = deferred<unknown>();
      const app = await serveNodeHttp((_req, res) => {
        try {
          void sendStream(res, 'x', { onError: 'log' as never });
          thrown.resolve(undefined);
        } catch (error) {
          thrown.resolve(error);
        }
        if (!res.headersSent) res.end('fallback');
      });
      await rawRequest(app.port, '/');
      const error = await thrown.promise;
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/onError.*function.*string/);
    });
  });

  describe('under Express 5 without streamBody()', () => {
    it('streams a body', async () => {
      const app = express();
      app.get('/', (_req, res) => {
        void sendStream(res, Readable.from(['ex', 'press']));
      });
      const running = await listen(http.createServer(app));
      const raw = await rawRequest(running.port, '/');
      expect(raw.body.toString()).toBe('express');
      expect(raw.terminated).toBe(true);
    });

    it("routes an error before the first byte to Express's error handling through req.next", async () => {
      const seen: unknown[] = [];
      const error = httpError('gone away', { status: 410 });
      const app = express();
      app.get('/', (_req, res) => {
        void sendStream(res, failingBeforeFirstByte(error));
      });
      app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
        seen.push(err);
        res
          .status(418)
          .type('text/x-custom')
          .send(`custom: ${(err as Error).message}`);
      });
      const running = await listen(http.createServer(app));
      const raw = await rawRequest(running.port, '/');
      expect(raw.statusLine).toMatch(/ 418 /);
      expect(raw.headers['content-type']).toMatch(/^text\/x-custom/);
      expect(raw.body.toString()).toBe('custom: gone away');
      expect(seen).toEqual([error]);
    });
  });

  describe('on node:http2 (compatibility API)', () => {
    let warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    beforeEach(() => {
      warnings = [];
      nodeProcess.on('warning', onWarning);
    });
    afterEach(() => {
      nodeProcess.off('warning', onWarning);
    });

    it('leaves res.stream alone: it is still Node’s Http2Stream getter', async () => {
      const seen = deferred<unknown>();
      const app = connect();
      app.use(streamBody() as unknown as connect.NextHandleFunction);
      app.use((_req, res) => {
        seen.resolve((res as unknown as { stream: unknown }).stream);
        res.end('ok');
      });
      const server = await listenHttp2(app);
      const got = await http2Request(server.port, '/');
      expect(got.status).toBe(200);
      expect(got.body.toString()).toBe('ok');
      const stream = await seen.promise;
      expect(typeof stream).toBe('object');
      expect(typeof (stream as { respond?: unknown }).respond).toBe('function');
      expect((stream as object).constructor.name).toBe('ServerHttp2Stream');
    });

    it.each([
      [
        'a generator',
        () =>
          (async function* () {
            yield 'gen';
            await sleep(2);
            yield Buffer.from('erated');
          })(),
        Buffer.from('generated'),
        'application/octet-stream',
      ],
      ['a Readable', () => Readable.from([BIG.subarray(0, 100_000), BIG.subarray(100_000)]), BIG, undefined],
      ['a file(...) body', () => file('big.txt', { root: FILES }), BIG, 'text/plain; charset=utf-8'],
    ])('streams %s: status 200 and the exact bytes', async (_name, make, expected, type) => {
      const outcomes: StreamOutcome[] = [];
      const server = await listenHttp2(sendStreamApp(() => make() as StreamBody, outcomes));
      const got = await http2Request(server.port, '/');
      expect(got.status).toBe(200);
      expect(got.ended).toBe(true);
      expect(got.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
      expect(got.body.equals(expected)).toBe(true);
      if (type) expect(got.headers['content-type']).toBe(type);
      expect(got.headers.connection).toBeUndefined();
      expect(got.headers['transfer-encoding']).toBeUndefined();
      await until(() => outcomes.length === 1, 'outcome');
      expect(outcomes).toEqual(['finished']);
      expect(warnings).toEqual([]);
    });

    it('serves a file body’s Range and HEAD as send does', async () => {
      const server = await listenHttp2(sendStreamApp(() => file('name.txt', { root: FILES })));
      const range = await http2Request(server.port, '/', { range: 'bytes=1-2' });
      expect(range.status).toBe(206);
      expect(range.body.toString()).toBe('ob');
      const head = await http2Request(server.port, '/', { ':method': 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers['content-length']).toBe('4');
      expect(head.body.length).toBe(0);
    });

    it('answers an error before the first byte with a real status', async () => {
      const { outcomes, heard, onError } = recorder();
      const server = await listenHttp2(
        sendStreamApp(() => failingBeforeFirstByte(httpError('x', { status: 410 })), outcomes, { onError }),
      );
      const got = await http2Request(server.port, '/');
      expect(got.status).toBe(410);
      expect(got.body.toString()).toBe('Gone');
      expect(got.ended).toBe(true);
      await until(() => outcomes.length === 1, 'outcome');
      expect(outcomes).toEqual(['errored']);
      expect(heard).toHaveLength(1);
      expect(warnings).toEqual([]);
    });

    it('resets the stream with an error code when the body fails after the first chunk', async () => {
      const { outcomes, heard, onError } = recorder();
      const server = await listenHttp2(
        sendStreamApp(
          () =>
            (async function* () {
              yield 'partial';
              await sleep(20);
              throw new Error('producer failed');
            })(),
          outcomes,
          { onError },
        ),
      );
      const got = await http2Request(server.port, '/');
      expect(got.status).toBe(200);
      expect(got.ended).toBe(false);
      expect(got.error).toBeDefined();
      expect(got.rstCode).not.toBe(http2.constants.NGHTTP2_NO_ERROR);
      expect(got.rstCode).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
      expect(got.body.toString()).not.toMatch(/producer failed/);
      await until(() => outcomes.length === 1, 'outcome');
      expect(outcomes).toEqual(['errored']);
      expect(heard[0]?.headersSent).toBe(true);
    });

    it('releases the generator and resolves "aborted" when the app ends the response itself', async () => {
      const outcomes: StreamOutcome[] = [];
      const ticks = endlessTicks();
      const app = connect();
      app.use((_req, res) => {
        setTimeout(() => res.end(), 30);
        void sendStream(res as unknown as AnyResponse, ticks.body).then((o) => outcomes.push(o));
      });
      const server = await listenHttp2(app);
      const got = await http2Request(server.port, '/');
      expect(got.status).toBe(200);
      await until(() => ticks.released() && outcomes.length === 1, 'generator released and outcome');
      expect(outcomes).toEqual(['aborted']);
    });

    it('resolves "aborted" and runs the generator’s finally when the client cancels', async () => {
      const outcomes: StreamOutcome[] = [];
      const ticks = endlessTicks();
      const server = await listenHttp2(sendStreamApp(() => ticks.body, outcomes));
      const got = await http2Request(server.port, '/', {}, { cancelWhen: (soFar) => soFar.includes('tick') });
      expect(got.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
      await until(() => ticks.released() && outcomes.length === 1, 'generator finally and outcome');
      expect(outcomes).toEqual(['aborted']);
    });

    it('resolves "aborted" and destroys a Readable when the client cancels', async () => {
      const outcomes: StreamOutcome[] = [];
      const readable = new PassThrough();
      readable.write('first');
      const server = await listenHttp2(sendStreamApp(() => readable, outcomes));
      await http2Request(server.port, '/', {}, { cancelWhen: (soFar) => soFar.includes('first') });
      await until(() => readable.destroyed && outcomes.length === 1, 'Readable destroyed and outcome');
      expect(outcomes).toEqual(['aborted']);
    });

    it('resolves "aborted" at once when the client cancelled before it was called, disposing of the body', async () => {
      const outcomes: StreamOutcome[] = [];
      const readable = new PassThrough();
      const app = connect();
      app.use((_req, res) => {
        const h2res = res as unknown as http2.Http2ServerResponse;
        h2res.stream.once('close', () => {
          void sendStream(h2res, readable).then((o) => outcomes.push(o));
        });
      });
      const server = await listenHttp2(app);
      const client = http2Client(server.port);
      const stream = client.request({ ':path': '/' });
      stream.on('error', () => {});
      await sleep(20);
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await until(() => outcomes.length === 1, 'outcome');
      expect(outcomes).toEqual(['aborted']);
      expect(readable.destroyed).toBe(true);
    });

    describe('a producer blocked on backpressure (HTTP/2 never emits drain after a cancel)', () => {
      const CHUNK = Buffer.alloc(256 * 1024, 120);

      it('releases a generator: its finally runs and sendStream resolves "aborted"', async () => {
        const outcomes: StreamOutcome[] = [];
        let pulled = 0;
        let cleanedUp = false;
        const server = await listenHttp2(
          sendStreamApp(
            () =>
              (function* () {
                try {
                  for (let i = 0; i < 10_000; i++) {
                    pulled++;
                    yield CHUNK;
                  }
                } finally {
                  cleanedUp = true;
                }
              })(),
            outcomes,
          ),
        );
        const client = http2Client(server.port);
        const stream = client.request({ ':path': '/' });
        stream.on('error', () => {});
        await new Promise((resolve) => stream.once('response', resolve));
        // The client reads nothing: flow control and the server's buffers fill, the loop waits for 'drain'.
        const blockedAt = await untilStable(() => pulled, 'the generator held back');
        expect(blockedAt).toBeLessThan(40);
        expect(cleanedUp).toBe(false);
        expect(outcomes).toEqual([]);
        stream.close(http2.constants.NGHTTP2_CANCEL);
        await until(() => cleanedUp && outcomes.length === 1, 'generator released and outcome');
        expect(outcomes).toEqual(['aborted']);
      });

      it('releases a Readable: it is destroyed and sendStream resolves "aborted"', async () => {
        const outcomes: StreamOutcome[] = [];
        let produced = 0;
        const readable = new Readable({
          highWaterMark: CHUNK.length,
          read() {
            produced++;
            this.push(CHUNK);
          },
        });
        const server = await listenHttp2(sendStreamApp(() => readable, outcomes));
        const client = http2Client(server.port);
        const stream = client.request({ ':path': '/' });
        stream.on('error', () => {});
        await new Promise((resolve) => stream.once('response', resolve));
        await untilStable(() => produced, 'the Readable held back');
        expect(readable.destroyed).toBe(false);
        stream.close(http2.constants.NGHTTP2_CANCEL);
        await until(() => readable.destroyed && outcomes.length === 1, 'Readable destroyed and outcome');
        expect(outcomes).toEqual(['aborted']);
      });

      it('releases a file body: its descriptor is closed and sendStream resolves "aborted"', async () => {
        const outcomes: StreamOutcome[] = [];
        const server = await listenHttp2(sendStreamApp(() => file('big.txt', { root: FILES }), outcomes));
        const client = http2Client(server.port);
        const stream = client.request({ ':path': '/' });
        stream.on('error', () => {});
        await new Promise((resolve) => stream.once('response', resolve));
        // 404,000 bytes cannot fit in the 64 KiB flow-control window and the buffers: the file is still open.
        expect(await untilStable(() => descriptorsOf(BIG_PATH), 'the file held open')).toBe(1);
        stream.close(http2.constants.NGHTTP2_CANCEL);
        await until(
          () => descriptorsOf(BIG_PATH) === 0 && outcomes.length === 1,
          'file descriptor closed and outcome',
        );
        expect(outcomes).toEqual(['aborted']);
      });
    });

    it('never sends Connection or Transfer-Encoding, even from a fetch Response that has them', async () => {
      const outcomes: StreamOutcome[] = [];
      const server = await listenHttp2(
        sendStreamApp(
          () =>
            new Response('from fetch', {
              status: 201,
              headers: {
                connection: 'keep-alive, x-hop',
                'x-hop': 'dropped',
                'keep-alive': 'timeout=5',
                'transfer-encoding': 'chunked',
                'x-kept': 'yes',
              },
            }),
          outcomes,
        ),
      );
      const got = await http2Request(server.port, '/');
      expect(got.status).toBe(201);
      expect(got.body.toString()).toBe('from fetch');
      expect(got.headers['x-kept']).toBe('yes');
      for (const name of ['connection', 'transfer-encoding', 'keep-alive', 'x-hop']) {
        expect(got.headers[name]).toBeUndefined();
      }
      await until(() => outcomes.length === 1, 'outcome');
      expect(outcomes).toEqual(['finished']);
      expect(warnings).toEqual([]);
    });
  });
});

/** A Connect app on HTTP/2 whose only route sends `make()` with sendStream. */
function sendStreamApp(
  make: () => StreamBody,
  outcomes?: StreamOutcome[],
  options?: Parameters<typeof sendStream>[2],
): connect.Server {
  const app = connect();
  app.use(streamBody() as unknown as connect.NextHandleFunction);
  app.use((_req, res) => {
    void sendStream(res as unknown as AnyResponse, make(), options).then((o) => outcomes?.push(o));
  });
  return app;
}

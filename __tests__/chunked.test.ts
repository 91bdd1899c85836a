import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';
import compression from 'compression';
import connect from 'connect';
import { type ChunkedOptions, type ChunkedResponse, chunked } from '../lib';
import { http2Open, listenHttp2 } from './helpers/http2';
import { type ListenerCounts, listenerCounts } from './helpers/resources';
import {
  abortAfter,
  closeAll,
  express4Framework,
  express5Framework,
  frameworks,
  type Handler,
  nodeHttpFramework,
  parseRaw,
  type RawResponse,
  rawRequest,
} from './helpers/servers';
import { deferred, sleep, until, untilStable } from './helpers/wait';

const FILES = path.join(__dirname, 'fixtures', 'files');

type Res = http.ServerResponse & ChunkedResponse;
type Route = (req: http.IncomingMessage, res: Res) => unknown;

const routeErrors: unknown[] = [];

/** A route that may be async: a rejection is recorded (and fails the test), never left unhandled. */
function route(fn: Route): Handler {
  return (req, res) => {
    Promise.resolve()
      .then(() => fn(req, res as Res))
      .catch((error: unknown) => {
        routeErrors.push(error);
        res.destroy();
      });
  };
}

afterEach(async () => {
  await closeAll();
  expect(routeErrors.splice(0)).toEqual([]);
});

const mw = (options?: ChunkedOptions) => chunked(options) as unknown as Handler;
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe('chunked(options)', () => {
  describe.each(frameworks)('under $name', (framework) => {
    const serve = (routes: Record<string, Handler>, options?: ChunkedOptions, use: Handler[] = []) =>
      framework.listen({ use: [...use, mw(options)], routes });

    describe('before the first chunk', () => {
      it('leaves a route that answers whole untouched: same headers as without chunked()', async () => {
        const answer: Handler = (_req, res) => {
          const withJson = res as unknown as { json?: (body: unknown) => void };
          if (typeof withJson.json === 'function') return withJson.json({ whole: true });
          res.setHeader('Content-Type', 'application/json; charset=utf-8');
          res.end(JSON.stringify({ whole: true }));
        };
        let decorated = false;
        const withChunked = await serve({
          '/': (req, res, next) => {
            decorated = typeof (res as Res).chunk === 'function';
            answer(req, res, next);
          },
        });
        const without = await framework.listen({ routes: { '/': answer } });
        const a = await rawRequest(withChunked.port, '/');
        const b = await rawRequest(without.port, '/');
        expect(decorated).toBe(true);
        const { date: _a, ...headersWith } = a.headers;
        const { date: _b, ...headersWithout } = b.headers;
        expect(headersWith).toEqual(headersWithout);
        expect(headersWith['content-length']).toBe(String('{"whole":true}'.length));
        expect(headersWith['x-accel-buffering']).toBeUndefined();
        expect(headersWith['cache-control']).toBeUndefined();
        expect(a.body.toString()).toBe('{"whole":true}');
      });
    });

    describe('the first chunk', () => {
      it('commits the headers, chunked, with X-Accel-Buffering: no and Cache-Control: no-transform', async () => {
        let headersSent: boolean | undefined;
        const app = await serve({
          '/': route(async (_req, res) => {
            await res.chunk('hello');
            headersSent = res.headersSent;
            res.end();
          }),
        });
        const raw = await rawRequest(app.port, '/');
        expect(headersSent).toBe(true);
        expect(raw.headers['x-accel-buffering']).toBe('no');
        expect(raw.headers['cache-control']).toBe('no-transform');
        expect(raw.headers['transfer-encoding']).toBe('chunked');
        expect(raw.headers['content-length']).toBeUndefined();
        expect(raw.headers.trailer).toBeUndefined();
        expect(raw.body.toString()).toBe('hello');
        expect(raw.terminated).toBe(true);
      });

      it('keeps the Cache-Control and X-Accel-Buffering the app set', async () => {
        const app = await serve({
          '/': route(async (_req, res) => {
            res.setHeader('Cache-Control', 'no-cache');
            res.setHeader('X-Accel-Buffering', 'yes');
            await res.chunk('x');
            res.end();
          }),
        });
        const raw = await rawRequest(app.port, '/');
        expect(raw.headers['cache-control']).toBe('no-cache');
        expect(raw.headers['x-accel-buffering']).toBe('yes');
      });

      it('sends no Cache-Control with noTransform: false', async () => {
        const app = await serve(
          {
            '/': route(async (_req, res) => {
              await res.chunk('x');
              res.end();
            }),
          },
          { noTransform: false },
        );
        const raw = await rawRequest(app.port, '/');
        expect(raw.headers['cache-control']).toBeUndefined();
        expect(raw.headers['x-accel-buffering']).toBe('no');
      });

      it('turns Nagle off on the socket', async () => {
        const calls: unknown[] = [];
        const app = await serve({
          '/': route(async (_req, res) => {
            const socket = res.socket as net.Socket;
            const setNoDelay = socket.setNoDelay;
            socket.setNoDelay = function (this: net.Socket, noDelay?: boolean) {
              calls.push(noDelay);
              return setNoDelay.call(this, noDelay);
            };
            await res.chunk('x');
            socket.setNoDelay = setNoDelay;
            res.end();
          }),
        });
        await rawRequest(app.port, '/');
        expect(calls).toEqual([true]);
      });
    });

    describe('res.chunk(data)', () => {
      it('delivers each chunk before the next one is written', async () => {
        const steps = [deferred(), deferred()];
        const app = await serve({
          '/': route(async (_req, res) => {
            await res.chunk('chunk-0;');
            await steps[0]!.promise;
            await res.chunk(Buffer.from('chunk-1;'));
            await steps[1]!.promise;
            await res.chunk(new TextEncoder().encode('chunk-2;'));
            res.end();
          }),
        });
        const client = openRaw(app.port, '/');
        await until(() => client.text() === 'chunk-0;', 'chunk-0 on the wire');
        steps[0]!.resolve();
        await until(() => client.text() === 'chunk-0;chunk-1;', 'chunk-1 on the wire');
        steps[1]!.resolve();
        const raw = await client.done;
        expect(raw.body.toString()).toBe('chunk-0;chunk-1;chunk-2;');
        expect(wireChunks(raw.raw)).toEqual(['chunk-0;', 'chunk-1;', 'chunk-2;']);
        expect(raw.terminated).toBe(true);
      });

      it('keeps the order of calls that are not awaited, and resolves them all true', async () => {
        // 24 × 64 KiB written at once overflows the response: most of them wait for 'drain'
        const blocks = Array.from({ length: 24 }, (_, i) => Buffer.alloc(64 * 1024, 65 + i));
        let results: boolean[] = [];
        const app = await serve({
          '/': route(async (_req, res) => {
            results = await Promise.all(blocks.map((block) => res.chunk(block)));
            res.end();
          }),
        });
        const raw = await rawRequest(app.port, '/');
        expect(results).toEqual(blocks.map(() => true));
        expect(raw.body.equals(Buffer.concat(blocks))).toBe(true);
        expect(raw.terminated).toBe(true);
      });

      it('resolves chunks still waiting for drain when the app ends the response', async () => {
        const blocks = Array.from({ length: 24 }, (_, i) => Buffer.alloc(64 * 1024, 97 + i));
        let results: boolean[] = [];
        const app = await serve({
          '/': route(async (_req, res) => {
            const pending = blocks.map((block) => res.chunk(block));
            res.end();
            results = await Promise.all(pending);
          }),
        });
        const raw = await rawRequest(app.port, '/');
        expect(raw.body.equals(Buffer.concat(blocks))).toBe(true);
        await until(() => results.length === blocks.length, 'every waiting res.chunk() to resolve');
        expect(results).toEqual(blocks.map(() => true));
      });

      it('commits the head on an empty chunk without writing an empty chunk', async () => {
        const step = deferred();
        const app = await serve({
          '/': route(async (_req, res) => {
            expect(await res.chunk('')).toBe(true);
            await step.promise;
            res.end('last');
          }),
        });
        const client = openRaw(app.port, '/');
        await until(() => client.current() !== undefined, 'the head on the wire');
        expect(client.current()?.headers['x-accel-buffering']).toBe('no');
        step.resolve();
        const raw = await client.done;
        expect(wireChunks(raw.raw)).toEqual(['last']);
        expect(raw.terminated).toBe(true);
      });

      it('resolves false once the client has left, and removes its listeners', async () => {
        let before: ListenerCounts | undefined;
        let after: ListenerCounts | undefined;
        let result: boolean | undefined;
        const app = await serve({
          '/': route(async (_req, res) => {
            before = listenerCounts(res);
            while (await res.chunk('tick\n')) await sleep(5);
            result = false;
            after = listenerCounts(res);
          }),
        });
        await abortAfter(app.port, '/', (bytes) => bytes.includes('tick'));
        await until(() => result === false, 'res.chunk() to resolve false');
        expect(after).toEqual(before);
      });

      it('resolves false when the client leaves while a chunk waits for drain', async () => {
        const progress = { waiting: false, accepted: 0, result: undefined as boolean | undefined };
        const block = Buffer.alloc(64 * 1024, 120);
        const app = await serve({
          '/': route(async (_req, res) => {
            // bounded, so that a write loop without backpressure fails the test instead of the process
            while (progress.accepted < 64 * 1024 * 1024) {
              progress.waiting = true;
              const ok = await res.chunk(block);
              progress.waiting = false;
              if (!ok) {
                progress.result = false;
                return;
              }
              progress.accepted += block.length;
            }
            progress.result = true;
            res.end();
          }),
        });
        const client = openRaw(app.port, '/', { paused: true });
        await untilStable(() => progress.accepted, 'the producer to wait for drain', {
          ready: () => progress.waiting,
          quietMs: 200,
        });
        client.socket.destroy();
        await until(() => progress.result === false, 'the waiting res.chunk() to resolve false');
      });

      it('resolves false after res.end()', async () => {
        let after: boolean | undefined;
        const app = await serve({
          '/': route(async (_req, res) => {
            await res.chunk('only');
            res.end();
            after = await res.chunk('too late');
          }),
        });
        const raw = await rawRequest(app.port, '/');
        await until(() => after !== undefined, 'the late res.chunk() to resolve');
        expect(after).toBe(false);
        expect(raw.body.toString()).toBe('only');
        expect(raw.terminated).toBe(true);
      });

      it('removes its listeners once the response has ended', async () => {
        let before: ListenerCounts | undefined;
        let after: ListenerCounts | undefined;
        const app = await serve({
          '/': route(async (_req, res) => {
            before = listenerCounts(res);
            await res.chunk('x');
            res.end();
            await once(res, 'finish');
            after = listenerCounts(res);
          }),
        });
        await rawRequest(app.port, '/');
        await until(() => after !== undefined, 'the response to finish');
        expect(after).toEqual(before);
      });
    });

    describe('res.setTrailer(name, value)', () => {
      it('sends a checksum of the body after the last chunk, announced in a Trailer header', async () => {
        let set: boolean | undefined;
        const app = await serve(
          {
            '/': route(async (_req, res) => {
              const hash = createHash('sha256');
              for (const part of ['alpha,', 'beta,', 'gamma']) {
                hash.update(part);
                await res.chunk(part);
              }
              set = res.setTrailer('X-Checksum', hash.digest('hex'));
              res.end();
            }),
          },
          { trailers: ['X-Checksum'] },
        );
        const raw = await rawRequest(app.port, '/');
        expect(set).toBe(true);
        expect(raw.headers.trailer).toBe('x-checksum');
        expect(raw.body.toString()).toBe('alpha,beta,gamma');
        expect(raw.terminated).toBe(true);
        expect(raw.trailers['x-checksum']).toBe(sha256('alpha,beta,gamma'));
        expect(
          raw.raw.toString('latin1').endsWith(`\r\n0\r\nx-checksum: ${sha256('alpha,beta,gamma')}\r\n\r\n`),
        ).toBe(true);
      });

      it('declares a name set before the first chunk, and sends its last value', async () => {
        const results: boolean[] = [];
        const app = await serve({
          '/': route(async (_req, res) => {
            results.push(res.setTrailer('X-Status', 'pending'));
            await res.chunk('work');
            results.push(res.setTrailer('x-status', 'done'));
            res.end();
          }),
        });
        const raw = await rawRequest(app.port, '/');
        expect(results).toEqual([true, true]);
        expect(raw.headers.trailer).toBe('x-status');
        expect(raw.trailers).toEqual({ 'x-status': 'done' });
      });

      it('throws a TypeError for a name not declared before the headers went out', async () => {
        let error: unknown;
        const app = await serve({
          '/': route(async (_req, res) => {
            await res.chunk('body');
            try {
              res.setTrailer('x-late', '1');
            } catch (e) {
              error = e;
            }
            res.end();
          }),
        });
        const raw = await rawRequest(app.port, '/');
        expect(error).toBeInstanceOf(TypeError);
        expect((error as Error).message).toMatch(/x-late was not announced before the headers went out/);
        expect((error as Error).message).toMatch(/chunked\(\{ trailers: \['x-late'\] \}\)/);
        expect(raw.headers.trailer).toBeUndefined();
        expect(raw.trailers).toEqual({});
        expect(raw.terminated).toBe(true);
      });

      it('throws a TypeError when the app set its own Content-Length', async () => {
        const errors: unknown[] = [];
        const app = await serve(
          {
            '/before': route(async (_req, res) => {
              res.setHeader('Content-Length', '5');
              try {
                res.setTrailer('x-checksum', 'abc');
              } catch (e) {
                errors.push(e);
              }
              await res.chunk('hello');
              res.end();
            }),
            '/after': route(async (_req, res) => {
              res.setHeader('Content-Length', '5');
              await res.chunk('hello');
              try {
                res.setTrailer('x-checksum', 'abc');
              } catch (e) {
                errors.push(e);
              }
              res.end();
            }),
          },
          { trailers: ['x-checksum'] },
        );
        for (const target of ['/before', '/after']) {
          const raw = await rawRequest(app.port, target);
          expect(raw.headers['content-length']).toBe('5');
          expect(raw.headers.trailer).toBeUndefined();
          expect(raw.body.toString()).toBe('hello');
        }
        expect(errors).toHaveLength(2);
        for (const error of errors) {
          expect(error).toBeInstanceOf(TypeError);
          expect((error as Error).message).toMatch(/x-checksum: the app set Content-Length/);
        }
      });

      it('throws from the first chunk when a trailer was set and then the app set Content-Length', async () => {
        let error: unknown;
        const app = await serve({
          '/': route(async (_req, res) => {
            res.setTrailer('x-checksum', 'abc');
            res.setHeader('Content-Length', '5');
            try {
              await res.chunk('hello');
            } catch (e) {
              error = e;
            }
            res.end('hello');
          }),
        });
        const raw = await rawRequest(app.port, '/');
        expect(error).toBeInstanceOf(TypeError);
        expect(raw.headers.trailer).toBeUndefined();
        expect(raw.headers['x-accel-buffering']).toBeUndefined();
        expect(raw.body.toString()).toBe('hello');
      });

      it('drops trailers quietly on HEAD: setTrailer returns false, no Trailer header', async () => {
        const results: boolean[] = [];
        const app = await serve(
          {
            '/': route(async (_req, res) => {
              results.push(res.setTrailer('x-checksum', 'abc'));
              results.push(await res.chunk('ignored'));
              results.push(res.setTrailer('x-checksum', 'abc'));
              res.end();
            }),
          },
          { trailers: ['x-checksum'] },
        );
        const raw = await rawRequest(app.port, '/', { method: 'HEAD' });
        expect(raw.statusLine).toMatch(/ 200 /);
        expect(raw.headers.trailer).toBeUndefined();
        expect(raw.raw.length).toBe(0);
        expect(results).toEqual([false, true, false]);
      });

      it.each([204, 304])('drops trailers quietly on %i', async (status) => {
        const results: boolean[] = [];
        const app = await serve(
          {
            '/': route(async (_req, res) => {
              res.statusCode = status;
              results.push(res.setTrailer('x-checksum', 'abc'));
              results.push(await res.chunk('ignored'));
              results.push(res.setTrailer('x-checksum', 'abc'));
              res.end();
            }),
          },
          { trailers: ['x-checksum'] },
        );
        const raw = await rawRequest(app.port, '/');
        expect(raw.statusLine).toMatch(new RegExp(` ${status} `));
        expect(raw.headers.trailer).toBeUndefined();
        expect(raw.headers['transfer-encoding']).toBeUndefined();
        expect(raw.raw.length).toBe(0);
        expect(results).toEqual([false, true, false]);
      });

      it('returns false once the response has ended', async () => {
        let late: boolean | undefined;
        const app = await serve(
          {
            '/': route(async (_req, res) => {
              await res.chunk('x');
              res.end();
              late = res.setTrailer('x-checksum', 'abc');
            }),
          },
          { trailers: ['x-checksum'] },
        );
        const raw = await rawRequest(app.port, '/');
        expect(late).toBe(false);
        expect(raw.trailers).toEqual({});
      });
    });

    describe('backpressure', () => {
      it('accepts no more than the socket buffers hold from 64 MiB written to a paused client', async () => {
        const size = 64 * 1024;
        const total = 64 * 1024 * 1024;
        const block = Buffer.alloc(size, 122);
        const progress = { waiting: false, accepted: 0, result: undefined as boolean | undefined };
        const app = await serve({
          '/': route(async (_req, res) => {
            for (let sent = 0; sent < total; sent += size) {
              progress.waiting = true;
              const ok = await res.chunk(block);
              progress.waiting = false;
              if (!ok) {
                progress.result = false;
                return;
              }
              progress.accepted += size;
            }
            progress.result = true;
            res.end();
          }),
        });
        const client = countingClient(app.port, '/');
        await untilStable(() => progress.accepted, 'the producer to wait for drain', {
          ready: () => progress.waiting,
          quietMs: 200,
        });
        // socket buffers on both ends hold a few MiB; without backpressure all 64 MiB would be accepted
        expect(progress.accepted).toBeLessThan(16 * 1024 * 1024);
        client.socket.resume();
        const received = await client.done;
        expect(progress.result).toBe(true);
        const framed = (total / size) * (size.toString(16).length + 2 + size + 2) + '0\r\n\r\n'.length;
        expect(received.bodyBytes).toBe(framed);
        expect(received.tail.endsWith('\r\n0\r\n\r\n')).toBe(true);
      });
    });

    describe('HTTP/1.0', () => {
      it('sends a close-delimited body with no Trailer header; setTrailer returns false', async () => {
        const results: boolean[] = [];
        const app = await serve(
          {
            '/': route(async (_req, res) => {
              results.push(res.setTrailer('x-checksum', 'abc'));
              await res.chunk('one ');
              await res.chunk('two');
              results.push(res.setTrailer('x-checksum', 'abc'));
              res.end();
            }),
          },
          { trailers: ['x-checksum'] },
        );
        const raw = await rawRequest(app.port, '/', { version: '1.0' });
        expect(raw.statusLine).toMatch(/ 200 /);
        expect(raw.headers['transfer-encoding']).toBeUndefined();
        expect(raw.headers['content-length']).toBeUndefined();
        expect(raw.headers.trailer).toBeUndefined();
        expect(raw.headers.connection).toBe('close');
        expect(raw.raw.toString()).toBe('one two');
        expect(results).toEqual([false, false]);
      });
    });

    describe('under compression()', () => {
      it.each([
        ['compression() before chunked()', true],
        ['chunked() before compression()', false],
      ])(
        'flushes each chunk through gzip before the next one is written (%s)',
        async (_name, compressionFirst) => {
          const steps = [deferred(), deferred(), deferred()];
          const middleware = [
            compression({ threshold: 0 }) as unknown as Handler,
            mw({ noTransform: false }),
          ];
          const app = await framework.listen({
            use: compressionFirst ? middleware : middleware.reverse(),
            routes: {
              '/': route(async (_req, res) => {
                res.setHeader('Content-Type', 'text/plain; charset=utf-8');
                for (let i = 0; i < 3; i++) {
                  await res.chunk(`chunk-${i};`);
                  await steps[i]!.promise;
                }
                res.end();
              }),
            },
          });
          const res = await get(`${app.url}/`, { 'Accept-Encoding': 'gzip' });
          expect(res.headers['content-encoding']).toBe('gzip');
          const gunzip = res.pipe(zlib.createGunzip());
          let text = '';
          gunzip.on('data', (data: Buffer) => {
            text += data.toString();
          });
          for (let i = 0; i < 3; i++) {
            await until(() => text.endsWith(`chunk-${i};`), `chunk-${i} out of gzip`);
            steps[i]!.resolve();
          }
          await once(gunzip, 'end');
          expect(text).toBe('chunk-0;chunk-1;chunk-2;');
        },
      );

      it('is left uncompressed by default (Cache-Control: no-transform), chunk by chunk', async () => {
        const step = deferred();
        const app = await serve(
          {
            '/': route(async (_req, res) => {
              res.setHeader('Content-Type', 'text/plain; charset=utf-8');
              await res.chunk('first;');
              await step.promise;
              await res.chunk('second');
              res.end();
            }),
          },
          undefined,
          [compression({ threshold: 0 }) as unknown as Handler],
        );
        const client = openRaw(app.port, '/', { headers: { 'Accept-Encoding': 'gzip' } });
        await until(() => client.text() === 'first;', 'the first chunk, uncompressed');
        step.resolve();
        const raw = await client.done;
        expect(raw.headers['content-encoding']).toBeUndefined();
        expect(raw.headers['cache-control']).toBe('no-transform');
        expect(raw.body.toString()).toBe('first;second');
      });

      it('sends trailers after a compressed body', async () => {
        const app = await serve(
          {
            '/': route(async (_req, res) => {
              const body = 'compressed '.repeat(100);
              res.setHeader('Content-Type', 'text/plain; charset=utf-8');
              await res.chunk(body);
              res.setTrailer('x-checksum', sha256(body));
              res.end();
            }),
          },
          { noTransform: false, trailers: ['x-checksum'] },
          [compression({ threshold: 0 }) as unknown as Handler],
        );
        const raw = await rawRequest(app.port, '/', { headers: { 'Accept-Encoding': 'gzip' } });
        expect(raw.headers['content-encoding']).toBe('gzip');
        expect(raw.headers.trailer).toBe('x-checksum');
        const body = zlib.gunzipSync(raw.body).toString();
        expect(body).toBe('compressed '.repeat(100));
        expect(raw.trailers['x-checksum']).toBe(sha256(body));
      });
    });

    describe('coalescing', () => {
      const threeAtOnce = route(async (_req, res) => {
        void res.chunk('a');
        void res.chunk('b');
        await res.chunk('c');
        res.end();
      });

      it('is off by default: every chunk is its own chunk on the wire', async () => {
        const app = await serve({ '/': threeAtOnce });
        expect(wireChunks((await rawRequest(app.port, '/')).raw)).toEqual(['a', 'b', 'c']);
      });

      it('writes what is gathered before res.end() ends the response', async () => {
        const app = await serve({ '/': threeAtOnce }, { coalesce: { maxDelayMs: 60_000, maxBytes: 1024 } });
        const raw = await rawRequest(app.port, '/');
        expect(wireChunks(raw.raw)).toEqual(['abc']);
        expect(raw.terminated).toBe(true);
      });

      it('writes the window as one chunk after maxDelayMs', async () => {
        const step = deferred();
        const app = await serve(
          {
            '/': route(async (_req, res) => {
              await res.chunk('to');
              await res.chunk('ken');
              await step.promise;
              await res.chunk('s');
              res.end();
            }),
          },
          { coalesce: { maxDelayMs: 5, maxBytes: 1024 } },
        );
        const client = openRaw(app.port, '/');
        await until(() => client.text() === 'token', 'the window written after its delay');
        step.resolve();
        expect(wireChunks((await client.done).raw)).toEqual(['token', 's']);
      });

      it('writes the window at maxBytes without waiting for the delay', async () => {
        const step = deferred();
        const app = await serve(
          {
            '/': route(async (_req, res) => {
              await res.chunk('ab');
              await res.chunk('cd');
              await res.chunk('e');
              await step.promise;
              res.end();
            }),
          },
          { coalesce: { maxDelayMs: 60_000, maxBytes: 4 } },
        );
        const client = openRaw(app.port, '/');
        await until(() => client.text() === 'abcd', 'the full window written at once');
        step.resolve();
        expect(wireChunks((await client.done).raw)).toEqual(['abcd', 'e']);
      });

      it('copies what it gathers, so a buffer can be reused once its chunk resolved', async () => {
        const app = await serve(
          {
            '/': route(async (_req, res) => {
              const buffer = Buffer.from('x');
              await res.chunk(buffer);
              buffer.fill('y');
              await res.chunk(buffer);
              res.end();
            }),
          },
          { coalesce: { maxDelayMs: 60_000, maxBytes: 1024 } },
        );
        expect((await rawRequest(app.port, '/')).body.toString()).toBe('xy');
      });
    });

    describe('bad input', () => {
      it.each([
        ['a number', 42, /res\.chunk: data must be a string or a Uint8Array, got number \(42\)/],
        ['an object', { text: 'no' }, /got an object/],
        ['null', null, /got null/],
      ])('res.chunk(%s) throws a TypeError naming it; the response goes on', async (_name, data, message) => {
        let error: unknown;
        const app = await serve({
          '/': route(async (_req, res) => {
            try {
              void res.chunk(data as unknown as string);
            } catch (e) {
              error = e;
            }
            await res.chunk('still fine');
            res.end();
          }),
        });
        const raw = await rawRequest(app.port, '/');
        expect(error).toBeInstanceOf(TypeError);
        expect((error as Error).message).toMatch(message);
        expect(raw.body.toString()).toBe('still fine');
      });

      it.each([
        [
          'a name that is no token',
          'x checksum',
          'abc',
          /name must be a header name .* got a string \("x checksum"\)/,
        ],
        ['a framing field', 'Content-Length', '5', /must not be content-length/],
        [
          'a value with CR LF',
          'x-checksum',
          'a\r\nx-injected: 1',
          /value of x-checksum must be a string without CR, LF/,
        ],
        ['a value that is no string', 'x-count', 42, /got number \(42\)/],
      ])('res.setTrailer() throws a TypeError for %s', async (_name, name, value, message) => {
        let error: unknown;
        const app = await serve({
          '/': route(async (_req, res) => {
            try {
              res.setTrailer(name, value as string);
            } catch (e) {
              error = e;
            }
            await res.chunk('x');
            res.end();
          }),
        });
        const raw = await rawRequest(app.port, '/');
        expect(error).toBeInstanceOf(TypeError);
        expect((error as Error).message).toMatch(message);
        expect(raw.headers.trailer).toBeUndefined();
      });
    });
  });

  describe.each([express5Framework, express4Framework])('with res.sendFile under $name', (framework) => {
    it('leaves the file response as it was', async () => {
      const send: Handler = (_req, res) =>
        (res as unknown as { sendFile(file: string): void }).sendFile(path.join(FILES, 'name.txt'));
      const withChunked = await framework.listen({ use: [mw()], routes: { '/': send } });
      const without = await framework.listen({ routes: { '/': send } });
      const { date: _a, ...headersWith } = (await rawRequest(withChunked.port, '/')).headers;
      const { date: _b, ...headersWithout } = (await rawRequest(without.port, '/')).headers;
      expect(headersWith).toEqual(headersWithout);
      expect(headersWith['content-length']).toBe('4');
      expect(headersWith['x-accel-buffering']).toBeUndefined();
    });
  });

  describe('HTTP/2 (node:http2 compatibility API, Connect)', () => {
    // Node has it, @types/node 20 does not declare it
    type OwnSetTrailer = { setTrailer(name: string, value: string): void };
    type Http2Res = http2.Http2ServerResponse & Pick<ChunkedResponse, 'chunk'> & OwnSetTrailer;
    async function serveHttp2(
      handler: (req: http2.Http2ServerRequest, res: Http2Res) => unknown,
      options?: ChunkedOptions,
    ): Promise<number> {
      const app = connect();
      app.use(chunked(options) as unknown as connect.NextHandleFunction);
      app.use(((req: http2.Http2ServerRequest, res: Http2Res) => {
        Promise.resolve()
          .then(() => handler(req, res))
          .catch((error: unknown) => {
            routeErrors.push(error);
            res.destroy();
          });
      }) as unknown as connect.NextHandleFunction);
      return (await listenHttp2(app)).port;
    }

    it('delivers each chunk before the next one is written, with no connection-specific headers', async () => {
      const steps = [deferred(), deferred()];
      const port = await serveHttp2(async (_req, res) => {
        await res.chunk('h2-0;');
        await steps[0]!.promise;
        await res.chunk('h2-1;');
        await steps[1]!.promise;
        await res.chunk('h2-2;');
        res.end();
      });
      const { got, closed } = http2Open(port, '/');
      await until(() => got.body.toString() === 'h2-0;', 'h2-0 through HTTP/2');
      steps[0]!.resolve();
      await until(() => got.body.toString() === 'h2-0;h2-1;', 'h2-1 through HTTP/2');
      steps[1]!.resolve();
      await closed;
      expect(got.body.toString()).toBe('h2-0;h2-1;h2-2;');
      expect(got.headers?.[':status']).toBe(200);
      expect(got.headers?.['transfer-encoding']).toBeUndefined();
      expect(got.headers?.connection).toBeUndefined();
      expect(got.headers?.trailer).toBeUndefined();
      expect(got.headers?.['x-accel-buffering']).toBe('no');
    });

    it("leaves Node's own res.setTrailer, whose trailers arrive", async () => {
      let own: boolean | undefined;
      const port = await serveHttp2(
        async (_req, res) => {
          own =
            res.setTrailer === (http2.Http2ServerResponse.prototype as unknown as OwnSetTrailer).setTrailer;
          await res.chunk('body');
          res.setTrailer('x-checksum', sha256('body'));
          res.end();
        },
        { trailers: ['x-checksum'] },
      );
      const { got, closed } = http2Open(port, '/');
      await closed;
      expect(own).toBe(true);
      expect(got.body.toString()).toBe('body');
      expect(got.trailers?.['x-checksum']).toBe(sha256('body'));
    });

    it('resolves res.chunk() false once the client cancels, and removes its listeners', async () => {
      let before: ListenerCounts | undefined;
      let after: ListenerCounts | undefined;
      let result: boolean | undefined;
      const block = Buffer.alloc(16 * 1024, 104);
      const port = await serveHttp2(async (_req, res) => {
        before = listenerCounts(res);
        while (await res.chunk(block)) await sleep(1);
        result = false;
        after = listenerCounts(res);
      });
      const { stream, got } = http2Open(port, '/');
      await until(() => got.body.length > 0, 'the first chunk through HTTP/2');
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await until(() => result === false, 'res.chunk() to resolve false');
      expect(after).toEqual(before);
    });
  });

  describe('bad options', () => {
    it.each([
      ['options', 'nope', /chunked: expected options to be an object, got a string \("nope"\)/],
      [
        'trailers',
        { trailers: 'x-checksum' },
        /expected `trailers` to be an array of header names, got a string/,
      ],
      [
        'a trailer name',
        { trailers: ['x ok'] },
        /`trailers\[0\]` must be a header name .* got a string \("x ok"\)/,
      ],
      ['a framing trailer', { trailers: ['Transfer-Encoding'] }, /must not be transfer-encoding/],
      [
        'noTransform',
        { noTransform: 'yes' },
        /expected `noTransform` to be a boolean, got a string \("yes"\)/,
      ],
      [
        'coalesce',
        { coalesce: 5 },
        /expected `coalesce` to be \{ maxDelayMs, maxBytes \} or null, got number \(5\)/,
      ],
      [
        'coalesce.maxDelayMs',
        { coalesce: { maxDelayMs: -1 } },
        /expected `coalesce.maxDelayMs` to be a number from 0 to 2147483647, got number \(-1\)/,
      ],
      [
        'coalesce.maxBytes',
        { coalesce: { maxBytes: 0.5 } },
        /expected `coalesce.maxBytes` to be an integer >= 1, got number \(0.5\)/,
      ],
    ])('throws a TypeError naming %s', (_name, options, message) => {
      expect(() => chunked(options as ChunkedOptions)).toThrow(TypeError);
      expect(() => chunked(options as ChunkedOptions)).toThrow(message);
    });

    it('accepts trailer names in any case and announces each once, lower-cased', async () => {
      const app = await nodeHttpFramework.listen({
        use: [mw({ trailers: ['X-Checksum', 'x-checksum', 'X-Status'] })],
        routes: {
          '/': route(async (_req, res) => {
            await res.chunk('x');
            res.end();
          }),
        },
      });
      expect((await rawRequest(app.port, '/')).headers.trailer).toBe('x-checksum, x-status');
    });
  });
});

interface RawClient {
  readonly socket: net.Socket;
  /** The response so far, once its head has arrived. */
  current(): RawResponse | undefined;
  /** The de-chunked body so far. */
  text(): string;
  /** The whole response, once the server has closed the connection. */
  readonly done: Promise<RawResponse>;
}

/** A raw HTTP/1.x request whose response can be watched while it arrives. */
function openRaw(
  port: number,
  path: string,
  options: { headers?: Record<string, string>; paused?: boolean } = {},
): RawClient {
  const socket = net.connect(port, '127.0.0.1');
  if (options.paused) socket.pause();
  const parts: Buffer[] = [];
  socket.on('data', (data: Buffer) => parts.push(data));
  socket.on('error', () => {});
  const current = () => {
    const bytes = Buffer.concat(parts);
    return bytes.includes('\r\n\r\n') ? parseRaw(bytes) : undefined;
  };
  const done = new Promise<RawResponse>((resolve, reject) => {
    socket.on('close', () => {
      try {
        resolve(parseRaw(Buffer.concat(parts)));
      } catch (error) {
        reject(error);
      }
    });
  });
  done.catch(() => {});
  const lines = [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
  for (const [name, value] of Object.entries(options.headers ?? {})) lines.push(`${name}: ${value}`);
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  return { socket, current, text: () => current()?.body.toString() ?? '', done };
}

/** A paused raw client that only counts what it receives (64 MiB need not be kept). */
function countingClient(port: number, path: string) {
  const socket = net.connect(port, '127.0.0.1');
  socket.pause();
  let head = Buffer.alloc(0);
  let bodyBytes = -1;
  let tail = '';
  socket.on('data', (data: Buffer) => {
    if (bodyBytes < 0) {
      head = Buffer.concat([head, data]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      data = head.subarray(end + 4);
      bodyBytes = 0;
    }
    bodyBytes += data.length;
    tail = (tail + data.subarray(-16).toString('latin1')).slice(-16);
  });
  socket.on('error', () => {});
  const done = once(socket, 'close').then(() => ({ bodyBytes, tail }));
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  return { socket, done };
}

/** The payloads of a chunked body as framed on the wire (the final empty chunk left out). */
function wireChunks(raw: Buffer): string[] {
  const chunks: string[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', offset);
    if (lineEnd === -1) return chunks;
    const size = Number.parseInt(raw.subarray(offset, lineEnd).toString('latin1'), 16);
    if (!size) return chunks;
    chunks.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size).toString());
    offset = lineEnd + 2 + size + 2;
  }
}

function get(url: string, headers: Record<string, string>): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers, agent: false }, resolve).on('error', reject);
  });
}

import { once } from 'node:events';
import fs from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { PassThrough, Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import compression from 'compression';
import request from 'supertest';
import {
  file,
  jsonArray,
  ndjson,
  StreamableBody,
  type StreamBody,
  type StreamContext,
  type StreamOptions,
  type StreamOutcome,
  streamBody,
} from '../lib';
import { openFileDescriptors } from './helpers/resources';
import { abortAfter, closeAll, frameworks, type Handler, httpGet, rawRequest } from './helpers/servers';
import { endlessTicks } from './helpers/sources';
import { afterPendingEvents, deferred, sleep, until, untilStable } from './helpers/wait';

const FILES = path.join(__dirname, 'fixtures', 'files');

type Res = http.ServerResponse & {
  stream(body: StreamBody, options?: StreamOptions): Promise<StreamOutcome>;
};

/** A route that streams what `make()` returns and records the promise's outcome. */
function streams(
  make: (req: http.IncomingMessage, res: Res) => unknown,
  outcomes?: StreamOutcome[],
): Handler {
  return (req, res) => {
    void (res as Res).stream(make(req, res as Res) as StreamBody).then((outcome) => outcomes?.push(outcome));
  };
}

afterEach(closeAll);

describe.each(frameworks)('streamBody() under $name', (framework) => {
  const serve = (
    routes: Record<string, Handler>,
    extra: { use?: Handler[]; onError?: Parameters<typeof framework.listen>[0]['onError'] } = {},
  ) =>
    framework.listen({
      use: [...(extra.use ?? []), streamBody() as unknown as Handler],
      routes,
      onError: extra.onError,
    });

  describe('res.stream(body) — bodies sent whole', () => {
    it('sends null as an empty body with no Content-Type', async () => {
      const app = await serve({ '/': streams(() => null) });
      const res = await request(app.url).get('/');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBeUndefined();
      expect(res.text ?? '').toBe('');
    });

    it('sends a string with an exact Content-Length as text/plain', async () => {
      const app = await serve({ '/': streams(() => 'héllo') });
      const res = await request(app.url).get('/');
      expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(res.headers['content-length']).toBe('6');
      expect(res.text).toBe('héllo');
    });

    it.each([
      ['a Buffer', () => Buffer.from([1, 2, 3])],
      ['a Uint8Array', () => new Uint8Array([1, 2, 3])],
      ['an ArrayBuffer', () => new Uint8Array([1, 2, 3]).buffer],
    ])('sends %s as application/octet-stream with its length', async (_name, make) => {
      const app = await serve({ '/': streams(make) });
      const res = await request(app.url).get('/').buffer(true).parse(binaryParser);
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(res.headers['content-length']).toBe('3');
      expect([...(res.body as Buffer)]).toEqual([1, 2, 3]);
    });

    it('sends plain objects and arrays as JSON', async () => {
      const app = await serve({ '/o': streams(() => ({ a: 1 })), '/a': streams(() => [1, 'two']) });
      const o = await request(app.url).get('/o');
      expect(o.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(o.body).toEqual({ a: 1 });
      expect((await request(app.url).get('/a')).body).toEqual([1, 'two']);
    });

    it('keeps a Content-Type the app set', async () => {
      const app = await serve({
        '/': streams((_req, res) => {
          res.setHeader('Content-Type', 'text/csv');
          return 'a,b';
        }),
      });
      expect((await request(app.url).get('/')).headers['content-type']).toBe('text/csv');
    });
  });

  describe('res.stream(body) — streamed bodies', () => {
    it('streams a Node Readable as chunked octet-stream', async () => {
      const app = await serve({ '/': streams(() => Readable.from([Buffer.from('ab'), Buffer.from('cd')])) });
      const raw = await rawRequest(app.port, '/');
      expect(raw.headers['content-type']).toBe('application/octet-stream');
      expect(raw.chunked).toBe(true);
      expect(raw.terminated).toBe(true);
      expect(raw.body.toString()).toBe('abcd');
    });

    it('streams a web ReadableStream', async () => {
      const app = await serve({
        '/': streams(
          () =>
            new ReadableStream<Uint8Array>({
              start(controller) {
                controller.enqueue(new TextEncoder().encode('web '));
                controller.enqueue(new TextEncoder().encode('stream'));
                controller.close();
              },
            }),
        ),
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.body.toString()).toBe('web stream');
      expect(raw.terminated).toBe(true);
    });

    it('streams a Blob with its type and exact length', async () => {
      const app = await serve({ '/': streams(() => new Blob(['<p>hi</p>'], { type: 'text/html' })) });
      const res = await request(app.url).get('/');
      expect(res.headers['content-type']).toBe('text/html');
      expect(res.headers['content-length']).toBe('9');
      expect(res.text).toBe('<p>hi</p>');
    });

    it('streams a fetch Response with its status and end-to-end headers only', async () => {
      const app = await serve({
        '/': streams(
          () =>
            new Response('created', {
              status: 201,
              headers: {
                'content-type': 'text/x-custom',
                'x-kept': 'yes',
                'content-encoding': 'gzip',
                'content-length': '999',
                connection: 'x-hop',
                'x-hop': 'dropped',
                'keep-alive': 'timeout=5',
              },
            }),
        ),
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.statusLine).toMatch(/^HTTP\/1\.1 201/);
      expect(raw.headers['content-type']).toBe('text/x-custom');
      expect(raw.headers['x-kept']).toBe('yes');
      expect(raw.headers['content-encoding']).toBeUndefined();
      expect(raw.headers['x-hop']).toBeUndefined();
      expect(raw.headers['content-length']).toBeUndefined();
      expect(raw.headers.connection).toBe('close');
      expect(raw.body.toString()).toBe('created');
    });

    it('streams async and sync generators item by item', async () => {
      const app = await serve({
        '/async': streams(async function* () {
          yield 'a';
          yield Buffer.from('b');
        }),
        '/sync': streams(function* () {
          yield 'c';
          yield new Uint8Array([100]);
        }),
      });
      expect((await rawRequest(app.port, '/async')).body.toString()).toBe('ab');
      expect((await rawRequest(app.port, '/sync')).body.toString()).toBe('cd');
    });

    it('streams an object literal that has an async iterator, never as {}', async () => {
      const body = {
        async *[Symbol.asyncIterator]() {
          yield 'not json';
        },
      };
      const app = await serve({ '/': streams(() => body) });
      const res = await request(app.url).get('/').buffer(true).parse(binaryParser);
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect((res.body as Buffer).toString()).toBe('not json');
    });

    it('streams a channel (an async iterable with close()) and closes it when done', async () => {
      const channel = closableQueue(['x', 'y']);
      const app = await serve({ '/': streams(() => channel) });
      expect((await rawRequest(app.port, '/')).body.toString()).toBe('xy');
    });

    it('streams ndjson() lines and jsonArray() arrays with their types', async () => {
      const rows = [{ id: 1 }, { id: 2, name: 'Ada' }];
      const app = await serve({ '/nd': streams(() => ndjson(rows)), '/arr': streams(() => jsonArray(rows)) });
      const nd = await request(app.url).get('/nd').buffer(true).parse(binaryParser);
      expect(nd.headers['content-type']).toBe('application/x-ndjson');
      expect((nd.body as Buffer).toString()).toBe('{"id":1}\n{"id":2,"name":"Ada"}\n');
      const arr = await request(app.url).get('/arr');
      expect(arr.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(arr.body).toEqual(rows);
    });

    it('streams jsonArray() of nothing as []', async () => {
      const app = await serve({ '/': streams(() => jsonArray([])) });
      expect((await request(app.url).get('/')).body).toEqual([]);
    });

    it('ends a function body when its out ends', async () => {
      const app = await serve({
        '/': streams(() => (out: Writable) => {
          out.write('one ');
          setTimeout(() => out.end('two'), 10);
        }),
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.body.toString()).toBe('one two');
      expect(raw.terminated).toBe(true);
    });

    it('lets a function body pipe into out', async () => {
      const app = await serve({
        '/': streams(() => (out: Writable) => {
          fs.createReadStream(path.join(FILES, 'name.txt')).pipe(out);
        }),
      });
      expect((await rawRequest(app.port, '/')).body.toString()).toBe('tobi');
    });

    it('ends a function body when its promise settles with out open and nothing piped', async () => {
      const app = await serve({
        '/': streams(() => async (out: Writable) => {
          out.write('done when resolved');
        }),
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.body.toString()).toBe('done when resolved');
      expect(raw.terminated).toBe(true);
    });

    it('hands a function body a ctx with signal, req and res', async () => {
      let seen: StreamContext | undefined;
      const app = await serve({
        '/': streams((req) => (out: Writable, ctx: StreamContext) => {
          seen = ctx;
          out.end(String(ctx.req === req));
        }),
      });
      expect((await rawRequest(app.port, '/')).body.toString()).toBe('true');
      expect(seen?.signal.aborted).toBe(false);
    });

    it('streams an object implementing StreamableBody, with its own content type', async () => {
      const body: StreamableBody = {
        contentType: 'text/x-ring',
        [StreamableBody](out) {
          out.write('written ');
          out.end('by itself');
        },
      };
      const app = await serve({ '/': streams(() => body) });
      const res = await request(app.url).get('/');
      expect(res.headers['content-type']).toBe('text/x-ring');
      expect(res.text).toBe('written by itself');
    });

    it('resolves the promise with "finished"', async () => {
      const outcomes: StreamOutcome[] = [];
      const app = await serve({ '/': streams(() => Readable.from(['x']), outcomes) });
      await rawRequest(app.port, '/');
      await until(() => outcomes.length === 1, 'outcome');
      expect(outcomes).toEqual(['finished']);
    });
  });

  describe('bad bodies', () => {
    it.each([
      ['a number', () => 42, /number \(42\)/],
      ['a class instance', () => new (class Widget {})(), /an instance of Widget/],
      ['a boolean', () => true, /boolean \(true\)/],
    ])('answers %s with a 500 through the app error handling, naming it', async (_name, make, message) => {
      const errors: unknown[] = [];
      const app = await serve({ '/': streams(make) }, { onError: recordingErrorHandler(errors) });
      const res = await rawRequest(app.port, '/');
      expect(res.statusLine).toMatch(/ 500 /);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(TypeError);
      expect((errors[0] as Error).message).toMatch(message);
    });

    it('answers a generator whose first item is a number with a 500 before any byte', async () => {
      const errors: unknown[] = [];
      const app = await serve(
        {
          '/': streams(function* () {
            yield 7 as unknown as string;
          }),
        },
        { onError: recordingErrorHandler(errors) },
      );
      const res = await rawRequest(app.port, '/');
      expect(res.statusLine).toMatch(/ 500 /);
      expect((errors[0] as Error).message).toMatch(
        /iterable item must be a string or a Uint8Array, got number \(7\)/,
      );
    });

    it('truncates when a later item is bad', async () => {
      const app = await serve({
        '/': streams(function* () {
          yield 'fine';
          yield { no: 'objects' } as unknown as string;
        }),
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.statusLine).toMatch(/ 200 /);
      expect(raw.body.toString()).toBe('fine');
      expect(raw.terminated).toBe(false);
    });
  });

  describe('errors', () => {
    it('routes an error before the first byte to the app error handling, with its status', async () => {
      const errors: unknown[] = [];
      const app = await serve(
        {
          '/': streams(
            () =>
              new Readable({
                read() {
                  this.destroy(Object.assign(new Error('gone'), { status: 410 }));
                },
              }),
          ),
        },
        { onError: recordingErrorHandler(errors) },
      );
      const res = await rawRequest(app.port, '/');
      expect(res.statusLine).toMatch(/ 410 /);
      expect(res.body.toString()).toBe('handled: gone');
      expect(errors).toHaveLength(1);
    });

    it('truncates a Readable that fails after the headers: no final chunk, res.complete false', async () => {
      const app = await serve({ '/': streams(() => failingAfter('partial')) });
      const raw = await rawRequest(app.port, '/');
      expect(raw.body.toString()).toBe('partial');
      expect(raw.terminated).toBe(false);
      expect(raw.raw.includes('0\r\n\r\n')).toBe(false);
      const got = await httpGet(`${app.url}/`);
      expect(got.complete).toBe(false);
    });

    it('truncates a web stream errored with no reason (never a clean end, never error text)', async () => {
      const app = await serve({
        '/': streams(
          () =>
            new ReadableStream<Uint8Array>({
              start(controller) {
                controller.enqueue(new TextEncoder().encode('part'));
              },
              pull(controller) {
                return sleep(10).then(() => controller.error(undefined));
              },
            }),
        ),
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.body.toString()).toBe('part');
      expect(raw.terminated).toBe(false);
    });

    it('truncates a function body whose promise rejects after writing', async () => {
      const outcomes: StreamOutcome[] = [];
      const app = await serve({
        '/': streams(
          () => async (out: Writable) => {
            out.write('begun');
            await sleep(10);
            throw new Error('producer failed');
          },
          outcomes,
        ),
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.body.toString()).toBe('begun');
      expect(raw.terminated).toBe(false);
      await until(() => outcomes.length === 1, 'outcome');
      expect(outcomes).toEqual(['errored']);
    });

    it('routes a function body that throws at once to the error handling', async () => {
      const app = await serve({
        '/': streams(() => () => {
          throw Object.assign(new Error('teapot'), { status: 418 });
        }),
      });
      expect((await rawRequest(app.port, '/')).statusLine).toMatch(/ 418 /);
    });

    it('tells onError about errors, with ctx', async () => {
      const heard: Array<[unknown, boolean]> = [];
      const app = await framework.listen({
        use: [
          streamBody({ onError: (err, ctx) => heard.push([err, ctx.res.headersSent]) }) as unknown as Handler,
        ],
        routes: { '/': streams(() => failingAfter('x')) },
      });
      await rawRequest(app.port, '/');
      await until(() => heard.length === 1, 'onError');
      const [error, headersSent] = heard[0] ?? [];
      expect((error as Error).message).toBe('boom');
      expect(headersSent).toBe(true);
    });
  });

  describe('when the client leaves', () => {
    it('runs the generator finally and resolves "aborted"', async () => {
      const outcomes: StreamOutcome[] = [];
      const ticks = endlessTicks();
      const app = await serve({ '/': streams(() => ticks.body, outcomes) });
      await abortAfter(app.port, '/', (bytes) => bytes.includes('tick'));
      await until(() => ticks.released() && outcomes.length === 1, 'generator finally and outcome');
      expect(outcomes).toEqual(['aborted']);
    });

    it('destroys a Readable', async () => {
      const stream = new PassThrough();
      stream.write('first');
      const app = await serve({ '/': streams(() => stream) });
      await abortAfter(app.port, '/', (bytes) => bytes.includes('first'));
      await until(() => stream.destroyed, 'Readable destroyed');
    });

    it('cancels a web stream reader, even with a read pending', async () => {
      let cancelled: unknown = 'not cancelled';
      const app = await serve({
        '/': streams(
          () =>
            new ReadableStream<Uint8Array>({
              start(controller) {
                controller.enqueue(new TextEncoder().encode('open'));
              },
              cancel(reason) {
                cancelled = reason;
              },
            }),
        ),
      });
      await abortAfter(app.port, '/', (bytes) => bytes.includes('open'));
      await until(() => cancelled !== 'not cancelled', 'web stream cancelled');
    });

    it('closes a channel, even with a take pending', async () => {
      const channel = closableQueue(['first'], true);
      const app = await serve({ '/': streams(() => channel) });
      await abortAfter(app.port, '/', (bytes) => bytes.includes('first'));
      await until(() => channel.closed, 'channel closed');
    });

    it('aborts a function body signal and destroys what was piped into out', async () => {
      let signal: AbortSignal | undefined;
      const source = new PassThrough();
      const app = await serve({
        '/': streams(() => (out: Writable, ctx: StreamContext) => {
          signal = ctx.signal;
          source.pipe(out);
          source.write('piped');
        }),
      });
      await abortAfter(app.port, '/', (bytes) => bytes.includes('piped'));
      await until(() => signal?.aborted === true && source.destroyed, 'signal aborted, source destroyed');
    });

    it('closes the file descriptor of a file body', async () => {
      const outcomes: StreamOutcome[] = [];
      const app = await serve({ '/': streams(() => file('big.txt', { root: FILES }), outcomes) });
      const before = openFileDescriptors();
      const clients = Array.from({ length: 5 }, () =>
        abortAfter(app.port, '/', (bytes) => bytes.length > 1000),
      );
      await Promise.all(clients);
      await until(() => outcomes.length === 5, 'five outcomes');
      expect(outcomes).toEqual(Array(5).fill('aborted'));
      await until(() => openFileDescriptors() <= before, 'descriptors back to baseline');
    });
  });

  describe('when the client left before res.stream() was called', () => {
    it('resolves "aborted" and releases the body unstarted', async () => {
      const outcomes: StreamOutcome[] = [];
      let arrived = false;
      let released = false;
      const app = await serve({
        '/': (_req, res) => {
          arrived = true;
          // The handler awaited something first; by then the client had left.
          res.once('close', () => {
            const rows = (async function* () {
              try {
                yield 'never';
              } finally {
                released = true;
              }
            })();
            void rows.next().then(() => (res as Res).stream(rows).then((outcome) => outcomes.push(outcome)));
          });
        },
      });
      const socket = net.connect(app.port, '127.0.0.1');
      socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => arrived, 'the request to arrive');
      socket.destroy();
      await until(() => outcomes.length === 1, 'the outcome');
      expect(outcomes).toEqual(['aborted']);
      expect(released).toBe(true);
    });
  });

  describe('when the app ends the response itself mid-stream', () => {
    it('releases a generator (its finally runs), aborts ctx.signal and resolves "aborted"', async () => {
      const outcomes: StreamOutcome[] = [];
      const ticks = endlessTicks();
      const app = await serve({
        '/': (_req, res) => {
          setTimeout(() => res.end(), 50);
          void (res as Res).stream(ticks.body).then((outcome) => outcomes.push(outcome));
        },
      });
      await rawRequest(app.port, '/');
      await until(() => ticks.released() && outcomes.length === 1, 'the generator released and the outcome');
      expect(outcomes).toEqual(['aborted']);
    });

    it('destroys a Readable and aborts a function body signal', async () => {
      const readable = new PassThrough();
      readable.write('first');
      let signal: AbortSignal | undefined;
      const app = await serve({
        '/readable': (_req, res) => {
          setTimeout(() => res.end(), 30);
          void (res as Res).stream(readable);
        },
        '/function': (_req, res) => {
          setTimeout(() => res.end(), 30);
          void (res as Res).stream((out: Writable, ctx: StreamContext) => {
            signal = ctx.signal;
            out.write('open');
          });
        },
      });
      await rawRequest(app.port, '/readable');
      await rawRequest(app.port, '/function');
      await until(() => readable.destroyed && signal?.aborted === true, 'Readable destroyed, signal aborted');
    });
  });

  describe('when a source fails while it is released', () => {
    it('survives a Readable whose destroy emits an error (a cursor whose close fails)', async () => {
      const outcomes: StreamOutcome[] = [];
      let closing = false;
      const app = await serve({
        '/': streams(
          () =>
            Readable.from(
              (async function* () {
                try {
                  for (;;) {
                    yield 'row\n';
                    await sleep(5);
                  }
                } finally {
                  closing = true;
                  // biome-ignore lint/correctness/noUnsafeFinally: the adversarial case under test
                  throw new Error('cursor close failed');
                }
              })(),
            ),
          outcomes,
        ),
        '/ok': streams(() => 'ok'),
      });
      await abortAfter(app.port, '/', (bytes) => bytes.includes('row'));
      await until(() => outcomes.length === 1 && closing, 'the outcome and the failing close');
      await afterPendingEvents();
      expect(outcomes).toEqual(['aborted']);
      // the process is still up and answering
      expect((await rawRequest(app.port, '/ok')).body.toString()).toBe('ok');
    });

    it("survives a Readable that emits 'error' just after 'end'", async () => {
      const outcomes: StreamOutcome[] = [];
      const lateError = deferred();
      const app = await serve({
        '/': streams(() => {
          const stream = new Readable({ read() {} });
          stream.push('all of it');
          stream.push(null);
          stream.once('end', () =>
            setImmediate(() => {
              try {
                stream.emit('error', new Error('late failure'));
              } finally {
                lateError.resolve();
              }
            }),
          );
          return stream;
        }, outcomes),
      });
      const got = await httpGet(`${app.url}/`);
      expect(got.complete).toBe(true);
      expect(got.body.toString()).toBe('all of it');
      await lateError.promise;
      await until(() => outcomes.length === 1, 'the outcome');
      expect(outcomes).toEqual(['finished']);
    });

    it('survives a Readable piped into a function body failing when it is destroyed on abort', async () => {
      let destroyed = false;
      const app = await serve({
        '/': streams(() => (out: Writable) => {
          const source = new Readable({
            read() {
              this.push('piped\n');
            },
            destroy(_error, callback) {
              destroyed = true;
              callback(new Error('close failed'));
            },
          });
          source.pipe(out);
        }),
      });
      await abortAfter(app.port, '/', (bytes) => bytes.includes('piped'));
      await until(() => destroyed, 'the piped Readable destroyed');
      await afterPendingEvents();
      expect((await rawRequest(app.port, '/', { method: 'HEAD' })).statusLine).toMatch(/ 200 /);
    });

    it('survives a HEAD request whose unstarted Readable fails as it is disposed of', async () => {
      let disposed = 0;
      const app = await serve({
        '/': streams(
          () =>
            new Readable({
              read() {},
              destroy(_error, callback) {
                disposed++;
                callback(new Error('dispose failed'));
              },
            }),
        ),
      });
      expect((await rawRequest(app.port, '/', { method: 'HEAD' })).statusLine).toMatch(/ 200 /);
      await until(() => disposed === 1, 'the unstarted Readable disposed of');
      await afterPendingEvents();
      expect((await rawRequest(app.port, '/', { method: 'HEAD' })).statusLine).toMatch(/ 200 /);
    });
  });

  describe('a slow source that has no close()', () => {
    it.each([
      ['ndjson()', (items: AsyncIterable<unknown>) => ndjson(items)],
      ['jsonArray()', (items: AsyncIterable<unknown>) => jsonArray(items)],
      ['the iterator itself', (items: AsyncIterable<unknown>) => items as AsyncIterable<string>],
    ])(
      'is released through %s as soon as the client leaves, not after its pending next()',
      async (_name, wrap) => {
        const cursor = slowCursor('{"id":1}\n');
        const app = await serve({ '/': streams(() => wrap(cursor)) });
        await abortAfter(app.port, '/', (bytes) => bytes.includes('id'));
        // its pending next() never answers: waiting for it first would never release the cursor
        await until(() => cursor.returned !== undefined, 'the cursor to be returned');
        expect(cursor.returned).toBe('while-pending');
      },
    );
  });

  describe('a failure after the head on an HTTP/1.0 connection (nginx upstream default)', () => {
    it('resets the connection, so the end cannot pass for a clean one', async () => {
      const app = await serve({ '/': streams(() => failingAfter('partial')) });
      const ending = await new Promise<{ body: string; how: string }>((resolve) => {
        const socket = net.connect(app.port, '127.0.0.1');
        let body = '';
        socket.on('data', (data) => {
          body += data.toString('latin1');
        });
        socket.on('end', () => resolve({ body, how: 'clean end (FIN)' }));
        socket.on('error', (error: NodeJS.ErrnoException) => resolve({ body, how: error.code ?? 'error' }));
        socket.write('GET / HTTP/1.0\r\nHost: x\r\n\r\n');
      });
      expect(ending.body).toMatch(/^HTTP\/1\.1 200 /);
      expect(ending.body).not.toMatch(/transfer-encoding/i);
      expect(ending.body.endsWith('partial')).toBe(true);
      expect(ending.how).toBe('ECONNRESET');
    });
  });

  describe('after the app committed the head or wrote part of the body itself', () => {
    it('streams a generator after res.flushHeaders(), with no Content-Type of its own', async () => {
      const app = await serve({
        '/': (_req, res) => {
          res.flushHeaders();
          void (res as Res).stream(letters());
        },
      });
      const got = await httpGet(`${app.url}/`);
      expect(got.complete).toBe(true);
      expect(got.body.toString()).toBe('abc');
    });

    it('streams the body after what res.write() wrote, for a stream and for a whole body', async () => {
      const app = await serve({
        '/stream': (_req, res) => {
          res.write('x');
          void (res as Res).stream(letters());
        },
        '/whole': (_req, res) => {
          res.write('x');
          void (res as Res).stream('yz');
        },
      });
      const streamed = await httpGet(`${app.url}/stream`);
      expect([streamed.complete, streamed.body.toString()]).toEqual([true, 'xabc']);
      const whole = await httpGet(`${app.url}/whole`);
      expect([whole.complete, whole.body.toString()]).toEqual([true, 'xyz']);
    });

    it('truncates visibly when file() comes after the head was sent, naming why', async () => {
      const heard: unknown[] = [];
      const app = await serve({
        '/': (_req, res) => {
          res.write('x');
          void (res as Res).stream(file('name.txt', { root: FILES }), {
            onError: (error) => heard.push(error),
          });
        },
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.terminated).toBe(false);
      expect(raw.body.toString()).toBe('x');
      expect(String(heard[0])).toMatch(
        /file\(\) sets the response's status and headers, but the head was already sent/,
      );
    });
    it('truncates visibly when a fetch Response comes after the head was sent, and cancels its body', async () => {
      const heard: unknown[] = [];
      let cancelled = false;
      const app = await serve({
        '/': (_req, res) => {
          res.write('x');
          const body = new ReadableStream<Uint8Array>({
            cancel: () => {
              cancelled = true;
            },
          });
          void (res as Res).stream(new Response(body), { onError: (error) => heard.push(error) });
        },
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.terminated).toBe(false);
      expect(raw.body.toString()).toBe('x');
      expect(String(heard[0])).toMatch(
        /a fetch Response sets the response's status and headers, but the head was already sent/,
      );
      await until(() => cancelled, "the Response's body cancelled");
    });

    it('refuses a body for a response the app already ended, naming why, and lets go of its source', async () => {
      const heard: unknown[] = [];
      const outcomes: StreamOutcome[] = [];
      let returned = false;
      const app = await serve({
        '/': (_req, res) => {
          res.end('done');
          const rows = {
            [Symbol.asyncIterator]: () => ({
              next: () => Promise.resolve({ done: false as const, value: 'never' }),
              return: () => {
                returned = true;
                return Promise.resolve({ done: true as const, value: undefined });
              },
            }),
          };
          void (res as Res)
            .stream(rows, { onError: (error) => heard.push(error) })
            .then((outcome) => outcomes.push(outcome));
        },
      });
      const got = await httpGet(`${app.url}/`);
      expect([got.complete, got.body.toString()]).toEqual([true, 'done']);
      await until(() => outcomes.length === 1, 'the outcome');
      expect(outcomes).toEqual(['errored']);
      expect(String(heard[0])).toMatch(/res\.stream: the response has already ended/);
      expect(returned).toBe(true);
    });
  });

  describe('what users do by mistake', () => {
    it('answers a generator function passed uncalled with a 500 that says to call it', async () => {
      const heard: unknown[] = [];
      const app = await serve({
        '/': (_req, res) =>
          void (res as Res).stream(
            async function* rows() {
              yield 'never';
            } as unknown as StreamBody,
            { onError: (error) => heard.push(error) },
          ),
      });
      const raw = await rawRequest(app.port, '/');
      expect(raw.statusLine).toMatch(/ 500 /);
      expect(String(heard[0])).toContain('call it: res.stream(rows())');
    });

    it('throws a TypeError at a second res.stream() on the same response', async () => {
      let thrown: unknown;
      const app = await serve({
        '/': (_req, res) => {
          void (res as Res).stream(letters());
          try {
            void (res as Res).stream('again');
          } catch (error) {
            thrown = error;
          }
        },
      });
      const got = await httpGet(`${app.url}/`);
      expect(got.body.toString()).toBe('abc');
      expect(thrown).toBeInstanceOf(TypeError);
      expect(String(thrown)).toMatch(/call res\.stream\(\) once per response/);
    });

    it('refuses a file path with a lone surrogate at file(), naming it', () => {
      expect(() => file('report-\ud800.csv', { root: FILES })).toThrow(
        /file: expected `path` to be well-formed Unicode, got a string \("report-\\ud800\.csv"\)/,
      );
    });
  });

  describe('buffering proxies (X-Accel-Buffering)', () => {
    it('sends X-Accel-Buffering: no with bodies made over time, not with files or whole bodies', async () => {
      const app = await serve({
        '/generator': streams(() => letters()),
        '/readable': streams(() => Readable.from(['a'])),
        '/function': streams(() => (out: Writable) => out.end('a')),
        '/file': streams(() => file('name.txt', { root: FILES })),
        '/string': streams(() => 'a'),
        '/blob': streams(() => new Blob(['a'])),
      });
      const header = async (route: string) =>
        (await rawRequest(app.port, route)).headers['x-accel-buffering'] ?? 'unset';
      expect(await header('/generator')).toBe('no');
      expect(await header('/readable')).toBe('no');
      expect(await header('/function')).toBe('no');
      expect(await header('/file')).toBe('unset');
      expect(await header('/string')).toBe('unset');
      expect(await header('/blob')).toBe('unset');
    });

    it("keeps the app's own X-Accel-Buffering, and the proxy's buffering with proxyBuffering: true", async () => {
      const app = await serve({
        '/own': (_req, res) => {
          res.setHeader('X-Accel-Buffering', 'yes');
          void (res as Res).stream(letters());
        },
        '/option': (_req, res) => void (res as Res).stream(letters(), { proxyBuffering: true }),
      });
      expect((await rawRequest(app.port, '/own')).headers['x-accel-buffering']).toBe('yes');
      expect((await rawRequest(app.port, '/option')).headers['x-accel-buffering']).toBeUndefined();
    });
  });

  describe('HEAD, 204 and 304', () => {
    it('never starts the producer on HEAD, and disposes of it', async () => {
      let started = false;
      const stream = new PassThrough();
      const channel = closableQueue([]);
      const app = await serve({
        '/fn': streams(() => () => {
          started = true;
        }),
        '/gen': streams(async function* () {
          started = true;
          yield 'x';
        }),
        '/readable': streams(() => stream),
        '/channel': streams(() => channel),
      });
      for (const route of ['/fn', '/gen', '/readable', '/channel']) {
        const res = await rawRequest(app.port, route, { method: 'HEAD' });
        expect(res.statusLine).toMatch(/ 200 /);
        expect(res.headers['content-type']).toBe('application/octet-stream');
        expect(res.raw.length).toBe(0);
      }
      expect(started).toBe(false);
      expect(stream.destroyed).toBe(true);
      expect(channel.closed).toBe(true);
    });

    it('sends the headers of a whole body on HEAD, without the body', async () => {
      const app = await serve({ '/': streams(() => 'hello') });
      const res = await rawRequest(app.port, '/', { method: 'HEAD' });
      expect(res.headers['content-length']).toBe('5');
      expect(res.raw.length).toBe(0);
    });

    it.each([204, 304])('sends no body and starts no producer for %i', async (status) => {
      let started = false;
      const app = await serve({
        '/': streams((_req, res) => {
          res.statusCode = status;
          return (out: Writable) => {
            started = true;
            out.end('x');
          };
        }),
        '/whole': streams((_req, res) => {
          res.statusCode = status;
          return 'text';
        }),
      });
      for (const route of ['/', '/whole']) {
        const res = await rawRequest(app.port, route);
        expect(res.statusLine).toMatch(new RegExp(` ${status} `));
        expect(res.raw.length).toBe(0);
        expect(res.headers['content-type']).toBeUndefined();
      }
      expect(started).toBe(false);
    });
  });

  describe('file(path, options)', () => {
    const serveFiles = () =>
      serve({
        '/name': streams(() => file('name.txt', { root: FILES })),
        '/percent': streams(() => file('100%.csv', { root: FILES })),
        '/space': streams(() => file('a b.csv', { root: FILES })),
        '/absolute': streams(() => file(path.join(FILES, 'name.txt'))),
        '/missing': streams(() => file('missing.txt', { root: FILES })),
        '/dir': streams(() => file('dir', { root: FILES })),
        '/traversal': streams(() => file('../../helpers/servers.ts', { root: FILES })),
        '/dotfile': streams(() => file('.env', { root: FILES })),
        '/dotdir': streams(() => file('.hidden/file.txt', { root: FILES })),
        '/big': streams(() => file('big.txt', { root: FILES })),
      });

    it('serves a file with its type from the extension and its length', async () => {
      const app = await serveFiles();
      const res = await request(app.url).get('/name');
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(res.headers['content-length']).toBe('4');
      expect(res.text).toBe('tobi');
      expect((await request(app.url).get('/absolute')).text).toBe('tobi');
    });

    it('serves names with % and spaces as named', async () => {
      const app = await serveFiles();
      expect((await request(app.url).get('/percent')).text).toBe('a,b\n1,2\n');
      expect((await request(app.url).get('/space')).text).toBe('spaced');
    });

    it('answers Range with 206 and the slice', async () => {
      const app = await serveFiles();
      const res = await request(app.url).get('/name').set('Range', 'bytes=1-2');
      expect(res.status).toBe(206);
      expect(res.headers['content-range']).toBe('bytes 1-2/4');
      expect(res.text).toBe('ob');
    });

    it('answers a fresh conditional GET with 304', async () => {
      const app = await serveFiles();
      const first = await request(app.url).get('/name');
      const res = await request(app.url)
        .get('/name')
        .set('If-None-Match', first.headers.etag as string);
      expect(res.status).toBe(304);
      expect(res.text ?? '').toBe('');
    });

    it('answers HEAD with the headers only', async () => {
      const app = await serveFiles();
      const res = await rawRequest(app.port, '/name', { method: 'HEAD' });
      expect(res.headers['content-length']).toBe('4');
      expect(res.raw.length).toBe(0);
    });

    it.each([
      ['/missing', 404],
      ['/dir', 404],
      ['/traversal', 403],
      ['/dotfile', 404],
      ['/dotdir', 404],
    ])('answers %s with %i through the app error handling', async (route, status) => {
      const app = await serveFiles();
      expect((await rawRequest(app.port, route)).statusLine).toMatch(new RegExp(` ${status} `));
    });

    it('streams a large file whole', async () => {
      const app = await serveFiles();
      const got = await httpGet(`${app.url}/big`);
      expect(got.complete).toBe(true);
      expect(got.body.equals(fs.readFileSync(path.join(FILES, 'big.txt')))).toBe(true);
    });

    it("writes the file's bytes through the write loop, not send's own pipe", async () => {
      // The loop flushes after every chunk where a compression-like res.flush exists; send's pipe
      // never does. If send stops calling the `stream` method we take over, this count drops to 0.
      let flushes = 0;
      const countFlushes: Handler = (_req, res, next) => {
        (res as unknown as { flush: () => void }).flush = () => flushes++;
        next();
      };
      const app = await serve(
        { '/big': streams(() => file('big.txt', { root: FILES })) },
        { use: [countFlushes] },
      );
      const got = await httpGet(`${app.url}/big`);
      expect(got.complete).toBe(true);
      expect(got.body.length).toBe(fs.statSync(path.join(FILES, 'big.txt')).size);
      // 404,000 bytes are read in 64 KiB chunks: one flush per chunk
      expect(flushes).toBe(Math.ceil(got.body.length / (64 * 1024)));
    });
  });

  describe('under compression()', () => {
    it('delivers each chunk before the next one is produced', async () => {
      const received: string[] = [];
      const gate = { next: deferred() };
      const app = await serve(
        {
          '/': streams(async function* () {
            for (let i = 0; i < 3; i++) {
              yield `chunk-${i};`;
              await gate.next.promise;
              gate.next = deferred();
            }
          }),
        },
        { use: [compression({ threshold: 0 }) as unknown as Handler] },
      );
      const res = await new Promise<http.IncomingMessage>((resolve) => {
        require('node:http').get(`${app.url}/`, { headers: { 'Accept-Encoding': 'gzip' } }, resolve);
      });
      expect(res.headers['content-encoding']).toBe('gzip');
      const gunzip = res.pipe(zlib.createGunzip());
      gunzip.on('data', (d: Buffer) => {
        received.push(d.toString());
        gate.next.resolve();
      });
      await once(gunzip, 'end');
      expect(received).toEqual(['chunk-0;', 'chunk-1;', 'chunk-2;']);
    });
  });

  describe('backpressure', () => {
    it('stops pulling from the producer while the client does not read', async () => {
      let pulled = 0;
      const chunk = Buffer.alloc(64 * 1024, 97);
      const app = await serve({
        '/': streams(function* () {
          for (let i = 0; i < 10_000; i++) {
            pulled++;
            yield chunk;
          }
        }),
      });
      const socket = require('node:net').connect(app.port, '127.0.0.1');
      socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      socket.pause();
      const pulledWhilePaused = await untilStable(() => pulled, 'the producer held back');
      // socket buffers on both sides hold a few MiB at most; 10,000 chunks would be 640 MiB
      expect(pulledWhilePaused).toBeLessThan(200);
      socket.destroy();
    });
  });
});

describe('streamBody() with pipeline()', () => {
  it('lets a function body use stream.pipeline into out', async () => {
    const { nodeHttpFramework } = await import('./helpers/servers');
    const app = await nodeHttpFramework.listen({
      use: [streamBody() as unknown as Handler],
      routes: {
        '/': streams(() => (out: Writable) => pipeline(Readable.from(['pipe', 'line']), out)),
      },
    });
    expect((await rawRequest(app.port, '/')).body.toString()).toBe('pipeline');
  });
});

/** supertest parser that keeps any body as raw bytes. */
function binaryParser(res: request.Response, callback: (err: Error | null, body: Buffer) => void): void {
  const stream = res as unknown as NodeJS.ReadableStream;
  const parts: Buffer[] = [];
  stream.on('data', (d: Buffer) => parts.push(d));
  stream.on('end', () => callback(null, Buffer.concat(parts)));
}

function recordingErrorHandler(errors: unknown[]) {
  return (
    err: unknown,
    _req: http.IncomingMessage,
    res: http.ServerResponse,
    next: (e?: unknown) => void,
  ) => {
    errors.push(err);
    if (res.headersSent) return next(err);
    res.statusCode = (err as { status?: number }).status ?? 500;
    res.end(`handled: ${(err as Error).message}`);
  };
}

function failingAfter(text: string): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(text);
      } else {
        setTimeout(() => this.destroy(new Error('boom')), 10);
      }
    },
  });
}

/** A minimal channel: an async iterable with close(); open ones wait for more until closed. */
function closableQueue(
  items: string[],
  stayOpen = false,
): AsyncIterable<string> & { close(): void; closed: boolean } {
  const queue = [...items];
  let wake: (() => void) | undefined;
  const channel = {
    closed: false,
    close() {
      channel.closed = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const item = queue.shift();
        if (item !== undefined) {
          yield item;
          continue;
        }
        if (channel.closed || !stayOpen) return;
        await new Promise<void>((r) => {
          wake = r;
        });
        if (channel.closed) return;
      }
    },
  };
  return channel;
}

/** A database cursor's shape: rows slow to come (3 s after the first), a return(), no close(). */
/**
 * A cursor whose second `next()` never answers by itself, as a query waiting on a quiet table: only
 * `return()` ends it. It records whether `return()` came while that `next()` was still pending.
 */
function slowCursor(
  first: string,
): AsyncIterable<string> & { returned: 'while-pending' | 'after' | undefined } {
  let served = false;
  let pending: ((step: IteratorResult<string>) => void) | undefined;
  const cursor = {
    returned: undefined as 'while-pending' | 'after' | undefined,
    [Symbol.asyncIterator]: () => ({
      next: (): Promise<IteratorResult<string>> => {
        if (!served) {
          served = true;
          return Promise.resolve({ done: false, value: first });
        }
        return new Promise((resolve) => {
          pending = resolve;
        });
      },
      return: (): Promise<IteratorResult<string>> => {
        cursor.returned ??= pending === undefined ? 'after' : 'while-pending';
        pending?.({ done: true, value: undefined });
        pending = undefined;
        return Promise.resolve({ done: true, value: undefined });
      },
    }),
  };
  return cursor;
}

async function* letters(): AsyncGenerator<string> {
  for (const letter of ['a', 'b', 'c']) {
    await sleep(2);
    yield letter;
  }
}

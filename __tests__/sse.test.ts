import http from 'node:http';
import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import compression from 'compression';
import connect from 'connect';
import {
  Channel,
  type SseCloseReason,
  type SseContext,
  type SseEventInput,
  type SseMiddleware,
  type SseOptions,
  type SseResponse,
  type SseStream,
  SseSubscription,
  sseChannel,
} from '../lib';
import { http2Request, listenHttp2 } from './helpers/http2';
import {
  closeAll,
  closeWithServers,
  frameworks,
  type Handler,
  listen,
  nodeHttpFramework,
} from './helpers/servers';
import { endlessTicks } from './helpers/sources';
import { collectEvents, RawSseClient } from './helpers/sse-client';
import { sleep, trackTimers, until, untilStable } from './helpers/wait';

type SseRes = http.ServerResponse & SseResponse;

afterEach(closeAll);

/** A server with sseChannel(options) and routes given handlers with a typed res. */
async function serve(
  options: SseOptions,
  routes: Record<string, (req: http.IncomingMessage, res: SseRes) => void>,
  use: Handler[] = [],
): Promise<{ port: number; url: string; middleware: SseMiddleware }> {
  const middleware = sseChannel(options);
  const app = await nodeHttpFramework.listen({
    use: [...use, middleware as unknown as Handler],
    routes: Object.fromEntries(Object.entries(routes).map(([p, h]) => [p, h as unknown as Handler])),
  });
  return { port: app.port, url: app.url, middleware };
}

/** Pedestal's counter, with short intervals: ten `counter` events, then the channel closes. */
function counter(req: http.IncomingMessage, res: SseRes): void {
  void req;
  res.sse((events, ctx) => {
    void (async () => {
      for (let i = 0; i < 10 && !ctx.signal.aborted; i++) {
        await events.put({ event: 'counter', data: i });
        await sleep(5);
      }
      events.close();
    })();
  });
}

describe.each(frameworks)('the Pedestal counter stream under $name', (framework) => {
  it('delivers ten counter events to a real EventSource, then closes', async () => {
    const closes: SseCloseReason[] = [];
    const app = await framework.listen({
      use: [sseChannel({ onClose: (reason) => closes.push(reason), retryMs: 60_000 }) as unknown as Handler],
      routes: { '/counter': counter as unknown as Handler },
    });
    const { events: received } = collectEvents(`${app.url}/counter`, ['counter']);
    await until(() => received.length === 10 && closes.length === 1, 'ten events and a close');
    expect(received.map((e) => e.data)).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(closes).toEqual(['server']);
  });
});

describe('sseChannel(options)', () => {
  describe('response head', () => {
    it('commits the SSE head at once, with a jittered retry first', async () => {
      const app = await serve({ retryMs: 3000 }, { '/': (_req, res) => void res.sse() });
      const client = new RawSseClient(app.port, '/');
      await client.waitFor((body) => body.includes('\n\n'), 'retry line');
      expect(client.head).toMatch(/^HTTP\/1\.1 200 OK/);
      expect(client.header('content-type')).toBe('text/event-stream; charset=utf-8');
      expect(client.header('cache-control')).toBe('no-cache, no-transform');
      expect(client.header('x-accel-buffering')).toBe('no');
      expect(client.header('connection')).toBe('keep-alive');
      expect(client.header('content-length')).toBeUndefined();
      const retry = Number(/^retry: (\d+)\n\n$/.exec(client.body)?.[1]);
      expect(retry).toBeGreaterThanOrEqual(2000);
      expect(retry).toBeLessThanOrEqual(5000);
    });

    it('jitters retry per connection', async () => {
      const app = await serve({ retryMs: 3000 }, { '/': (_req, res) => void res.sse() });
      const values = new Set<string>();
      for (let i = 0; i < 8; i++) {
        const client = new RawSseClient(app.port, '/');
        values.add(await client.waitFor((b) => b.endsWith('\n\n'), 'retry'));
      }
      expect(values.size).toBeGreaterThan(1);
    });

    it('keeps headers set earlier (cors) and applies the headers option', async () => {
      const cors: Handler = (_req, res, next) => {
        res.setHeader('Access-Control-Allow-Origin', '*');
        next();
      };
      const app = await serve({ headers: { 'X-Stream': 'yes' } }, { '/': (_req, res) => void res.sse() }, [
        cors,
      ]);
      const client = new RawSseClient(app.port, '/');
      await client.waitFor((b) => b.length > 0, 'first bytes');
      expect(client.header('access-control-allow-origin')).toBe('*');
      expect(client.header('x-stream')).toBe('yes');
    });

    it('sends nothing before the head when retryMs is null, and the head still arrives', async () => {
      const app = await serve({ retryMs: null }, { '/': (_req, res) => void res.sse() });
      const client = new RawSseClient(app.port, '/');
      await until(() => client.head !== '', 'head');
      expect(await untilStable(() => client.body, 'the body after the head')).toBe('');
    });
  });

  describe('res.sse(source) sources', () => {
    it('lets a ready function return at once while its producer runs', async () => {
      let returned = false;
      const app = await serve(
        { retryMs: null },
        {
          '/': (_req, res) =>
            void res.sse((events) => {
              setTimeout(() => void events.put('late').then(() => events.close()), 20);
              returned = true;
            }),
        },
      );
      const client = new RawSseClient(app.port, '/');
      await client.waitFor((b) => b === 'data: late\n\n', 'late event');
      expect(returned).toBe(true);
      await client.waitEnded();
      expect(client.terminated).toBe(true);
    });

    it('tears the stream down when the ready function throws, closing its channel', async () => {
      const closes: SseCloseReason[] = [];
      let given: Channel<SseEventInput<unknown>> | undefined;
      const app = await serve(
        { retryMs: null, onClose: (r) => closes.push(r) },
        {
          '/': (_req, res) =>
            void res.sse((events) => {
              given = events as Channel<SseEventInput<unknown>>;
              throw new Error('ready failed');
            }),
        },
      );
      const client = new RawSseClient(app.port, '/');
      await client.waitEnded();
      expect(closes).toEqual(['error']);
      // A producer the ready function started before it threw is told to stop, not left blocked.
      expect(given?.closed).toBe(true);
      await expect(given?.put('after the throw')).resolves.toBe(false);
    });

    it('tears the stream down when the ready function rejects, with no unhandled rejection', async () => {
      const closes: SseCloseReason[] = [];
      const app = await serve(
        { retryMs: null, onClose: (r) => closes.push(r) },
        {
          '/': (_req, res) => void res.sse(async () => Promise.reject(new Error('async ready failed'))),
        },
      );
      const client = new RawSseClient(app.port, '/');
      await client.waitEnded();
      expect(closes).toEqual(['error']);
    });

    it('streams a Channel and ends when it is closed and drained', async () => {
      const channel = new Channel<string>(5);
      void channel.put('a');
      void channel.put('b');
      channel.close();
      const app = await serve({ retryMs: null }, { '/': (_req, res) => void res.sse(channel) });
      const client = new RawSseClient(app.port, '/');
      await client.waitEnded();
      expect(client.body).toBe('data: a\n\ndata: b\n\n');
      expect(client.terminated).toBe(true);
    });

    it('streams an AsyncIterable of events', async () => {
      async function* ticks() {
        yield { event: 'tick', id: '1', data: { n: 1 } };
        yield { id: 42, name: 'Ada' };
      }
      const app = await serve({ retryMs: null }, { '/': (_req, res) => void res.sse(ticks()) });
      const client = new RawSseClient(app.port, '/');
      await client.waitEnded();
      expect(client.body).toBe('event: tick\nid: 1\ndata: {"n":1}\n\ndata: {"id":42,"name":"Ada"}\n\n');
    });

    it('lets the app push with send() when there is no source', async () => {
      const app = await serve(
        { retryMs: null },
        {
          '/': (_req, res) => {
            const stream = res.sse();
            void stream.send({ event: 'greeting', data: 'hello\nworld' }).then(() => stream.close());
          },
        },
      );
      const client = new RawSseClient(app.port, '/');
      await client.waitEnded();
      expect(client.body).toBe('event: greeting\ndata: hello\ndata: world\n\n');
    });

    it('hands a hub subscription the stream and its context', async () => {
      const subscription = {
        [SseSubscription](stream: SseStream, ctx: SseContext) {
          void stream.send({ id: '7', data: `resume after ${ctx.lastEventId}` }).then(() => stream.close());
        },
      };
      const app = await serve({ retryMs: null }, { '/': (_req, res) => void res.sse(subscription) });
      const client = new RawSseClient(app.port, '/', { 'Last-Event-ID': '6' });
      await client.waitEnded();
      expect(client.body).toBe('id: 7\ndata: resume after 6\n\n');
    });

    it('refuses to start once the response head was sent', async () => {
      let error: unknown;
      const app = await serve(
        {},
        {
          '/': (_req, res) => {
            res.write('already streaming');
            try {
              res.sse();
            } catch (e) {
              error = e;
            }
            res.end();
          },
        },
      );
      await new RawSseClient(app.port, '/').waitEnded();
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/head was already sent/);
    });

    it('rejects a source of the wrong kind with a TypeError naming it', async () => {
      let error: unknown;
      const app = await serve(
        {},
        {
          '/': (_req, res) => {
            try {
              res.sse(42 as never);
            } catch (e) {
              error = e;
              res.end();
            }
          },
        },
      );
      new RawSseClient(app.port, '/');
      await until(() => error !== undefined, 'error');
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/number \(42\)/);
    });

    it('throws a TypeError from send() for an event that would inject fields', async () => {
      let error: unknown;
      const app = await serve(
        { retryMs: null },
        {
          '/': (_req, res) => {
            const stream = res.sse();
            try {
              void stream.send({ event: 'a\nb' });
            } catch (e) {
              error = e;
            }
            stream.close();
          },
        },
      );
      const client = new RawSseClient(app.port, '/');
      await client.waitEnded();
      expect(error).toBeInstanceOf(TypeError);
      expect(client.body).toBe('');
    });
  });

  describe('Last-Event-ID', () => {
    it('reads the header, and the lastEventId query parameter on a first connection', async () => {
      const seen: Array<string | undefined> = [];
      const app = await serve(
        { retryMs: null },
        {
          '/': (_req, res) => {
            const stream = res.sse((_events, ctx) => {
              seen.push(ctx.lastEventId);
            });
            seen.push(stream.lastEventId);
            stream.close();
          },
        },
      );
      await new RawSseClient(app.port, '/', { 'Last-Event-ID': 'abc-1' }).waitEnded();
      await new RawSseClient(app.port, '/?lastEventId=q-7').waitEnded();
      await new RawSseClient(app.port, '/').waitEnded();
      expect(seen).toEqual(['abc-1', 'abc-1', 'q-7', 'q-7', undefined, undefined]);
    });

    it('is sent back by a real EventSource when it reconnects after retry', async () => {
      const connections: Array<string | undefined> = [];
      const connectedAt: number[] = [];
      const app = await serve(
        { retryMs: 50 },
        {
          '/': (_req, res) => {
            const stream = res.sse();
            connections.push(stream.lastEventId);
            connectedAt.push(Date.now());
            if (connections.length === 1)
              void stream.send({ id: 'evt-1', data: 'first' }).then(() => stream.close());
          },
        },
      );
      const { events: received } = collectEvents(`${app.url}/`);
      await until(() => connections.length >= 2, 'a reconnect');
      expect(received[0]).toEqual({ type: 'message', data: 'first', lastEventId: 'evt-1' });
      expect(connections.slice(0, 2)).toEqual([undefined, 'evt-1']);
      // the client waited the jittered retry (33–83 ms), not its own default of seconds
      const [first = 0, second = 0] = connectedAt;
      expect(second - first).toBeLessThan(1000);
    });
  });

  describe('heartbeats', () => {
    it('never lets a client see more than heartbeatMs of silence', async () => {
      const app = await serve({ retryMs: null, heartbeatMs: 100 }, { '/': (_req, res) => void res.sse() });
      const loopDelay = monitorEventLoopDelay({ resolution: 10 });
      loopDelay.enable();
      const client = new RawSseClient(app.port, '/');
      await until(() => client.head !== '', 'head');
      const start = Date.now();
      const heartbeats = () => client.arrivals.filter((a) => a.text.includes(':\n\n')).map((a) => a.at);
      await until(() => heartbeats().length >= 5, 'five heartbeats');
      loopDelay.disable();
      const times = [start, ...heartbeats()];
      const gaps = times.slice(1).map((t, i) => t - (times[i] ?? t));
      // Timers fire late by as much as the event loop was blocked (a busy CI machine blocks it for
      // longer); the schedule itself never allows more than heartbeatMs.
      const lateness = Math.max(40, loopDelay.max / 1e6 + 20);
      expect(Math.max(...gaps)).toBeLessThanOrEqual(100 + lateness);
      expect(client.body).toMatch(/^(:\n\n)+$/);
    });

    it('sends no heartbeat while events keep the stream busy', async () => {
      const app = await serve(
        { retryMs: null, heartbeatMs: 300 },
        {
          '/': (_req, res) => {
            const stream = res.sse();
            const timer = setInterval(() => void stream.send('busy'), 20);
            stream.signal.addEventListener('abort', () => clearInterval(timer));
          },
        },
      );
      const client = new RawSseClient(app.port, '/');
      // Four heartbeat intervals of events every 20 ms: a silence of 300 ms never happens (unless the
      // machine stalls the event loop for most of that, which the margin leaves room for).
      await until(() => client.body.split('data: busy').length > 60, 'sixty events');
      expect(client.body).not.toContain(':\n\n');
    });

    it('uses one timer for 1,000 open streams, and none once they are closed', async () => {
      const open: SseStream[] = [];
      const app = await serve(
        { retryMs: null, heartbeatMs: 5000, writeTimeoutMs: null },
        {
          '/': (_req, res) => void open.push(res.sse()),
        },
      );
      const timers = trackTimers();
      try {
        const sockets = Array.from({ length: 1000 }, () => new RawSseClient(app.port, '/'));
        await until(() => open.length === 1000, '1,000 streams', 20_000);
        expect(app.middleware.size).toBe(1000);
        expect(timers.live()).toBe(1);
        for (const stream of open) stream.close();
        expect(app.middleware.size).toBe(0);
        expect(timers.live()).toBe(0);
        for (const socket of sockets) socket.close();
      } finally {
        timers.restore();
      }
    }, 30_000);
  });

  describe('the framed fast path', () => {
    /**
     * A route that sends `events` then closes, counting the res.write calls made after res.sse() chose
     * its path: none on the fast path, some on the fallback.
     */
    function sendsAndCounts(...events: SseEventInput[]) {
      const writes = { calls: 0 };
      const route = (_req: http.IncomingMessage, res: SseRes) => {
        const stream = res.sse();
        const write = res.write;
        res.write = function countedWrite(this: SseRes, ...args: unknown[]) {
          writes.calls++;
          return (write as (...a: unknown[]) => boolean).apply(this, args);
        } as typeof res.write;
        void Promise.all(events.map((event) => stream.send(event))).then(() => stream.close());
      };
      return { route, writes };
    }

    it('writes each event to the socket as one chunk, byte for byte what res.write would send', async () => {
      const { route, writes } = sendsAndCounts({ event: 'é', data: 'multi\nline' }, 'second');
      const app = await serve({ retryMs: null }, { '/': route });
      const client = new RawSseClient(app.port, '/');
      await client.waitEnded();
      expect(client.body).toBe('event: é\ndata: multi\ndata: line\n\ndata: second\n\n');
      expect(client.terminated).toBe(true);
      expect(writes.calls).toBe(0);
    });

    it('falls back to res.write where something patched it (compression)', async () => {
      const { route, writes } = sendsAndCounts('through res.write');
      const app = await serve({ retryMs: null }, { '/': route }, [compression() as unknown as Handler]);
      const client = new RawSseClient(app.port, '/');
      await client.waitEnded();
      expect(client.body).toBe('data: through res.write\n\n');
      expect(writes.calls).toBeGreaterThan(0);
    });

    it('falls back to res.write for an HTTP/1.0 client, which gets a close-delimited body', async () => {
      const { route, writes } = sendsAndCounts('old client');
      const app = await serve({ retryMs: null }, { '/': route });
      const client = new RawSseClient(app.port, '/', {}, '1.0');
      await client.waitClosed();
      expect(client.header('transfer-encoding')).toBeUndefined();
      expect(client.body).toBe('data: old client\n\n');
      expect(writes.calls).toBeGreaterThan(0);
    });
  });

  describe('timeouts', () => {
    it("disables the server's socket timeout for the stream", async () => {
      const closes: SseCloseReason[] = [];
      const middleware = sseChannel({ retryMs: null, heartbeatMs: null, onClose: (r) => closes.push(r) });
      const server = http.createServer((req, res) => middleware(req, res, () => void (res as SseRes).sse()));
      server.setTimeout(100);
      const app = await listen(server);
      const client = new RawSseClient(app.port, '/');
      await until(() => client.head !== '', 'head');
      // The server's 100 ms socket timeout would have closed an idle connection by now.
      expect(await untilStable(() => client.closed, 'the connection', { quietMs: 400 })).toBe(false);
      expect(closes).toEqual([]);
    });
  });

  describe('slow clients', () => {
    const paused = (port: number) => {
      const client = new RawSseClient(port, '/');
      client.socket.pause();
      return client;
    };

    it("closes a client whose queue passes bufferBytes ('close')", async () => {
      const closes: SseCloseReason[] = [];
      const app = await serve(
        { retryMs: null, bufferBytes: 256 * 1024, onClose: (r) => closes.push(r) },
        {
          '/': (_req, res) => {
            const stream = res.sse();
            const event = 'x'.repeat(1024);
            // a producer that does not wait, as a hub broadcasting is
            for (let i = 0; i < 20_000 && !stream.closed; i++) void stream.send(event);
          },
        },
      );
      paused(app.port);
      await until(() => closes.length === 1, 'close');
      expect(closes).toEqual(['slow']);
    });

    it.each([
      ['close', ['slow'], true],
      ['drop', [], false],
    ] as const)(
      "holds the cap for a first event bigger than bufferBytes ('%s'): never queued, RSS flat",
      async (onSlowClient, expectedCloses, closed) => {
        const closes: SseCloseReason[] = [];
        const results: boolean[] = [];
        let stream: SseStream | undefined;
        let response: SseRes | undefined;
        const big = 'b'.repeat(8 * 1024 * 1024);
        const app = await serve(
          { retryMs: null, bufferBytes: 1024 * 1024, onSlowClient, onClose: (r) => closes.push(r) },
          {
            '/': (_req, res) => {
              response = res;
              stream = res.sse();
              void stream.send(big).then((ok) => results.push(ok));
            },
          },
        );
        const client = paused(app.port);
        await until(() => results.length === 1, 'the send to settle');
        expect(results).toEqual([false]);
        expect(closes).toEqual(expectedCloses);
        expect(stream?.closed).toBe(closed);
        expect(response?.writableLength ?? 0).toBeLessThan(1024 * 1024);
        client.close();
      },
    );

    it("drops events past bufferBytes and keeps the stream ('drop')", async () => {
      const results: boolean[] = [];
      let stream: SseStream | undefined;
      const app = await serve(
        { retryMs: null, bufferBytes: 256 * 1024, onSlowClient: 'drop' },
        {
          '/': (_req, res) => {
            stream = res.sse();
            const event = 'x'.repeat(1024);
            for (let i = 0; i < 20_000; i++) void stream.send(event).then((ok) => results.push(ok));
          },
        },
      );
      paused(app.port);
      await until(() => results.length === 20_000 || results.includes(false), 'some results');
      await untilStable(() => results.length, 'the sends to settle');
      expect(results).toContain(false);
      expect(stream?.closed).toBe(false);
    });

    it('closes a client that leaves bytes unread past writeTimeoutMs', async () => {
      const closes: SseCloseReason[] = [];
      const app = await serve(
        { retryMs: null, heartbeatMs: null, writeTimeoutMs: 200, onClose: (r) => closes.push(r) },
        {
          '/': (_req, res) => {
            const stream = res.sse();
            void (async () => {
              const event = 'y'.repeat(16 * 1024);
              while (await stream.send(event));
            })();
          },
        },
      );
      paused(app.port);
      await until(() => closes.length === 1, 'slow close', 5000);
      expect(closes).toEqual(['slow']);
    });

    it('paces a producer that awaits send() to its client', async () => {
      let accepted = 0;
      const app = await serve(
        { retryMs: null, bufferBytes: null, writeTimeoutMs: null },
        {
          '/': (_req, res) => {
            const stream = res.sse();
            void (async () => {
              const event = 'z'.repeat(16 * 1024);
              for (let i = 0; i < 10_000; i++) {
                if (!(await stream.send(event))) return;
                accepted++;
              }
            })();
          },
        },
      );
      const client = paused(app.port);
      // 10,000 events are 160 MiB; a paused client lets through only what the socket buffers hold
      expect(await untilStable(() => accepted, 'the producer held back')).toBeLessThan(1000);
      client.close();
    });
  });

  describe('teardown', () => {
    it("runs once when the client leaves: onClose('client'), source closed, later sends false", async () => {
      const closes: Array<[SseCloseReason, SseContext]> = [];
      const channel = new Channel<string>();
      let stream: SseStream | undefined;
      let listenersBefore = -1;
      let res: SseRes | undefined;
      const app = await serve(
        { retryMs: null, onClose: (r, ctx) => closes.push([r, ctx]) },
        {
          '/': (_req, r) => {
            res = r;
            listenersBefore = r.listenerCount('close');
            stream = r.sse(channel);
          },
        },
      );
      const client = new RawSseClient(app.port, '/');
      await until(() => stream !== undefined && client.head !== '', 'stream');
      client.close();
      await until(() => closes.length === 1, 'onClose');
      expect(closes[0]?.[0]).toBe('client');
      expect(closes[0]?.[1].stream).toBe(stream);
      expect(channel.closed).toBe(true);
      expect(stream?.signal.aborted).toBe(true);
      await expect(stream?.send('late')).resolves.toBe(false);
      expect(res?.listenerCount('close')).toBe(listenersBefore);
      expect(app.middleware.size).toBe(0);
      expect(await untilStable(() => closes.length, 'onClose calls')).toBe(1);
    });

    it("runs once when the app closes: onClose('server'), a clean end, the iterator returned", async () => {
      const closes: SseCloseReason[] = [];
      const ticks = endlessTicks('tick', 10);
      const app = await serve(
        { retryMs: null, onClose: (r) => closes.push(r) },
        {
          '/': (_req, res) => {
            const stream = res.sse(ticks.body);
            setTimeout(() => {
              stream.close();
              stream.close();
            }, 50);
          },
        },
      );
      const client = new RawSseClient(app.port, '/');
      await client.waitEnded();
      expect(client.terminated).toBe(true);
      await until(ticks.released, 'iterator returned');
      expect(closes).toEqual(['server']);
    });

    it("runs once when the source fails: onClose('error') and a truncated response", async () => {
      const closes: SseCloseReason[] = [];
      async function* failing() {
        yield 'one';
        throw new Error('source failed');
      }
      const app = await serve(
        { retryMs: null, onClose: (r) => closes.push(r) },
        {
          '/': (_req, res) => void res.sse(failing()),
        },
      );
      const client = new RawSseClient(app.port, '/');
      await client.waitClosed();
      expect(client.body).toBe('data: one\n\n');
      expect(client.terminated).toBe(false);
      expect(closes).toEqual(['error']);
    });

    it('resolves a send waiting on a slow client with false when the stream closes', async () => {
      let pending: Promise<boolean> | undefined;
      let stream: SseStream | undefined;
      const app = await serve(
        { retryMs: null, bufferBytes: null },
        {
          '/': (_req, res) => {
            stream = res.sse();
            const event = 'w'.repeat(64 * 1024);
            for (let i = 0; i < 200; i++) pending = stream.send(event);
          },
        },
      );
      const client = new RawSseClient(app.port, '/');
      client.socket.pause();
      await until(() => pending !== undefined, 'sends');
      stream?.close();
      client.close();
      await expect(pending).resolves.toBe(false);
    });
  });

  describe('when the stream ends before it starts, or is ended by the app', () => {
    it.each(frameworks)(
      'answers HEAD ($name) with the SSE head and an end: the source is disposed unstarted, onClose runs, keep-alive goes on',
      async (framework) => {
        const closes: SseCloseReason[] = [];
        let readyCalls = 0;
        const app = await framework.listen({
          use: [sseChannel({ retryMs: 1000, onClose: (r) => closes.push(r) }) as unknown as Handler],
          routes: {
            '/': (_req, res) =>
              void (res as SseRes).sse(() => {
                readyCalls++;
              }),
          },
        });
        const socket = net.connect(app.port, '127.0.0.1');
        let received = '';
        socket.on('data', (data) => {
          received += data.toString('latin1');
        });
        socket.write('HEAD / HTTP/1.1\r\nHost: x\r\n\r\n');
        await until(() => received.includes('\r\n\r\n'), 'the HEAD response');
        expect(received).toMatch(/^HTTP\/1\.1 200 /);
        expect(received).toMatch(/content-type: text\/event-stream/i);
        expect(received.slice(received.indexOf('\r\n\r\n') + 4)).toBe('');
        // the same keep-alive connection answers the next request
        socket.write('GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        await until(() => (received.match(/HTTP\/1\.1 /g) ?? []).length === 2, 'the next response');
        socket.destroy();
        expect(readyCalls).toBe(0);
        expect(closes).toEqual(['server']);
      },
    );

    it('lets go of a stream source it never starts (HEAD, past maxStreams): cancelled or destroyed, not left open', async () => {
      const released: string[] = [];
      const sources = {
        // Node's ReadableStream is async iterable; the DOM typings in use do not say so.
        '/web': () =>
          new ReadableStream<string>({
            cancel: () => void released.push('ReadableStream cancelled'),
          }) as unknown as AsyncIterable<string>,
        '/node': () =>
          new Readable({
            objectMode: true,
            read() {},
            destroy(error, callback) {
              released.push('Readable destroyed');
              callback(error);
            },
          }),
      };
      const app = await serve(
        { retryMs: 1000, maxStreams: 1 },
        {
          '/web': (_req, res) => void res.sse(sources['/web']()),
          '/node': (_req, res) => void res.sse(sources['/node']()),
          '/hold': (_req, res) => void res.sse(),
        },
      );
      for (const path of ['/web', '/node']) {
        const got = await new Promise<http.IncomingMessage>((resolve) =>
          http.request(`${app.url}${path}`, { method: 'HEAD' }, resolve).end(),
        );
        got.resume();
      }
      await until(() => released.length === 2, 'both sources released after HEAD');
      expect(released).toEqual(['ReadableStream cancelled', 'Readable destroyed']);
      new RawSseClient(app.port, '/hold');
      await until(() => app.middleware.size === 1, 'the one stream maxStreams allows');
      for (const path of ['/web', '/node']) await new RawSseClient(app.port, path).waitEnded();
      await until(() => released.length === 4, 'both sources released past maxStreams');
      expect(released.slice(2)).toEqual(['ReadableStream cancelled', 'Readable destroyed']);
    });

    it.each(frameworks)(
      "tears down at once ($name) when the client left before res.sse(): onClose('client'), nothing started, size 0",
      async (framework) => {
        const closes: SseCloseReason[] = [];
        let readyCalls = 0;
        let arrived = false;
        let stream: SseStream | undefined;
        const channel = new Channel<string>();
        const middleware = sseChannel({ onClose: (r) => closes.push(r) });
        const app = await framework.listen({
          use: [middleware as unknown as Handler],
          routes: {
            '/ready': (_req, res) => {
              arrived = true;
              res.once('close', () => {
                stream = (res as SseRes).sse(() => {
                  readyCalls++;
                });
              });
            },
            '/channel': (_req, res) => {
              arrived = true;
              res.once('close', () => void (res as SseRes).sse(channel));
            },
          },
        });
        for (const path of ['/ready', '/channel']) {
          arrived = false;
          const socket = net.connect(app.port, '127.0.0.1');
          socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
          await until(() => arrived, 'the request');
          socket.destroy();
        }
        await until(() => closes.length === 2, 'two closes');
        expect(closes).toEqual(['client', 'client']);
        expect(readyCalls).toBe(0);
        expect(channel.closed).toBe(true);
        expect(stream?.closed).toBe(true);
        await expect(stream?.send('late')).resolves.toBe(false);
        expect(middleware.size).toBe(0);
      },
    );

    it.each(frameworks)(
      "tears down ($name) when the app ends the response itself: onClose('server'), the source released",
      async (framework) => {
        const closes: SseCloseReason[] = [];
        const ticks = endlessTicks('tick');
        const middleware = sseChannel({ retryMs: null, heartbeatMs: 10, onClose: (r) => closes.push(r) });
        const app = await framework.listen({
          use: [middleware as unknown as Handler],
          routes: {
            '/': (_req, res) => {
              (res as SseRes).sse(ticks.body);
              setTimeout(() => res.end(), 40);
            },
          },
        });
        const client = new RawSseClient(app.port, '/');
        await client.waitEnded();
        await until(() => ticks.released() && closes.length === 1, 'the source released and onClose');
        expect(closes).toEqual(['server']);
        expect(client.terminated).toBe(true);
        // nothing was written after the final chunk
        expect(client.body.endsWith('\n\n')).toBe(true);
        expect(middleware.size).toBe(0);
      },
    );
  });

  describe('request targets and sources an adversary sends', () => {
    it.each([
      ['http://a:99999/sse?lastEventId=1', '1'],
      ['//?lastEventId=1', '1'],
      ['/?lastEventId=a%20b#frag', 'a b'],
    ])(
      'opens a stream for the request target %s without crashing, reading the id from its query',
      async (target, id) => {
        const ids: Array<string | undefined> = [];
        const middleware = sseChannel({ retryMs: null });
        const server = http.createServer((req, res) =>
          middleware(req, res, () => {
            ids.push((res as SseRes).sse().lastEventId);
          }),
        );
        const app = await listen(server);
        const client = new RawSseClient(app.port, target);
        await until(() => client.head !== '', 'the head');
        expect(client.head).toMatch(/^HTTP\/1\.1 200 /);
        expect(ids).toEqual([id]);
      },
    );

    it("tears a locked ReadableStream source down with onClose('error'), no unhandled rejection", async () => {
      const closes: SseCloseReason[] = [];
      const locked = new ReadableStream<string>();
      locked.getReader();
      const app = await serve(
        { retryMs: null, onClose: (r) => closes.push(r) },
        { '/': (_req, res) => void res.sse(locked as unknown as AsyncIterable<string>) },
      );
      const client = new RawSseClient(app.port, '/');
      await client.waitClosed();
      expect(closes).toEqual(['error']);
    });
  });

  describe('closeAll({ retryMs })', () => {
    it('sends every open stream a jittered retry and ends it', async () => {
      const app = await serve({ retryMs: null }, { '/': (_req, res) => void res.sse() });
      const open = Array.from({ length: 5 }, () => new RawSseClient(app.port, '/'));
      await until(() => app.middleware.size === 5, 'five streams');
      await app.middleware.closeAll({ retryMs: 1000 });
      for (const client of open) {
        await client.waitEnded();
        const retry = Number(/^retry: (\d+)\n\n$/.exec(client.body)?.[1]);
        expect(retry).toBeGreaterThanOrEqual(666);
        expect(retry).toBeLessThanOrEqual(1667);
        expect(client.terminated).toBe(true);
      }
      expect(app.middleware.size).toBe(0);
    });
  });

  describe('closeAll({ retryMs, graceMs })', () => {
    it('resolves within graceMs even when a client stopped reading: what has not finished is destroyed', async () => {
      const closes: SseCloseReason[] = [];
      const app = await serve(
        { retryMs: null, bufferBytes: null, writeTimeoutMs: null, onClose: (r) => closes.push(r) },
        {
          '/stalled': (_req, res) => {
            const stream = res.sse();
            // 32 MiB: more than the kernel's socket buffers on both ends can hold
            const event = 'q'.repeat(256 * 1024);
            for (let i = 0; i < 128; i++) void stream.send(event);
          },
          '/reading': (_req, res) => {
            void res.sse();
          },
        },
      );
      const stalled = new RawSseClient(app.port, '/stalled');
      stalled.socket.pause();
      await until(() => app.middleware.size === 1, 'the stalled stream');
      const reading = new RawSseClient(app.port, '/reading');
      await until(() => app.middleware.size === 2, 'two streams');
      const started = Date.now();
      await app.middleware.closeAll({ retryMs: 1000, graceMs: 200 });
      const took = Date.now() - started;
      expect(took).toBeGreaterThanOrEqual(190);
      // bounded by graceMs, not by the stalled client (a wide margin: a busy machine is slow, not wrong)
      expect(took).toBeLessThan(10_000);
      await reading.waitEnded();
      expect(reading.terminated).toBe(true);
      expect(reading.closed).toBe(false);
      // the stalled client's end could never be handed to the OS: it was cut off before it
      stalled.socket.resume();
      await stalled.waitClosed(10_000);
      expect(stalled.terminated).toBe(false);
      expect(closes).toEqual(['server', 'server']);
    });

    it('rejects a graceMs a timer cannot wait', async () => {
      const app = await serve({}, {});
      await expect(app.middleware.closeAll({ graceMs: 2 ** 31 })).rejects.toThrow(/graceMs/);
    });
  });

  describe('maxStreams', () => {
    it('answers past the limit with 200, a jittered retry and an end — never 5xx or 429', async () => {
      const closes: SseCloseReason[] = [];
      let readyCalls = 0;
      const app = await serve(
        { retryMs: 2000, maxStreams: 2, onClose: (r) => closes.push(r) },
        {
          '/': (_req, res) =>
            void res.sse(() => {
              readyCalls++;
            }),
        },
      );
      new RawSseClient(app.port, '/');
      new RawSseClient(app.port, '/');
      await until(() => app.middleware.size === 2, 'two streams');
      const third = new RawSseClient(app.port, '/');
      await third.waitEnded();
      expect(third.head).toMatch(/^HTTP\/1\.1 200 /);
      expect(third.body).toMatch(/^retry: \d+\n\n$/);
      expect(third.terminated).toBe(true);
      expect(readyCalls).toBe(2);
      expect(closes).toEqual(['server']);
    });
  });

  describe('under compression()', () => {
    it('is left uncompressed by no-transform, events arriving one by one', async () => {
      let stream: SseStream | undefined;
      const app = await serve(
        { retryMs: null },
        {
          '/': (_req, res) => {
            stream = res.sse();
          },
        },
        [compression({ threshold: 0 }) as unknown as Handler],
      );
      const client = new RawSseClient(app.port, '/', { 'Accept-Encoding': 'gzip' });
      await until(() => stream !== undefined, 'stream');
      void stream?.send('one');
      await client.waitFor((b) => b === 'data: one\n\n', 'first event');
      expect(client.header('content-encoding')).toBeUndefined();
    });

    it('flushes each event and heartbeat when the app opts into compression', async () => {
      let stream: SseStream | undefined;
      const allowCompression: Handler = (_req, res, next) => {
        res.setHeader('Cache-Control', 'no-cache');
        next();
      };
      const app = await serve(
        { retryMs: null, heartbeatMs: 100 },
        {
          '/': (_req, res) => {
            stream = res.sse();
          },
        },
        [compression({ threshold: 0 }) as unknown as Handler, allowCompression],
      );
      const res = await new Promise<http.IncomingMessage>((resolve) =>
        http.get(`${app.url}/`, { headers: { 'Accept-Encoding': 'gzip' } }, resolve),
      );
      closeWithServers({ close: () => res.destroy() });
      expect(res.headers['content-encoding']).toBe('gzip');
      const gunzip = res.pipe(zlib.createGunzip());
      let text = '';
      gunzip.on('data', (d: Buffer) => {
        text += d.toString();
      });
      await until(() => stream !== undefined, 'stream');
      void stream?.send('zipped');
      await until(() => text.includes('data: zipped\n\n'), 'the event through gzip');
      await until(() => text.includes(':\n\n'), 'a heartbeat through gzip');
    });
  });

  describe('HTTP/2 (compatibility API, with Connect)', () => {
    it('streams events without connection-specific headers', async () => {
      const app = connect();
      app.use(sseChannel({ retryMs: null }) as unknown as connect.NextHandleFunction);
      app.use((_req: http.IncomingMessage, res: http.ServerResponse) => {
        const stream = (res as SseRes).sse();
        void stream.send({ event: 'h2', data: 'over http2' }).then(() => stream.close());
      });
      const { port } = await listenHttp2(app);
      const got = await http2Request(port, '/');
      expect(got.status).toBe(200);
      expect(got.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(got.headers.connection).toBeUndefined();
      expect(got.ended).toBe(true);
      expect(got.body.toString()).toBe('event: h2\ndata: over http2\n\n');
    });
  });

  describe('HTTP/2: the ends a stream can have before or beside its start', () => {
    it("answers HEAD with the SSE head and an end, onClose('server') once, the source unstarted", async () => {
      const closes: SseCloseReason[] = [];
      let readyCalls = 0;
      const app = connect();
      app.use(sseChannel({ onClose: (r) => closes.push(r) }) as unknown as connect.NextHandleFunction);
      app.use((_req: http.IncomingMessage, res: http.ServerResponse) => {
        (res as SseRes).sse(() => {
          readyCalls++;
        });
      });
      const { port } = await listenHttp2(app);
      const got = await http2Request(port, '/', { ':method': 'HEAD' });
      expect(got.status).toBe(200);
      expect(got.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(got.ended).toBe(true);
      expect(got.body.length).toBe(0);
      await until(() => closes.length === 1, 'onClose');
      expect(await untilStable(() => closes.length, 'onClose calls')).toBe(1);
      expect(closes).toEqual(['server']);
      expect(readyCalls).toBe(0);
    });

    it("tears down when the app ends the response itself: onClose('server'), the source released", async () => {
      const closes: SseCloseReason[] = [];
      const channel = new Channel<string>();
      const app = connect();
      app.use(
        sseChannel({
          retryMs: null,
          onClose: (r) => closes.push(r),
        }) as unknown as connect.NextHandleFunction,
      );
      app.use((_req: http.IncomingMessage, res: http.ServerResponse) => {
        (res as SseRes).sse(channel);
        void channel.put('before the end');
        setTimeout(() => res.end(), 30);
      });
      const { port } = await listenHttp2(app);
      const got = await http2Request(port, '/');
      expect(got.body.toString()).toBe('data: before the end\n\n');
      await until(() => closes.length === 1 && channel.closed, 'onClose and the channel closed');
      expect(closes).toEqual(['server']);
    });
  });

  describe('options', () => {
    it.each([
      [{ heartbeatMs: 0 }, /heartbeatMs/],
      [{ heartbeatMs: 2 ** 31 }, /`heartbeatMs` to be a positive number of milliseconds up to 2147483647/],
      [{ writeTimeoutMs: 2 ** 31 }, /writeTimeoutMs.*2147483647/],
      [{ heartbeatMs: 'fast' }, /heartbeatMs.*string/],
      [{ retryMs: -1 }, /retryMs/],
      [{ bufferBytes: 1.5 }, /bufferBytes/],
      [{ onSlowClient: 'ignore' }, /onSlowClient.*ignore/],
      [{ serialize: 'json' }, /serialize/],
      [{ headers: { 'X-A': 1 } }, /X-A/],
      [{ maxStreams: -2 }, /maxStreams/],
      [{ onClose: true }, /onClose/],
    ])('rejects %j with a TypeError naming the option', (options, message) => {
      expect(() => sseChannel(options as SseOptions)).toThrow(TypeError);
      expect(() => sseChannel(options as SseOptions)).toThrow(message);
    });

    it('names res.sse and closeAll in the TypeErrors of their own options', async () => {
      let error: unknown;
      const app = await serve(
        {},
        {
          '/': (_req, res) => {
            try {
              res.sse(undefined, { retryMs: -1 });
            } catch (e) {
              error = e;
            }
            res.end();
          },
        },
      );
      new RawSseClient(app.port, '/');
      await until(() => error !== undefined, 'the TypeError');
      expect((error as Error).message).toMatch(/^res\.sse: expected `retryMs`/);
      await expect(app.middleware.closeAll({ retryMs: 1.5 })).rejects.toThrow(
        /^sseChannel\.closeAll: expected `retryMs`/,
      );
      // null disables a middleware's retry line; a shutdown's retry line is its point
      await expect(app.middleware.closeAll({ retryMs: null as never })).rejects.toThrow(
        /^sseChannel\.closeAll: expected `retryMs` to be an integer of at least 0, got null$/,
      );
    });

    it('warns once when another library already put an sse on res', async () => {
      const emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => {});
      const other: Handler = (_req, res, next) => {
        (res as unknown as { sse: () => void }).sse = () => {};
        next();
      };
      try {
        const app = await serve({ retryMs: null }, { '/': (_req, res) => res.sse().close() }, [other]);
        await new RawSseClient(app.port, '/').waitEnded();
        await new RawSseClient(app.port, '/').waitEnded();
        const ours = emitWarning.mock.calls.filter(([message]) => /res\.sse/.test(String(message)));
        expect(ours).toHaveLength(1);
      } finally {
        emitWarning.mockRestore();
      }
    });
  });
});

describe('sseChannel() timers', () => {
  it('holds no timer once its last stream has closed', async () => {
    const middleware = sseChannel({ heartbeatMs: 50 });
    let stream: SseStream | undefined;
    const server = http.createServer((req, res) =>
      middleware(req, res, () => {
        stream = (res as SseRes).sse();
      }),
    );
    const app = await listen(server);
    const timers = trackTimers();
    try {
      const client = new RawSseClient(app.port, '/');
      await until(() => stream !== undefined, 'the stream');
      // the heartbeat timer, made when the first stream opened (it is unref'd)
      expect(timers.live()).toBe(1);
      stream?.close();
      await client.waitEnded();
      expect(timers.live()).toBe(0);
    } finally {
      timers.restore();
    }
  });
});

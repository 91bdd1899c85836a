/**
 * The soak: random connect/abort cycles over every body type and helper, with misbehaving sources, the
 * app ending responses itself, HEAD requests, compression on and off, and HTTP/2 — then a check that
 * everything the library held is let go. Used by `npm run soak` (minutes) and by a short test in
 * `npm test`. Every loop is bounded in count and time; traffic goes to loopback only.
 */
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import zlib from 'node:zlib';
import compression from 'compression';
import connect from 'connect';
import express from 'express';
import {
  type AnyResponse,
  Channel,
  type ChunkedResponse,
  chunked,
  file,
  ndjson,
  type SseCloseReason,
  type SseResponse,
  type StreamBody,
  type StreamOutcome,
  sendStream,
  sseChannel,
  streamBody,
} from '../../lib';
import { type ListenerCounts, listenerCounts, nodeProcess, openFileDescriptors } from './resources';
import { sleep } from './wait';

export interface SoakOptions {
  /** How long the clients run; with `enough`, only the bound on how long they may take. */
  durationMs: number;
  /**
   * Stop once this many cycles have run. A slow machine then takes longer instead of running fewer
   * cycles, so the test checks what was exercised rather than how fast the machine is.
   */
  enough?: { cycles: number; http2Cycles: number };
  /** Clients running cycles at once. */
  concurrency: number;
  seed?: number;
  /** A request still waiting for its response head after this long counts as unanswered. */
  answerBoundMs?: number;
  log?: (line: string) => void;
}

export interface SoakReport {
  seed: number;
  /** How long the clients ran. */
  clientMs: number;
  cycles: number;
  byClient: Record<string, number>;
  http2Cycles: number;
  /** Requests whose head never came within the bound, though the client waited for it. */
  unanswered: string[];
  unhandledRejections: string[];
  uncaughtExceptions: string[];
  streamCalls: number;
  streamSettled: number;
  outcomes: Record<StreamOutcome, number>;
  sseOpened: number;
  /** How many SSE streams heard onClose other than exactly once. */
  onCloseNotOnce: number;
  closeReasons: Record<string, number>;
  /** Responses whose close/finish/error/drain listeners were not back to what they were, of those checked. */
  responsesWithListenersLeft: number;
  responsesChecked: number;
  /** The most 'drain' listeners seen at once on one compression() zlib stream. */
  mostZlibDrainListeners: number;
  maxListenersWarnings: number;
  /** Errors reported on console.error because no handler of the app heard them (none under NODE_ENV=test). */
  reportedErrors: number;
  resources: { before: Record<string, number>; after: Record<string, number> };
  descriptors: { before: number; after: number };
  heapMiB: { before: number; after: number };
}

type Res = http.ServerResponse &
  ChunkedResponse &
  SseResponse & { stream(body: StreamBody): Promise<StreamOutcome> };

// From the package root (npm scripts and jest run there): the harness runs as CommonJS under jest and as ESM under tsx.
const FILES = path.resolve('__tests__', 'fixtures', 'files');

/** mulberry32: a small seeded generator, so a failing run can be replayed with its seed. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function countBy(items: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[item] = (counts[item] ?? 0) + 1;
  return counts;
}

/**
 * Whether a response carries other listeners than `before`. A response compression() compresses gets
 * compression's own 'drain' listener once its head is written: that one is compression's, so 'drain'
 * is not counted there (the 'drain' listeners that reach compression's zlib stream are watched on their own).
 */
function listenersLeft(
  res: http.ServerResponse | http2.Http2ServerResponse,
  before: ListenerCounts,
): boolean {
  const compressed = res.getHeader('content-encoding') !== undefined;
  const after = listenerCounts(res);
  return (Object.keys(after) as Array<keyof ListenerCounts>).some(
    (event) => !(compressed && event === 'drain') && after[event] !== before[event],
  );
}

function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

/** What the process holds once in-flight work settled and garbage is collected: resources, descriptors, heap. */
async function settledSnapshot() {
  await sleep(200);
  collectGarbage();
  return {
    resources: countBy(nodeProcess.getActiveResourcesInfo()),
    descriptors: openFileDescriptors(),
    heap: process.memoryUsage().heapUsed,
  };
}

/** Everything the server side counts while the load runs; it holds no response, so the heap tells the truth. */
class Tally {
  streamCalls = 0;
  streamSettled = 0;
  outcomes: Record<StreamOutcome, number> = { finished: 0, aborted: 0, errored: 0 };
  sseOpened = 0;
  /** SSE responses that heard onClose at least once, and how many heard it again. */
  closedOnce = 0;
  closedAgain = 0;
  readonly #closed = new WeakSet<object>();
  readonly reasons: Record<string, number> = {};
  /** Responses whose listeners were checked once they closed, and those with some left. */
  checked = 0;
  listenersLeft = 0;

  stream(promise: Promise<StreamOutcome>): void {
    this.streamCalls++;
    void promise.then((outcome) => {
      this.streamSettled++;
      this.outcomes[outcome]++;
    });
  }

  /** Checks, a turn after the response closed, that its listeners are back to what they were now. */
  watch(res: http.ServerResponse | http2.Http2ServerResponse): void {
    const before = listenerCounts(res);
    res.once('close', () =>
      setImmediate(() => {
        this.checked++;
        // the once('close') of this check is gone by now, as it was not there before
        if (listenersLeft(res, before)) this.listenersLeft++;
      }),
    );
  }

  onClose = (reason: SseCloseReason, ctx: { res: unknown }): void => {
    this.reasons[reason] = (this.reasons[reason] ?? 0) + 1;
    const res = ctx.res as object;
    if (this.#closed.has(res)) this.closedAgain++;
    else {
      this.#closed.add(res);
      this.closedOnce++;
    }
  };
}

/** Bodies of every kind, some of them misbehaving; `rand` picks sizes and delays. */
function bodies(rand: () => number): Record<string, () => StreamBody> {
  return {
    generator: () =>
      (async function* () {
        for (let i = 0; i < 200; i++) {
          yield `row ${i}\n`;
          if (rand() < 0.3) await sleep(1);
        }
      })(),
    readable: () => {
      let sent = 0;
      return new Readable({
        read() {
          this.push(sent++ < 400 ? Buffer.alloc(4096, 97) : null);
        },
      });
    },
    web: () => {
      let sent = 0;
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent++ < 100) controller.enqueue(new Uint8Array(2048));
          else controller.close();
        },
      });
    },
    function: () => async (out: NodeJS.WritableStream, ctx: { signal: AbortSignal }) => {
      for (let i = 0; i < 100 && !ctx.signal.aborted; i++) {
        if (!out.write(`line ${i}\n`)) await new Promise((resolve) => out.once('drain', resolve));
        if (rand() < 0.2) await sleep(1);
      }
      out.end();
    },
    file: () => file('big.txt', { root: FILES }),
    ndjson: () =>
      ndjson(
        (async function* () {
          for (let i = 0; i < 50; i++) {
            await sleep(rand() < 0.5 ? 0 : 2);
            yield { id: i };
          }
        })(),
      ),
    channel: () => {
      const channel = new Channel<string>(4);
      void (async () => {
        for (let i = 0; i < 100; i++) if (!(await channel.put(`c${i}\n`))) return;
        channel.close();
      })();
      return channel;
    },
    throws: () =>
      (async function* () {
        yield 'before the failure\n';
        await sleep(rand() * 5);
        throw new Error('the source failed (soak)');
      })(),
    badItem: () =>
      (async function* () {
        yield 'fine\n';
        yield 7 as unknown as string;
      })(),
    cursorCloseFails: () =>
      Readable.from(
        (async function* () {
          try {
            for (let i = 0; i < 500; i++) {
              yield `cursor ${i}\n`;
              await sleep(0);
            }
          } finally {
            // biome-ignore lint/correctness/noUnsafeFinally: a cursor whose close fails, on purpose
            throw new Error('cursor close failed (soak)');
          }
        })(),
      ),
  };
}

/** The same routes on every app: `/stream/<kind>`, `/chunk`, `/sse/<kind>`, and the app ending responses. */
function routes(tally: Tally, rand: () => number): Record<string, (res: Res) => void> {
  const table: Record<string, (res: Res) => void> = {};
  for (const [kind, make] of Object.entries(bodies(rand))) {
    table[`/stream/${kind}`] = (res) => tally.stream(res.stream(make()));
  }
  table['/stream/app-ends'] = (res) => {
    setTimeout(() => res.end(), rand() * 20);
    tally.stream(res.stream(bodies(rand).generator!()));
  };
  table['/chunk'] = (res) => {
    void (async () => {
      for (let i = 0; i < 100; i++) if (!(await res.chunk(`chunk ${i}\n`))) return;
      res.end();
    })();
  };
  table['/chunk/app-ends'] = (res) => {
    setTimeout(() => res.end(), rand() * 20);
    void (async () => {
      for (let i = 0; i < 1000; i++) if (!(await res.chunk(`chunk ${i}\n`))) return;
    })();
  };
  table['/sse/ready'] = (res) => {
    tally.sseOpened++;
    res.sse((events, ctx) => {
      void (async () => {
        for (let i = 0; i < 20 && !ctx.signal.aborted; i++) {
          if (!(await events.put({ event: 'tick', data: i }))) return;
          await sleep(rand() * 3);
        }
        events.close();
      })();
    });
  };
  table['/sse/iterable-fails'] = (res) => {
    tally.sseOpened++;
    res.sse(
      (async function* () {
        yield 'one';
        await sleep(rand() * 5);
        throw new Error('the feed failed (soak)');
      })(),
    );
  };
  table['/sse/push'] = (res) => {
    tally.sseOpened++;
    const stream = res.sse();
    // sends that are not awaited: a slow client is closed past bufferBytes
    for (let i = 0; i < 200; i++) void stream.send('x'.repeat(1024));
    setTimeout(() => stream.close(), rand() * 30);
  };
  table['/sse/app-ends'] = (res) => {
    tally.sseOpened++;
    res.sse();
    setTimeout(() => res.end(), rand() * 20);
  };
  return table;
}

/** One HTTP/1.1 request over a raw socket, with a client behaviour picked at random. */
function httpCycle(
  port: number,
  route: string,
  behaviour: string,
  rand: () => number,
  answerBoundMs: number,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = 0;
    let answered = false;
    let settled = false;
    const finish = (problem?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(bound);
      socket.destroy();
      resolve(problem);
    };
    const bound = setTimeout(
      () =>
        finish(answered ? undefined : `${behaviour} ${route}: no response head within ${answerBoundMs} ms`),
      answerBoundMs,
    );
    socket.on('error', () => finish());
    socket.on('close', () => finish());
    const method = behaviour === 'head' ? 'HEAD' : 'GET';
    const headers = behaviour === 'gzip' ? 'Accept-Encoding: gzip\r\n' : '';
    socket.write(`${method} ${route} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${headers}\r\n`);
    const limit = Math.floor(rand() * 20_000);
    socket.on('data', (data: Buffer) => {
      answered = true;
      received += data.length;
      if (behaviour === 'abort-after-bytes' && received > limit) finish();
      if (behaviour === 'slow-reader') {
        socket.pause();
        setTimeout(() => finish(), rand() * 50);
      }
    });
    if (behaviour === 'abort-early') setTimeout(() => finish(), rand() * 3);
  });
}

/** One HTTP/2 request; cancelled at random. */
function http2Cycle(session: http2.ClientHttp2Session, route: string, rand: () => number): Promise<void> {
  return new Promise((resolve) => {
    const stream = session.request({ ':path': route, ':method': rand() < 0.1 ? 'HEAD' : 'GET' });
    stream.on('error', () => {});
    const cancel = rand() < 0.5;
    const timer = setTimeout(
      () => {
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      },
      cancel ? rand() * 10 : 2000,
    );
    stream.resume();
    stream.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    stream.end();
  });
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const rand = random(seed);
  const log = options.log ?? (() => {});
  const answerBoundMs = options.answerBoundMs ?? 3000;
  const tally = new Tally();
  const unhandledRejections: string[] = [];
  const uncaughtExceptions: string[] = [];
  const warnings: string[] = [];
  const onRejection = (reason: unknown) => unhandledRejections.push(String(reason));
  const onException = (error: unknown) => uncaughtExceptions.push(String(error));
  const onWarning = (warning: Error) => warnings.push(warning.name);
  // Errors no handler hears are reported on console.error (outside NODE_ENV=test): counted, not printed.
  const consoleError = console.error;
  let reported = 0;
  console.error = () => {
    reported++;
  };
  nodeProcess.on('unhandledRejection', onRejection);
  nodeProcess.on('uncaughtException', onException);
  nodeProcess.on('warning', onWarning);

  // compression()'s zlib streams, to watch the 'drain' listeners it forwards to them
  const createGzip = zlib.createGzip;
  const gzips = new Set<zlib.Gzip>();
  let mostZlibDrainListeners = 0;
  Object.defineProperty(zlib, 'createGzip', {
    configurable: true,
    value: (opts?: zlib.ZlibOptions) => {
      const gzip = createGzip(opts);
      gzips.add(gzip);
      gzip.once('close', () => gzips.delete(gzip));
      return gzip;
    },
  });
  const sampler = setInterval(() => {
    for (const gzip of gzips)
      mostZlibDrainListeners = Math.max(mostZlibDrainListeners, gzip.listenerCount('drain'));
  }, 20);

  const table = routes(tally, rand);
  const sseOptions = { retryMs: null, bufferBytes: 64 * 1024, heartbeatMs: 50, onClose: tally.onClose };
  const mount = (app: { use(...handlers: unknown[]): unknown }, sse: ReturnType<typeof sseChannel>) => {
    app.use(streamBody());
    app.use(chunked());
    app.use(sse);
    app.use((req: http.IncomingMessage, res: http.ServerResponse, next: () => void) => {
      const route = table[(req.url ?? '').split('?')[0] ?? ''];
      if (!route) return next();
      tally.watch(res);
      // some routes let compression() in: an app's own Cache-Control
      if (req.headers['accept-encoding']) res.setHeader('Cache-Control', 'no-cache');
      res.setHeader('Content-Type', 'text/plain');
      route(res as Res);
    });
  };
  const plainSse = sseChannel(sseOptions);
  const plain = express();
  mount(plain, plainSse);
  const compressedSse = sseChannel(sseOptions);
  const compressed = express();
  compressed.use(compression({ threshold: 0 }));
  mount(compressed, compressedSse);
  const h2Sse = sseChannel(sseOptions);
  const h2App = connect();
  h2App.use(h2Sse as unknown as connect.NextHandleFunction);
  h2App.use(chunked() as unknown as connect.NextHandleFunction);
  h2App.use(((req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    tally.watch(res);
    const url = req.url ?? '';
    if (url.startsWith('/sse/')) {
      table[url]?.(res as unknown as Res);
      return;
    }
    if (url === '/chunk') {
      table['/chunk']?.(res as unknown as Res);
      return;
    }
    const kind = url.replace('/stream/', '');
    const make = bodies(rand)[kind] ?? bodies(rand).generator!;
    if (kind === 'app-ends') setTimeout(() => res.end(), rand() * 20);
    tally.stream(sendStream(res as unknown as AnyResponse, make()));
  }) as unknown as connect.NextHandleFunction);

  const servers = [http.createServer(plain), http.createServer(compressed)];
  const h2Server = http2.createServer(
    h2App as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  );
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  h2Server.on('session', (session) => {
    h2Sessions.add(session);
    session.on('close', () => h2Sessions.delete(session));
  });
  const listen = (server: net.Server) =>
    new Promise<number>((resolve) =>
      server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
    );
  const ports = await Promise.all(servers.map(listen));
  const h2Port = await listen(h2Server);

  const paths = Object.keys(table);
  const behaviours = ['read', 'abort-early', 'abort-after-bytes', 'slow-reader', 'head', 'gzip'];
  const byClient: Record<string, number> = {};
  const unanswered: string[] = [];
  let cycles = 0;
  let http2Cycles = 0;

  const oneCycle = async () => {
    if (rand() < 0.15) {
      const session = http2.connect(`http://127.0.0.1:${h2Port}`);
      session.on('error', () => {});
      for (let i = 0; i < 4; i++) await http2Cycle(session, paths[Math.floor(rand() * paths.length)]!, rand);
      session.destroy();
      http2Cycles += 4;
      return;
    }
    const behaviour = behaviours[Math.floor(rand() * behaviours.length)]!;
    const port = behaviour === 'gzip' || rand() < 0.3 ? ports[1]! : ports[0]!;
    byClient[behaviour] = (byClient[behaviour] ?? 0) + 1;
    const route = paths[Math.floor(rand() * paths.length)]!;
    const problem = await httpCycle(port, route, behaviour, rand, answerBoundMs);
    if (problem) unanswered.push(problem);
    cycles++;
  };

  // A warm-up pass loads every code path before the baseline is taken.
  for (const route of paths) await httpCycle(ports[0]!, route, 'abort-after-bytes', rand, answerBoundMs);
  const baseline = await settledSnapshot();
  const checkedBefore = tally.checked;
  const leftBefore = tally.listenersLeft;
  log(`soak: seed ${seed}, ${options.concurrency} clients for ${options.durationMs} ms`);

  const started = Date.now();
  const deadline = started + options.durationMs;
  const { enough } = options;
  const ranEnough = () =>
    enough !== undefined && cycles >= enough.cycles && http2Cycles >= enough.http2Cycles;
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (Date.now() < deadline && !ranEnough()) await oneCycle();
    }),
  );
  const clientMs = Date.now() - started;

  // Let the server side settle: every res.stream() resolved, every SSE stream closed (bounded).
  const settleBy = Date.now() + 15_000;
  const open = () => plainSse.size + compressedSse.size + h2Sse.size;
  while (
    (tally.streamSettled < tally.streamCalls || open() > 0 || h2Sessions.size > 0) &&
    Date.now() < settleBy
  ) {
    await sleep(20);
  }
  clearInterval(sampler);
  Object.defineProperty(zlib, 'createGzip', { configurable: true, value: createGzip });
  const responsesWithListenersLeft = tally.listenersLeft - leftBefore;
  const responsesChecked = tally.checked - checkedBefore;
  const after = await settledSnapshot();

  for (const server of servers) server.closeAllConnections();
  await Promise.all([...servers, h2Server].map((server) => new Promise((resolve) => server.close(resolve))));
  nodeProcess.off('unhandledRejection', onRejection);
  nodeProcess.off('uncaughtException', onException);
  nodeProcess.off('warning', onWarning);
  console.error = consoleError;

  const onCloseNotOnce = tally.sseOpened - tally.closedOnce + tally.closedAgain;
  return {
    seed,
    clientMs,
    cycles,
    byClient,
    http2Cycles,
    unanswered,
    unhandledRejections,
    uncaughtExceptions,
    streamCalls: tally.streamCalls,
    streamSettled: tally.streamSettled,
    outcomes: tally.outcomes,
    sseOpened: tally.sseOpened,
    onCloseNotOnce,
    closeReasons: tally.reasons,
    responsesChecked,
    responsesWithListenersLeft,
    mostZlibDrainListeners,
    maxListenersWarnings: warnings.filter((name) => name === 'MaxListenersExceededWarning').length,
    reportedErrors: reported,
    resources: { before: baseline.resources, after: after.resources },
    descriptors: { before: baseline.descriptors, after: after.descriptors },
    heapMiB: { before: baseline.heap / 2 ** 20, after: after.heap / 2 ** 20 },
  };
}

/** What a soak report must show; each entry names a broken promise of the library. */
export function soakProblems(report: SoakReport): string[] {
  const problems: string[] = [];
  const grew = (name: string, before: number, after: number) => {
    if (after > before) problems.push(`${name}: ${before} before, ${after} after`);
  };
  if (report.unanswered.length > 0)
    problems.push(`unanswered requests: ${report.unanswered.slice(0, 5).join('; ')}`);
  if (report.unhandledRejections.length > 0)
    problems.push(`unhandled rejections: ${report.unhandledRejections.slice(0, 5).join('; ')}`);
  if (report.uncaughtExceptions.length > 0)
    problems.push(`uncaught exceptions: ${report.uncaughtExceptions.slice(0, 5).join('; ')}`);
  if (report.streamSettled !== report.streamCalls) {
    problems.push(`res.stream(): ${report.streamCalls} calls, ${report.streamSettled} settled`);
  }
  if (report.onCloseNotOnce !== 0)
    problems.push(`${report.onCloseNotOnce} SSE streams did not hear onClose exactly once`);
  if (report.responsesChecked === 0) problems.push('no response was checked for listeners left');
  if (report.responsesWithListenersLeft !== 0) {
    problems.push(`${report.responsesWithListenersLeft} responses kept listeners the library added`);
  }
  if (report.mostZlibDrainListeners > 2) {
    problems.push(`${report.mostZlibDrainListeners} 'drain' listeners on one compression() zlib stream`);
  }
  if (report.maxListenersWarnings > 0)
    problems.push(`${report.maxListenersWarnings} MaxListenersExceededWarning`);
  for (const name of new Set([
    ...Object.keys(report.resources.before),
    ...Object.keys(report.resources.after),
  ])) {
    grew(`active ${name}`, report.resources.before[name] ?? 0, report.resources.after[name] ?? 0);
  }
  grew('open file descriptors', report.descriptors.before, report.descriptors.after);
  // after a full GC: a little noise (JIT, caches) is allowed, a leak per request is not
  grew('heap after GC (MiB)', report.heapMiB.before + 8, report.heapMiB.after);
  return problems;
}

/** The report as a few lines for a log or a closing note. */
export function describeSoak(report: SoakReport): string {
  const mib = (value: number) => value.toFixed(1);
  return [
    `seed ${report.seed}, ${(report.clientMs / 1000).toFixed(1)} s: ${report.cycles} HTTP/1.1 cycles ${JSON.stringify(report.byClient)}, ${report.http2Cycles} HTTP/2 requests`,
    `res.stream(): ${report.streamCalls} calls, ${report.streamSettled} settled ${JSON.stringify(report.outcomes)}`,
    `res.sse(): ${report.sseOpened} streams, onClose ${JSON.stringify(report.closeReasons)}, not exactly once: ${report.onCloseNotOnce}`,
    `unanswered ${report.unanswered.length}, unhandled rejections ${report.unhandledRejections.length}, uncaught ${report.uncaughtExceptions.length}, errors reported on console.error ${report.reportedErrors}`,
    `listeners left on responses: ${report.responsesWithListenersLeft} of ${report.responsesChecked}; most 'drain' listeners on a zlib stream: ${report.mostZlibDrainListeners}; MaxListeners warnings: ${report.maxListenersWarnings}`,
    `active resources before ${JSON.stringify(report.resources.before)} after ${JSON.stringify(report.resources.after)}`,
    `descriptors ${report.descriptors.before} -> ${report.descriptors.after}; heap after GC ${mib(report.heapMiB.before)} -> ${mib(report.heapMiB.after)} MiB`,
  ].join('\n');
}

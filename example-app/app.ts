import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import express from 'express';
import {
  chunked,
  createHub,
  file,
  type Hub,
  type HubStats,
  ndjson,
  type SseMiddleware,
  sseChannel,
  streamBody,
} from '../lib';
import { ensureDownloadFile } from './download';
import { createMetrics } from './metrics';

/** The events this app publishes, by name: the hub checks `publish()` against them. */
export interface DemoEvents {
  msg: { text: string };
  tick: { at: number };
  /** A slow feed's producer ran its `finally`: which feed, in which process, and that process's count. */
  released: { feed: string; pid: number; liveProducers: number };
}

export interface ExampleAppOptions {
  /** The example-app folder (it holds public/ and data/). */
  dir: string;
  /** The hub for `/chat` and `/ticks`; the caller picks its store (server.ts). Default: `createHub()`. */
  hub?: Hub<DemoEvents>;
  /** Between two counter events. Default `1000`. */
  counterIntervalMs?: number;
  /** Between two ticks published to the `ticks` topic. Default `400`; `null`: no ticker (another process has it). */
  tickIntervalMs?: number | null;
  /** Between two steps of `/progress` (20 steps). Default `150`. */
  progressStepMs?: number;
  /** Between two rows of `/rows`. Default `200`. */
  rowDelayMs?: number;
  /** Between two events of `/slow-feed`. Default `300`. */
  feedIntervalMs?: number;
  /** The size of the generated download. Default 32 MiB. */
  downloadBytes?: number;
  /** Where the download is generated. Default: a folder under the OS temp dir. */
  downloadDir?: string;
}

export type ExampleApp = express.Express & {
  /** The sseChannel() middleware: `sse.size` open streams, `sse.closeAll()` on shutdown. */
  sse: SseMiddleware;
  hub: Hub<DemoEvents>;
  stats(): { openStreams: number; liveProducers: number; hub: HubStats };
  /** Stops what createApp started (the ticker, the metrics subscriptions). Streams and hub: see server.ts. */
  close(): void;
};

/** Counts 1..limit, one line each: the smallest streamed body. */
async function* numbers(limit: number) {
  for (let i = 1; i <= limit; i++) yield `${i}\n`;
}

/** Rows as a database cursor would give them: one at a time, with a delay. */
async function* rows(count: number, delayMs: number) {
  const names = ['Ada', 'Grace', 'Barbara', 'Frances', 'Hedy', 'Katherine', 'Margaret', 'Radia'];
  for (let id = 1; id <= count; id++) {
    await sleep(delayMs);
    yield { id, name: names[(id - 1) % names.length], score: (id * 37) % 100 };
  }
}

/** The live demo: every capability of express-streaming, one route each (see public/index.html). */
export function createApp(options: ExampleAppOptions): ExampleApp {
  const PUBLIC = path.join(options.dir, 'public');
  // express-streaming/client, found through the package's exports as an app finds it in node_modules
  // (here the package itself, by its own name; `npm start` builds it first)
  const CLIENT_FILE = createRequire(path.join(options.dir, 'package.json')).resolve(
    'express-streaming/client',
  );
  const DATA = path.join(options.dir, 'data');
  const counterIntervalMs = options.counterIntervalMs ?? 1000;
  const tickIntervalMs = options.tickIntervalMs === undefined ? 400 : options.tickIntervalMs;
  const progressStepMs = options.progressStepMs ?? 150;
  const rowDelayMs = options.rowDelayMs ?? 200;
  const feedIntervalMs = options.feedIntervalMs ?? 300;
  const DOWNLOADS = options.downloadDir ?? path.join(os.tmpdir(), 'express-streaming-example');
  const download = ensureDownloadFile(DOWNLOADS, options.downloadBytes ?? 32 * 1024 * 1024);

  const hub = options.hub ?? createHub<DemoEvents>();
  const metrics = createMetrics();
  const sse = sseChannel();
  const app = express();
  // Which process answered: with WORKERS=2 the page works whichever one each request lands on.
  app.use((_req, res, next) => {
    res.setHeader('X-Served-By', String(process.pid));
    next();
  });
  app.use(streamBody()); // res.stream(body)
  app.use(chunked()); // res.chunk(data)
  app.use(sse); // res.sse(source)
  // The browser client, as an app serves it from node_modules: the package's own ESM file, no build step.
  app.get('/vendor/express-streaming/client.js', (_req, res) => res.sendFile(CLIENT_FILE));

  app.get('/', (_req, res) => res.stream(file('index.html', { root: PUBLIC })));
  app.get('/app.js', (_req, res) => res.stream(file('app.js', { root: PUBLIC })));

  // --- Server-Sent Events: Pedestal's counter, a ready function putting events on a channel ---
  app.get('/counter', (_req, res) => {
    res.sse((events, ctx) => {
      void (async () => {
        for (let i = 0; i < 10 && !ctx.signal.aborted; i++) {
          await events.put({ event: 'counter', data: i });
          await sleep(counterIntervalMs);
        }
        events.close(); // ends the stream
      })();
    });
  });

  // --- The hub: fan-out to every tab, with ids and resume ---
  // A subscription replays what the client missed after its Last-Event-ID (header, or the
  // ?lastEventId= query of a fresh EventSource), or sends `event: reset` when it cannot; then it is live.
  app.get('/chat', (req, res) => res.sse(hub.subscribe('chat', req)));
  app.post('/chat', express.json(), async (req, res) => {
    const text: unknown = req.body?.text;
    if (typeof text !== 'string' || text.trim() === '' || text.length > 500) {
      res.status(400).json({ error: 'expected { "text": "…" } (1 to 500 characters)' });
      return;
    }
    const id = await hub.publish('chat', { event: 'msg', data: { text } }); // every subscriber, every tab
    res.status(201).json({ id });
  });

  // A ticker publishes whether anyone listens: drop the connection for a while, and the ticks
  // published meanwhile are replayed when you come back.
  app.get('/ticks', (req, res) => res.sse(hub.subscribe('ticks', req)));
  let tickerFailing = false;
  const tick = () => {
    hub.publish('ticks', { event: 'tick', data: { at: Date.now() } }).then(
      () => {
        tickerFailing = false;
      },
      (error: Error) => {
        // e.g. a Redis store that is down: say so once, keep trying on each tick
        if (!tickerFailing) console.warn(`ticker: publish failed (${error.message}); retrying`);
        tickerFailing = true;
      },
    );
  };
  const ticker = tickIntervalMs === null ? undefined : setInterval(tick, tickIntervalMs);
  ticker?.unref();

  // --- Chunked transfer: res.chunk() flushes each chunk now, and resolves false once the client left ---
  app.get('/progress', async (_req, res) => {
    res.type('text/plain');
    for (let percent = 5; percent <= 100; percent += 5) {
      await sleep(progressStepMs); // some work
      if (!(await res.chunk(`${percent}\n`))) return; // the client left: stop working
    }
    res.end();
  });

  // --- NDJSON: one JSON document per line, written as each row arrives ---
  app.get('/rows', (req, res) => res.stream(ndjson(rows(Number(req.query.count ?? 12), rowDelayMs))));

  // --- A large file through send: Range (206), ETag, conditional GET; bytes through the write loop ---
  app.get('/download', (_req, res) => {
    res.attachment(download); // Content-Disposition: save it, don't show it
    return res.stream(file(download, { root: DOWNLOADS }));
  });

  // --- Clean-up when the client leaves: the producer's `finally` runs, and says so ---
  // The evidence comes from the process that served the feed, whichever it was (WORKERS=2): its events
  // carry that process's count, and its `finally` publishes `released` with the count after, through
  // the hub that every process shares.
  let liveProducers = 0;
  async function* slowFeed(feed: string) {
    liveProducers++;
    try {
      for (let n = 1; ; n++) {
        yield { event: 'feed', data: { n, pid: process.pid, liveProducers } };
        await sleep(feedIntervalMs);
      }
    } finally {
      liveProducers--; // res.sse() return()s the generator when the client goes away
      const released = { feed, pid: process.pid, liveProducers };
      hub.publish('producers', { event: 'released', data: released }).catch((error: Error) => {
        console.warn(`slow feed: could not publish its release (${error.message})`);
      });
    }
  }
  app.get('/slow-feed', (req, res) => res.sse(slowFeed(String(req.query.id ?? '').slice(0, 64))));
  app.get('/producers', (req, res) => res.sse(hub.subscribe('producers', req)));

  const stats = () => ({ openStreams: sse.size, liveProducers, hub: hub.stats() });
  app.get('/stats', (_req, res) => res.json(stats()));
  app.get('/metrics', async (_req, res) => res.type(metrics.contentType).send(await metrics.text()));

  // --- Plain streamed bodies, typed as text so that a browser shows them instead of saving them ---
  app.get('/range', (req, res) => res.type('text/plain').stream(numbers(Number(req.query.limit ?? 10))));
  app.get('/report.csv', (_req, res) => res.stream(file('report.csv', { root: DATA })));
  app.get('/clock', (_req, res) =>
    res.type('text/plain').stream(async (out: Writable, ctx) => {
      for (let i = 0; i < 5 && !ctx.signal.aborted; i++) {
        out.write(`${new Date().toISOString()}\n`);
        await sleep(200);
      }
    }),
  );
  app.get('/tokens', async (_req, res) => {
    res.type('text/plain'); // res.chunk() sets no Content-Type of its own
    for (const token of ['Streaming ', 'one ', 'token ', 'at ', 'a ', 'time.\n']) {
      if (!(await res.chunk(token))) return;
      await sleep(100);
    }
    res.end();
  });

  const close = () => {
    clearInterval(ticker);
    metrics.close();
  };
  return Object.assign(app, { sse, hub, stats, close });
}

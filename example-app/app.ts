import path from 'node:path';
import type { Writable } from 'node:stream';
import express from 'express';
import { chunked, file, ndjson, type SseMiddleware, sseChannel, streamBody } from '../lib';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function* numbers(limit: number) {
  for (let i = 1; i <= limit; i++) yield `${i}\n`;
}

async function* rows(count: number) {
  for (let id = 1; id <= count; id++) {
    await sleep(50);
    yield { id, name: `row ${id}` };
  }
}

/** The example app: one route per body type, and Pedestal's counter as Server-Sent Events. */
export function createApp(options: {
  /** The example-app folder (it holds public/ and data/). */
  dir: string;
  counterIntervalMs?: number;
}): express.Express & { sse: SseMiddleware } {
  const PUBLIC = path.join(options.dir, 'public');
  const DATA = path.join(options.dir, 'data');
  const interval = options.counterIntervalMs ?? 1000;
  const sse = sseChannel();
  const app = express();
  app.use(streamBody());
  app.use(chunked());
  app.use(sse);

  app.get('/', (_req, res) => res.stream(file('index.html', { root: PUBLIC })));
  app.get('/range', (req, res) => res.stream(numbers(Number(req.query.limit ?? 10))));
  app.get('/report.csv', (_req, res) => res.stream(file('report.csv', { root: DATA })));
  app.get('/rows', (_req, res) => res.stream(ndjson(rows(5))));
  app.get('/clock', (_req, res) =>
    res.stream(async (out: Writable, ctx) => {
      for (let i = 0; i < 5 && !ctx.signal.aborted; i++) {
        out.write(`${new Date().toISOString()}\n`);
        await sleep(200);
      }
    }),
  );
  app.get('/tokens', async (_req, res) => {
    for (const token of ['Streaming ', 'one ', 'token ', 'at ', 'a ', 'time.\n']) {
      if (!(await res.chunk(token))) return;
      await sleep(100);
    }
    res.end();
  });
  app.get('/counter', (_req, res) => {
    res.sse((events, ctx) => {
      void (async () => {
        for (let i = 0; i < 10 && !ctx.signal.aborted; i++) {
          await events.put({ event: 'counter', data: i });
          await sleep(interval);
        }
        events.close();
      })();
    });
  });
  return Object.assign(app, { sse });
}

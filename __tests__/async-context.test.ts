import { AsyncLocalStorage } from 'node:async_hooks';
import http from 'node:http';
import { Readable } from 'node:stream';
import express from 'express';
import { createHub, type Hub, type SseCloseReason, sseChannel, streamBody } from '../lib';
import { dataOf } from './helpers/hub-server';
import { closeAll, listen } from './helpers/servers';
import { RawSseClient } from './helpers/sse-client';
import { until } from './helpers/wait';

/**
 * Request-scoped loggers and tracing keep their state in an AsyncLocalStorage set by a middleware.
 * Every callback of the app's runs in the context of the request it belongs to, even where it is
 * called from a socket event or from another request's publish.
 */
const als = new AsyncLocalStorage<string>();
const hubs: Hub[] = [];

afterEach(async () => {
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
  await closeAll();
});

async function appWith(setup: (app: express.Express) => void) {
  const app = express();
  app.use((req, _res, next) => als.run(String(req.headers['x-request'] ?? 'none'), next));
  setup(app);
  return listen(http.createServer(app));
}

describe("callbacks run in the request's async context", () => {
  it('sseChannel({ onClose }) when the client leaves, when the app closes the stream and on closeAll()', async () => {
    const seen: Array<[SseCloseReason, string | undefined]> = [];
    const sse = sseChannel({ retryMs: null, onClose: (reason) => seen.push([reason, als.getStore()]) });
    const { port } = await appWith((app) => {
      app.use(sse);
      app.get('/left', (_req, res) => res.sse());
      app.get('/closed', (_req, res) => {
        const stream = res.sse();
        setTimeout(() => stream.close(), 20);
      });
      app.get('/shutdown', (_req, res) => res.sse());
    });
    const left = new RawSseClient(port, '/left', { 'X-Request': 'a' });
    new RawSseClient(port, '/closed', { 'X-Request': 'b' });
    await until(() => sse.size === 1 && left.head !== '', 'the streams open and one closed');
    left.close();
    await until(() => seen.length === 2, 'two closes');
    new RawSseClient(port, '/shutdown', { 'X-Request': 'c' });
    await until(() => sse.size === 1, 'the third open');
    await sse.closeAll();
    expect(seen.sort()).toEqual([
      ['client', 'a'],
      ['server', 'b'],
      ['server', 'c'],
    ]);
  });

  it("a hub subscription's filter, though the event comes from another request's publish", async () => {
    const hub = createHub();
    hubs.push(hub);
    const filtered: Array<string | undefined> = [];
    const { port } = await appWith((app) => {
      app.use(sseChannel({ retryMs: null }));
      app.get('/feed', (req, res) =>
        res.sse(hub.subscribe('t', req, { filter: () => filtered.push(als.getStore()) > 0 })),
      );
      app.post('/publish', (_req, res, next) => {
        hub.publish('t', 'x').then((id) => res.json({ id }), next);
      });
    });
    const client = new RawSseClient(port, '/feed', { 'X-Request': 'subscriber' });
    await until(() => client.body.includes('id: '), 'positioned');
    await new Promise<void>((resolve, reject) => {
      const req = http.request({
        port,
        method: 'POST',
        path: '/publish',
        headers: { 'X-Request': 'publisher' },
      });
      req
        .on('response', (res) => res.resume().on('end', resolve))
        .on('error', reject)
        .end();
    });
    await until(() => dataOf(client, 'message').length === 1, 'the event');
    expect(filtered).toEqual(['subscriber']);
  });

  it("streamBody({ onError }) for a stream that fails after its head, on the stream's own event", async () => {
    const errors: Array<string | undefined> = [];
    const { port } = await appWith((app) => {
      app.use(streamBody({ onError: () => errors.push(als.getStore()) }));
      app.get('/fails', (_req, res) => {
        // a source that fails from outside the request's own chain of promises
        const body = new Readable({ read() {} });
        body.push('first ');
        als.exit(() => setTimeout(() => body.destroy(new Error('disk gone')), 20));
        void res.stream(body);
      });
    });
    const client = new RawSseClient(port, '/fails', { 'X-Request': 'download' });
    await client.waitClosed();
    expect(errors).toEqual(['download']);
  });
});

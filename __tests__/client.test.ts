import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import express from 'express';
import type { Browser, Page } from 'playwright-core';
import { createHub, type Hub, sseChannel } from '../lib';
import { launchChromium } from './helpers/browser';
import { findChromium, requireComponent } from './helpers/components';
import { closeAll, listen, type Running } from './helpers/servers';
import { until, untilAsync } from './helpers/wait';

const ROOT = path.resolve(__dirname, '..');
// Found as an app finds it: through the package's exports map.
const CLIENT_FILE = createRequire(path.join(ROOT, 'package.json')).resolve('express-streaming/client');
const PAGE = fs.readFileSync(path.join(__dirname, 'fixtures', 'client', 'page.html'), 'utf8');
const browser = requireComponent('chromium', findChromium() !== undefined, 'REQUIRE_BROWSER');

/** A request for a stream, as the server saw it: how the client said where it was. */
interface StreamRequest {
  header: string | undefined;
  query: string | null;
}

/** An Express app serving the page (fixtures/client/page.html), the built client, and hub streams. */
interface PageServer extends Running {
  hub: Hub;
  readonly requests: StreamRequest[];
  /** Holds new stream requests before they subscribe, until the returned function is called. */
  hold(): () => void;
  /** Cuts every open stream's connection, as a network drop does: EventSource reconnects by itself. */
  drop(): void;
  /** A new hub (a new memory store: new epochs) in place of the old one, which closes its streams. */
  restartHub(): Promise<void>;
}

const hubs: Hub[] = [];

async function servePage(): Promise<PageServer> {
  const requests: StreamRequest[] = [];
  const open = new Set<http.ServerResponse>();
  let gate: Promise<void> | undefined;
  const app = express();
  app.use(sseChannel({ retryMs: 100 }));
  app.get('/', (_req, res) => {
    res.type('html').send(PAGE);
  });
  app.get('/client.js', (_req, res) => res.sendFile(CLIENT_FILE));
  // /events/:topic follows one topic, /topics/a,b several on one stream
  app.get(['/events/:topic', '/topics/:list'], async (req, res) => {
    requests.push({
      header: req.get('last-event-id'),
      query: new URL(req.url, 'http://x').searchParams.get('lastEventId'),
    });
    await gate;
    open.add(res);
    res.on('close', () => open.delete(res));
    const { topic, list } = req.params as { topic?: string; list?: string };
    res.sse(server.hub.subscribe(list === undefined ? String(topic) : list.split(','), req));
  });
  // A stream that is not the hub's: a reset naming its topic, then an event.
  app.get('/raw-reset', (_req, res) => {
    res.sse((events) => {
      void events.put({
        event: 'reset',
        id: 'e-3',
        data: JSON.stringify({ reason: 'too-old', topic: 'room:7' }),
      });
      void events.put({ event: 'msg', id: 'e-4', data: '"after"' });
    });
  });
  const hub = createHub();
  hubs.push(hub);
  const server: PageServer = Object.assign(await listen(http.createServer(app)), {
    hub,
    requests,
    hold() {
      let release!: () => void;
      gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      return () => {
        gate = undefined;
        release();
      };
    },
    drop() {
      for (const res of open) res.socket?.destroy();
    },
    async restartHub() {
      const old = server.hub;
      server.hub = createHub();
      hubs.push(server.hub);
      await old.close({ retryMs: 100 });
    },
  });
  return server;
}

/** What the page keeps in `window.page` (see fixtures/client/page.html). */
interface PageState {
  got: Array<{ type: string; data: unknown; id: string }>;
  resets: Array<{ reason: string; topic: string | undefined; after: number }>;
  opens: number;
  errors: number;
}
interface PageWindow {
  page: PageState;
  stream: { close(): void; readyState: number; lastEventId?: string; on(...args: unknown[]): void };
  openStream(url: string, options?: unknown): PageWindow['stream'];
}

const stateOf = (page: Page): Promise<PageState> =>
  page.evaluate(() => (window as unknown as PageWindow).page);
const keyOf = (server: PageServer, stream = '/events/room') =>
  `express-streaming:last-event-id:${server.url}${stream}`;
const keptId = (page: Page, key: string): Promise<string | null> =>
  page.evaluate((k) => sessionStorage.getItem(k), key);

/** Waits until `check(window.page)` holds in the page (sent as source text: it may use nothing else). */
function waitFor(page: Page, check: (state: PageState) => boolean): Promise<unknown> {
  return page.waitForFunction(`window.page !== undefined && (${check.toString()})(window.page)`);
}

/** Publishes `msg` events whose data are `{ n: from }` … `{ n: to }`; resolves with their ids. */
async function publish(hub: Hub, from: number, to: number, topic = 'room'): Promise<string[]> {
  const ids: string[] = [];
  for (let n = from; n <= to; n++) ids.push(await hub.publish(topic, { event: 'msg', data: { n } }));
  return ids;
}

const numbers = (state: PageState) => state.got.map((e) => (e.data as { n: number }).n);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

let instance: Browser | undefined;

beforeAll(async () => {
  if (!browser.available) return;
  instance = await launchChromium();
});

afterAll(async () => {
  await instance?.close();
});

afterEach(async () => {
  await closeAll();
  await Promise.all(hubs.splice(0).map((hub) => hub.close()));
});

/** A fresh browser context (its own sessionStorage) on the page; resolves once its stream is open. */
async function openPage(server: PageServer, query = ''): Promise<{ page: Page; errors: string[] }> {
  const context = await instance!.newContext();
  context.setDefaultTimeout(8000);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${server.url}/${query}`);
  await waitFor(page, (state) => state.opens >= 1);
  return { page, errors };
}

describe('the built client', () => {
  it('is one small ESM file that imports nothing: a page loads it as it is', () => {
    expect(path.relative(ROOT, CLIENT_FILE)).toBe(path.join('dist', 'client.js'));
    const code = fs.readFileSync(CLIENT_FILE, 'utf8');
    expect(code).toMatch(/^export \{\s*openStream\s*\};?\s*$/m);
    expect(code).not.toMatch(/^\s*import\b|\bimport\(|\brequire\(|node:/m);
    expect(Buffer.byteLength(code)).toBeLessThan(8 * 1024);
  });
});

browser.describe(`express-streaming/client in headless Chromium${browser.label}`, () => {
  it('delivers typed events parsed from JSON, an unnamed one as "message", and keeps the last id', async () => {
    const server = await servePage();
    const { page } = await openPage(server);
    const first = await server.hub.publish('room', { event: 'msg', data: { text: 'hi' } });
    const second = await server.hub.publish('room', { list: [1, 2] });
    await waitFor(page, (state) => state.got.length === 2);
    expect((await stateOf(page)).got).toEqual([
      { type: 'msg', data: { text: 'hi' }, id: first },
      { type: 'message', data: { list: [1, 2] }, id: second },
    ]);
    expect(await keptId(page, keyOf(server))).toBe(second);
    expect(await page.evaluate(() => (window as unknown as PageWindow).stream.lastEventId)).toBe(second);
    // a first visit sends no id: neither the header nor the query
    expect(server.requests).toEqual([{ header: undefined, query: null }]);
  });

  it('resumes after a reload: every event exactly once and in order, the missed ones replayed', async () => {
    const server = await servePage();
    const { page } = await openPage(server);
    const ids = await publish(server.hub, 1, 5);
    await waitFor(page, (state) => state.got.length === 5);

    // The reloaded page's stream is held before it subscribes, so 6-8 are published while no page
    // listens: only a replay from the kept id can bring them.
    const release = server.hold();
    const reloaded = page.reload();
    await until(
      () => server.requests.length === 2 && server.hub.stats().subscribers === 0,
      () => `the old page gone and the reloaded one asking: ${JSON.stringify(server.requests)}`,
    );
    ids.push(...(await publish(server.hub, 6, 8)));
    release();
    await reloaded;
    await waitFor(page, (state) => state.opens === 1);
    ids.push(...(await publish(server.hub, 9, 10)));
    await waitFor(page, (state) => state.got.length >= 10);

    const state = await stateOf(page);
    expect(numbers(state)).toEqual(range(1, 10));
    expect(state.got.map((e) => e.id)).toEqual(ids);
    expect(state.resets).toEqual([]);
    // A fresh EventSource cannot send Last-Event-ID: the reloaded page sent the kept id as the query.
    expect(server.requests[1]).toEqual({ header: undefined, query: ids[4] });
    expect(server.hub.stats().replayed).toBe(3);
  });

  it('resumes a page reloaded before its first event from the position the hub gave it: nothing published meanwhile is lost', async () => {
    const server = await servePage();
    await publish(server.hub, 1, 2);
    const { page } = await openPage(server);
    const key = keyOf(server);
    await untilAsync(async () => (await keptId(page, key)) !== null, 'the position kept');
    const position = await keptId(page, key);
    const release = server.hold();
    const reloaded = page.reload();
    await until(
      () => server.requests.length === 2 && server.hub.stats().subscribers === 0,
      'the old page gone and the reloaded one asking',
    );
    const ids = await publish(server.hub, 3, 4);
    release();
    await reloaded;
    await waitFor(page, (state) => state.got.length >= 2);
    const state = await stateOf(page);
    expect(numbers(state)).toEqual([3, 4]);
    expect(state.got.map((e) => e.id)).toEqual(ids);
    expect(server.requests[1]).toEqual({ header: undefined, query: position });
  });

  it("after a reload, EventSource's own reconnect sends Last-Event-ID, which counts before the page's query", async () => {
    const server = await servePage();
    const { page } = await openPage(server);
    const ids = await publish(server.hub, 1, 2);
    await waitFor(page, (state) => state.got.length === 2);
    await page.reload();
    await waitFor(page, (state) => state.opens === 1);
    ids.push(...(await publish(server.hub, 3, 4)));
    await waitFor(page, (state) => state.got.length === 4);

    server.drop();
    await until(() => server.hub.stats().subscribers === 0, 'the dropped stream to leave the hub');
    ids.push(...(await publish(server.hub, 5, 6)));
    await waitFor(page, (state) => state.got.length >= 6);
    const state = await stateOf(page);
    expect(numbers(state)).toEqual(range(1, 6));
    expect(state.got.map((e) => e.id)).toEqual(ids);
    expect(state).toMatchObject({ opens: 2, resets: [] });
    expect(state.errors).toBeGreaterThanOrEqual(1);
    // The reconnect's URL still carries the id the page loaded with; the newer header is what counts.
    expect(server.requests.slice(1)).toEqual([
      { header: undefined, query: ids[1] },
      { header: ids[3], query: ids[1] },
    ]);
  });

  it('hands a reset to onReset, never to a listener, and keeps the id the hub goes on from', async () => {
    const server = await servePage();
    const { page } = await openPage(server);
    const [first] = await publish(server.hub, 1, 1);
    await waitFor(page, (state) => state.got.length === 1);

    await page.evaluate((key) => sessionStorage.setItem(key, 'not-an-id'), keyOf(server));
    await page.reload();
    await waitFor(page, (state) => state.resets.length === 1);
    const state = await stateOf(page);
    expect(server.requests[1]).toEqual({ header: undefined, query: 'not-an-id' });
    expect(state.resets).toEqual([{ reason: 'malformed', topic: state.resets[0]!.topic, after: 1 }]);
    expect([undefined, 'room']).toContain(state.resets[0]!.topic);
    expect(numbers(state)).toEqual([1]);
    // the reset's own id: the head, where the stream goes on live
    expect(await keptId(page, keyOf(server))).toBe(first);

    const [second] = await publish(server.hub, 2, 2);
    await waitFor(page, (s) => s.got.length === 2);
    expect(numbers(await stateOf(page))).toEqual([1, 2]);
    expect(await keptId(page, keyOf(server))).toBe(second);
  });

  it('tells the page to reset when the hub restarted (a new epoch), then resumes in the new one', async () => {
    const server = await servePage();
    const { page } = await openPage(server);
    await publish(server.hub, 1, 1);
    await waitFor(page, (state) => state.got.length === 1);

    await server.restartHub(); // its streams end with a retry: EventSource reconnects with its id
    await waitFor(page, (state) => state.resets.length === 1);
    expect((await stateOf(page)).resets[0]!.reason).toBe('unknown-epoch');
    const ids = await publish(server.hub, 2, 3);
    await waitFor(page, (state) => state.got.length === 3);

    await page.reload();
    await waitFor(page, (state) => state.opens === 1);
    const [last] = await publish(server.hub, 4, 4);
    await waitFor(page, (state) => state.got.length === 4);
    const state = await stateOf(page);
    expect(numbers(state)).toEqual([1, 2, 3, 4]);
    expect(state.resets).toEqual([]); // the reloaded page's own: none, it resumed
    expect(server.requests.at(-1)).toEqual({ header: undefined, query: ids[1] });
    expect(await keptId(page, keyOf(server))).toBe(last);
  });

  it('follows many topics on one stream: a reload resumes each topic from the kept cursor, and each reset names its topic', async () => {
    const server = await servePage();
    const { page } = await openPage(server, '?stream=/topics/a,b');
    const publishTo = async (topic: string, from: number, to: number) => {
      for (let n = from; n <= to; n++) await server.hub.publish(topic, { event: 'msg', data: { topic, n } });
    };
    await publishTo('a', 1, 2);
    await publishTo('b', 1, 1);
    await waitFor(page, (state) => state.got.length === 3);
    const kept = await keptId(page, keyOf(server, '/topics/a,b'));
    expect(kept).toMatch(/^~1/);

    const release = server.hold();
    const reloaded = page.reload();
    await until(
      () => server.requests.length === 2 && server.hub.stats().subscribers === 0,
      'the old page gone and the reloaded one asking',
    );
    await publishTo('a', 3, 4);
    await publishTo('b', 2, 2);
    release();
    await reloaded;
    await waitFor(page, (state) => state.opens === 1);
    await publishTo('b', 3, 3);
    await waitFor(page, (state) => state.got.length >= 7);
    const got = (await stateOf(page)).got.map((e) => e.data as { topic: string; n: number });
    expect(got.filter((d) => d.topic === 'a').map((d) => d.n)).toEqual([1, 2, 3, 4]);
    expect(got.filter((d) => d.topic === 'b').map((d) => d.n)).toEqual([1, 2, 3]);
    expect(server.requests[1]).toEqual({ header: undefined, query: kept });

    // a new hub (new epochs): neither topic can be resumed, and each says so
    await server.restartHub();
    await waitFor(page, (state) => state.resets.length === 2);
    expect((await stateOf(page)).resets.map((r) => [r.reason, r.topic])).toEqual([
      ['unknown-epoch', 'a'],
      ['unknown-epoch', 'b'],
    ]);
  });

  it('passes the topic a reset names', async () => {
    const server = await servePage();
    const { page } = await openPage(server, '?stream=/raw-reset');
    await waitFor(page, (state) => state.got.length === 1);
    const state = await stateOf(page);
    expect(state.resets).toEqual([{ reason: 'too-old', topic: 'room:7', after: 0 }]);
    expect(state.got).toEqual([{ type: 'msg', data: 'after', id: 'e-4' }]);
    expect(await keptId(page, keyOf(server, '/raw-reset'))).toBe('e-4');
  });

  it('reports data that is not JSON, naming the event, and moves the kept id past it; parse takes any data', async () => {
    const server = await servePage();
    const { page, errors } = await openPage(server);
    const bad = await server.hub.publish('room', { event: 'msg', data: 'plain text' });
    await until(() => errors.length === 1, 'the error the page reports');
    expect(errors[0]).toContain(`openStream: could not parse the data of a "msg" event (id "${bad}")`);
    expect(errors[0]).toContain('pass a parse option');
    expect(await keptId(page, keyOf(server))).toBe(bad);
    const [good] = await publish(server.hub, 1, 1);
    await waitFor(page, (state) => state.got.length === 1);
    expect((await stateOf(page)).got).toEqual([{ type: 'msg', data: { n: 1 }, id: good }]);
    expect(errors).toHaveLength(1);

    const tagged = await openPage(server, '?parse=tagged');
    const id = await server.hub.publish('room', { event: 'msg', data: 'plain text' });
    await waitFor(tagged.page, (state) => state.got.length === 1);
    expect((await stateOf(tagged.page)).got).toEqual([
      { type: 'msg', data: { text: 'plain text', type: 'msg' }, id },
    ]);
  });

  it('close() closes the connection: the server sees the client leave and nothing more arrives', async () => {
    const server = await servePage();
    const { page } = await openPage(server);
    await publish(server.hub, 1, 1);
    await waitFor(page, (state) => state.got.length === 1);
    expect(await page.evaluate(() => (window as unknown as PageWindow).stream.readyState)).toBe(1);

    await page.evaluate(() => (window as unknown as PageWindow).stream.close());
    expect(await page.evaluate(() => (window as unknown as PageWindow).stream.readyState)).toBe(2);
    await until(() => server.hub.stats().subscribers === 0, 'the closed stream to leave the hub');
    // A second stream of the page is the witness: once it has event 2, the closed one would have too.
    await page.evaluate(() => {
      const { openStream } = window as unknown as PageWindow;
      const witness = { got: [] as unknown[] };
      Object.assign(window, { witness });
      const stream = openStream('/events/room', { storageKey: null });
      stream.on('msg', (data: unknown) => witness.got.push(data));
    });
    await until(() => server.hub.stats().subscribers === 1, 'the witness to subscribe');
    await publish(server.hub, 2, 2);
    await page.waitForFunction(
      () => (window as unknown as { witness: { got: unknown[] } }).witness.got.length === 1,
    );
    expect(numbers(await stateOf(page))).toEqual([1]);
  });

  it('refuses bad options and reserved event names with a TypeError naming them', async () => {
    const server = await servePage();
    const { page } = await openPage(server);
    const messages = await page.evaluate(() => {
      const { openStream, stream } = window as unknown as PageWindow;
      const attempt = (use: () => unknown) => {
        try {
          use();
          return 'no error';
        } catch (error) {
          return `${(error as Error).name}: ${(error as Error).message}`;
        }
      };
      return [
        attempt(() => openStream('/events/room', { onreset: () => {} })),
        attempt(() => openStream('/events/room', { onReset: 'reload' })),
        attempt(() => openStream('/events/room', { storageKey: 7 })),
        attempt(() => stream.on('reset', () => {})),
        attempt(() => stream.on('msg')),
      ];
    });
    expect(messages).toEqual([
      'TypeError: openStream: no option `onreset`; the options are onReset, onOpen, onError, parse, storageKey, withCredentials',
      'TypeError: openStream: `onReset` must be a function, got "reload"',
      'TypeError: openStream: `storageKey` must be a string, or null to keep nothing, got 7',
      'TypeError: stream.on: `type` must be an event of the stream; for "reset" pass onReset to openStream, got "reset"',
      'TypeError: stream.on: `listener` must be a function, got undefined',
    ]);
    // nothing was opened by the refused calls
    expect(server.requests).toHaveLength(1);
  });
});

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import request from 'supertest';
import { createApp, type ExampleApp } from '../example-app/app';
import { launchChromium } from './helpers/browser';
import { findChromium, requireComponent } from './helpers/components';
import { spawnNode } from './helpers/processes';
import { REDIS_URL, redisAnswers } from './helpers/redis';
import { abortAfter, closeAll, httpGet, listen } from './helpers/servers';
import { collectEvents } from './helpers/sse-client';
import { sleep, until } from './helpers/wait';

const ROOT = path.join(__dirname, '..');
const EXAMPLE = path.join(ROOT, 'example-app');
const DOWNLOAD_BYTES = 32 * 1024 * 1024;
const browser = requireComponent('chromium', findChromium() !== undefined, 'REQUIRE_BROWSER');
const redis = requireComponent(`Redis at ${REDIS_URL}`, redisAnswers(), 'REQUIRE_REDIS');

const apps: ExampleApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) app.close();
  await closeAll();
});

/** The app in this process, with short intervals so the test runs fast. */
async function startExample(): Promise<{ app: ExampleApp; url: string; port: number }> {
  const app = createApp({
    dir: EXAMPLE,
    counterIntervalMs: 20,
    tickIntervalMs: 100,
    progressStepMs: 20,
    rowDelayMs: 20,
    feedIntervalMs: 50,
    downloadBytes: DOWNLOAD_BYTES,
  });
  apps.push(app);
  const running = await listen(http.createServer(app as unknown as http.RequestListener));
  return { app, url: running.url, port: running.port };
}

describe('the example app', () => {
  it('serves each README route and each demo route', async () => {
    const { url } = await startExample();
    // plain streamed bodies are typed as text: a browser shows them instead of saving them
    const numbers = await request(url).get('/range?limit=3');
    expect([numbers.headers['content-type'], numbers.text]).toEqual([
      'text/plain; charset=utf-8',
      '1\n2\n3\n',
    ]);
    for (const route of ['/clock', '/tokens']) {
      expect((await request(url).get(route)).headers['content-type']).toBe('text/plain; charset=utf-8');
    }
    const rows = await request(url).get('/rows').buffer(true);
    expect(rows.headers['content-type']).toBe('application/x-ndjson');
    expect(
      rows.text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).id),
    ).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const csv = await request(url).get('/report.csv');
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(csv.text.startsWith('id,name\n')).toBe(true);
    expect((await request(url).get('/tokens')).text).toBe('Streaming one token at a time.\n');

    const progress = await request(url).get('/progress').buffer(true);
    expect(progress.headers['transfer-encoding']).toBe('chunked');
    expect(progress.text.trim().split('\n').map(Number)).toEqual(
      Array.from({ length: 20 }, (_, i) => (i + 1) * 5),
    );

    const head = await request(url).head('/download');
    expect(Number(head.headers['content-length'])).toBe(DOWNLOAD_BYTES);
    expect(head.headers['content-disposition']).toMatch(/^attachment; filename=/);
    const range = await request(url).get('/download').set('Range', 'bytes=0-63').buffer(true);
    expect(range.status).toBe(206);
    expect(range.headers['content-range']).toBe(`bytes 0-63/${DOWNLOAD_BYTES}`);
    expect(range.text).toMatch(/^line 000000001 of the express-streaming demo file\.*\n$/);

    expect((await request(url).post('/chat').send({ text: '' })).status).toBe(400);
    const published = await request(url).post('/chat').send({ text: 'hello' });
    expect(published.status).toBe(201);
    expect(published.body.id).toMatch(/^[A-Za-z0-9]+-1$/);

    const stats = await request(url).get('/stats');
    expect(stats.body).toMatchObject({ openStreams: 0, liveProducers: 0, hub: { subscribers: 0 } });
    expect(stats.body.hub.published).toBeGreaterThanOrEqual(1);

    const metrics = await request(url).get('/metrics');
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    expect(metrics.text).toMatch(/^express_streaming_hub_published_total\{topic="chat"\} [1-9]/m);
  });

  it('tells a client with an unknown id to reset, and releases a producer when its client leaves', async () => {
    const { app, port } = await startExample();
    // A whole reset event: its name, the id it goes on from, its reason, the blank line that ends it.
    const RESET =
      /event: reset\nid: [A-Za-z0-9]+-\d+\ndata: \{"reason":"unknown-epoch","topic":"ticks"\}\n\n/;
    await abortAfter(port, '/ticks?lastEventId=forgotten0-7', (soFar) => RESET.test(soFar.toString()));
    expect(app.hub.stats().resets['unknown-epoch']).toBe(1);

    let whileReading: unknown;
    await abortAfter(port, '/slow-feed', (soFar) => {
      const enough = soFar.toString().split('event: feed').length > 3;
      if (enough) whileReading = app.stats().liveProducers;
      return enough;
    });
    // counted while the client read, or the release below would prove nothing
    expect(whileReading).toBe(1);
    await until(
      () => app.stats().liveProducers === 0 && app.sse.size === 0,
      () => `the slow feed to be released: ${JSON.stringify(app.stats())}`,
    );
  });

  it('server.ts prints the port it really listens on (PORT=0) and exits cleanly on SIGTERM', async () => {
    const { child, printed, exited } = spawnNode(['--import', 'tsx', 'example-app/server.ts'], {
      ...process.env,
      PORT: '0',
    });
    let stream: http.ClientRequest | undefined;
    try {
      const URL_LINE = /listening on http:\/\/localhost:(\d+)/;
      await until(
        () => URL_LINE.test(printed.all),
        () => `the URL line in ${JSON.stringify(printed.all)}`,
        15_000,
      );
      const port = Number(URL_LINE.exec(printed.all)![1]);
      expect(port).toBeGreaterThan(0);
      expect((await httpGet(`http://127.0.0.1:${port}/`)).status).toBe(200);

      // An open SSE stream must not hold the shutdown up: closeAll() ends it with a retry.
      let received = '';
      let ended = false;
      stream = http.get(`http://127.0.0.1:${port}/ticks`, { agent: false }, (res) => {
        res.on('data', (data: Buffer) => {
          received += data.toString();
        });
        res.on('end', () => {
          ended = true;
        });
      });
      stream.on('error', () => {});
      await until(() => received.includes('event: tick'), 'a tick', 5000);

      child.kill('SIGTERM');
      const result = await Promise.race([exited, sleep(8000).then(() => 'still running after 8 s')]);
      expect(result).toEqual({ code: 0, signal: null });
      expect(printed.all).toContain('SIGTERM: closing');
      await until(() => ended, 'the SSE stream to end');
      expect(received).toMatch(/retry: \d+\n\n$/);
    } finally {
      stream?.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 30_000);
});

/** server.ts on the Redis store with WORKERS=2: two processes on one port (node:cluster). */
async function startTwoWorkers() {
  const started = spawnNode(['--import', 'tsx', 'example-app/server.ts'], {
    ...process.env,
    PORT: '0',
    WORKERS: '2',
    REDIS_URL,
  });
  const { printed } = started;
  // The first worker prints its serving line and the banner in separate writes: wait for both.
  await until(
    () =>
      (printed.all.match(/worker \d+ \(pid (\d+)\) serving/g) ?? []).length === 2 &&
      /listening on http:\/\/localhost:\d+/.test(printed.all),
    () => `two workers and the banner in ${printed.all}`,
    20_000,
  );
  const port = Number(/listening on http:\/\/localhost:(\d+)/.exec(printed.all)![1]);
  const pids = [...printed.all.matchAll(/worker \d+ \(pid (\d+)\)/g)].map((m) => m[1]!);
  const stop = () => {
    if (started.child.exitCode === null && started.child.signalCode === null) started.child.kill('SIGKILL');
  };
  return { ...started, port, url: `http://127.0.0.1:${port}`, pids, stop };
}

redis.describe(`the example app on the Redis store, in two processes (WORKERS=2)${redis.label}`, () => {
  it('delivers messages published through one process to a subscriber on another, and stops cleanly', async () => {
    const workers = await startTwoWorkers();
    const source = { close: () => {} };
    try {
      expect(new Set(workers.pids).size).toBe(2);
      const { source: events, events: received } = collectEvents(`${workers.url}/chat`, ['msg']);
      source.close = () => events.close();
      await until(() => events.readyState === 1, 'subscribed');
      // node:cluster hands each new connection to the next worker: these land on both processes
      const servedBy = new Set<string>();
      for (let i = 1; i <= 6; i++) {
        const res = await request(workers.url)
          .post('/chat')
          .set('Connection', 'close')
          .send({ text: `m${i}` });
        expect(res.status).toBe(201);
        servedBy.add(String(res.headers['x-served-by']));
      }
      expect(servedBy.size).toBe(2);
      await until(() => received.length === 6, 'six messages, whichever process published them', 10_000);
      expect(received.map((e) => JSON.parse(e.data).text)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6']);
      source.close();
      workers.child.kill('SIGTERM');
      const result = await Promise.race([
        workers.exited,
        sleep(10_000).then(() => 'still running after 10 s'),
      ]);
      expect(result).toEqual({ code: 0, signal: null });
    } finally {
      source.close();
      workers.stop();
    }
  }, 40_000);

  browser.describe(`the demo page${browser.label}`, () => {
    it('shows the clean-up evidence of the process that served the feed, whichever one it was', async () => {
      const workers = await startTwoWorkers();
      const instance = await launchChromium();
      try {
        const page = await instance.newPage();
        await page.goto(`${workers.url}/`);
        // twice: the feed and the page's other requests land on the processes in turn
        for (let run = 0; run < 2; run++) {
          await page.click('#disconnect-run');
          await page.waitForSelector('#disconnect-result[data-state]', { timeout: 15_000 });
          expect(await page.getAttribute('#disconnect-result', 'data-state')).toBe('released');
          const table = await page.$$eval('#disconnect-table tr', (trs) =>
            trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent ?? '')),
          );
          const [reading, after] = table;
          expect(table.map((row) => row[0])).toEqual(['while reading', 'after leaving']);
          // one worker's own counts: with the feed, then without it
          expect(workers.pids).toContain(reading![1]);
          expect(after![1]).toBe(reading![1]);
          expect(Number(reading![2])).toBeGreaterThanOrEqual(1);
          expect(Number(after![2])).toBe(Number(reading![2]) - 1);
          expect(await page.textContent('#disconnect-result')).toBe(
            `released: the producer’s finally ran, in process ${reading![1]}`,
          );
          await page.waitForSelector('#disconnect-run:enabled');
        }
      } finally {
        await instance.close();
        workers.stop();
      }
    }, 60_000);
  });
});

/** What the page keeps in `window.demo` (see example-app/public/app.js). */
interface Demo {
  eventsPerSecond: number[];
  ticks: { received: number[]; missed: number[]; gaps: number; duplicates: number; resets: string[] };
  chat: string[];
  rows: { reads: number; count: number };
}
const demoOf = (page: Page): Promise<Demo> => page.evaluate(() => (window as unknown as { demo: Demo }).demo);

/** The number of a metric series in Prometheus text, e.g. `name{label="value"}`. */
function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
}

browser.describe(`the demo page in headless Chromium${browser.label}`, () => {
  it('shows every capability working', async () => {
    const { app, url } = await startExample();
    const instance = await launchChromium();
    try {
      const context = await instance.newContext({
        acceptDownloads: true,
        viewport: { width: 1360, height: 900 },
      });
      context.setDefaultTimeout(8000);
      const page = await context.newPage();
      // nothing the page asks for is missing (its icon included), and it logs no error
      const failures: string[] = [];
      page.on('response', (response) => {
        if (response.status() >= 400) failures.push(`${response.status()} ${response.url()}`);
      });
      page.on('console', (message) => {
        if (message.type() === 'error') failures.push(message.text());
      });
      await page.goto(`${url}/`);

      // The metrics card reads the server once the page's streams are open: they are counted.
      await page.waitForFunction(() =>
        /^express_streaming_sse_open_streams [1-9]/m.test(
          document.getElementById('metrics')?.textContent ?? '',
        ),
      );

      // The counter: ten Server-Sent Events, then the stream ends.
      await page.waitForFunction(() => document.getElementById('status')?.textContent === 'done');
      expect(await page.$$eval('#events li', (nodes) => nodes.map((n) => n.textContent))).toEqual([
        '0',
        '1',
        '2',
        '3',
        '4',
        '5',
        '6',
        '7',
        '8',
        '9',
      ]);

      // The chart moves: a redraw each second, from a count of events above zero.
      const frames = () => page.$eval('#chart', (c) => Number((c as HTMLCanvasElement).dataset.frames));
      const image = () => page.$eval('#chart', (c) => (c as HTMLCanvasElement).toDataURL());
      await page.waitForFunction(() => Number(document.getElementById('eps')?.textContent) > 0);
      const firstImage = await image();
      const firstFrame = await frames();
      await page.waitForFunction(
        (n) => Number(document.getElementById('chart')?.dataset.frames) > n,
        firstFrame,
      );
      expect(await image()).not.toBe(firstImage);

      // The hub: a message published from one tab arrives in both.
      const second = await context.newPage();
      await second.goto(`${url}/`);
      for (const tab of [page, second]) {
        await tab.waitForFunction(() => document.getElementById('chat-status')?.textContent === 'live');
      }
      await page.fill('#chat-text', 'hello from tab 1');
      await page.click('#chat-form button[type=submit]');
      await second.fill('#chat-text', 'and from tab 2');
      await second.press('#chat-text', 'Enter');
      for (const tab of [page, second]) {
        await tab.waitForFunction(() => (window as unknown as { demo: Demo }).demo.chat.length === 2);
        expect((await demoOf(tab)).chat).toEqual(['hello from tab 1', 'and from tab 2']);
        expect(await tab.textContent('#chat')).toContain('hello from tab 1');
      }
      // The chat card keeps its place with express-streaming/client (sessionStorage): a message sent
      // while the second tab is away is shown once it is back, exactly once.
      await second.goto('about:blank');
      await until(() => app.hub.stats().topics.chat === 1, 'the second tab gone from the chat');
      await request(url).post('/chat').send({ text: 'sent while it reloaded' });
      await second.goto(`${url}/`);
      await second.waitForFunction(() =>
        (window as unknown as { demo: Demo }).demo.chat.includes('sent while it reloaded'),
      );
      expect((await demoOf(second)).chat).toEqual(['sent while it reloaded']);
      await second.close(); // browsers keep six connections per host: give its two streams back

      // Drop the ticks stream, let ticks be published meanwhile, reconnect: they are replayed.
      await page.waitForFunction(() => (window as unknown as { demo: Demo }).demo.ticks.received.length >= 2);
      await page.click('#drop');
      const publishedAtDrop = app.hub.stats().published;
      await until(
        () => app.hub.stats().published >= publishedAtDrop + 4,
        'four ticks published while dropped',
      );
      const beforeReconnect = (await demoOf(page)).ticks.received;
      await page.click('#drop'); // now "Reconnect", with ?lastEventId=
      await page.waitForSelector('#resume-summary[data-state="resumed"]');
      const ticks = (await demoOf(page)).ticks;
      expect(ticks.received.slice(0, beforeReconnect.length)).toEqual(beforeReconnect);
      expect(ticks.received).toEqual(
        Array.from({ length: ticks.received.length }, (_, i) => ticks.received[0]! + i),
      ); // in order, no gap, no duplicate
      expect(ticks).toMatchObject({ gaps: 0, duplicates: 0, resets: [] });
      expect(ticks.missed.length).toBeGreaterThanOrEqual(3);
      expect(ticks.missed[0]).toBe(beforeReconnect[beforeReconnect.length - 1]! + 1);
      expect(await page.textContent('#resume-summary')).toMatch(/^Resumed: the \d+ ticks published/);
      expect(app.hub.stats().replayed).toBeGreaterThanOrEqual(3);

      // An id the hub cannot resume from: a visible reset.
      await page.click('#forget');
      await page.waitForSelector('#ticks-reset:visible');
      expect(await page.textContent('#ticks-reset')).toContain('reset: unknown-epoch');
      expect((await demoOf(page)).ticks.resets).toEqual(['unknown-epoch']);

      // A large file: the download is the whole file.
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      const saved = await download.path();
      expect(await download.failure()).toBeNull();
      expect(download.suggestedFilename()).toBe(`demo-${DOWNLOAD_BYTES}.txt`);
      expect(fs.statSync(saved).size).toBe(DOWNLOAD_BYTES);

      // Chunked progress to 100 %.
      await page.click('#progress-start');
      await page.waitForFunction(
        () =>
          (document.getElementById('progress') as HTMLProgressElement).value === 100 &&
          document.getElementById('progress-label')?.textContent === '100 % — done',
      );

      // NDJSON rows, rendered as they arrive (several reads, not one).
      await page.click('#rows-start');
      await page.waitForFunction(
        () => document.getElementById('rows-label')?.textContent === '12 rows — done',
      );
      expect(await page.$$eval('#rows tr', (trs) => trs.length)).toBe(12);
      expect((await demoOf(page)).rows.reads).toBeGreaterThan(1);

      // Leaving the slow feed releases its producer, by the counter of the process that served it.
      await page.click('#disconnect-run');
      await page.waitForSelector('#disconnect-result[data-state]');
      expect(await page.getAttribute('#disconnect-result', 'data-state')).toBe('released');
      const table = await page.$$eval('#disconnect-table tr', (trs) =>
        trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent)),
      );
      expect(table).toEqual([
        ['while reading', String(process.pid), '1'],
        ['after leaving', String(process.pid), '0'],
      ]);
      expect(app.stats().liveProducers).toBe(0);

      // Metrics from diagnostics_channel, as Prometheus reads them.
      await page.click('#metrics-refresh');
      await page.waitForFunction(() =>
        document.getElementById('metrics')?.textContent?.includes('express_streaming_hub_resets_total'),
      );
      const metrics = (await page.textContent('#metrics')) ?? '';
      expect(metric(metrics, 'express_streaming_hub_published_total{topic="chat"}')).toBe(3);
      expect(metric(metrics, 'express_streaming_hub_published_total{topic="ticks"}')).toBeGreaterThan(4);
      expect(metric(metrics, 'express_streaming_hub_resets_total{reason="unknown-epoch"}')).toBe(1);
      expect(metric(metrics, 'express_streaming_sse_closed_total{reason="client"}')).toBeGreaterThanOrEqual(
        3,
      );
      expect(metric(metrics, 'express_streaming_sse_open_streams')).toBe(app.sse.size);

      // The footer's plain bodies show in the browser, as text, instead of downloading.
      const plain = await context.newPage();
      for (const [link, text] of [
        ['/range?limit=5', /^1\n2\n3\n4\n5\n?$/],
        ['/clock', /^(\d{4}-\d\d-\d\dT[\d:.]+Z\n?){5}$/],
        ['/tokens', /^Streaming one token at a time\.\n?$/],
      ] as const) {
        expect(await page.$(`footer a[href="${link}"]`)).not.toBeNull();
        await plain.goto(`${url}${link}`); // a download would make this throw
        expect(await plain.textContent('body')).toMatch(text);
      }
      await plain.close();
      expect(failures).toEqual([]);

      const screenshot = path.join(os.tmpdir(), `express-streaming-example-${Date.now()}.png`);
      await page.screenshot({ path: screenshot, fullPage: true });
      process.stdout.write(`\nexample app screenshot: ${screenshot}\n`);
    } finally {
      await instance.close();
    }
  }, 30_000);
});

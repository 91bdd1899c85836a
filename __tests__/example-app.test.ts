import type http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import request from 'supertest';
import { createApp } from '../example-app/app';
import { findChromium, requireComponent } from './helpers/components';
import { closeAll, listen } from './helpers/servers';

const EXAMPLE = path.join(__dirname, '..', 'example-app');
const chromiumPath = findChromium();
const browser = requireComponent('chromium', chromiumPath !== undefined, 'REQUIRE_BROWSER');

afterEach(closeAll);

async function startExample() {
  const app = createApp({ dir: EXAMPLE, counterIntervalMs: 20 });
  return listen((await import('node:http')).createServer(app as unknown as http.RequestListener));
}

describe('the example app', () => {
  it('serves each README route', async () => {
    const app = await startExample();
    expect((await request(app.url).get('/range?limit=3')).body.toString()).toBe('1\n2\n3\n');
    const rows = await request(app.url).get('/rows').buffer(true);
    expect(rows.headers['content-type']).toBe('application/x-ndjson');
    expect(
      rows.text
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).id),
    ).toEqual([1, 2, 3, 4, 5]);
    const csv = await request(app.url).get('/report.csv');
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(csv.text.startsWith('id,name\n')).toBe(true);
    expect((await request(app.url).get('/tokens')).text).toBe('Streaming one token at a time.\n');
  });
});

browser.describe(`the counter page in headless Chromium${browser.label}`, () => {
  it('shows the ten counter events as they arrive', async () => {
    const app = await startExample();
    const instance = await chromium.launch({
      executablePath: chromiumPath,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
      ],
    });
    try {
      const page = await instance.newPage();
      await page.goto(`${app.url}/`);
      await page.waitForFunction(() => document.getElementById('status')?.textContent === 'done', undefined, {
        timeout: 10_000,
      });
      const items = await page.$$eval('#events li', (nodes) => nodes.map((n) => n.textContent));
      expect(items).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    } finally {
      await instance.close();
    }
  }, 30_000);
});

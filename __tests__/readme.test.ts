import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import request from 'supertest';
import ts from 'typescript';
import { createHub } from '../lib';
import { launchChromium } from './helpers/browser';
import { findChromium, requireComponent } from './helpers/components';
import { parseEvents } from './helpers/hub-server';
import { linkDependencies, linkPackage, removeScratch, scratchDir } from './helpers/package';
import { type Printed, spawnNode } from './helpers/processes';
import { importsOf, type ReadmeBlock, RUNNABLE_LANGS, readmeBlocks } from './helpers/readme';
import { REDIS_URL, redisAnswers, uniquePrefix } from './helpers/redis';
import { closeAll, express4Framework, httpGet, listen, rawRequest } from './helpers/servers';
import { RawSseClient } from './helpers/sse-client';
import { until } from './helpers/wait';

/**
 * Every code block of README.md a reader would paste runs as written, against a real server, on
 * Express 4 and 5 (the convention of info strings is in helpers/readme.ts and in the README's
 * Development section). Each named block has a check here of what its prose promises.
 */
const blocks = readmeBlocks();
const named = new Map(blocks.filter((b) => b.role === 'run' || b.role === 'in-app').map((b) => [b.name!, b]));
const pages = blocks.filter((b) => b.role === 'page');
const browser = requireComponent('chromium', findChromium() !== undefined, 'REQUIRE_BROWSER');
const redis = requireComponent(`Redis at ${REDIS_URL}`, redisAnswers(), 'REQUIRE_REDIS');
const PRELOAD = path.join(__dirname, 'fixtures', 'readme', 'listen-anywhere.cjs');
const CLIENT_FILE = createRequire(path.join(__dirname, '..', 'package.json')).resolve(
  'express-streaming/client',
);

/**
 * The model API the relay recipe streams from (`UPSTREAM_URL`, handed to every program): two tokens as
 * SSE, then `[DONE]`, as model APIs send them.
 */
let upstream: http.Server | undefined;
beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.end('data: {"token":"Hello"}\n\ndata: {"token":" world"}\n\ndata: [DONE]\n\n');
  });
  const { port } = await listen(upstream);
  process.env.UPSTREAM_URL = `http://127.0.0.1:${port}/v1/complete`;
});

/** What the file examples serve: the data of the app the blocks are part of. */
const DATA = {
  'report.csv': 'id,name\n1,Ada\n',
  'users.json': JSON.stringify([{ name: 'Ada' }, { name: 'Grace' }]),
};

interface Program {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly printed: Printed;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
  readonly alive: boolean;
}

const programs = new Set<Program>();
afterAll(async () => {
  for (const program of programs) program.kill('SIGKILL');
  await Promise.all([...programs].map((p) => p.exited));
  for (const program of programs) removeScratch(program.dir);
  await closeAll();
});

/** The block's source as a file of its own program (an `in-app` block appended to the first example). */
function programOf(block: ReadmeBlock): { file: string; source: string; code: string } {
  const code =
    block.role === 'in-app' ? `${named.get('quickstart')!.code}\n\n${block.code}\n` : `${block.code}\n`;
  if (block.lang === 'mjs') return { file: 'main.mjs', source: code, code };
  if (block.lang === 'js') return { file: 'main.cjs', source: code, code };
  const compiled = ts.transpileModule(code, {
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
    },
  });
  return { file: 'main.cjs', source: compiled.outputText, code };
}

/** Whether a block is an Express app (run on Express 4 and 5) rather than one of a framework of its own. */
const usesExpress = (block: ReadmeBlock) =>
  block.role === 'in-app' || /^import (?!type )[^;]*from 'express'|require\('express'\)/m.test(block.code);

/**
 * Runs the program of a block in its own directory and process, as a user's app: `express` is the
 * given major, `express-streaming` the built package by its name.
 */
async function start(block: ReadmeBlock, express: 'express' | 'express4'): Promise<Program> {
  const dir = scratchDir(`readme-${block.name}`);
  const { file, source, code } = programOf(block);
  // what a user's install would hold: the package, and each package the program imports
  linkPackage(dir);
  const imports = importsOf(code).filter((name) => name !== 'express-streaming');
  linkDependencies(
    dir,
    Object.fromEntries(imports.map((name) => [name, name === 'express' ? express : name])),
  );
  fs.mkdirSync(path.join(dir, 'data'));
  for (const [name, text] of Object.entries(DATA)) fs.writeFileSync(path.join(dir, 'data', name), text);
  fs.writeFileSync(path.join(dir, file), source);
  const { child, printed, exited } = spawnNode(['--require', PRELOAD, path.join(dir, file)], {
    ...process.env,
    NODE_OPTIONS: '',
    REDIS_URL,
  });
  const program: Program = {
    url: '',
    port: 0,
    dir,
    printed,
    exited,
    kill: (signal = 'SIGKILL') => void child.kill(signal),
    get alive() {
      return child.exitCode === null && child.signalCode === null;
    },
  };
  programs.add(program);
  await until(
    () => /\{"listening":\d+\}/.test(printed.stdout) || !program.alive,
    () => `README.md:${block.line} (${block.name}) to listen; it printed ${JSON.stringify(printed.all)}`,
    15_000,
  );
  if (!program.alive) throw new Error(`README.md:${block.line} (${block.name}) exited:\n${printed.all}`);
  const port = Number(/\{"listening":(\d+)\}/.exec(printed.stdout)![1]);
  return Object.assign(program, { port, url: `http://127.0.0.1:${port}` });
}

/** Publishes through a program's POST route; resolves with the id it answered. */
async function post(program: Program, route: string, body: object, status = 200): Promise<string> {
  const res = await request(program.url).post(route).send(body);
  expect(res.status).toBe(status);
  return res.body.id as string;
}

const sseClient = (program: Program, route: string, headers: Record<string, string> = {}) =>
  new RawSseClient(program.port, route, headers);

/** What each named block's prose promises, asked of its running program. */
const CHECKS: Record<string, (program: Program) => Promise<void>> = {
  async quickstart(program) {
    const rows = await httpGet(`${program.url}/rows`);
    expect([rows.status, rows.complete, rows.body.toString()]).toEqual([
      200,
      true,
      '{"id":1}\n{"id":2}\n{"id":3}\n',
    ]);
    const feed = sseClient(program, '/feed');
    await feed.waitFor((body) => body.includes('id: '), 'the id of the head');
    const id = await post(program, '/news', { text: 'hi' });
    await feed.waitFor((body) => body.includes('data: {"text":"hi"}'), 'the news');
    expect(parseEvents(feed.body).events.at(-1)).toEqual({ event: 'message', id, data: '{"text":"hi"}' });
    // a body express.json() cannot read goes to the error handling: a 400, and the app lives on
    expect((await request(program.url).post('/news').type('json').send('{')).status).toBe(400);
  },

  async 'bounded-topics'(program) {
    const unknown = await httpGet(`${program.url}/rooms/nowhere`);
    expect([unknown.status, unknown.body.toString()]).toEqual([404, '{"error":"no such room"}']);
    const other = await request(program.url).get('/users/7/feed').set('x-user-id', '8');
    expect(other.status).toBe(403);
    const own = sseClient(program, '/users/7/feed', { 'x-user-id': '7' });
    await own.waitFor((body) => body.includes('event: hub:position'), 'the head of the own feed');
    const lobby = sseClient(program, '/rooms/lobby');
    await lobby.waitFor((body) => body.includes('event: hub:position'), 'the head of a room');
  },

  async clock(program) {
    const clock = await httpGet(`${program.url}/clock`);
    expect(clock.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(clock.complete).toBe(true);
    const lines = clock.body.toString().trim().split('\n');
    expect(lines).toHaveLength(5);
    for (const line of lines) expect(new Date(line).toISOString()).toBe(line);
  },

  async file(program) {
    const csv = await httpGet(`${program.url}/files/report.csv`);
    expect([csv.status, csv.headers['content-type'], csv.body.toString()]).toEqual([
      200,
      'text/csv; charset=utf-8',
      DATA['report.csv'],
    ]);
    expect((await httpGet(`${program.url}/files/missing.csv`)).status).toBe(404);
    expect((await httpGet(`${program.url}/files/..%2Fmain.cjs`)).status).toBe(403);
  },

  async streamable(program) {
    const csv = await httpGet(`${program.url}/report.csv`);
    expect([csv.status, csv.headers['content-type'], csv.body.toString()]).toEqual([
      200,
      'text/csv; charset=utf-8',
      'id,name\n1,Ada\n',
    ]);
  },

  async chunked(program) {
    const exported = await rawRequest(program.port, '/export');
    expect(exported.headers.trailer).toBe('x-checksum');
    expect(exported.terminated).toBe(true);
    expect(exported.body.toString()).toBe('row 1\nrow 2\nrow 3\n');
    expect(exported.trailers['x-checksum']).toBe(createHash('sha256').update(exported.body).digest('hex'));
  },

  async counter(program) {
    const counter = sseClient(program, '/counter');
    await counter.waitFor((body) => body.includes('data: 1\n\n'), 'two counts', 5000);
    expect(parseEvents(counter.body).events.slice(0, 2)).toEqual([
      { event: 'counter', id: undefined, data: '0' },
      { event: 'counter', id: undefined, data: '1' },
    ]);
  },

  async shutdown(program) {
    const feed = sseClient(program, '/feed');
    await feed.waitFor((body) => body.includes('id: '), 'the id of the head');
    program.kill('SIGTERM');
    await feed.waitEnded(5000);
    // the connect's retry:, then the shutdown's, and a clean end
    expect(feed.body.match(/^retry: \d+$/gm)).toHaveLength(2);
    expect(feed.terminated).toBe(true);
    expect(await program.exited).toEqual({ code: 0, signal: null });
  },

  async rooms(program) {
    const room = sseClient(program, '/rooms/42');
    await room.waitFor((body) => body.includes('id: '), 'the id of the head');
    const id = await post(program, '/rooms/42', { text: 'hi' }, 201);
    await room.waitFor((body) => body.includes('data: {"text":"hi"}'), 'the message');
    expect(parseEvents(room.body).events.at(-1)).toEqual({ event: 'msg', id, data: '{"text":"hi"}' });
  },

  async handle(program) {
    const users = await httpGet(`${program.url}/users`);
    expect([users.status, users.headers['content-type'], users.body.toString()]).toEqual([
      200,
      'application/x-ndjson',
      '{"name":"Ada"}\n{"name":"Grace"}\n',
    ]);
    // the await before the stream fails: next(err), a 500 — not an unhandled rejection
    fs.rmSync(path.join(program.dir, 'data', 'users.json'));
    expect((await httpGet(`${program.url}/users`)).status).toBe(500);
  },

  'redis-ioredis': (program) => resumes(program, '/feed'),
  'redis-node-redis': (program) => resumes(program, '/feed'),
  // Nest answers a POST with 201
  nest: (program) => resumes(program, '/news', 201),

  async topics(program) {
    const feed = sseClient(program, '/rooms/42/feed', { 'X-User-Id': '7' });
    await feed.waitFor((body) => body.includes('event: hub:position'), 'the position in every topic');
    // one id for the three topics: a cursor, each topic's place in it
    expect(parseEvents(feed.body).lastId).toMatch(/^~1/);
    expect(parseEvents(feed.body).lastId!.split('.')).toHaveLength(3);
  },

  async client(program) {
    const feed = sseClient(program, '/feed/42');
    await feed.waitFor((body) => body.includes('id: '), 'the id of the head');
    const id = await post(program, '/feed/42', { text: 'hi' }, 201);
    await feed.waitFor((body) => body.includes('data: {"text":"hi"}'), 'the message');
    expect(parseEvents(feed.body).events.at(-1)).toEqual({ event: 'msg', id, data: '{"text":"hi"}' });
    const served = await httpGet(`${program.url}/express-streaming/client.js`);
    expect([served.status, served.body.toString()]).toEqual([200, fs.readFileSync(CLIENT_FILE, 'utf8')]);
  },

  async relay(program) {
    const completion = sseClient(program, '/complete?prompt=hi');
    await completion.waitFor((body) => body.includes('event: done'), 'the tokens and the end');
    expect(parseEvents(completion.body).events.map((e) => [e.event, e.data])).toEqual([
      ['token', '{"text":"Hello"}'],
      ['token', '{"text":" world"}'],
      ['done', '{"tokens":2}'],
    ]);
  },

  async fastify(program) {
    const rows = await httpGet(`${program.url}/rows`);
    expect([rows.status, rows.headers['content-type'], rows.complete, rows.body.toString()]).toEqual([
      200,
      'application/x-ndjson',
      true,
      '{"id":1}\n{"id":2}\n{"id":3}\n',
    ]);
    await resumes(program, '/feed');
  },
};

/**
 * A block whose `<route>/:topic` subscribes (GET) and publishes (POST): a subscriber gets what is
 * published, and one resuming from its id gets exactly what it missed. The topic is the test's own (a
 * Redis block shares its Redis with other runs).
 */
async function resumes(program: Program, route: string, status = 200): Promise<void> {
  const topic = `${route}/${uniquePrefix()}`;
  const first = sseClient(program, topic);
  await first.waitFor((body) => body.includes('id: '), 'the id of the head');
  const id = await post(program, topic, { n: 1 }, status);
  await first.waitFor((body) => body.includes('data: {"n":1}'), 'the first event');
  first.close();
  await post(program, topic, { n: 2 }, status);
  await post(program, topic, { n: 3 }, status);
  const again = sseClient(program, topic, { 'Last-Event-ID': id });
  await again.waitFor((body) => body.includes('data: {"n":3}'), 'what it missed');
  expect(parseEvents(again.body).events.map((e) => e.data)).toEqual(['{"n":2}', '{"n":3}']);
}

const NEEDS_REDIS = new Set(['redis-ioredis', 'redis-node-redis']);
const EXPRESS = [
  ['Express 4', 'express4'],
  ['Express 5', 'express'],
] as const;

describe('README.md code blocks', () => {
  it('give every block a reader would paste a role, and every named block a check here', () => {
    const unmarked = blocks.filter((b) => RUNNABLE_LANGS.includes(b.lang) && b.role === undefined);
    expect(unmarked.map((b) => `README.md:${b.line}`)).toEqual([]);
    expect([...named.keys()].sort()).toEqual(Object.keys(CHECKS).sort());
    for (const page of pages) expect(named.has(page.name!)).toBe(true);
  });

  interface Run {
    block: ReadmeBlock;
    name: string;
    line: number;
    label: string;
    express: 'express' | 'express4';
  }
  const runs = [...named.values()].flatMap((block): Run[] => {
    const run = { block, name: block.name!, line: block.line };
    return usesExpress(block)
      ? EXPRESS.map(([label, express]) => ({ ...run, label, express }))
      : [{ ...run, label: 'its own framework', express: 'express' }];
  });

  async function runAsWritten({ block, express }: Run): Promise<void> {
    const program = await start(block, express);
    await CHECKS[block.name!]!(program);
    if (block.name !== 'shutdown') expect(program.alive).toBe(true);
    program.kill();
  }

  describe('run as written', () => {
    it.concurrent.each(runs.filter((r) => !NEEDS_REDIS.has(r.name)))(
      '$name (README.md:$line) on $label',
      runAsWritten,
      30_000,
    );
  });

  redis.describe(`run as written, on Redis${redis.label}`, () => {
    it.concurrent.each(runs.filter((r) => NEEDS_REDIS.has(r.name)))(
      '$name (README.md:$line) on $label',
      runAsWritten,
      30_000,
    );
  });

  browser.describe(`pages, in headless Chromium${browser.label}`, () => {
    let instance: Browser;
    beforeAll(async () => {
      instance = await launchChromium();
    });
    afterAll(() => instance?.close());

    /**
     * Opens a page block from the origin of its program; `logged` is what the page logs, as it logs it,
     * and `subscribed` resolves once its first event stream's head arrived (it is positioned, so what
     * is published from then on reaches it).
     */
    async function open(block: ReadmeBlock, program: Program) {
      const page = await instance.newPage();
      const logged: string[] = [];
      page.on('console', (message) => logged.push(message.text()));
      const subscribed = page.waitForResponse((r) =>
        (r.headers()['content-type'] ?? '').startsWith('text/event-stream'),
      );
      const url = `${program.url}/readme-page.html`;
      await page.route(url, (route) => route.fulfill({ contentType: 'text/html', body: block.code }));
      await page.goto(url);
      return { page, logged, subscribed };
    }

    /** What each page shows of its program's events. */
    const PAGE_CHECKS: Record<
      string,
      (program: Program, opened: Awaited<ReturnType<typeof open>>) => Promise<void>
    > = {
      async rooms(program, { logged, subscribed }) {
        await subscribed;
        await post(program, '/rooms/42', { text: 'hello' }, 201);
        await until(
          () => logged.includes('hello'),
          () => `the message in the page: ${logged}`,
          5000,
        );
      },
      async counter(_program, { logged }) {
        await until(
          () => logged.includes('1'),
          () => `two counts in the page: ${logged}`,
          5000,
        );
        expect(logged.slice(0, 2)).toEqual(['0', '1']);
      },
      async client(program, { page, subscribed }) {
        await subscribed;
        await post(program, '/feed/42', { text: 'hello' }, 201);
        await page.waitForFunction(() => document.getElementById('messages')?.textContent === 'hello');
      },
      async relay(_program, { page }) {
        await page.waitForFunction(() => document.getElementById('answer')?.textContent === 'Hello world');
      },
    };

    it('has a check for every page', () => {
      expect(pages.map((b) => b.name).sort()).toEqual(Object.keys(PAGE_CHECKS).sort());
    });

    it.each(pages.map((block) => ({ block, name: block.name, line: block.line })))(
      'page=$name (README.md:$line) shows the events of its program',
      async ({ block }) => {
        const program = await start(named.get(block.name!)!, 'express4');
        await PAGE_CHECKS[block.name!]!(program, await open(block, program));
        program.kill();
      },
      30_000,
    );
  });
});

describe('what the Express 4-safe examples rely on', () => {
  it('hub.publish reports an invalid event as a rejected promise, never a throw: .then(…, next) gets it, a 500', async () => {
    const hub = createHub();
    let thrown: unknown;
    let published: Promise<string> | undefined;
    try {
      published = hub.publish('t', { id: 'x', data: 1 } as never);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeUndefined();
    await expect(published).rejects.toThrow(TypeError);

    const app = await express4Framework.listen({
      routes: {
        '/publish': (req, res, next) => {
          let body = '';
          req.on('data', (d: Buffer) => {
            body += d.toString();
          });
          req.on('end', () => {
            hub.publish('t', JSON.parse(body)).then((id) => res.end(id), next);
          });
        },
      },
      // four parameters: an Express error handler
      onError: (err, _req, res, _next) => {
        res.statusCode = 500;
        res.end(String(err));
      },
    });
    const res = await request(app.url).post('/publish').send({ id: 'x', data: 1 });
    expect(res.status).toBe(500);
    expect(res.text).toMatch(/^TypeError: /);
    await hub.close();
  });
});

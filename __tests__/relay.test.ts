import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import compression from 'compression';
import express from 'express';
import { type SseEventInput, sseChannel, streamBody } from '../lib';
import { parseEvents } from './helpers/hub-server';
import { spawnNode } from './helpers/processes';
import { abortAfter, closeAll, listen, type Running } from './helpers/servers';
import { until, untilStable } from './helpers/wait';

/**
 * Relays stop the upstream when the reader leaves: the upstream sees its request aborted within
 * 100 ms of the server seeing the client leave. The upstream sends one token and then nothing, so only
 * an abort ends its request: a relay that does not let go fails on the missing close, not on a timing.
 * On a loaded machine one leave can wait for a CPU: a relay leaves up to three times, every leave must
 * abort the upstream, and the fastest must be within the limit — a release that is late every time fails.
 */
const ABORT_WITHIN_MS = 100;
const ATTEMPTS = 3;

/** One request the upstream served: when it closed, and whether it ended unfinished (aborted). */
interface UpstreamRequest {
  closedAt: number | undefined;
  aborted: boolean;
  /** Sends one more token, as a model does when it has thought of it. */
  send(token: string): void;
}

/**
 * A model-like upstream: a POST (or GET) answered with SSE, `data: {"token": …}` per token. The prompt
 * `stall` gets one token and then nothing; any other prompt gets its words as tokens, then `[DONE]`.
 */
async function serveUpstream(): Promise<Running & { requests: UpstreamRequest[] }> {
  const requests: UpstreamRequest[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => {
      const prompt: string = body === '' ? 'stall' : JSON.parse(body).prompt;
      const request: UpstreamRequest = {
        closedAt: undefined,
        aborted: false,
        send: (token) => res.write(`data: ${JSON.stringify({ token })}\n\n`),
      };
      requests.push(request);
      res.on('close', () => {
        request.closedAt = performance.now();
        request.aborted = !res.writableFinished;
      });
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      if (prompt === 'stall') {
        request.send('Once');
        return;
      }
      for (const word of prompt.split(' ')) request.send(`${word} `);
      res.end('data: [DONE]\n\n');
    });
  });
  return Object.assign(await listen(server), { requests });
}

/** A fetched body's text as it comes (Node's web streams are async iterable; the DOM typings say not). */
const textOf = (upstream: Response) =>
  upstream.body!.pipeThrough(new TextDecoderStream()) as unknown as AsyncIterable<string>;

/** The upstream's tokens as SSE events, read with no signal at all: only `return()` can stop it. */
async function* unsignalled(url: string): AsyncGenerator<SseEventInput> {
  for await (const text of textOf(await fetch(url))) yield { event: 'token', data: text };
}

/** The same, with the fetch aborted through `signal`. */
async function* relayed(url: string, signal: AbortSignal): AsyncGenerator<SseEventInput> {
  for await (const text of textOf(await fetch(url, { signal }))) yield { event: 'token', data: text };
}

type Variant = 'fetch Response' | 'async generator with a signal' | 'ready function with ctx.signal';
const VARIANTS: Variant[] = [
  'fetch Response',
  'async generator with a signal',
  'ready function with ctx.signal',
];
const PATHS: Record<Variant | 'async generator, no signal', string> = {
  'fetch Response': '/response',
  'async generator with a signal': '/generator',
  'ready function with ctx.signal': '/ready',
  'async generator, no signal': '/unsignalled',
};

/**
 * The relaying app, with `compression()` in front or not. Each route notes when the server sees its
 * client leave (the response's 'close', listened to before the library's own listener). Under
 * compression the SSE routes set their own Cache-Control, so the events really go through gzip.
 */
async function serveRelay(upstreamUrl: string, compressed: boolean) {
  const left: number[] = [];
  const app = express();
  if (compressed) app.use(compression());
  app.use(streamBody());
  app.use(sseChannel());
  const noteLeave = (res: http.ServerResponse) => {
    res.once('close', () => left.push(performance.now()));
    if (compressed) res.setHeader('Cache-Control', 'no-cache');
  };
  app.get(PATHS['fetch Response'], async (_req, res, next) => {
    noteLeave(res);
    try {
      await res.stream(await fetch(upstreamUrl));
    } catch (error) {
      next(error);
    }
  });
  app.get(PATHS['async generator with a signal'], (_req, res) => {
    noteLeave(res);
    const upstream = new AbortController();
    res.on('close', () => upstream.abort());
    res.sse(relayed(upstreamUrl, upstream.signal));
  });
  app.get(PATHS['ready function with ctx.signal'], (_req, res) => {
    noteLeave(res);
    res.sse(async (events, ctx) => {
      for await (const text of textOf(await fetch(upstreamUrl, { signal: ctx.signal }))) {
        if (!(await events.put({ event: 'token', data: text }))) return;
      }
      events.close();
    });
  });
  app.get(PATHS['async generator, no signal'], (_req, res) => {
    noteLeave(res);
    res.sse(unsignalled(upstreamUrl));
  });
  return Object.assign(await listen(http.createServer(app)), { left });
}

/** Reads until the first token arrives (through gzip when compressed), then leaves. */
async function leaveAfterFirstToken(port: number, path: string, compressed: boolean): Promise<string> {
  const head = (soFar: Buffer) => soFar.subarray(0, soFar.indexOf('\r\n\r\n')).toString('latin1');
  const received = await abortAfter(
    port,
    path,
    (soFar) => {
      const end = soFar.indexOf('\r\n\r\n');
      if (end === -1) return false;
      const body = soFar.subarray(end + 4);
      return (compressed ? gunzipChunkedSoFar(body) : body.toString()).includes('Once');
    },
    compressed ? { 'Accept-Encoding': 'gzip' } : {},
  );
  return head(received);
}

/** What a gzip stream sent so far says (it is flushed per write, so every complete block decodes). */
function gunzipChunkedSoFar(chunked: Buffer): string {
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = chunked.indexOf('\r\n', offset);
    if (lineEnd === -1) break;
    const size = Number.parseInt(chunked.subarray(offset, lineEnd).toString('latin1'), 16);
    if (!(size > 0) || chunked.length < lineEnd + 2 + size) break;
    parts.push(chunked.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
  try {
    return zlib.gunzipSync(Buffer.concat(parts), { finishFlush: zlib.constants.Z_SYNC_FLUSH }).toString();
  } catch {
    return '';
  }
}

const measured: string[] = [];

afterEach(closeAll);
afterAll(() => {
  if (measured.length > 0)
    process.stdout.write(`\nupstream aborted after the client left:\n${measured.join('\n')}\n`);
});

/**
 * Has `leave()` make a client leave (resolving with when the leave was seen) until the upstream request
 * it made (`requestOf(attempt)`) closed within the limit, at most {@link ATTEMPTS} times; each must
 * have been aborted.
 */
async function abortLatencies(
  requestOf: (attempt: number) => UpstreamRequest | undefined,
  leave: (attempt: number) => Promise<() => number | undefined>,
): Promise<number[]> {
  const latencies: number[] = [];
  for (let attempt = 0; attempt < ATTEMPTS && !(Math.min(...latencies) < ABORT_WITHIN_MS); attempt++) {
    const leftAt = await leave(attempt);
    await until(
      () => requestOf(attempt)?.closedAt !== undefined && leftAt() !== undefined,
      () =>
        `the upstream request to close (${leftAt() === undefined ? 'the client is still there' : 'the client left'})`,
    );
    const request = requestOf(attempt)!;
    expect(request.aborted).toBe(true);
    latencies.push(request.closedAt! - leftAt()!);
  }
  return latencies;
}

const shown = (latencies: number[]) => latencies.map((ms) => `${ms.toFixed(1)} ms`).join(', ');

describe.each([
  ['without compression', false],
  ['behind compression()', true],
])('a relay %s stops the upstream when the reader leaves', (label, compressed) => {
  it.each(VARIANTS)('%s: the upstream sees its request aborted within 100 ms', async (variant) => {
    const upstream = await serveUpstream();
    const relay = await serveRelay(upstream.url, compressed);
    const latencies = await abortLatencies(
      (attempt) => upstream.requests[attempt],
      async (attempt) => {
        const head = await leaveAfterFirstToken(relay.port, PATHS[variant], compressed);
        if (compressed) expect(head).toMatch(/\r\ncontent-encoding: gzip\r\n/i);
        return () => relay.left[attempt];
      },
    );
    measured.push(`  ${variant}, ${label}: ${shown(latencies)}`);
    expect(Math.min(...latencies)).toBeLessThan(ABORT_WITHIN_MS);
  });
});

describe('an async generator given no signal', () => {
  it('is let go only at its next yield: the upstream stays open until it sends its next token', async () => {
    const upstream = await serveUpstream();
    const relay = await serveRelay(upstream.url, false);
    await leaveAfterFirstToken(relay.port, PATHS['async generator, no signal'], false);
    await until(() => relay.left.length === 1, 'the server to see the client leave');
    // return() waits behind the generator's pending read of the upstream: nothing closes it
    const closed = await untilStable(() => upstream.requests[0]!.closedAt, 'the upstream request', {
      quietMs: 300,
    });
    expect(closed).toBeUndefined();
    upstream.requests[0]!.send('upon');
    await until(() => upstream.requests[0]!.closedAt !== undefined, 'the upstream request to close');
    expect(upstream.requests[0]!.aborted).toBe(true);
  });
});

/** The README's recipe, exactly as written there (with `compression()`, and with its line removed). */
function readmeRecipe(withCompression: boolean): string {
  const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Relay an upstream stream'));
  const code = /```mjs run=relay\n([\s\S]*?)```/.exec(section)![1]!;
  const line = 'app.use(compression());\n';
  expect(code).toContain(line);
  return withCompression ? code : code.replace(line, '');
}

/** Runs the recipe in its own process (the package resolved as an app resolves it), on a free port. */
async function runRecipe(upstreamUrl: string, withCompression: boolean) {
  const { child, printed } = spawnNode(['--input-type=module', '-e', readmeRecipe(withCompression)], {
    ...process.env,
    NODE_ENV: 'production',
    PORT: '0',
    UPSTREAM_URL: upstreamUrl,
  });
  stopAfterTest.add(() => child.kill());
  const LISTENING = /listening on http:\/\/localhost:(\d+)/;
  await until(
    () => LISTENING.test(printed.all),
    () => `the recipe to listen: ${printed.all}`,
    10_000,
  );
  return { port: Number(LISTENING.exec(printed.all)![1]), printed };
}

const stopAfterTest = new Set<() => void>();
afterEach(() => {
  for (const stop of stopAfterTest) stop();
  stopAfterTest.clear();
});

/** A GET that reads the whole response, decompressing gzip. */
function getAll(url: string, headers: Record<string, string>) {
  return new Promise<{ headers: http.IncomingHttpHeaders; text: string }>((resolve, reject) => {
    http
      .get(url, { headers, agent: false }, (res) => {
        const body = res.headers['content-encoding'] === 'gzip' ? res.pipe(zlib.createGunzip()) : res;
        let text = '';
        body.setEncoding('utf8');
        body.on('data', (chunk: string) => {
          text += chunk;
        });
        body.on('end', () => resolve({ headers: res.headers, text }));
        body.on('error', reject);
      })
      .on('error', reject);
  });
}

describe.each([
  ['behind compression()', true],
  ['without compression', false],
])('the README recipe "Relay an upstream stream", %s', (label, withCompression) => {
  it('sends each token as an event and ends with done; a reader leaving aborts the upstream', async () => {
    const upstream = await serveUpstream();
    const { port, printed } = await runRecipe(`${upstream.url}/v1/complete`, withCompression);

    const answer = await getAll(`http://127.0.0.1:${port}/complete?prompt=${encodeURIComponent('Tell me')}`, {
      'Accept-Encoding': 'gzip',
    });
    expect(answer.headers['content-encoding']).toBe(withCompression ? 'gzip' : undefined);
    expect(parseEvents(answer.text).events).toEqual([
      { event: 'token', id: undefined, data: '{"text":"Tell "}' },
      { event: 'token', id: undefined, data: '{"text":"me "}' },
      { event: 'done', id: undefined, data: '{"tokens":2}' },
    ]);
    expect(upstream.requests[0]).toMatchObject({ aborted: false });

    // The reader leaves while the model thinks: measured from the client's own leaving, in this
    // process — which includes the recipe's process noticing it.
    const latencies = await abortLatencies(
      (attempt) => upstream.requests[attempt + 1],
      async () => {
        await leaveAfterFirstToken(port, '/complete?prompt=stall', withCompression);
        const leftAt = performance.now();
        return () => leftAt;
      },
    );
    measured.push(`  README recipe, ${label}, from the client's leaving: ${shown(latencies)}`);
    expect(Math.min(...latencies)).toBeLessThan(ABORT_WITHIN_MS);
    expect(printed.stderr).toBe('');
  }, 20_000);
});

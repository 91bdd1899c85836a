// SSE server child: `node --expose-gc sse-server.mjs <variant> <mode>` (mode: broadcast | memory).
// It holds the streams its variant opens on GET /sse and, when told by IPC, broadcasts events to them
// and reports its own CPU time (process.cpuUsage) around the broadcast, or its heap after gc().
import http from 'node:http';
import { setImmediate as tick } from 'node:timers/promises';
import {
  cpuProfiler,
  drainOrDeadline,
  fullGc,
  listenForBench,
  makeVariant,
  memoryAfterGc,
  SSE_HEADERS,
} from './common.mjs';

const [variant, mode = 'broadcast'] = process.argv.slice(2);
const keepResponses = mode === 'broadcast';

/** The Node responses underneath every variant's streams (broadcast mode only): for backpressure checks. */
const responses = [];
let opened = 0;
function track(res) {
  opened++;
  if (keepResponses) responses.push(res);
}

/** Each variant: a server, and `send(text, bytes)` that broadcasts one event to every stream. */
const VARIANTS = {
  // (a) the baseline: node:http, one pre-encoded Buffer per event written to every response
  async 'raw-http'() {
    const list = [];
    const server = http.createServer((_req, res) => {
      res.writeHead(200, SSE_HEADERS);
      res.write(':ok\n\n');
      list.push(res);
      track(res);
    });
    return { server, send: (_text, bytes) => writeAll(list, bytes) };
  },

  // (ref) the framed fast path, hand-written: each event framed once as one HTTP/1.1 chunk in a
  // shared Buffer, written straight to every res.socket (Node's res still ends the chunked body).
  async 'framed-socket'() {
    const list = [];
    const server = http.createServer((_req, res) => {
      res.writeHead(200, SSE_HEADERS);
      res.write(':ok\n\n');
      list.push(res);
      track(res);
    });
    const send = (_text, bytes) => {
      const frame = Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, CRLF]);
      for (let i = 0; i < list.length; i++) list[i].socket.write(frame);
    };
    return { server, send };
  },

  // (b) the same loop inside Express 5 (also "Express alone" in the memory benchmark)
  async 'raw-express'() {
    const { default: express } = await import('express');
    const list = [];
    const app = express();
    app.get('/sse', (_req, res) => {
      res.writeHead(200, SSE_HEADERS);
      res.write(':ok\n\n');
      list.push(res);
      track(res);
    });
    return { server: http.createServer(app), send: (_text, bytes) => writeAll(list, bytes) };
  },

  // (c) express-streaming under Express 5: sseChannel() + res.sse(), stream.send(event) per client
  async 'es-express'() {
    const { default: express } = await import('express');
    const { sseChannel } = await import('../../dist/index.js');
    const streams = [];
    const app = express();
    app.get('/sse', sseChannel(), (_req, res) => {
      streams.push(res.sse());
      track(res);
    });
    return { server: http.createServer(app), send: (text) => sendAll(streams, text) };
  },

  // (d) express-streaming under plain node:http
  async 'es-http'() {
    const { sseChannel } = await import('../../dist/index.js');
    const middleware = sseChannel();
    const streams = [];
    const server = http.createServer((req, res) => {
      middleware(req, res, () => {
        streams.push(res.sse());
        track(res);
      });
    });
    return { server, send: (text) => sendAll(streams, text) };
  },

  // (e) better-sse under Express 5: createSession + createChannel, channel.broadcast
  async 'better-sse'() {
    const { default: express } = await import('express');
    const { createChannel, createSession } = await import('better-sse');
    const channel = createChannel();
    const app = express();
    app.get('/sse', async (req, res) => {
      const session = await createSession(req, res);
      channel.register(session);
      track(res);
    });
    return { server: http.createServer(app), send: (text) => channel.broadcast(text) };
  },

  // (f) sse-channel under Express 5: addClient, channel.send
  async 'sse-channel'() {
    const { default: express } = await import('express');
    const { default: SseChannel } = await import('sse-channel');
    const channel = new SseChannel();
    const app = express();
    app.get('/sse', (req, res) => {
      channel.addClient(req, res);
      track(res);
    });
    return { server: http.createServer(app), send: (text) => channel.send({ data: text }) };
  },

  // (g) hono's streamSSE on @hono/node-server; writeSSE per client
  async hono() {
    const { Hono } = await import('hono');
    const { streamSSE } = await import('hono/streaming');
    const { createAdaptorServer } = await import('@hono/node-server');
    const streams = [];
    const app = new Hono();
    app.get('/sse', (c) =>
      streamSSE(c, async (stream) => {
        streams.push(stream);
        track(c.env.outgoing);
        await stream.write(':ok\n\n');
        await new Promise((resolve) => stream.onAbort(resolve));
      }),
    );
    const send = (text) => {
      for (let i = 0; i < streams.length; i++) streams[i].writeSSE({ data: text }).catch(ignore);
    };
    return { server: createAdaptorServer({ fetch: app.fetch }), send };
  },
};

const CRLF = Buffer.from('\r\n');

function ignore() {}

function writeAll(list, bytes) {
  for (let i = 0; i < list.length; i++) list[i].write(bytes);
}

function sendAll(streams, text) {
  for (let i = 0; i < streams.length; i++) streams[i].send(text);
}

/** The event text: '#' (counted by the client, once per event) + the index, padded to 100 characters. */
function payload(index) {
  return `#${String(index).padStart(9, '0')}${'x'.repeat(90)}`;
}

/** Waits (bounded) until no response, nor its socket (written directly by the fast path), needs 'drain'. */
async function drained(deadline) {
  for (let i = 0; i < responses.length; i++) {
    const res = responses[i];
    if (res.destroyed) continue;
    const target = res.writableNeedDrain ? res : res.socket?.writableNeedDrain ? res.socket : undefined;
    if (!target) continue;
    if (!(await drainOrDeadline(target, deadline))) return false;
  }
  return true;
}

/** Broadcasts `count` events from `first`, yielding to I/O after each and awaiting drain every 16. */
async function broadcast(first, count, timeLimitMs) {
  const deadline = Date.now() + timeLimitMs;
  for (let i = 0; i < count; i++) {
    const text = payload(first + i);
    const bytes = Buffer.from(`data: ${text}\n\n`);
    send(text, bytes);
    await tick();
    if ((i & 15) === 15 && !(await drained(deadline))) return i + 1;
    if (Date.now() > deadline) return i + 1;
  }
  return count;
}

const { server, send } = await makeVariant(VARIANTS, variant);
listenForBench(server, 2048);

// BENCH_CPU_PROFILE=file: a CPU profile of the measured broadcast phase only (used by bench/profile.ts).
const profiler = await cpuProfiler();

let started;
process.on('message', async (message) => {
  switch (message.type) {
    case 'count':
      process.send({ type: 'count', opened });
      break;
    case 'warm': {
      const sent = await broadcast(0, message.count, message.timeLimitMs);
      process.send({ type: 'warmed', sent });
      break;
    }
    case 'run': {
      fullGc();
      await profiler.start();
      started = { cpu: process.cpuUsage(), wall: process.hrtime.bigint() };
      const sent = await broadcast(message.first, message.count, message.timeLimitMs);
      process.send({ type: 'sent', sent });
      break;
    }
    case 'stop': {
      const cpu = process.cpuUsage(started.cpu);
      const wallMs = Number(process.hrtime.bigint() - started.wall) / 1e6;
      await profiler.stop();
      process.send({ type: 'cpu', userUs: cpu.user, systemUs: cpu.system, wallMs });
      break;
    }
    case 'heap': {
      const memory = await memoryAfterGc();
      process.send({
        type: 'heap',
        heapUsed: memory.heapUsed,
        external: memory.external,
        arrayBuffers: memory.arrayBuffers,
        rss: memory.rss,
      });
      break;
    }
    case 'exit':
      process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));

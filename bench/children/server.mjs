// The server child of every benchmark: `node --expose-gc server.mjs <variant> [flag…]`, driven by IPC.
// Flags: hold (memory and idle runs: keep nothing per stream beyond what the variant keeps; count
// timers and GC), count-writes (count socket writes), heartbeat=<ms>, coalesce=<ms> (the hub's option),
// no-tail (createHub({ tail: null }): every resuming client asks the store).
// The Redis variants read REDIS_URL, BENCH_REDIS_PREFIX and BENCH_TOPIC; BENCH_CPU_PROFILE=<file>
// profiles the measured phases (bench/profile.ts). Every event carries its publish time (µs on
// CLOCK_MONOTONIC, shared by every process of the machine) after a '#', the one '#' of the event, so
// that clients count and time it.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { PerformanceObserver } from 'node:perf_hooks';
import { pipeline as pipeInto, Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { nowUs, STAMP_DIGITS, tell } from './common.mjs';

const [variant, ...flags] = process.argv.slice(2);
const flagValue = (name) => flags.find((f) => f.startsWith(`${name}=`))?.split('=')[1];
const hold = flags.includes('hold');
const heartbeatMs = flagValue('heartbeat') === undefined ? undefined : Number(flagValue('heartbeat'));
const coalesceMs = Number(flagValue('coalesce') ?? '0');
const noTail = flags.includes('no-tail');
const TOPIC = process.env.BENCH_TOPIC ?? 'bench';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const SSE_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  Connection: 'keep-alive',
};

// --- timers and GC (hold mode). The library's timer is unref'd and getActiveResourcesInfo() lists only
// ref'd ones, so every timer made through the global functions is also counted while it lives;
// installed before Express or the library loads. GC time tells a heap reading's collections apart.
const liveTimers = new Set();
let gcUs = 0;
if (hold) {
  for (const [make, clear] of [
    ['setTimeout', 'clearTimeout'],
    ['setInterval', 'clearInterval'],
  ]) {
    const [original, originalClear] = [globalThis[make], globalThis[clear]];
    globalThis[make] = (callback, ...rest) => {
      const timer = original(
        (...args) => {
          if (make === 'setTimeout') liveTimers.delete(timer);
          callback(...args);
        },
        ...rest,
      );
      liveTimers.add(timer);
      return timer;
    };
    globalThis[clear] = (timer) => {
      liveTimers.delete(timer);
      originalClear(timer);
    };
  }
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcUs += entry.duration * 1000;
  }).observe({ entryTypes: ['gc'] });
}
const timerCounts = () => ({
  refTimeouts: process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length,
  liveTimers: liveTimers.size,
});

// --- socket writes (count-writes): `write` is what callers ask for; `_write`/`_writev` is what reaches
// the handle, one write(2)/writev(2) attempt each, after Node's corking has merged chunks.
const writes = { calls: 0, handle: 0 };
if (flags.includes('count-writes')) {
  const proto = net.Socket.prototype;
  for (const [method, counter] of [
    ['write', 'calls'],
    ['_write', 'handle'],
    ['_writev', 'handle'],
  ]) {
    const original = proto[method];
    proto[method] = function counted(...args) {
      writes[counter]++;
      return original.apply(this, args);
    };
  }
}

/**
 * The sockets under every stream (not in hold mode), for the backpressure check: a socket, not its
 * response, so the check costs every variant the same (Express re-prototypes `res`).
 */
const sockets = [];
let opened = 0;
function track(res) {
  opened++;
  if (!hold) sockets.push(res.socket);
}

/** node:http starting every stream by hand (the baselines and Express alone), or an Express app. */
async function handWritten(useExpress) {
  const list = [];
  const handler = (_req, res) => {
    res.writeHead(200, SSE_HEADERS);
    res.write(':ok\n\n');
    list.push(res);
    track(res);
  };
  if (!useExpress) return { server: http.createServer(handler), list };
  const app = (await import('express')).default();
  app.get('/sse', handler);
  return { server: http.createServer(app), list };
}

/** Event `seq` as the hand-written variants encode it: once, for every stream. */
const tickEvent = (seq, data) => Buffer.from(`event: tick\nid: ${seq}\ndata: ${JSON.stringify(data)}\n\n`);
const CRLF = Buffer.from('\r\n');

/** Each variant: a server and `send(seq, data)` that broadcasts event `seq` (streaming ones: `serve`). */
const VARIANTS = {
  // (a) the baseline: node:http, each event encoded once into a Buffer written to every response
  async 'raw-http'() {
    const { server, list } = await handWritten(false);
    return { server, send: (seq, data) => writeAll(list, tickEvent(seq, data)) };
  },
  // (ref) not a library: each event framed once as one HTTP/1.1 chunk, written straight to every socket
  async 'framed-socket'() {
    const { server, list } = await handWritten(false);
    const send = (seq, data) => {
      const bytes = tickEvent(seq, data);
      const frame = Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, CRLF]);
      for (let i = 0; i < list.length; i++) list[i].socket.write(frame);
    };
    return { server, send };
  },
  // (b) the same loop inside Express 5 (also "Express alone", the memory host)
  async 'raw-express'() {
    const { server, list } = await handWritten(true);
    return { server, send: (seq, data) => writeAll(list, tickEvent(seq, data)) };
  },
  // (c) express-streaming on Express 5: sseChannel() + res.sse(), stream.send(event) per client
  async 'es-express'() {
    const { sseChannel } = await import('../../dist/index.js');
    const app = (await import('express')).default();
    const streams = [];
    app.get('/sse', sseChannel(heartbeatOption()), (_req, res) => {
      track(res);
      streams.push(res.sse());
    });
    return { server: http.createServer(app), send: (seq, data) => sendEach(streams, seq, data) };
  },
  // (d) express-streaming on node:http
  async 'es-http'() {
    const middleware = (await import('../../dist/index.js')).sseChannel(heartbeatOption());
    const streams = [];
    const server = http.createServer((req, res) =>
      middleware(req, res, () => {
        track(res);
        streams.push(res.sse());
      }),
    );
    return { server, send: (seq, data) => sendEach(streams, seq, data) };
  },
  // (e) better-sse on Express 5: one Channel; it serializes per session (its design), so it gets the object
  async 'better-sse'() {
    const { createChannel, createSession } = await import('better-sse');
    const channel = createChannel();
    const app = (await import('express')).default();
    app.get('/sse', async (req, res) => {
      channel.register(await createSession(req, res));
      track(res);
    });
    const send = (seq, data) => channel.broadcast(data, 'tick', { eventId: String(seq) });
    return { server: http.createServer(app), send };
  },
  // (f) sse-channel on Express 5: addClient, channel.send({ event, id, data }) with the JSON text
  async 'sse-channel'() {
    const { default: SseChannel } = await import('sse-channel');
    const channel = new SseChannel();
    const app = (await import('express')).default();
    app.get('/sse', (req, res) => {
      channel.addClient(req, res);
      track(res);
    });
    const send = (seq, data) => channel.send({ event: 'tick', id: seq, data: JSON.stringify(data) });
    return { server: http.createServer(app), send };
  },
  // (g) hono's streamSSE on @hono/node-server, writeSSE per client
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
    const send = (seq, data) => {
      const text = JSON.stringify(data);
      for (let i = 0; i < streams.length; i++)
        streams[i].writeSSE({ event: 'tick', id: String(seq), data: text }).catch(report);
    };
    return { server: createAdaptorServer({ fetch: app.fetch }), send };
  },
  // (h) the hub on Express 5: res.sse(hub.subscribe(...)); with coalesce=<ms>, createHub({ coalesceMs })
  async hub() {
    return hubServer(undefined);
  },
  // (r) the hub on the Redis store, on the app's ioredis client …
  async 'redis-ioredis'() {
    const { default: Redis } = await import('ioredis');
    const client = new Redis(REDIS_URL);
    client.on('error', report);
    return hubServer(client);
  },
  // … or on its node-redis client
  async 'redis-node-redis'() {
    const { createClient } = await import('redis');
    const client = createClient({ url: REDIS_URL });
    client.on('error', report);
    await client.connect();
    return hubServer(client);
  },
  // Streaming bodies: every GET /?bytes=N sends N bytes from an async generator of 64 KiB Buffers
  async 'es-stream'() {
    const middleware = (await import('../../dist/index.js')).streamBody();
    return streamServer((req, res, bytes, done) =>
      middleware(req, res, () => res.stream(generate(bytes)).then(done)),
    );
  },
  async pipe() {
    return streamServer((_req, res, bytes, done) => {
      res.on('close', () => done(res.writableFinished ? 'finished' : 'aborted'));
      Readable.from(generate(bytes)).pipe(res);
    });
  },
  async pipeline() {
    return streamServer((_req, res, bytes, done) =>
      pipeInto(Readable.from(generate(bytes)), res, (error) => done(error ? 'errored' : 'finished')),
    );
  },
};

const heartbeatOption = () => (heartbeatMs === undefined ? {} : { heartbeatMs });
const report = (error) => process.stderr.write(`server ${variant}: ${error?.stack ?? error}\n`);

function writeAll(list, bytes) {
  for (let i = 0; i < list.length; i++) list[i].write(bytes);
}

function sendEach(streams, seq, data) {
  const event = { event: 'tick', id: String(seq), data: JSON.stringify(data) };
  for (let i = 0; i < streams.length; i++) streams[i].send(event);
}

/** createHub + sseChannel on Express 5, on the memory store or on a Redis client's store. */
async function hubServer(redisClient) {
  const { createHub, sseChannel } = await import('../../dist/index.js');
  const options = {};
  if (redisClient !== undefined) {
    const prefix = process.env.BENCH_REDIS_PREFIX;
    if (!prefix) throw new Error('BENCH_REDIS_PREFIX is not set: a run must use keys of its own');
    options.store = (await import('../../dist/redis.js')).redisStore(redisClient, { prefix });
  }
  // Passed only when asked for: a build without the option may refuse it.
  if (coalesceMs > 0) options.coalesceMs = coalesceMs;
  if (noTail) options.tail = null;
  const hub = createHub(options);
  const app = (await import('express')).default();
  app.use(sseChannel(heartbeatOption()));
  app.get('/sse', (req, res) => {
    track(res);
    res.sse(hub.subscribe(TOPIC, req));
  });
  const publishOne = (data) => hub.publish(TOPIC, { event: 'tick', data });
  return { server: http.createServer(app), send: (_seq, data) => publishOne(data).catch(report), publishOne };
}

const CHUNK = Buffer.alloc(64 * 1024, 0x61);
async function* generate(bytes) {
  for (let sent = 0; sent < bytes; sent += CHUNK.length) yield CHUNK;
}

/** A server whose every response is one streamed body; reports its CPU per response ('served'). */
function streamServer(handle) {
  let requests = 0;
  const server = http.createServer(async (req, res) => {
    if (requests++ === 1) await profiler.start(); // the first response warms up, unprofiled
    res.setHeader('Content-Type', 'application/octet-stream');
    const bytes = Number(new URL(req.url, 'http://x').searchParams.get('bytes'));
    const cpu = process.cpuUsage();
    let reported = false;
    handle(req, res, bytes, (outcome) => {
      if (reported) return;
      reported = true;
      const used = process.cpuUsage(cpu);
      tell({ type: 'served', outcome, cpuUs: used.user + used.system });
    });
  });
  return { server, send: () => {} };
}

let lastStampUs = 0;
const PADS = Array.from({ length: 100 }, (_, n) => 'x'.repeat(n));

/** Event data of 100 bytes as JSON: a strictly increasing publish stamp after its '#', the seq, padding. */
function eventData(seq) {
  const now = nowUs();
  lastStampUs = now > lastStampUs ? now : lastStampUs + 1;
  const t = `#${String(lastStampUs).padStart(STAMP_DIGITS, '0')}`;
  const bare = `{"t":"${t}","seq":${seq},"pad":""}`.length;
  return { t, seq, pad: PADS[Math.max(0, 100 - bare)] };
}

/** Waits until `target` drains (or closes), 1 s at a time, at most until `deadline`; false once past it. */
async function drainOrDeadline(target, deadline) {
  const left = deadline - Date.now();
  if (left <= 0) return false;
  await new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      target.off('drain', done).off('close', done);
      resolve();
    };
    const timer = setTimeout(done, Math.min(left, 1000));
    target.once('drain', done).once('close', done);
  });
  return true;
}

/** Waits (bounded) until no stream's socket needs 'drain'. */
async function drained(deadline) {
  for (const socket of sockets) {
    if (socket && !socket.destroyed && socket.writableNeedDrain && !(await drainOrDeadline(socket, deadline)))
      return false;
  }
  return true;
}

let seq = 0;

/**
 * Publishes `count` events (at most), `perTurn` in the same tick, then yields: a setImmediate turn, a
 * timer of `intervalMs`, or — with `ratePerSec` — until the next event is due (one per tick while
 * behind), stopping after `durationMs`. Every `drainEvery` events it waits until no socket needs
 * 'drain'. Bounded by `timeLimitMs`.
 */
async function publish({
  count,
  perTurn = 1,
  intervalMs = 0,
  ratePerSec,
  durationMs,
  drainEvery = 16,
  timeLimitMs,
}) {
  const deadline = Date.now() + timeLimitMs;
  const startUs = nowUs();
  let sent = 0;
  while (sent < count) {
    for (let j = 0; j < perTurn && sent < count; j++, sent++) send(++seq, eventData(seq));
    if (ratePerSec) {
      const aheadMs = (startUs + (sent * 1e6) / ratePerSec - nowUs()) / 1000;
      if ((nowUs() - startUs) / 1000 >= durationMs) break;
      if (aheadMs >= 1) await new Promise((resolve) => setTimeout(resolve, aheadMs));
      else await tick();
    } else if (intervalMs > 0) await new Promise((resolve) => setTimeout(resolve, intervalMs));
    else await tick();
    if ((sent % drainEvery === 0 && !(await drained(deadline))) || Date.now() > deadline) break;
  }
  return sent;
}

/**
 * Publishes `count` events keeping `window` unanswered at once (each answer lets the next go), until
 * all are answered or `timeLimitMs` has passed. The ids must come back numbered in publish order.
 */
function pipeline({ count, window, timeLimitMs }) {
  const deadline = Date.now() + timeLimitMs;
  const seqs = new Float64Array(count);
  let issued = 0;
  let answered = 0;
  let failed = 0;
  let firstError;
  return new Promise((resolve) => {
    const startedUs = nowUs();
    const cpu0 = process.cpuUsage();
    const more = () => {
      const open = Date.now() < deadline;
      while (open && issued < count && issued - answered < window) issue(issued++);
      if (answered !== issued || (issued !== count && open)) return;
      const cpu = process.cpuUsage(cpu0);
      let disordered = 0;
      for (let i = 1; i < answered; i++) if (seqs[i] !== seqs[0] + i) disordered++;
      resolve({
        published: answered - failed,
        failed,
        firstError,
        disordered,
        wallUs: nowUs() - startedUs,
        cpu,
      });
    };
    const issue = (i) =>
      publishOne(eventData(++seq)).then(
        (id) => {
          seqs[i] = Number(id.slice(id.lastIndexOf('-') + 1));
          answered++;
          more();
        },
        (error) => {
          failed++;
          firstError ??= String(error?.message ?? error).split('\n')[0];
          answered++;
          more();
        },
      );
    more();
  });
}

/** The CPU profiler (BENCH_CPU_PROFILE=file): started by the first measured phase, written by 'dump'. */
async function cpuProfiler() {
  const file = process.env.BENCH_CPU_PROFILE;
  if (!file) return { start: async () => {}, stop: async () => {} };
  const { Session } = await import('node:inspector');
  const session = new Session();
  session.connect();
  const post = (method, params) =>
    new Promise((resolve, reject) =>
      session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))),
    );
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 200 });
  let started = false;
  return {
    async start() {
      if (!started) await post('Profiler.start');
      started = true;
    },
    async stop() {
      if (started) writeFileSync(file, JSON.stringify((await post('Profiler.stop')).profile));
      started = false;
    },
  };
}

async function memoryAfterGc() {
  const gc = () => {
    for (let i = 0; i < 4; i++) globalThis.gc?.();
  };
  gc();
  await new Promise((resolve) => setTimeout(resolve, 50)); // finalizers and weak callbacks
  gc();
  return process.memoryUsage();
}

const timersAtStart = timerCounts();
let made;
try {
  made = await VARIANTS[variant]();
} catch (error) {
  tell({ type: 'failed', reason: String(error?.message ?? error).split('\n')[0] });
  process.exit(0);
}
const { server, send, publishOne } = made;
const profiler = await cpuProfiler();
server.keepAliveTimeout = 0;
server.headersTimeout = 0;
server.requestTimeout = 0;
server.listen(0, '127.0.0.1', 4096, () => tell({ type: 'listening', port: server.address().port }));

/** Starts the measured CPU count (and the profile) of a phase. */
async function begin() {
  for (let i = 0; i < 4; i++) globalThis.gc?.();
  await profiler.start();
  writes.calls = 0;
  writes.handle = 0;
  return { cpu: process.cpuUsage(), atUs: nowUs() };
}

let started;
process.on('message', async (message) => {
  switch (message.type) {
    case 'count':
      return tell({ type: 'count', opened });
    case 'run': // publishes as told; measured unless it is a warm-up
      if (message.measure) started = await begin();
      return tell({ type: 'sent', sent: await publish(message), startedUs: started?.atUs });
    case 'begin': // a server that fans out what another process publishes: its CPU from now until 'stop'
      started = await begin();
      return tell({ type: 'begun' });
    case 'stop': {
      const cpu = process.cpuUsage(started.cpu);
      return tell({
        type: 'cpu',
        userUs: cpu.user,
        systemUs: cpu.system,
        writeCalls: writes.calls,
        handleWrites: writes.handle,
      });
    }
    case 'pipeline': {
      await begin();
      const { cpu, ...result } = await pipeline(message);
      return tell({ type: 'pipelined', ...result, userUs: cpu.user, systemUs: cpu.system });
    }
    case 'window': {
      // CPU over a fixed wall-clock window, the server otherwise idle (heartbeats only)
      const [cpu0, t0, gc0] = [process.cpuUsage(), nowUs(), gcUs];
      await new Promise((resolve) => setTimeout(resolve, message.ms));
      const [cpu, wallUs] = [process.cpuUsage(cpu0), nowUs() - t0];
      await tick(); // GC entries arrive asynchronously: one more turn, so the window's own are counted
      return tell({ type: 'window', userUs: cpu.user, systemUs: cpu.system, wallUs, gcUs: gcUs - gc0 });
    }
    case 'timers':
      return tell({ type: 'timers', atStart: timersAtStart, now: timerCounts() });
    case 'heap': {
      const { heapUsed, external, rss } = await memoryAfterGc();
      return tell({ type: 'heap', heapUsed, external, rss });
    }
    case 'dump':
      await profiler.stop();
      return tell({ type: 'dumped' });
  }
});
process.on('disconnect', () => process.exit(0));

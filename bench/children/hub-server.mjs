// Hub benchmark server child: `node --expose-gc hub-server.mjs <variant> <mode> [heartbeatMs]`.
// Variants: raw-http (the baseline), hub (createHub + sseChannel on Express 5), better-sse, sse-channel,
// express-alone (Express 5 holding responses open, the memory host of the idle section), redis-ioredis and
// redis-node-redis (the hub on the Redis store, REDIS_URL, keys under BENCH_REDIS_PREFIX, topic BENCH_TOPIC).
// Modes: broadcast (publishes when told by IPC and reports its CPU), burst (the same, counting socket
// writes), idle (holds streams; reports heap, RSS, timers and CPU over a window). Outside idle mode,
// 'begin' starts the CPU count of a server that only fans out what another process publishes, and
// 'pipeline' publishes with a window of publishes in flight (the hub variants).
// Every event carries its publish time (process.hrtime, CLOCK_MONOTONIC: the same clock in every
// process of the machine) right after a '#', the one '#' of the event, so clients count and time it.
import http from 'node:http';
import net from 'node:net';
import { PerformanceObserver } from 'node:perf_hooks';
import { setImmediate as tick } from 'node:timers/promises';
import {
  cpuProfiler,
  drainOrDeadline,
  fullGc,
  listenForBench,
  makeVariant,
  memoryAfterGc,
  nowUs,
  SSE_HEADERS,
  STAMP_DIGITS,
} from './common.mjs';

const [variant, mode = 'broadcast', heartbeatArg] = process.argv.slice(2);
const heartbeatMs = heartbeatArg === undefined ? undefined : Number(heartbeatArg);
const keepResponses = mode !== 'idle';
// The topic every stream subscribes to: for the Redis variants, the parent's (BENCH_TOPIC, set by redisEnv in
// redis-bench.ts), whose keys it deletes at the end; the memory store's is never seen outside this process.
const TOPIC = process.env.BENCH_TOPIC ?? 'bench';
const EVENT_JSON_BYTES = 100;

// --- timers (idle mode): the scheduler's timer is unref'd, and getActiveResourcesInfo() lists only
// ref'd ones; so every timer made through the global functions (the library's and Express's) is also
// counted here while it lives. Installed before Express or the library is loaded.
const liveTimers = new Set();
if (mode === 'idle') countGlobalTimers();

function countGlobalTimers() {
  const { setTimeout: st, setInterval: si, clearTimeout: ct, clearInterval: ci } = globalThis;
  globalThis.setTimeout = (callback, ...rest) => {
    const timer = st(
      (...args) => {
        liveTimers.delete(timer);
        callback(...args);
      },
      ...rest,
    );
    liveTimers.add(timer);
    return timer;
  };
  globalThis.setInterval = (...args) => {
    const timer = si(...args);
    liveTimers.add(timer);
    return timer;
  };
  globalThis.clearTimeout = (timer) => {
    liveTimers.delete(timer);
    ct(timer);
  };
  globalThis.clearInterval = (timer) => {
    liveTimers.delete(timer);
    ci(timer);
  };
}

// --- garbage collection (idle mode): its time inside a CPU window, so that a collection the heap
// reading set off is told apart from heartbeats.
let gcUs = 0;
if (mode === 'idle') {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcUs += entry.duration * 1000;
  }).observe({ entryTypes: ['gc'] });
}

function timerCounts() {
  const resources = process.getActiveResourcesInfo();
  return {
    refTimeouts: resources.filter((name) => name === 'Timeout').length,
    liveTimers: liveTimers.size,
  };
}

// --- socket writes (burst mode): `write` is what callers ask for; `_write`/`_writev` is what reaches
// the handle — one write(2)/writev(2) attempt each — after Node's corking has merged chunks.
const writes = { calls: 0, handle: 0 };
if (mode === 'burst') countSocketWrites();

function countSocketWrites() {
  const proto = net.Socket.prototype;
  const { write, _write, _writev } = proto;
  proto.write = function countedWrite(...args) {
    writes.calls++;
    return write.apply(this, args);
  };
  proto._write = function countedHandleWrite(...args) {
    writes.handle++;
    return _write.apply(this, args);
  };
  proto._writev = function countedHandleWritev(...args) {
    writes.handle++;
    return _writev.apply(this, args);
  };
}

/**
 * The sockets underneath every variant's streams (not in idle mode), for backpressure checks: a socket,
 * not its response, so that the check costs the same for every variant (Express's re-prototyped `res`
 * makes each getter a longer lookup). A chunked response's bytes are in its socket's buffer once Node
 * uncorks, and its 'drain' follows the socket's.
 */
const sockets = [];
let opened = 0;
/** Subscribers whose starting point the Redis store has read (Redis variants only; else undefined). */
let positioned;
function track(res) {
  opened++;
  if (keepResponses) sockets.push(res.socket);
}

/** A node:http server that starts every stream by hand and keeps its responses in `list`, for (a) and (ref). */
function handWrittenServer() {
  const list = [];
  const server = http.createServer((_req, res) => {
    res.writeHead(200, SSE_HEADERS);
    res.write(':ok\n\n');
    list.push(res);
    track(res);
  });
  return { server, list };
}

/** Event `seq` as the hand-written variants encode it: once, for every stream. */
function tickEvent(seq, data) {
  return Buffer.from(`event: tick\nid: ${seq}\ndata: ${JSON.stringify(data)}\n\n`);
}

/** Each variant: a server, and `send(seq, data)` that broadcasts event `seq` to every stream. */
const VARIANTS = {
  // (a) the baseline: node:http, each event encoded once into a Buffer written to every response
  async 'raw-http'() {
    const { server, list } = handWrittenServer();
    const send = (seq, data) => {
      const bytes = tickEvent(seq, data);
      for (let i = 0; i < list.length; i++) list[i].write(bytes);
    };
    return { server, send };
  },

  // (ref) not a library: the hub's wire path written by hand — each event framed once as one HTTP/1.1
  // chunk in a shared Buffer, written straight to every res.socket in a bare loop — to show the headroom
  async 'framed-socket'() {
    const { server, list } = handWrittenServer();
    const send = (seq, data) => {
      const bytes = tickEvent(seq, data);
      const frame = Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, CRLF]);
      for (let i = 0; i < list.length; i++) list[i].socket.write(frame);
    };
    return { server, send };
  },

  // (h) the hub on Express 5: res.sse(hub.subscribe(...)), hub.publish encodes once per event
  async hub() {
    return hubServer(undefined);
  },

  // (r) the same hub on the Redis store (express-streaming/redis), one process of several sharing a
  // topic through Redis (REDIS_URL, key prefix BENCH_REDIS_PREFIX), on the app's ioredis client …
  async 'redis-ioredis'() {
    const { default: Redis } = await import('ioredis');
    const client = new Redis(REDIS_URL);
    client.on('error', report);
    return hubServer(await redisStoreOn(client));
  },

  // … or on its node-redis client (createClient({ url }).connect())
  async 'redis-node-redis'() {
    const { createClient } = await import('redis');
    const client = createClient({ url: REDIS_URL });
    client.on('error', report);
    await client.connect();
    return hubServer(await redisStoreOn(client));
  },

  // (e) better-sse under Express 5: one Channel, broadcast(data, name, { eventId }); it serializes
  // (JSON.stringify) per session, which is its design, so it gets the object like the hub does
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
    const send = (seq, data) => channel.broadcast(data, 'tick', { eventId: String(seq) });
    return { server: http.createServer(app), send };
  },

  // (f) sse-channel under Express 5: addClient, channel.send({ event, id, data }) with data as text
  async 'sse-channel'() {
    const { default: express } = await import('express');
    const { default: SseChannel } = await import('sse-channel');
    const channel = new SseChannel();
    const app = express();
    app.get('/sse', (req, res) => {
      channel.addClient(req, res);
      track(res);
    });
    const send = (seq, data) => channel.send({ event: 'tick', id: seq, data: JSON.stringify(data) });
    return { server: http.createServer(app), send };
  },

  // res.sse() with no source on Express 5 (idle section): what an SSE stream costs without the hub
  async 'sse-express'() {
    const { default: express } = await import('express');
    const { sseChannel } = await import('../../dist/index.js');
    const app = express();
    app.use(sseChannel(heartbeatMs === undefined ? {} : { heartbeatMs }));
    app.get('/sse', (_req, res) => {
      track(res);
      res.sse();
    });
    return { server: http.createServer(app), send: () => {} };
  },

  // Express 5 alone, holding each response open after the SSE head (the idle section's host)
  async 'express-alone'() {
    const { default: express } = await import('express');
    const list = [];
    const app = express();
    app.get('/sse', (_req, res) => {
      res.writeHead(200, SSE_HEADERS);
      res.write(':ok\n\n');
      list.push(res);
      track(res);
    });
    return { server: http.createServer(app), send: () => {} };
  },
};

function report(error) {
  process.stderr.write(`hub-server: ${error?.stack ?? error}\n`);
}

/**
 * createHub + sseChannel on Express 5, on `store` (the memory store when undefined). `publishOne`
 * resolves with the event's id, for the pipelining phases; `send` fires and forgets, as a broadcast
 * loop does.
 */
async function hubServer(store) {
  const { default: express } = await import('express');
  const { createHub, sseChannel } = await import('../../dist/index.js');
  const hub = createHub(store === undefined ? {} : { store });
  const app = express();
  app.use(sseChannel(heartbeatMs === undefined ? {} : { heartbeatMs }));
  app.get('/sse', (req, res) => {
    track(res);
    res.sse(hub.subscribe(TOPIC, req));
  });
  const publishOne = (data) => hub.publish(TOPIC, { event: 'tick', data });
  const send = (_seq, data) => {
    publishOne(data).catch(report);
  };
  return { server: http.createServer(app), send, publishOne };
}

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * The Redis store under this run's own key prefix, its `position()` counted: a subscriber without a
 * Last-Event-ID starts at the head that call returns, so once every subscriber's has resolved, no event
 * published afterwards can miss one (the Redis store needs round trips for it; the memory store does
 * not). The rig waits for that count before its warm-up events.
 */
async function redisStoreOn(client) {
  const prefix = process.env.BENCH_REDIS_PREFIX;
  if (!prefix || !process.env.BENCH_TOPIC) {
    throw new Error('BENCH_REDIS_PREFIX or BENCH_TOPIC is not set: a run must use keys of its own');
  }
  const { redisStore } = await import('../../dist/redis.js');
  const store = redisStore(client, { prefix });
  positioned = 0;
  const position = store.position.bind(store);
  store.position = async (topic) => {
    const at = await position(topic);
    positioned++;
    return at;
  };
  return store;
}

const CRLF = Buffer.from('\r\n');
const PADS = Array.from({ length: EVENT_JSON_BYTES }, (_, n) => 'x'.repeat(n));

let lastStampUs = 0;

/**
 * The publish time, strictly increasing: events published in the same µs (a burst, a pipelined
 * window) still differ, so a client that sees a stamp not above the previous one got events out of
 * order (or twice).
 */
function stampUs() {
  const now = nowUs();
  lastStampUs = now > lastStampUs ? now : lastStampUs + 1;
  return lastStampUs;
}

/** Event data of EVENT_JSON_BYTES bytes as JSON: the stamp after its '#', the seq, padding. */
function eventData(seq) {
  const t = `#${String(stampUs()).padStart(STAMP_DIGITS, '0')}`;
  const bare = `{"t":"${t}","seq":${seq},"pad":""}`.length;
  return { t, seq, pad: PADS[Math.max(0, EVENT_JSON_BYTES - bare)] };
}

/** Waits (bounded) until no stream's socket needs 'drain'. */
async function drained(deadline) {
  for (let i = 0; i < sockets.length; i++) {
    const target = sockets[i];
    if (!target || target.destroyed || !target.writableNeedDrain) continue;
    if (!(await drainOrDeadline(target, deadline))) return false;
  }
  return true;
}

let seq = 0;

/**
 * Publishes `count` events, `perTurn` of them in the same tick, then yields to I/O: a setImmediate
 * turn (`intervalMs` 0, the throughput pace) or a timer (`intervalMs` > 0, the latency pace). Every
 * `drainEvery` events it waits until no client needs 'drain', as the existing SSE bench does.
 */
async function publish({ count, perTurn = 1, intervalMs = 0, drainEvery = 16, timeLimitMs }) {
  const deadline = Date.now() + timeLimitMs;
  let sent = 0;
  while (sent < count) {
    for (let j = 0; j < perTurn && sent < count; j++, sent++) {
      seq++;
      send(seq, eventData(seq));
    }
    if (intervalMs > 0) await new Promise((resolve) => setTimeout(resolve, intervalMs));
    else await tick();
    if (sent % drainEvery === 0 && !(await drained(deadline))) return sent;
    if (Date.now() > deadline) return sent;
  }
  return sent;
}

/**
 * Publishes `count` events keeping `window` of them unanswered at once (a sliding window: each answer
 * lets the next publish go), until every one is answered or `timeLimitMs` has passed. The ids must
 * come back numbered in the order the publishes were made (the topic is this process's alone).
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
    const issue = (i) => {
      seq++;
      publishOne(eventData(seq)).then(
        (id) => {
          seqs[i] = Number(id.slice(id.lastIndexOf('-') + 1));
          settle();
        },
        (error) => {
          failed++;
          firstError ??= String(error?.message ?? error).split('\n')[0];
          settle();
        },
      );
    };
    const settle = () => {
      answered++;
      more();
    };
    const more = () => {
      const open = Date.now() < deadline;
      while (open && issued < count && issued - answered < window) issue(issued++);
      if (answered === issued && (issued === count || !open)) done();
    };
    const done = () => {
      const wallUs = nowUs() - startedUs;
      const cpu = process.cpuUsage(cpu0);
      let disordered = 0;
      for (let i = 1; i < answered; i++) if (seqs[i] !== seqs[0] + i) disordered++;
      resolve({ published: answered - failed, failed, firstError, disordered, wallUs, cpu });
    };
    more();
  });
}

const timersAtStart = timerCounts();
const { server, send, publishOne } = await makeVariant(VARIANTS, variant);
listenForBench(server, 4096);

// BENCH_CPU_PROFILE=file: a CPU profile of the measured phases, for bench/profile.ts. Profiled from the
// first measured phase on: setup and warm-up stay out, idle gaps are '(idle)'.
const profiler = await cpuProfiler();

let started;
process.on('message', async (message) => {
  switch (message.type) {
    case 'count':
      process.send({ type: 'count', opened, positioned });
      break;
    case 'warm': {
      const sent = await publish({ count: message.count, timeLimitMs: message.timeLimitMs });
      process.send({ type: 'warmed', sent });
      break;
    }
    case 'run': {
      fullGc();
      await profiler.start();
      writes.calls = 0;
      writes.handle = 0;
      started = { cpu: process.cpuUsage(), atUs: nowUs() };
      const sent = await publish(message);
      process.send({ type: 'sent', sent, startedUs: started.atUs });
      break;
    }
    case 'begin':
      // A server that fans out what another process publishes: its CPU from now until 'stop'
      fullGc();
      await profiler.start();
      writes.calls = 0;
      writes.handle = 0;
      started = { cpu: process.cpuUsage(), atUs: nowUs() };
      process.send({ type: 'begun' });
      break;
    case 'pipeline': {
      fullGc();
      await profiler.start();
      const { cpu, ...result } = await pipeline(message);
      process.send({ type: 'pipelined', ...result, userUs: cpu.user, systemUs: cpu.system });
      break;
    }
    case 'stop': {
      const cpu = process.cpuUsage(started.cpu);
      process.send({
        type: 'cpu',
        userUs: cpu.user,
        systemUs: cpu.system,
        writeCalls: writes.calls,
        handleWrites: writes.handle,
      });
      break;
    }
    case 'window': {
      // CPU over a fixed wall-clock window, the server otherwise idle (heartbeats only)
      const cpu0 = process.cpuUsage();
      const t0 = nowUs();
      const gc0 = gcUs;
      await new Promise((resolve) => setTimeout(resolve, message.ms));
      const cpu = process.cpuUsage(cpu0);
      const wallUs = nowUs() - t0;
      // GC entries are delivered asynchronously: one more turn, so the window's own are counted.
      await tick();
      process.send({ type: 'window', userUs: cpu.user, systemUs: cpu.system, wallUs, gcUs: gcUs - gc0 });
      break;
    }
    case 'timers':
      process.send({ type: 'timers', atStart: timersAtStart, now: timerCounts() });
      break;
    case 'heap': {
      const memory = await memoryAfterGc();
      process.send({
        type: 'heap',
        heapUsed: memory.heapUsed,
        external: memory.external,
        rss: memory.rss,
      });
      break;
    }
    case 'dump': {
      await profiler.stop();
      process.send({ type: 'dumped' });
      break;
    }
    case 'exit':
      process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));

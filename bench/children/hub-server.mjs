// Hub benchmark server child: `node --expose-gc hub-server.mjs <variant> <mode> [heartbeatMs]`.
// Variants: raw-http (the baseline), hub (createHub + sseChannel on Express 5), better-sse, sse-channel,
// express-alone (Express 5 holding responses open, the memory host of the idle section).
// Modes: broadcast (publishes when told by IPC and reports its CPU), burst (the same, counting socket
// writes), idle (holds streams; reports heap, RSS, timers and CPU over a window).
// Every event carries its publish time (process.hrtime, CLOCK_MONOTONIC: the same clock in every
// process of the machine) right after a '#', the one '#' of the event, so clients count and time it.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { PerformanceObserver } from 'node:perf_hooks';
import { setImmediate as tick } from 'node:timers/promises';

const [variant, mode = 'broadcast', heartbeatArg] = process.argv.slice(2);
const heartbeatMs = heartbeatArg === undefined ? undefined : Number(heartbeatArg);
const keepResponses = mode !== 'idle';
const SSE_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  Connection: 'keep-alive',
};
const TOPIC = 'bench';
/** Digits of the publish stamp in µs: 15 stay below 2^53 and cover 30 years of uptime. */
const STAMP_DIGITS = 15;
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
function track(res) {
  opened++;
  if (keepResponses) sockets.push(res.socket);
}

/** Each variant: a server, and `send(seq, data)` that broadcasts event `seq` to every stream. */
const VARIANTS = {
  // (a) the baseline: node:http, each event encoded once into a Buffer written to every response
  async 'raw-http'() {
    const list = [];
    const server = http.createServer((_req, res) => {
      res.writeHead(200, SSE_HEADERS);
      res.write(':ok\n\n');
      list.push(res);
      track(res);
    });
    const send = (seq, data) => {
      const bytes = Buffer.from(`event: tick\nid: ${seq}\ndata: ${JSON.stringify(data)}\n\n`);
      for (let i = 0; i < list.length; i++) list[i].write(bytes);
    };
    return { server, send };
  },

  // (ref) not a library: the hub's wire path written by hand — each event framed once as one HTTP/1.1
  // chunk in a shared Buffer, written straight to every res.socket in a bare loop — to show the headroom
  async 'framed-socket'() {
    const list = [];
    const server = http.createServer((_req, res) => {
      res.writeHead(200, SSE_HEADERS);
      res.write(':ok\n\n');
      list.push(res);
      track(res);
    });
    const send = (seq, data) => {
      const bytes = Buffer.from(`event: tick\nid: ${seq}\ndata: ${JSON.stringify(data)}\n\n`);
      const frame = Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, CRLF]);
      for (let i = 0; i < list.length; i++) list[i].socket.write(frame);
    };
    return { server, send };
  },

  // (h) the hub on Express 5: res.sse(hub.subscribe(...)), hub.publish encodes once per event
  async hub() {
    const { default: express } = await import('express');
    const { createHub, sseChannel } = await import('../../dist/index.js');
    const hub = createHub();
    const app = express();
    app.use(sseChannel(heartbeatMs === undefined ? {} : { heartbeatMs }));
    app.get('/sse', (req, res) => {
      track(res);
      res.sse(hub.subscribe(TOPIC, req));
    });
    const send = (_seq, data) => {
      hub.publish(TOPIC, { event: 'tick', data }).catch(report);
    };
    return { server: http.createServer(app), send, stats: () => hub.stats() };
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

/** µs on CLOCK_MONOTONIC, the clock every process of the machine shares (no BigInt per event). */
function nowUs() {
  const [s, ns] = process.hrtime();
  return s * 1e6 + Math.floor(ns / 1000);
}

const CRLF = Buffer.from('\r\n');
const PADS = Array.from({ length: EVENT_JSON_BYTES }, (_, n) => 'x'.repeat(n));

/** Event data of EVENT_JSON_BYTES bytes as JSON: the stamp after its '#', the seq, padding. */
function eventData(seq) {
  const t = `#${String(nowUs()).padStart(STAMP_DIGITS, '0')}`;
  const bare = `{"t":"${t}","seq":${seq},"pad":""}`.length;
  return { t, seq, pad: PADS[Math.max(0, EVENT_JSON_BYTES - bare)] };
}

/** Waits (bounded) until no stream's socket needs 'drain'. */
async function drained(deadline) {
  for (let i = 0; i < sockets.length; i++) {
    const target = sockets[i];
    if (!target || target.destroyed || !target.writableNeedDrain) continue;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await new Promise((resolve) => {
      const timer = setTimeout(done, Math.min(left, 1000));
      function done() {
        clearTimeout(timer);
        target.off('drain', done);
        target.off('close', done);
        resolve();
      }
      target.once('drain', done);
      target.once('close', done);
    });
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

function fullGc() {
  for (let i = 0; i < 4; i++) globalThis.gc?.();
}

const make = VARIANTS[variant];
if (!make) {
  process.stderr.write(`unknown variant ${variant}\n`);
  process.exit(2);
}
const timersAtStart = timerCounts();
const { server, send, stats } = await make();
server.keepAliveTimeout = 0;
server.headersTimeout = 0;
server.requestTimeout = 0;
server.listen(0, '127.0.0.1', 4096, () => {
  process.send({ type: 'listening', port: server.address().port });
});

// BENCH_CPU_PROFILE=file: a CPU profile of the measured phases (node:inspector), for bench/profile.ts.
const profileFile = process.env.BENCH_CPU_PROFILE;
let session;
async function post(method, params) {
  return new Promise((resolve, reject) =>
    session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))),
  );
}
if (profileFile) {
  const { Session } = await import('node:inspector');
  session = new Session();
  session.connect();
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 200 });
}
let profiling = false;

let started;
process.on('message', async (message) => {
  switch (message.type) {
    case 'count':
      process.send({ type: 'count', opened, hub: stats?.().subscribers });
      break;
    case 'warm': {
      const sent = await publish({ count: message.count, timeLimitMs: message.timeLimitMs });
      process.send({ type: 'warmed', sent });
      break;
    }
    case 'run': {
      fullGc();
      // Profiled from the first measured phase on: setup and warm-up stay out, idle gaps are '(idle)'.
      if (session && !profiling) {
        profiling = true;
        await post('Profiler.start');
      }
      writes.calls = 0;
      writes.handle = 0;
      started = { cpu: process.cpuUsage(), atUs: nowUs() };
      const sent = await publish(message);
      process.send({ type: 'sent', sent, startedUs: started.atUs });
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
      process.send({ type: 'timers', atStart: timersAtStart, now: timerCounts(), opened });
      break;
    case 'heap': {
      fullGc();
      await new Promise((resolve) => setTimeout(resolve, 50));
      fullGc();
      const memory = process.memoryUsage();
      process.send({
        type: 'heap',
        opened,
        heapUsed: memory.heapUsed,
        external: memory.external,
        rss: memory.rss,
      });
      break;
    }
    case 'dump': {
      if (session) {
        const { profile } = await post('Profiler.stop');
        writeFileSync(profileFile, JSON.stringify(profile));
      }
      process.send({ type: 'dumped' });
      break;
    }
    case 'exit':
      process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));

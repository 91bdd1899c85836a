// What the children share: the servers' variant, listening, gc, drain waits and the CPU profile that
// bench/profile.ts asks for (BENCH_CPU_PROFILE=file) through node:inspector; the clients' bounded
// opening of sockets and their per-socket counts; the wire protocol's head and publish stamps.
import { writeFileSync } from 'node:fs';
import net from 'node:net';

/** The SSE response head the hand-written variants (and Express alone) write. */
export const SSE_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  Connection: 'keep-alive',
};

/** Digits of the publish stamp in µs after an event's '#': 15 stay below 2^53, cover 30 years of uptime. */
export const STAMP_DIGITS = 15;

/** µs on CLOCK_MONOTONIC, the clock every process of the machine shares (no BigInt per event). */
export function nowUs() {
  const [s, ns] = process.hrtime();
  return s * 1e6 + Math.floor(ns / 1000);
}

/** Makes the named variant (exits with a message for an unknown one). */
export async function makeVariant(variants, variant) {
  const make = variants[variant];
  if (!make) {
    process.stderr.write(`unknown variant ${variant}\n`);
    process.exit(2);
  }
  return make();
}

/** Listens on an ephemeral loopback port, with no server timeout in the way, and tells the parent. */
export function listenForBench(server, backlog) {
  server.keepAliveTimeout = 0;
  server.headersTimeout = 0;
  server.requestTimeout = 0;
  server.listen(0, '127.0.0.1', backlog, () => {
    process.send({ type: 'listening', port: server.address().port });
  });
}

/** Waits for `target`'s 'drain' (or its close), at most until `deadline` and 1 s at a time; false once past it. */
export async function drainOrDeadline(target, deadline) {
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
  return true;
}

/** Runs `openAt(index)` for `n` indexes from `base`, `parallel` at a time, starting none after `timeLimitMs`. */
export async function openBounded(base, n, parallel, timeLimitMs, openAt) {
  const deadline = Date.now() + timeLimitMs;
  let next = 0;
  async function worker() {
    while (next < n && Date.now() < deadline) await openAt(base + next++);
  }
  await Promise.all(Array.from({ length: parallel }, worker));
}

const SSE_REQUEST = 'GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n';

/**
 * Opens one SSE stream on a raw socket: GET /sse, then the head is read and every later byte is handed
 * to `onBody(chunk, from)`, `from` being where the body starts in the chunk. `tally` counts heads read,
 * failures (no 200 within 15 s) and closes. With `readBuffer`, reads land in that one shared buffer
 * (`onread`), so `chunk` is valid only during the call. `ready` resolves with whether the head said 200.
 */
export function openSseSocket(port, tally, onBody, readBuffer) {
  let head = '';
  let inHead = true;
  let settle;
  const ready = new Promise((resolve) => {
    settle = resolve;
  });
  const timer = setTimeout(() => finish(false), 15_000);
  function finish(ok) {
    clearTimeout(timer);
    if (!ok) tally.failures++;
    settle(ok);
  }
  function onData(chunk) {
    let from = 0;
    if (inHead) {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      inHead = false;
      const ok = head.startsWith('HTTP/1.1 200');
      from = chunk.length - (head.length - end - 4);
      head = '';
      tally.headersDone++;
      finish(ok);
    }
    onBody(chunk, from);
  }
  const socket = readBuffer
    ? net.connect({
        port,
        host: '127.0.0.1',
        onread: { buffer: readBuffer, callback: (length, buffer) => onData(buffer.subarray(0, length)) },
      })
    : net.connect({ port, host: '127.0.0.1' });
  if (!readBuffer) socket.on('data', onData);
  socket.on('connect', () => socket.write(SSE_REQUEST));
  socket.on('error', () => {});
  socket.on('close', () => {
    tally.closed++;
    if (inHead) finish(false);
  });
  return { socket, ready };
}

/** A copy of the typed array `array` with `by` more (zeroed) elements. */
export function grow(array, by) {
  const grown = new array.constructor(array.length + by);
  grown.set(array);
  return grown;
}

/** The fewest and the most events any one client counted. */
export function minMax(counts) {
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  for (const c of counts) {
    if (c < min) min = c;
    if (c > max) max = c;
  }
  return { min, max };
}

export function fullGc() {
  for (let i = 0; i < 4; i++) globalThis.gc?.();
}

/** Memory once what can be collected is: gc, a turn for finalizers and weak callbacks, gc again. */
export async function memoryAfterGc() {
  fullGc();
  await new Promise((resolve) => setTimeout(resolve, 50));
  fullGc();
  return process.memoryUsage();
}

/**
 * The child's CPU profiler: `start()` (once; later calls do nothing) and `stop()`, which writes the
 * profile to BENCH_CPU_PROFILE. Without that variable both do nothing.
 */
export async function cpuProfiler() {
  const file = process.env.BENCH_CPU_PROFILE;
  if (!file) return { enabled: false, start: async () => {}, stop: async () => {} };
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
    enabled: true,
    async start() {
      if (started) return;
      started = true;
      await post('Profiler.start');
    },
    async stop() {
      if (!started) return;
      started = false;
      const { profile } = await post('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
    },
  };
}

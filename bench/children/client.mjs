// The client child of every benchmark, driven by IPC: raw `net` sockets to GET /sse on loopback that
// count the events received per socket (one '#' per event, a byte found nowhere else on the wire) and
// time each one (the 15 digits after the '#' are its publish time in µs on CLOCK_MONOTONIC, shared with
// the server), and the order (stamps strictly increase as published); with the `ids` flag each socket
// also keeps the last event id it read, so that it can drop and resume with Last-Event-ID. 'get' pulls
// a streamed body with http.get instead.
import http from 'node:http';
import net from 'node:net';
import { createHistogram } from 'node:perf_hooks';
import { nowUs, STAMP_DIGITS, tell } from './common.mjs';

const trackIds = process.argv.includes('ids');
const HASH = 0x23;
const ZERO = 0x30;
const sockets = [];
let counts = new Int32Array(0);
/** Per socket: a stamp cut by a chunk boundary (digits still to read, the value so far), the last stamp. */
let stampNeed = new Int8Array(0);
let stampSoFar = new Float64Array(0);
let lastStamp = new Float64Array(0);
/** Per socket (ids flag): the last id read, and the tail of the last read, where an id line may be cut. */
const lastIds = [];
const tails = [];
let disordered = 0;
let resets = 0;
/** Heads read, sockets that failed to open (no 200 within 15 s), sockets closed. */
let tally = { headersDone: 0, failures: 0, closed: 0 };
let total = 0;
let target = Number.POSITIVE_INFINITY;
let targetTag = '';
/** Since the last 'expect' or 'mark': bytes after the heads, latencies (µs, ≥ 1), voluntary context switches. */
let bytes = 0;
let latency = createHistogram();
let switches0 = 0;
/** When the last head of a 'resume' arrived. */
let lastHeadUs = 0;

function reached() {
  if (total < target) return;
  target = Number.POSITIVE_INFINITY;
  tell({ type: 'reached', tag: targetTag, total, atUs: nowUs() });
}

function record(index, now, stamp) {
  if (stamp <= lastStamp[index]) disordered++;
  lastStamp[index] = stamp;
  latency.record(Math.max(1, Math.round(now - stamp)));
}

/** Counts and times the events in `chunk` from `from`; a stamp cut at the end is finished next time. */
function scan(index, chunk, from) {
  const now = nowUs();
  let at = from;
  let need = stampNeed[index];
  if (need > 0) {
    let value = stampSoFar[index];
    for (; need > 0 && at < chunk.length; need--) value = value * 10 + (chunk[at++] - ZERO);
    stampNeed[index] = need;
    stampSoFar[index] = value;
    if (need === 0) record(index, now, value);
  }
  let n = 0;
  for (let hash = chunk.indexOf(HASH, at); hash !== -1; n++) {
    const end = Math.min(hash + 1 + STAMP_DIGITS, chunk.length);
    let value = 0;
    for (let i = hash + 1; i < end; i++) value = value * 10 + (chunk[i] - ZERO);
    stampNeed[index] = hash + 1 + STAMP_DIGITS - end;
    if (stampNeed[index] === 0) record(index, now, value);
    else stampSoFar[index] = value;
    hash = chunk.indexOf(HASH, end);
  }
  if (trackIds) readIds(index, chunk.toString('latin1', from));
  if (n > 0) {
    counts[index] += n;
    total += n;
    reached();
  }
}

/** The last complete `id:` line of what the socket read, and any `event: reset`. */
function readIds(index, text) {
  const seen = tails[index] + text;
  const at = seen.lastIndexOf('\nid: ');
  const end = at === -1 ? -1 : seen.indexOf('\n', at + 5);
  if (end !== -1) lastIds[index] = seen.slice(at + 5, end);
  for (let r = text.indexOf('event: reset'); r !== -1; r = text.indexOf('event: reset', r + 1)) resets++;
  tails[index] = seen.slice(-80);
}

/** One buffer for every socket's reads (`onread`: no Buffer per read), scanned before the next read. */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

/** Opens socket `index`: GET /sse (with Last-Event-ID when given); resolves once its head is read. */
function openOne(port, index, lastEventId) {
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
    settle();
  }
  function onData(chunk) {
    let from = 0;
    if (inHead) {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      inHead = false;
      from = chunk.length - (head.length - end - 4);
      tally.headersDone++;
      lastHeadUs = nowUs();
      finish(head.startsWith('HTTP/1.1 200'));
      head = '';
    }
    bytes += chunk.length - from;
    scan(index, chunk, from);
  }
  const socket = net.connect({
    port,
    host: '127.0.0.1',
    onread: { buffer: READ_BUFFER, callback: (length, buffer) => onData(buffer.subarray(0, length)) },
  });
  const resume = lastEventId === undefined ? '' : `Last-Event-ID: ${lastEventId}\r\n`;
  socket.on('connect', () =>
    socket.write(`GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n${resume}\r\n`),
  );
  socket.on('error', () => {});
  socket.on('close', () => {
    tally.closed++;
    if (inHead) finish(false);
  });
  sockets[index] = socket;
  return ready;
}

/**
 * Opens a socket per [port, index] target: `parallel` handshakes at a time, starting none after
 * `timeLimitMs`; or, with `spreadMs`, the k-th of n started at k × spreadMs / n whatever the others do
 * (a reconnect storm). With `resume`, each sends the last id its index read as Last-Event-ID.
 */
async function openAll(targets, { parallel = 50, timeLimitMs = 30_000, spreadMs, resume = false }) {
  const open = ([port, index]) => openOne(port, index, resume ? lastIds[index] : undefined);
  if (spreadMs !== undefined) {
    const t0 = Date.now();
    const ready = [];
    for (let k = 0; k < targets.length; k++) {
      const wait = t0 + (k * spreadMs) / targets.length - Date.now();
      if (wait >= 1) await new Promise((resolve) => setTimeout(resolve, wait));
      ready.push(open(targets[k]));
    }
    return Promise.all(ready);
  }
  const deadline = Date.now() + timeLimitMs;
  let next = 0;
  const worker = async () => {
    while (next < targets.length && Date.now() < deadline) await open(targets[next++]);
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

const grow = (array, by) => {
  const grown = new array.constructor(array.length + by);
  grown.set(array);
  return grown;
};

function status() {
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  for (const c of counts) {
    if (c < min) min = c;
    if (c > max) max = c;
  }
  const timed = latency.count;
  return {
    sockets: sockets.length,
    ...tally,
    disordered,
    resets,
    total,
    min,
    max,
    bytes,
    lastHeadUs,
    wakeups: process.resourceUsage().voluntaryContextSwitches - switches0,
    p50Us: timed > 0 ? latency.percentile(50) : 0,
    p99Us: timed > 0 ? latency.percentile(99) : 0,
    maxUs: timed > 0 ? latency.max : 0,
  };
}

/** GETs `bytes` from a streaming server; the time from request to the body's end. */
function fetchOnce(port, bytes, timeLimitMs) {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    let received = 0;
    let done = false;
    const finish = (error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ received, ms: Number(process.hrtime.bigint() - started) / 1e6, error });
    };
    const req = http.get({ host: '127.0.0.1', port, path: `/?bytes=${bytes}`, agent: false }, (res) => {
      res.on('data', (chunk) => {
        received += chunk.length;
      });
      res.on('end', () => finish(res.statusCode === 200 ? undefined : `status ${res.statusCode}`));
      res.on('error', (error) => finish(error.message));
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish(`no end within ${timeLimitMs} ms`);
    }, timeLimitMs);
    req.on('error', (error) => finish(error.message));
  });
}

const range = (from, to) => Array.from({ length: to - from }, (_, i) => from + i);

process.on('message', async (message) => {
  switch (message.type) {
    case 'open': {
      const base = sockets.length;
      counts = grow(counts, message.n);
      stampNeed = grow(stampNeed, message.n);
      stampSoFar = grow(stampSoFar, message.n);
      lastStamp = grow(lastStamp, message.n);
      for (let i = base; i < base + message.n; i++) tails[i] = '';
      await openAll(
        range(base, base + message.n).map((index) => [message.port, index]),
        message,
      );
      return tell({ type: 'opened', ...status() });
    }
    case 'drop': {
      // closes sockets [from, to) (the clients leave, keeping their last ids and counts); replies once closed
      const closed = tally.closed + message.to - message.from;
      for (const index of range(message.from, message.to)) sockets[index].destroy();
      for (let i = 0; i < 500 && tally.closed < closed; i++) await new Promise((r) => setTimeout(r, 10));
      return tell({ type: 'dropped', closed: tally.closed });
    }
    case 'resume': {
      // reopens the sockets of every group { port, from, to } with their Last-Event-ID, the groups
      // taking turns, all of them started within `spreadMs`
      tally = { headersDone: 0, failures: 0, closed: 0 };
      const targets = [];
      const longest = Math.max(...message.groups.map((g) => g.to - g.from));
      for (let k = 0; k < longest; k++)
        for (const g of message.groups) if (g.from + k < g.to) targets.push([g.port, g.from + k]);
      const startedUs = nowUs();
      await openAll(targets, { ...message, resume: true });
      return tell({ type: 'resumed', startedUs, ...status() });
    }
    case 'expect': // a new phase (its latencies, bytes and wakeups alone) unless `keep`; `total` to reach
      if (!message.keep) {
        switches0 = process.resourceUsage().voluntaryContextSwitches;
        latency = createHistogram();
        bytes = 0;
      }
      target = message.total ?? Number.POSITIVE_INFINITY;
      targetTag = message.tag;
      tell({ type: 'expecting' });
      return reached();
    case 'mark':
      bytes = 0;
      return tell({ type: 'marked' });
    case 'status': {
      const reply = status();
      if (message.clearOrder) disordered = 0;
      return tell({ type: 'status', ...reply });
    }
    case 'get':
      return tell({ type: 'got', ...(await fetchOnce(message.port, message.bytes, message.timeLimitMs)) });
  }
});
process.on('disconnect', () => process.exit(0));

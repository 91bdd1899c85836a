// Hub benchmark client child: opens N raw `net` sockets to GET /sse on loopback and, per socket, counts
// the events received (one '#' per event, a byte that appears nowhere else on the wire) and times each
// one: the 15 digits after the '#' are its publish time in µs on CLOCK_MONOTONIC (process.hrtime),
// which the server child shares, so receive − publish is the event's latency; stamps also tell the
// order (strictly increasing as published). Driven by IPC; `open` may be sent again, for another port.
import { createHistogram } from 'node:perf_hooks';
import { grow, minMax, nowUs, openBounded, openSseSocket, STAMP_DIGITS } from './common.mjs';

const HASH = 0x23;
const ZERO = 0x30;
const sockets = [];
let counts = new Int32Array(0);
/** Per socket, a stamp cut by a chunk boundary: digits still to read, and the value so far. */
let stampNeed = new Int8Array(0);
let stampSoFar = new Float64Array(0);
/**
 * Per socket, the last stamp read. The server makes stamps strictly increasing in publish order, so a
 * stamp not above the previous one is an event out of order (or a duplicate): counted in `disordered`.
 */
let lastStamp = new Float64Array(0);
let disordered = 0;
/** Heads read, sockets that failed to open, sockets closed. */
const tally = { headersDone: 0, failures: 0, closed: 0 };
let total = 0;
let target = Number.POSITIVE_INFINITY;
let targetTag = '';
/** Bytes of event stream (after the head) since the last 'expect' or 'mark'. */
let bytes = 0;
/** Latency of every event received since the last 'expect', in µs (recorded at ≥ 1). */
let latency = createHistogram();
/** Voluntary context switches at the start of the phase: each is a sleep the next write had to end. */
let switches0 = 0;

function reached() {
  if (total >= target) {
    const tag = targetTag;
    target = Number.POSITIVE_INFINITY;
    process.send({ type: 'reached', tag, total, atUs: nowUs() });
  }
}

function record(index, now, stamp) {
  if (stamp <= lastStamp[index]) disordered++;
  lastStamp[index] = stamp;
  const us = now - stamp;
  latency.record(us >= 1 ? Math.round(us) : 1);
}

/** Counts and times the events in `chunk` from `from`; a stamp cut at the end is finished next time. */
function scan(index, chunk, from) {
  const now = nowUs();
  let at = from;
  let need = stampNeed[index];
  if (need > 0) {
    let value = stampSoFar[index];
    while (need > 0 && at < chunk.length) {
      value = value * 10 + (chunk[at++] - ZERO);
      need--;
    }
    stampNeed[index] = need;
    stampSoFar[index] = value;
    if (need === 0) record(index, now, value);
  }
  let n = 0;
  let hash = chunk.indexOf(HASH, at);
  while (hash !== -1) {
    n++;
    const end = Math.min(hash + 1 + STAMP_DIGITS, chunk.length);
    let value = 0;
    for (let i = hash + 1; i < end; i++) value = value * 10 + (chunk[i] - ZERO);
    const left = hash + 1 + STAMP_DIGITS - end;
    if (left === 0) record(index, now, value);
    else {
      stampNeed[index] = left;
      stampSoFar[index] = value;
    }
    hash = chunk.indexOf(HASH, end);
  }
  if (n > 0) {
    counts[index] += n;
    total += n;
    reached();
  }
}

/**
 * One buffer for every socket's reads (`onread`: no stream machinery, no Buffer per read): each read
 * is scanned synchronously before the next one overwrites it. Keeps the client cheap per read, so
 * that what it measures is the server, as far as one process reading N sockets allows.
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

function openOne(port, index) {
  const { socket, ready } = openSseSocket(
    port,
    tally,
    (chunk, from) => {
      bytes += chunk.length - from;
      scan(index, chunk, from);
    },
    READ_BUFFER,
  );
  sockets[index] = socket;
  return ready;
}

/** Opens `n` sockets, at most `parallel` handshakes at a time, within `timeLimitMs`. */
async function open(port, n, parallel, timeLimitMs) {
  const base = sockets.length;
  counts = grow(counts, n);
  stampNeed = grow(stampNeed, n);
  stampSoFar = grow(stampSoFar, n);
  lastStamp = grow(lastStamp, n);
  await openBounded(base, n, parallel, timeLimitMs, (index) => openOne(port, index));
}

function status() {
  const timed = latency.count;
  return {
    sockets: sockets.length,
    ...tally,
    disordered,
    total,
    ...minMax(counts),
    bytes,
    timed,
    wakeups: process.resourceUsage().voluntaryContextSwitches - switches0,
    p50Us: timed > 0 ? latency.percentile(50) : 0,
    p99Us: timed > 0 ? latency.percentile(99) : 0,
    maxUs: timed > 0 ? latency.max : 0,
  };
}

process.on('message', async (message) => {
  switch (message.type) {
    case 'open':
      await open(message.port, message.n, message.parallel ?? 50, message.timeLimitMs ?? 30_000);
      process.send({ type: 'opened', ...status() });
      break;
    case 'expect':
      // A new phase: its latencies and bytes alone.
      switches0 = process.resourceUsage().voluntaryContextSwitches;
      latency = createHistogram();
      bytes = 0;
      target = message.total;
      targetTag = message.tag;
      reached();
      break;
    case 'mark':
      bytes = 0;
      process.send({ type: 'marked' });
      break;
    case 'status':
      process.send({ type: 'status', ...status() });
      break;
    case 'exit':
      for (const socket of sockets) socket.destroy();
      process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));

// SSE client child: opens N raw `net` sockets to GET /sse on loopback and counts, per socket, the
// events received (one '#' per event, a byte that appears nowhere else on the wire). Driven by IPC.
import { grow, minMax, openBounded, openSseSocket } from './common.mjs';

const HASH = 0x23;
const sockets = [];
let counts = new Int32Array(0);
/** Heads read, sockets that failed to open, sockets closed. */
const tally = { headersDone: 0, failures: 0, closed: 0 };
let total = 0;
let target = Number.POSITIVE_INFINITY;
let targetTag = '';

function reached() {
  if (total >= target) {
    const tag = targetTag;
    target = Number.POSITIVE_INFINITY;
    process.send({ type: 'reached', tag, total });
  }
}

function openOne(port, index) {
  const { socket, ready } = openSseSocket(port, tally, (chunk, from) => {
    let n = 0;
    let at = chunk.indexOf(HASH, from);
    while (at !== -1) {
      n++;
      at = chunk.indexOf(HASH, at + 1);
    }
    if (n > 0) {
      counts[index] += n;
      total += n;
      reached();
    }
  });
  sockets[index] = socket;
  return ready;
}

/** Opens `n` sockets, at most `parallel` handshakes at a time, within `timeLimitMs`. */
async function open(port, n, parallel, timeLimitMs) {
  const base = sockets.length;
  counts = grow(counts, n);
  await openBounded(base, n, parallel, timeLimitMs, (index) => openOne(port, index));
}

function status() {
  return { sockets: sockets.length, ...tally, total, ...minMax(counts) };
}

process.on('message', async (message) => {
  switch (message.type) {
    case 'open':
      await open(message.port, message.n, message.parallel ?? 50, message.timeLimitMs ?? 30_000);
      process.send({ type: 'opened', ...status() });
      break;
    case 'expect':
      target = message.total;
      targetTag = message.tag;
      reached();
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

// SSE client child: opens N raw `net` sockets to GET /sse on loopback and counts, per socket, the
// events received (one '#' per event, a byte that appears nowhere else on the wire). Driven by IPC.
import net from 'node:net';
import { minMax, openBounded } from './common.mjs';

const HASH = 0x23;
const sockets = [];
let counts = new Int32Array(0);
let headersDone = 0;
let total = 0;
let failures = 0;
let closed = 0;
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
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    sockets[index] = socket;
    let head = '';
    let inHead = true;
    const timer = setTimeout(() => finish(false), 15_000);
    function finish(ok) {
      clearTimeout(timer);
      if (!ok) failures++;
      resolve(ok);
    }
    socket.on('connect', () => {
      socket.write('GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
    });
    socket.on('data', (chunk) => {
      let from = 0;
      if (inHead) {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        inHead = false;
        const ok = head.startsWith('HTTP/1.1 200');
        from = chunk.length - (head.length - end - 4);
        head = '';
        headersDone++;
        finish(ok);
      }
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
    socket.on('error', () => {});
    socket.on('close', () => {
      closed++;
      if (inHead) finish(false);
    });
  });
}

/** Opens `n` sockets, at most `parallel` handshakes at a time, within `timeLimitMs`. */
async function open(port, n, parallel, timeLimitMs) {
  const base = sockets.length;
  const grown = new Int32Array(base + n);
  grown.set(counts);
  counts = grown;
  await openBounded(base, n, parallel, timeLimitMs, (index) => openOne(port, index));
}

function status() {
  return { sockets: sockets.length, headersDone, failures, closed, total, ...minMax(counts) };
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

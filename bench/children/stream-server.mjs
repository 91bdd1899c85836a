// Streaming-body server child: `node stream-server.mjs <variant>`. Every GET /?bytes=N streams N bytes
// from an async generator of 64 KiB Buffers, and the child reports its CPU time for that response.
import http from 'node:http';
import { pipeline, Readable } from 'node:stream';
import { cpuProfiler, makeVariant } from './common.mjs';

const [variant] = process.argv.slice(2);
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

async function* generate(bytes) {
  for (let sent = 0; sent < bytes; sent += CHUNK.length) yield CHUNK;
}

/** Each variant sends `generate(bytes)` as the body of `res` and calls `done()` once. */
const VARIANTS = {
  async 'es-stream'() {
    const { streamBody } = await import('../../dist/index.js');
    const middleware = streamBody();
    return (req, res, bytes, done) => middleware(req, res, () => res.stream(generate(bytes)).then(done));
  },
  async pipe() {
    return (_req, res, bytes, done) => {
      res.setHeader('Content-Type', 'application/octet-stream');
      res.on('close', () => done(res.writableFinished ? 'finished' : 'aborted'));
      Readable.from(generate(bytes)).pipe(res);
    };
  },
  async pipeline() {
    return (_req, res, bytes, done) => {
      res.setHeader('Content-Type', 'application/octet-stream');
      pipeline(Readable.from(generate(bytes)), res, (error) => done(error ? 'errored' : 'finished'));
    };
  },
};

// BENCH_CPU_PROFILE=file: profiles the measured requests (all but the first) for bench/profile.ts.
const profiler = await cpuProfiler();
let requests = 0;

const handle = await makeVariant(VARIANTS, variant);
const server = http.createServer(async (req, res) => {
  if (requests++ === 1) await profiler.start();
  const bytes = Number(new URL(req.url, 'http://x').searchParams.get('bytes'));
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  let reported = false;
  handle(req, res, bytes, (outcome) => {
    if (reported) return;
    reported = true;
    const used = process.cpuUsage(cpu);
    const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
    process.send({ type: 'served', outcome, cpuUs: used.user + used.system, wallMs });
  });
});
server.listen(0, '127.0.0.1', () => process.send({ type: 'listening', port: server.address().port }));
process.on('message', async (message) => {
  if (message.type === 'dump' && profiler.enabled) {
    await profiler.stop();
    process.send({ type: 'dumped' });
  }
  if (message.type === 'exit') process.exit(0);
});
process.on('disconnect', () => process.exit(0));

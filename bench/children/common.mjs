// What the children share: the servers' variant, listening, gc, drain waits and the CPU profile that
// bench/profile.ts asks for (BENCH_CPU_PROFILE=file) through node:inspector; the clients' bounded
// opening of sockets and their per-socket counts.
import { writeFileSync } from 'node:fs';

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

// What every server child shares: picking its variant, listening, gc, and the CPU profile that
// bench/profile.ts asks for (BENCH_CPU_PROFILE=file) through node:inspector.
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

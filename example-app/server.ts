import cluster from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import Redis from 'ioredis';
import { createHub, type Hub } from '../lib';
import { redisStore } from '../lib/redis';
import { createApp, type DemoEvents } from './app';

// REDIS_URL=redis://… runs the hub on the Redis store, so topics are shared by every process;
// WORKERS=2 (with REDIS_URL) runs two processes on one port with node:cluster: the page works the
// same whichever process each request lands on. Without them: one process, the memory store.
const redisUrl = process.env.REDIS_URL;
const workers = Number(process.env.WORKERS ?? 1);

if (cluster.isPrimary && workers > 1) runPrimary();
else runServer();

/** The store is chosen here, not in app.ts: the routes do not change. */
function buildHub(): { hub: Hub<DemoEvents>; redis: Redis | undefined } {
  if (!redisUrl) return { hub: createHub<DemoEvents>(), redis: undefined };
  const redis = new Redis(redisUrl);
  redis.on('error', (error) => console.warn(`redis: ${error.message}`));
  return { hub: createHub<DemoEvents>({ store: redisStore(redis, { prefix: 'example' }) }), redis };
}

function runServer(): void {
  const { hub, redis } = buildHub();
  // One ticker for the whole deployment: the first worker's (or the only process's).
  const ticks = cluster.isWorker && cluster.worker?.id !== 1 ? { tickIntervalMs: null } : {};
  const app = createApp({ dir: fileURLToPath(new URL('.', import.meta.url)), hub, ...ticks });
  const server = app.listen(Number(process.env.PORT ?? 3000), () => {
    const { port } = server.address() as AddressInfo; // the real port, also when PORT=0
    if (cluster.isWorker) {
      console.log(`worker ${cluster.worker?.id} (pid ${process.pid}) serving http://localhost:${port}`);
      if (cluster.worker?.id !== 1) return;
    }
    console.log(`express-streaming example app listening on http://localhost:${port}`);
    console.log(`  hub store: ${redisUrl ? `Redis at ${redisUrl}` : 'memory (this process)'}`);
    console.log('  /            the live demo page: every capability, working');
    console.log('  /counter, /chat, /ticks, /slow-feed   Server-Sent Events (POST /chat publishes)');
    console.log('  /progress, /rows, /download           chunked, NDJSON, a large file with Range');
    console.log('  /stats, /metrics                      counters as JSON, and for Prometheus');
    console.log('  /range?limit=5, /report.csv, /clock, /tokens   plain streamed bodies');
  });

  // Graceful shutdown: SSE clients get a jittered retry and reconnect (elsewhere, behind a load
  // balancer) spread out; then the hub lets go of its store, and the server stops once requests finish.
  let stopping = false;
  async function shutdown(signal: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: closing the streams, the hub and the server`);
    // Bounded: a download still running (or anything else holding on) is cut off after 5 s.
    setTimeout(() => {
      console.error('shutdown took longer than 5 s; exiting anyway');
      process.exit(1);
    }, 5000).unref();
    app.close(); // the ticker and the metrics subscriptions
    await app.sse.closeAll({ retryMs: 5000, graceMs: 2000 });
    await hub.close();
    await redis?.quit();
    server.close(() => console.log('closed'));
    server.closeIdleConnections();
    // A worker's channel to the primary would hold it: let go of it too.
    cluster.worker?.disconnect();
    // Nothing else holds the event loop now: the process exits by itself, with code 0.
  }
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

/** node:cluster's primary: forks the workers, hands a signal on to them, and exits when they have. */
function runPrimary(): void {
  if (!redisUrl) {
    console.error(
      'WORKERS needs REDIS_URL: processes share topics through Redis (REDIS_URL=redis://127.0.0.1:6379)',
    );
    process.exit(1);
  }
  for (let i = 0; i < workers; i++) cluster.fork();
  const stop = (signal: NodeJS.Signals) => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  cluster.on('exit', () => {
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  });
}

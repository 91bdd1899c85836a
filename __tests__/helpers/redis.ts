import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import Redis from 'ioredis';
import { createClient } from 'redis';
import { freePort } from './servers';
import { until } from './wait';

/** The Redis the tests use: `REDIS_URL`, else the local default. Tests use their own key prefixes. */
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Whether a Redis answers PING at `url`, asked synchronously (describe blocks are built synchronously). */
export function redisAnswers(url = REDIS_URL): boolean {
  const probe = `
    const net = require('node:net');
    const { hostname, port } = new URL(process.argv[1]);
    const socket = net.connect(Number(port || 6379), hostname || '127.0.0.1');
    const fail = () => process.exit(1);
    socket.setTimeout(1000, fail);
    socket.on('error', fail);
    socket.on('connect', () => socket.write('PING\\r\\n'));
    socket.on('data', (data) => process.exit(String(data).startsWith('+PONG') ? 0 : 1));`;
  try {
    execFileSync(process.execPath, ['-e', probe, url], { stdio: 'ignore', timeout: 3000 });
    return true;
  } catch {
    return false;
  }
}

export function findRedisServer(): string | undefined {
  return ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => fs.existsSync(p));
}

/** A key prefix no other test (or run) uses. */
export function uniquePrefix(): string {
  return `test${randomBytes(6).toString('hex')}`;
}

const opened: Array<{ quit(): Promise<unknown> } | { disconnect(): void }> = [];

export function ioredisClient(url = REDIS_URL): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  client.on('error', () => {});
  opened.push(client);
  return client;
}

export async function nodeRedisClient(url = REDIS_URL) {
  const client = createClient({ url, socket: { reconnectStrategy: () => 50 } });
  client.on('error', () => {});
  await client.connect();
  opened.push({ disconnect: () => void client.destroy() });
  return client;
}

/** Closes every client the helpers made; call from afterEach/afterAll. */
export async function closeClients(): Promise<void> {
  for (const client of opened.splice(0)) {
    if ('disconnect' in client) client.disconnect();
    else await client.quit().catch(() => {});
  }
}

/** A Redis of a test's own, on a free port, keeping nothing on disk: for killing, pausing and restarting. */
export class OwnRedis {
  readonly port: number;
  readonly #binary: string;
  #process: ChildProcess | undefined;

  private constructor(binary: string, port: number) {
    this.#binary = binary;
    this.port = port;
  }

  static async start(binary: string): Promise<OwnRedis> {
    const port = await freePort();
    const own = new OwnRedis(binary, port);
    await own.restart();
    return own;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async restart(): Promise<void> {
    this.#process = spawn(
      this.#binary,
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
      },
    );
    await until(() => redisAnswers(this.url), `redis-server on ${this.port}`, 5000);
  }

  /** SIGSTOP: the server holds its connections but answers nothing, as a hung or partitioned server does. */
  pause(): void {
    this.#process?.kill('SIGSTOP');
  }

  resume(): void {
    this.#process?.kill('SIGCONT');
  }

  async kill(): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await exited;
  }
}

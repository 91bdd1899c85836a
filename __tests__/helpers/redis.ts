import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import Redis from 'ioredis';
import type { HubStore } from '../../lib';
import type { IoRedisLike, NodeRedisLike, RedisClientLike } from '../../lib/redis';
import { type Layout, singleServerLayout } from '../../lib/redis/layout';
import { runStoreContract, storeContractChecks } from '../../lib/testing';
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

/** An ioredis client of the current major, for a test's own checks of what the store wrote (`del`, `ttl`, `CLIENT LIST`). */
export function ioredisClient(url = REDIS_URL): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  client.on('error', () => {});
  opened.push(client);
  return client;
}

/**
 * One major of one Redis client, as an app would have it installed. The older majors are npm aliases in
 * devDependencies (`"ioredis4": "npm:ioredis@4"`); the current ones keep their own names.
 */
export interface RedisClientPackage {
  kind: 'ioredis' | 'node-redis';
  /** What `require()` and `import()` load: `ioredis4`, `redis5`, `redis`… */
  module: string;
  /** "ioredis 4.31.0": the installed version, for test names. */
  label: string;
}

function clientPackage(kind: RedisClientPackage['kind'], module: string): RedisClientPackage {
  const { version } = require(`${module}/package.json`) as { version: string };
  return { kind, module, label: `${kind === 'ioredis' ? 'ioredis' : 'redis'} ${version}` };
}

/** Every client major the package supports (its `ioredis` and `redis` peer ranges): the Redis suites run once per entry. */
export const REDIS_CLIENTS: readonly RedisClientPackage[] = [
  clientPackage('ioredis', 'ioredis4'),
  clientPackage('ioredis', 'ioredis5'),
  clientPackage('ioredis', 'ioredis'),
  clientPackage('node-redis', 'redis4'),
  clientPackage('node-redis', 'redis5'),
  clientPackage('node-redis', 'redis'),
];

/** The current major of `kind`: what the tests that are not about the client run on. */
export function currentClient(kind: RedisClientPackage['kind']): RedisClientPackage {
  return REDIS_CLIENTS.find((c) => c.kind === kind && (c.module === 'ioredis' || c.module === 'redis'))!;
}

/** The current major of the other kind: what a second process runs beside the client under test. */
export const partnerOf = (client: RedisClientPackage): RedisClientPackage =>
  currentClient(client.kind === 'ioredis' ? 'node-redis' : 'ioredis');

/**
 * A connected client of `client`'s package, retrying every 50 ms while Redis is away (ioredis gives up
 * a command after one retry, so a publish fails while Redis is down), closed by {@link closeClients}.
 */
export async function connectRedis(client: RedisClientPackage, url = REDIS_URL): Promise<RedisClientLike> {
  if (client.kind === 'ioredis') {
    const IoRedis = require(client.module) as new (url: string, options: object) => IoRedisLike;
    const connection = new IoRedis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    connection.on('error', () => {});
    opened.push(connection);
    return connection;
  }
  const { createClient } = require(client.module) as {
    createClient(options: object): NodeRedisLike;
  };
  const connection = createClient({ url, socket: { reconnectStrategy: () => 50 } });
  connection.on('error', () => {});
  await connection.connect();
  opened.push({
    // redis 5 and 6 destroy(); redis 4 disconnect()
    disconnect: () =>
      void (connection.destroy ? connection.destroy() : connection.disconnect?.().catch(() => {})),
  });
  return connection;
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
  /** Where `SAVE` writes its snapshot and a restart reads it back (none: nothing on disk at all). */
  readonly #dir: string | undefined;
  #process: ChildProcess | undefined;

  private constructor(binary: string, port: number, dir: string | undefined) {
    this.#binary = binary;
    this.port = port;
    this.#dir = dir;
  }

  /** `dir`: a directory of the test's own, for snapshots taken by `SAVE` only (never on a schedule). */
  static async start(binary: string, dir?: string): Promise<OwnRedis> {
    const port = await freePort();
    const own = new OwnRedis(binary, port, dir);
    await own.restart();
    return own;
  }

  /** The snapshot file a restart loads, when it exists (see `start`'s `dir`). */
  get snapshot(): string | undefined {
    return this.#dir === undefined ? undefined : `${this.#dir}/dump.rdb`;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async restart(): Promise<void> {
    const disk = this.#dir === undefined ? [] : ['--dir', this.#dir, '--dbfilename', 'dump.rdb'];
    this.#process = spawn(
      this.#binary,
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...disk],
      { stdio: 'ignore' },
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

/** Every key of the topic's log gone, as an eviction or a flush takes them (`layout`: a Cluster's, else one server's). */
export async function loseLog(
  admin: Pick<Redis, 'del'>,
  prefix: string,
  topic: string,
  layout: Layout = singleServerLayout(prefix),
): Promise<void> {
  const { meta, log, idempotency } = layout.keysOf(topic);
  await admin.del(meta, log, idempotency);
}

/** Redis as restored from a snapshot taken when the topic's head was `head`: later entries gone. */
export async function rewindTopic(
  admin: Pick<Redis, 'xrange' | 'multi'>,
  prefix: string,
  topic: string,
  head: number,
  layout: Layout = singleServerLayout(prefix),
): Promise<void> {
  const { meta, log } = layout.keysOf(topic);
  const kept = await admin.xrange(log, '-', `${head}-0`);
  const restore = admin.multi().del(log);
  for (const [id, fields] of kept) restore.xadd(log, id, ...fields);
  await restore.hset(meta, 'seq', String(head)).exec();
}

/**
 * The store contract on Redis stores of one prefix (`makeStore`), losing and rewinding logs through
 * `admin` as `layout` places them: every check must pass, none skipped.
 */
export async function expectRedisContract(
  makeStore: () => Promise<HubStore>,
  admin: Pick<Redis, 'del' | 'xrange' | 'multi'>,
  prefix: string,
  layout: Layout = singleServerLayout(prefix),
): Promise<void> {
  const result = await runStoreContract(makeStore, {
    loseLog: (topic) => loseLog(admin, prefix, topic, layout),
    rewind: (topic, head) => rewindTopic(admin, prefix, topic, head, layout),
    sharedEngine: true,
    timeoutMs: 3000,
  });
  expect({
    failed: result.failed.map((failure) => `${failure.name}: ${failure.error.message}`),
    skipped: result.skipped,
  }).toEqual({ failed: [], skipped: [] });
  expect(result.passed).toEqual(storeContractChecks);
}

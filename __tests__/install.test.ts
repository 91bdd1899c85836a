import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { requireComponent } from './helpers/components';
import { dataOf, parseEvents, range } from './helpers/hub-server';
import { packTarball, removeScratch, scratchDir } from './helpers/package';
import { HUB_SERVER, publishVia, startHubProcess, stopHubProcesses } from './helpers/processes';
import { REDIS_URL, type RedisClientPackage, redisAnswers, uniquePrefix } from './helpers/redis';
import { closeAll } from './helpers/servers';
import { RawSseClient } from './helpers/sse-client';
import { until } from './helpers/wait';

/**
 * The package as a CommonJS Express 4 app installs it: `npm pack`, then a plain `npm install` of the
 * tarball (no --legacy-peer-deps) beside the Redis clients the app already has, then a two-process hub
 * on `redisStore` in that app. Each supported client major is in one of the apps; the npm cache is
 * shared and installs prefer it, so only what it lacks is fetched.
 */
const APPS = [
  { ioredis: '^4', redis: '^5' },
  { ioredis: '^5', redis: '^4' },
  { ioredis: '^6', redis: '^6' },
].map((clients) => ({ ...clients, name: `ioredis ${clients.ioredis} and redis ${clients.redis}` }));

const redis = requireComponent(`Redis at ${REDIS_URL}`, redisAnswers(), 'REQUIRE_REDIS');
// npm installs from its cache first, else from the registry: the suite needs npm's network, or a warm cache
const registry = requireComponent('the npm registry (or a warm npm cache)', true, 'REQUIRE_NPM');

interface Installed {
  readonly dir: string;
  /** How each `npm install` ended: its exit code and what it printed. */
  readonly installs: Array<{ code: number; output: string }>;
  readonly versions: Record<string, string>;
}

function npm(cwd: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      'npm',
      [...args, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'],
      { cwd, timeout: 180_000, env: { ...process.env, NODE_OPTIONS: '' } },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
    );
  });
}

/** A fresh CommonJS Express 4 app beside the given clients, with the tarball installed, then installed again. */
async function install(scratch: string, tarball: string, app: (typeof APPS)[number]): Promise<Installed> {
  const dir = path.join(scratch, `app-ioredis${app.ioredis.slice(1)}-redis${app.redis.slice(1)}`);
  fs.mkdirSync(dir);
  const dependencies = { express: '^4', ioredis: app.ioredis, redis: app.redis };
  fs.writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'legacy-app', private: true, dependencies }),
  );
  fs.copyFileSync(HUB_SERVER, path.join(dir, 'server.js'));
  // the tarball beside what the app has, then a later plain install, as the app's next deploy runs it
  const installs = [await npm(dir, ['install', tarball])];
  if (installs[0]!.code === 0) installs.push(await npm(dir, ['install']));
  const versions: Record<string, string> = {};
  for (const name of ['express', 'ioredis', 'redis', 'express-streaming']) {
    const manifest = path.join(dir, 'node_modules', name, 'package.json');
    if (fs.existsSync(manifest)) versions[name] = JSON.parse(fs.readFileSync(manifest, 'utf8')).version;
  }
  return { dir, installs, versions };
}

registry.describe(`npm install of the packed package${registry.label}`, () => {
  let scratch: string | undefined;
  const installed = new Map<string, Promise<Installed>>();
  beforeAll(async () => {
    scratch = scratchDir('install');
    const tarball = await packTarball(scratch);
    // the installs run side by side; each test waits for its own
    for (const app of APPS) installed.set(app.name, install(scratch, tarball, app));
  }, 60_000);
  afterEach(async () => {
    await stopHubProcesses();
    await closeAll();
  });
  afterAll(async () => {
    await Promise.allSettled(installed.values());
    removeScratch(scratch);
  });

  describe.each(APPS)('a fresh CommonJS Express 4 app beside $name', (app) => {
    it('installs the packed package with a plain npm install (no --legacy-peer-deps), and again later', async () => {
      const { installs, versions } = await installed.get(app.name)!;
      expect(installs.map((i) => i.code)).toEqual([0, 0]);
      expect(installs.map((i) => i.output).join('')).not.toMatch(/ERESOLVE|peer dep/i);
      expect(versions).toMatchObject({
        express: expect.stringMatching(/^4\./),
        ioredis: expect.stringMatching(new RegExp(`^${app.ioredis.slice(1)}\\.`)),
        redis: expect.stringMatching(new RegExp(`^${app.redis.slice(1)}\\.`)),
        'express-streaming': expect.any(String),
      });
    }, 200_000);

    redis.describe(`runs a two-process hub on redisStore${redis.label}`, () => {
      it('publish on one process (each client), subscribe on the other, and resume there with Last-Event-ID', async () => {
        const { dir, installs, versions } = await installed.get(app.name)!;
        expect(installs[0]!.code).toBe(0);
        const server = path.join(dir, 'server.js');
        const client = (kind: RedisClientPackage['kind'], module: string): RedisClientPackage => ({
          kind,
          module,
          label: `${module} ${versions[module]} in the app`,
        });
        const prefix = uniquePrefix();
        const [onIoredis, onRedis] = await Promise.all([
          startHubProcess(client('ioredis', 'ioredis'), REDIS_URL, prefix, server),
          startHubProcess(client('node-redis', 'redis'), REDIS_URL, prefix, server),
        ]);
        // subscribed on the node-redis process, published on the ioredis one
        const first = new RawSseClient(onRedis.port, '/feed/t');
        await until(() => first.body.includes('id: '), 'subscribed on the node-redis process');
        for (const n of range(1, 3)) await publishVia(onIoredis.port, 't', n);
        await until(() => dataOf(first).length === 3, 'three events on the node-redis process');
        first.close();
        // published on the node-redis process while the client is away; it resumes on the ioredis one
        for (const n of range(4, 6)) await publishVia(onRedis.port, 't', n);
        const { lastId } = parseEvents(first.body);
        const again = new RawSseClient(onIoredis.port, '/feed/t', { 'Last-Event-ID': lastId! });
        await until(() => dataOf(again).length === 3, 'what it missed, on the ioredis process');
        expect(dataOf(again)).toEqual(range(4, 6));
      }, 200_000);
    });
  });
});

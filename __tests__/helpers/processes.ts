import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { RedisClientPackage } from './redis';
import { until } from './wait';

const ROOT = path.resolve(__dirname, '..', '..');
const started = new Set<ChildProcess>();

/** What a child process printed so far: each stream, and both in the order they arrived. */
export interface Printed {
  stdout: string;
  stderr: string;
  all: string;
}

/** Runs `node …args` from the package root, collecting what it prints; `exited` resolves with how it ended. */
export function spawnNode(
  args: string[],
  env: NodeJS.ProcessEnv,
): {
  child: ChildProcess;
  printed: Printed;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
} {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
  const printed: Printed = { stdout: '', stderr: '', all: '' };
  for (const name of ['stdout', 'stderr'] as const) {
    child[name]?.on('data', (data: Buffer) => {
      printed[name] += data.toString();
      printed.all += data.toString();
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, printed, exited };
}

export interface HubProcess {
  readonly port: number;
  readonly child: ChildProcess;
  /** SIGKILL: the process dies at once, as in a crash. */
  kill(): void;
}

/** The one process of a multi-process deployment the tests start (copied into fresh apps by the install test). */
export const HUB_SERVER = path.join(__dirname, '..', 'fixtures', 'redis', 'hub-server.cjs');

/**
 * Starts the hub server (`script`: the fixture, or a copy of it in an app of its own) on `client` in its
 * own process, with the package by its name.
 */
export async function startHubProcess(
  client: RedisClientPackage,
  redisUrl: string,
  prefix: string,
  script = HUB_SERVER,
): Promise<HubProcess> {
  const { child, printed } = spawnNode([script, client.module, redisUrl, prefix], {
    ...process.env,
    NODE_OPTIONS: '',
  });
  started.add(child);
  await until(
    () => printed.stdout.includes('\n') || child.exitCode !== null,
    () => `the ${client.label} process to listen (${printed.stderr})`,
    10_000,
  );
  if (child.exitCode !== null) throw new Error(`the ${client.label} process exited: ${printed.stderr}`);
  const { port } = JSON.parse(printed.stdout.split('\n')[0]!) as { port: number };
  return { port, child, kill: () => child.kill('SIGKILL') };
}

export async function stopHubProcesses(): Promise<void> {
  const children = [...started];
  started.clear();
  await Promise.all(
    children.map((child) => {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      return exited;
    }),
  );
}

/** POST /publish/:topic?data=…(&key=…) on one process; resolves with the id. */
export function publishVia(port: number, topic: string, data: string, key?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: `/publish/${topic}?data=${encodeURIComponent(data)}${key === undefined ? '' : `&key=${encodeURIComponent(key)}`}`,
        agent: false,
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => {
          body += d.toString();
        });
        res.on('end', () => {
          try {
            const parsed = JSON.parse(body) as { id?: string; error?: string };
            if (parsed.id) resolve(parsed.id);
            else reject(new Error(parsed.error ?? body));
          } catch {
            reject(new Error(`${res.statusCode}: ${body}`));
          }
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/**
 * A load balancer's part, as small as it gets: each new connection goes to the first backend that
 * accepts one, so a client reconnecting after its process died lands on another.
 */
export async function balancer(ports: () => number[]): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    const tryBackend = (candidates: number[]) => {
      const [port, ...rest] = candidates;
      if (port === undefined) {
        client.destroy();
        return;
      }
      const backend = net.connect(port, '127.0.0.1');
      let connected = false;
      backend.once('error', () => {
        if (connected) client.destroy();
        else tryBackend(rest);
      });
      backend.once('connect', () => {
        connected = true;
        sockets.add(backend);
        backend.on('close', () => {
          sockets.delete(backend);
          client.destroy();
        });
        client.pipe(backend).pipe(client);
      });
    };
    tryBackend(ports());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

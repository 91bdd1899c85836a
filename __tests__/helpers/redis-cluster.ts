import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Redis from 'ioredis';
import type { RedisClientLike } from '../../lib/redis';
import type { RedisClientPackage } from './redis';
import { freePort } from './servers';
import { untilAsync } from './wait';

const run = promisify(execFile);

export function findRedisCli(): string | undefined {
  return ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli'].find((p) => fs.existsSync(p));
}

interface ClusterNode {
  readonly port: number;
  readonly busPort: number;
  process: ChildProcess | undefined;
}

/**
 * A Redis Cluster of a test's own: `size` primaries on free ports, no replicas, keeping nothing on disk
 * but each node's cluster configuration (so a restarted node takes its slots back, empty). A node down
 * leaves the others serving their slots (`cluster-require-full-coverage no`).
 */
export class OwnCluster {
  readonly #binary: string;
  readonly #dir: string;
  readonly nodes: ClusterNode[];
  readonly #admins = new Map<number, Redis>();

  private constructor(binary: string, dir: string, nodes: ClusterNode[]) {
    this.#binary = binary;
    this.#dir = dir;
    this.nodes = nodes;
  }

  static async start(binary: string, cli: string, size = 3): Promise<OwnCluster> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'express-streaming-cluster-'));
    const nodes: ClusterNode[] = [];
    for (let i = 0; i < size; i++)
      nodes.push({ port: await freePort(), busPort: await freePort(), process: undefined });
    const cluster = new OwnCluster(binary, dir, nodes);
    for (const node of nodes) cluster.#spawn(node);
    for (const node of nodes) await cluster.#answers(node);
    const addresses = nodes.map((node) => `127.0.0.1:${node.port}`);
    await run(cli, ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes']);
    await cluster.ready();
    return cluster;
  }

  /** The URLs of the nodes a client starts from (any one would do). */
  get rootUrls(): string[] {
    return this.nodes.map((node) => `redis://127.0.0.1:${node.port}`);
  }

  /** Until every node up says the cluster is ok and agrees on who owns all slots. */
  async ready(): Promise<void> {
    await untilAsync(
      async () => {
        for (const node of this.nodes) {
          if (node.process === undefined) continue;
          const info = String(
            await this.#admin(node)
              .call('CLUSTER', 'INFO')
              .catch(() => ''),
          );
          if (!info.includes('cluster_state:ok') || !info.includes('cluster_slots_ok:16384')) return false;
        }
        return true;
      },
      'the cluster to be ok',
      20_000,
    );
  }

  /** Which node (index) owns `slot`. */
  async ownerOf(slot: number): Promise<number> {
    const up = this.nodes.find((node) => node.process !== undefined)!;
    const ranges = (await this.#admin(up).call('CLUSTER', 'SLOTS')) as Array<
      [number, number, [string, number]]
    >;
    const range = ranges.find(([from, to]) => slot >= from && slot <= to);
    if (range === undefined) throw new Error(`no node owns slot ${slot}`);
    return this.nodes.findIndex((node) => node.port === Number(range[2][1]));
  }

  /**
   * A new node, replica of primary `of`, once it holds the primary's data and follows its stream of
   * writes (replication stays asynchronous: a write the primary acknowledged may not have reached it).
   */
  async addReplica(of: number, cli: string): Promise<number> {
    const node: ClusterNode = { port: await freePort(), busPort: await freePort(), process: undefined };
    this.nodes.push(node);
    this.#spawn(node);
    await this.#answers(node);
    const primary = this.nodes[of]!;
    const primaryId = String(await this.#admin(primary).call('CLUSTER', 'MYID'));
    await run(cli, [
      ...['--cluster', 'add-node', `127.0.0.1:${node.port}`, `127.0.0.1:${primary.port}`],
      ...['--cluster-slave', '--cluster-master-id', primaryId],
    ]);
    await untilAsync(
      async () => {
        const info = String(
          await this.#admin(node)
            .call('INFO', 'replication')
            .catch(() => ''),
        );
        return info.includes('master_link_status:up') && !info.includes('master_sync_in_progress:1');
      },
      `the replica on ${node.port} in sync`,
      20_000,
    );
    await this.ready();
    return this.nodes.length - 1;
  }

  /**
   * Moves `slot` to node `to` as `redis-cli --cluster reshard` does — importing, migrating, its keys
   * moved in batches, then the new owner told to every node — while clients go on: they are sent on
   * by ASK while it moves and MOVED after.
   */
  async moveSlot(slot: number, to: number): Promise<void> {
    const from = await this.ownerOf(slot);
    if (from === to) return;
    const [source, target] = [this.nodes[from]!, this.nodes[to]!].map((node) => this.#admin(node));
    const [sourceId, targetId] = await Promise.all(
      [source!, target!].map((admin) => admin.call('CLUSTER', 'MYID')),
    );
    await target!.call('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', String(sourceId));
    await source!.call('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', String(targetId));
    for (;;) {
      const keys = (await source!.call('CLUSTER', 'GETKEYSINSLOT', String(slot), '100')) as string[];
      if (keys.length === 0) break;
      await source!.call(
        'MIGRATE',
        '127.0.0.1',
        String(this.nodes[to]!.port),
        '',
        '0',
        '5000',
        'KEYS',
        ...keys,
      );
    }
    for (const node of this.nodes) {
      await this.#admin(node).call('CLUSTER', 'SETSLOT', String(slot), 'NODE', String(targetId));
    }
    await this.ready();
  }

  /** A node killed and started again: it keeps its slots, and has lost its keys. */
  async restart(index: number): Promise<void> {
    await this.kill(index);
    this.#spawn(this.nodes[index]!);
    await this.#answers(this.nodes[index]!);
    await this.ready();
  }

  async kill(index: number): Promise<void> {
    const node = this.nodes[index]!;
    const child = node.process;
    node.process = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    for (const admin of this.#admins.values()) admin.disconnect();
    this.#admins.clear();
    for (let i = 0; i < this.nodes.length; i++) await this.kill(i);
    fs.rmSync(this.#dir, { recursive: true, force: true });
  }

  #spawn(node: ClusterNode): void {
    const conf = path.join(this.#dir, `nodes-${node.port}.conf`);
    node.process = spawn(
      this.#binary,
      [
        ...['--port', String(node.port), '--bind', '127.0.0.1', '--dir', this.#dir],
        ...['--cluster-enabled', 'yes', '--cluster-port', String(node.busPort)],
        ...['--cluster-config-file', conf, '--cluster-node-timeout', '1000'],
        ...['--cluster-require-full-coverage', 'no', '--save', '', '--appendonly', 'no'],
      ],
      { stdio: 'ignore' },
    );
  }

  async #answers(node: ClusterNode): Promise<void> {
    await untilAsync(
      () =>
        this.#admin(node)
          .ping()
          .then(
            () => true,
            () => false,
          ),
      `redis-server on ${node.port}`,
      5000,
    );
  }

  /** A plain connection to one node, for the test's own looks (CLUSTER INFO, SLOTS), kept per node. */
  #admin(node: ClusterNode): Redis {
    let admin = this.#admins.get(node.port);
    if (admin === undefined) {
      admin = new Redis(node.port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
      admin.on('error', () => {});
      this.#admins.set(node.port, admin);
    }
    return admin;
  }
}

const clusterClients: Array<() => Promise<unknown>> = [];

/** A connected Cluster client of `client`'s package, as an app would make it; closed by {@link closeClusterClients}. */
export async function connectCluster(
  client: RedisClientPackage,
  cluster: OwnCluster,
): Promise<RedisClientLike> {
  if (client.kind === 'ioredis') {
    const IoRedis = require(client.module) as {
      Cluster: new (
        nodes: object[],
        options: object,
      ) => RedisClientLike & { disconnect(): void; on(e: string, l: () => void): void };
    };
    const connection = new IoRedis.Cluster(
      cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
      { redisOptions: { maxRetriesPerRequest: 1 }, clusterRetryStrategy: () => 50 },
    );
    connection.on('error', () => {});
    clusterClients.push(async () => {
      connection.disconnect();
    });
    return connection;
  }
  const { createCluster } = require(client.module) as {
    createCluster(options: object): RedisClientLike & {
      connect(): Promise<unknown>;
      on(e: string, l: () => void): void;
      destroy?(): void;
      disconnect?(): Promise<unknown>;
    };
  };
  const connection = createCluster({
    rootNodes: cluster.rootUrls.map((url) => ({ url })),
    defaults: { socket: { reconnectStrategy: () => 50 } },
  });
  connection.on('error', () => {});
  await connection.connect();
  clusterClients.push(async () => {
    if (connection.destroy) connection.destroy();
    else await Promise.resolve(connection.disconnect?.()).catch(() => {});
  });
  return connection;
}

export async function closeClusterClients(): Promise<void> {
  for (const close of clusterClients.splice(0)) await close().catch(() => {});
}

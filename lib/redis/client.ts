import { describeValue, hasMethod } from '../core/util';
import { ioRedisClusterCommands, nodeRedisClusterCommands } from './cluster';
import { ioRedisCommands, nodeRedisCommands } from './single-server';

/**
 * What the store needs of the app's Redis client, whichever it is: one raw command at a time, a
 * duplicate connection for the blocking reader, and whether the connection is up. Both clients are
 * recognised by behaviour, so the package never imports either.
 */
export interface Commands {
  /** Whether the client is a Redis Cluster's: keys are then laid out by shard (see `clusterLayout`). */
  readonly cluster: boolean;
  /**
   * Sends one command, as strings; resolves with Redis's raw reply. `key` is the command's first key,
   * by which a Cluster client routes it (ioredis finds it by itself, node-redis must be told).
   */
  send(args: readonly string[], key?: string): Promise<unknown>;
  /** What the connection is doing, for error messages: "ioredis status: reconnecting". */
  state(): { ready: boolean; description: string };
  /**
   * A new connection with the same options, named, for the live reader alone; commands wait until it
   * is connected. `onLost` is called each time the connection, once up, is lost (the client
   * reconnects by itself, under a new client id); a command pending then fails instead of being
   * sent again.
   */
  duplicate(name: string, onLost: () => void): Commands;
  /** Closes this connection (the reader's; never the app's own). */
  close(): Promise<void>;
}

/** An ioredis client (`new Redis(…)`), as far as the store uses it. */
export interface IoRedisLike {
  call(command: string, ...args: string[]): Promise<unknown>;
  duplicate(override?: { connectionName?: string; autoResendUnfulfilledCommands?: boolean }): IoRedisLike;
  readonly status: string;
  on(event: 'error' | 'ready' | 'close', listener: (...args: unknown[]) => void): unknown;
  disconnect(): void;
}

/** A node-redis client (`createClient(…)` of the `redis` package), as far as the store uses it. */
export interface NodeRedisLike {
  sendCommand(args: string[]): Promise<unknown>;
  duplicate(overrides?: { name?: string }): NodeRedisLike;
  connect(): Promise<unknown>;
  readonly isOpen: boolean;
  readonly isReady: boolean;
  on(event: 'error' | 'ready' | 'reconnecting', listener: (...args: unknown[]) => void): unknown;
  disconnect?(): Promise<unknown>;
  destroy?(): void;
}

/** An ioredis Cluster (`new Redis.Cluster(…)`), as far as the store uses it. */
export interface IoRedisClusterLike {
  readonly isCluster: boolean;
  call(command: string, ...args: string[]): Promise<unknown>;
  duplicate(startupNodes?: unknown[], options?: { redisOptions?: object }): IoRedisClusterLike;
  readonly options?: { redisOptions?: object };
  readonly status: string;
  on(event: 'error' | 'ready' | 'close', listener: (...args: unknown[]) => void): unknown;
  disconnect(): void;
}

/** A node-redis Cluster (`createCluster(…)` of the `redis` package), connected, as far as the store uses it. */
export interface NodeRedisClusterLike {
  sendCommand(
    firstKey: string | undefined,
    isReadonly: boolean | undefined,
    args: string[],
  ): Promise<unknown>;
  duplicate(overrides?: { minimizeConnections?: boolean }): NodeRedisClusterLike;
  connect(): Promise<unknown>;
  getSlotMaster(slot: number): unknown;
  readonly isOpen: boolean;
  on(event: 'error', listener: (...args: unknown[]) => void): unknown;
  disconnect?(): Promise<unknown>;
  destroy?(): void;
}

export type RedisClientLike = IoRedisLike | NodeRedisLike | IoRedisClusterLike | NodeRedisClusterLike;

/**
 * The clients the store is tested with, as the `ioredis` and `redis` peer ranges give them. node-redis
 * 3 answers through callbacks; before 4.2 it lacks `isReady`, and before 4.5.1 a client that is
 * reconnecting cannot be closed, so the reader's connection would outlive `hub.close()`.
 */
const SUPPORTED =
  'an ioredis client or Cluster (new Redis(), new Redis.Cluster(); ioredis 4, 5 or 6) or a connected node-redis client or cluster (createClient(), createCluster() of "redis" 4.5.1+, 5 or 6)';

export function commandsOf(client: unknown, onError: (error: unknown) => void): Commands {
  if (isIoRedisCluster(client)) return ioRedisClusterCommands(client, onError);
  if (isNodeRedisCluster(client)) return nodeRedisClusterCommands(client, onError);
  if (isIoRedis(client)) return ioRedisCommands(client, onError);
  if (isNodeRedis(client)) return nodeRedisCommands(client, onError);
  if (isCallbackNodeRedis(client)) {
    throw new TypeError(
      `redisStore: a node-redis 3 client (its callback API: send_command(…, callback)) cannot be used; expected ${SUPPORTED}`,
    );
  }
  throw new TypeError(`redisStore: expected ${SUPPORTED}, got ${describeValue(client)}`);
}

function isIoRedis(client: unknown): client is IoRedisLike {
  return (
    hasMethod(client, 'call') &&
    hasMethod(client, 'duplicate') &&
    typeof (client as { status?: unknown }).status === 'string'
  );
}

function isNodeRedis(client: unknown): client is NodeRedisLike {
  return (
    hasMethod(client, 'sendCommand') &&
    hasMethod(client, 'duplicate') &&
    typeof (client as { isOpen?: unknown }).isOpen === 'boolean' &&
    typeof (client as { isReady?: unknown }).isReady === 'boolean'
  );
}

function isIoRedisCluster(client: unknown): client is IoRedisClusterLike {
  return isIoRedis(client) && (client as { isCluster?: unknown }).isCluster === true;
}

function isNodeRedisCluster(client: unknown): client is NodeRedisClusterLike {
  return (
    hasMethod(client, 'sendCommand') &&
    hasMethod(client, 'getSlotMaster') &&
    typeof (client as { isOpen?: unknown }).isOpen === 'boolean'
  );
}

/** node-redis 3 and older: `send_command` with a callback, `connected` where 4 has `isOpen`. */
function isCallbackNodeRedis(client: unknown): boolean {
  return (
    hasMethod(client, 'send_command') &&
    typeof (client as { connected?: unknown }).connected === 'boolean' &&
    !('isOpen' in (client as object))
  );
}

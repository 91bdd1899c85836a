import { describeValue, hasMethod, ignore } from '../core/util';

/**
 * What the store needs of the app's Redis client, whichever it is: one raw command at a time, a
 * duplicate connection for the blocking reader, and whether the connection is up. Both clients are
 * recognised by behaviour, so the package never imports either.
 */
export interface Commands {
  /** Sends one command, as strings; resolves with Redis's raw reply. */
  send(args: readonly string[]): Promise<unknown>;
  /** What the connection is doing, for error messages: "ioredis status: reconnecting". */
  state(): { ready: boolean; description: string };
  /** A new connection with the same options, connected: the live reader's own. */
  duplicate(name: string): Promise<Commands>;
  /** Closes this connection (the reader's; never the app's own). */
  close(): Promise<void>;
}

/** An ioredis client (`new Redis(…)`), as far as the store uses it. */
export interface IoRedisLike {
  call(command: string, ...args: string[]): Promise<unknown>;
  duplicate(): IoRedisLike;
  readonly status: string;
  on(event: 'error', listener: (error: unknown) => void): unknown;
  disconnect(): void;
}

/** A node-redis client (`createClient(…)` of the `redis` package), as far as the store uses it. */
export interface NodeRedisLike {
  sendCommand(args: string[]): Promise<unknown>;
  duplicate(): NodeRedisLike;
  connect(): Promise<unknown>;
  readonly isOpen: boolean;
  readonly isReady: boolean;
  on(event: 'error', listener: (error: unknown) => void): unknown;
  disconnect?(): Promise<unknown>;
  destroy?(): void;
}

export type RedisClientLike = IoRedisLike | NodeRedisLike;

export function commandsOf(client: unknown, onError: (error: unknown) => void): Commands {
  if (isIoRedis(client)) return ioRedisCommands(client, onError);
  if (isNodeRedis(client)) return nodeRedisCommands(client, onError);
  throw new TypeError(
    `redisStore: expected an ioredis client (new Redis()) or a node-redis client (createClient() of "redis"), got ${describeValue(client)}`,
  );
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
    typeof (client as { isOpen?: unknown }).isOpen === 'boolean'
  );
}

function ioRedisCommands(client: IoRedisLike, onError: (error: unknown) => void): Commands {
  return {
    send: ([command, ...args]) => client.call(command!, ...args),
    state: () => ({ ready: client.status === 'ready', description: `ioredis status: ${client.status}` }),
    async duplicate(name) {
      const copy = client.duplicate();
      copy.on('error', onError);
      // ioredis connects by itself and queues commands until it is ready
      await copy.call('CLIENT', 'SETNAME', name);
      return ioRedisCommands(copy, onError);
    },
    close() {
      // the reader's connection: no need to wait for its pending blocking read
      client.disconnect();
      return Promise.resolve();
    },
  };
}

function nodeRedisCommands(client: NodeRedisLike, onError: (error: unknown) => void): Commands {
  return {
    send: (args) => client.sendCommand([...args]),
    state: () => ({
      ready: client.isReady,
      description: `node-redis ${client.isOpen ? (client.isReady ? 'ready' : 'reconnecting') : 'closed'}`,
    }),
    async duplicate(name) {
      const copy = client.duplicate();
      // node-redis throws an 'error' event nobody listens to: the reader's errors are its own business
      copy.on('error', onError);
      await copy.connect();
      await copy.sendCommand(['CLIENT', 'SETNAME', name]);
      return nodeRedisCommands(copy, onError);
    },
    async close() {
      // the reader's connection: no need to wait for its pending blocking read
      if (typeof client.destroy === 'function') client.destroy();
      else await client.disconnect?.().catch(ignore);
    },
  };
}

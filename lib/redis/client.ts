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
  duplicate(override?: { connectionName?: string }): IoRedisLike;
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

/**
 * The clients the store is tested with, as the `ioredis` and `redis` peer ranges give them. node-redis
 * 3 answers through callbacks; before 4.2 it lacks `isReady`, and before 4.5.1 a client that is
 * reconnecting cannot be closed, so the reader's connection would outlive `hub.close()`.
 */
const SUPPORTED =
  'an ioredis client (new Redis(), ioredis 4, 5 or 6) or a connected node-redis client (createClient() of "redis" 4.5.1+, 5 or 6)';

export function commandsOf(client: unknown, onError: (error: unknown) => void): Commands {
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

/** node-redis 3 and older: `send_command` with a callback, `connected` where 4 has `isOpen`. */
function isCallbackNodeRedis(client: unknown): boolean {
  return (
    hasMethod(client, 'send_command') &&
    typeof (client as { connected?: unknown }).connected === 'boolean' &&
    !('isOpen' in (client as object))
  );
}

function ioRedisCommands(client: IoRedisLike, onError: (error: unknown) => void): Commands {
  return {
    send: ([command, ...args]) => client.call(command!, ...args),
    state: () => ({ ready: client.status === 'ready', description: `ioredis status: ${client.status}` }),
    async duplicate(name) {
      // named in the options too: ioredis reconnects a dropped connection by itself (and sends the
      // pending XREAD again), naming it anew only from its options
      const copy = client.duplicate({ connectionName: name });
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

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
  duplicate(): NodeRedisLike;
  connect(): Promise<unknown>;
  readonly isOpen: boolean;
  readonly isReady: boolean;
  on(event: 'error' | 'ready' | 'reconnecting', listener: (...args: unknown[]) => void): unknown;
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
    duplicate(name, onLost) {
      // Named in the options, so a reconnection is named too. A command the connection had sent when
      // it was lost is dropped by ioredis without an answer when it does not resend (a blocking read
      // resent blind would also keep the old client id): fail it here, the reader reads again.
      const copy = client.duplicate({ connectionName: name, autoResendUnfulfilledCommands: false });
      copy.on('error', onError);
      const sent = new Set<(error: Error) => void>();
      onceUpThenLost(copy, 'close', () => {
        for (const fail of sent) fail(new Error('the connection was lost'));
        sent.clear();
        onLost();
      });
      return {
        ...ioRedisCommands(copy, onError),
        send: ([command, ...args]) =>
          new Promise((resolve, reject) => {
            sent.add(reject);
            copy
              .call(command!, ...args)
              .then(resolve, reject)
              .finally(() => sent.delete(reject));
          }),
      };
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
    duplicate(name, onLost) {
      const copy = client.duplicate();
      // node-redis throws an 'error' event nobody listens to: the reader's errors are its own business
      copy.on('error', onError);
      onceUpThenLost(copy, 'reconnecting', onLost);
      // node-redis refuses commands before connect(): they wait for it here instead
      const connected = copy.connect().then(() => copy.sendCommand(['CLIENT', 'SETNAME', name]));
      connected.catch(ignore);
      return {
        ...nodeRedisCommands(copy, onError),
        send: (args) => connected.then(() => copy.sendCommand([...args])),
      };
    },
    async close() {
      // the reader's connection: no need to wait for its pending blocking read
      if (typeof client.destroy === 'function') client.destroy();
      else await client.disconnect?.().catch(ignore);
    },
  };
}

/** Calls `onLost` each time a connection that was ready emits `event` (it went down). */
function onceUpThenLost<E extends string>(
  client: { on(event: 'ready' | E, listener: () => void): unknown },
  event: E,
  onLost: () => void,
): void {
  let up = false;
  client.on('ready', () => {
    up = true;
  });
  client.on(event, () => {
    if (!up) return;
    up = false;
    onLost();
  });
}

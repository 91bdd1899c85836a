import { ignore, settledWithin } from '../core/util';
import type { Commands, IoRedisLike, NodeRedisLike } from './client';

/* The commands of a client of one Redis server, ioredis's or node-redis's. */

export function ioRedisCommands(client: IoRedisLike, onError: (error: unknown) => void): Commands {
  return {
    cluster: false,
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

export function nodeRedisCommands(client: NodeRedisLike, onError: (error: unknown) => void): Commands {
  return {
    cluster: false,
    send: (args) => client.sendCommand([...args]),
    state: () => ({
      ready: client.isReady,
      description: `node-redis ${client.isOpen ? (client.isReady ? 'ready' : 'reconnecting') : 'closed'}`,
    }),
    duplicate(name, onLost) {
      // named in the options, so that each reconnection is named too
      const copy = client.duplicate({ name });
      // node-redis throws an 'error' event nobody listens to: the reader's errors are its own business
      copy.on('error', onError);
      onceUpThenLost(copy, 'reconnecting', onLost);
      // node-redis refuses commands before connect(): they wait for it here instead
      const connected = copy.connect();
      connected.catch(ignore);
      const commands = nodeRedisCommands(copy, onError);
      return {
        ...commands,
        send: (args) => connected.then(() => copy.sendCommand([...args])),
        close: () => closeOnceConnected(connected, commands),
      };
    },
    async close() {
      // the reader's connection: no need to wait for its pending blocking read
      if (!client.isOpen) return;
      if (typeof client.destroy === 'function') client.destroy();
      else await client.disconnect?.().catch(ignore);
    },
  };
}

/**
 * node-redis destroyed while its socket connects may go on to connect and stay open: a connection being
 * made is let finish first (at once on a Redis that answers), and closed again after.
 */
export async function closeOnceConnected(connected: Promise<unknown>, commands: Commands): Promise<void> {
  await settledWithin(connected, 500);
  await commands.close().catch(ignore);
  void connected.finally(() => commands.close()).catch(ignore);
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

import { ignore } from '../core/util';
import type { Commands, IoRedisClusterLike, NodeRedisClusterLike } from './client';
import { closeOnceConnected } from './single-server';

/* The commands of a Redis Cluster's client, ioredis's or node-redis's: routed by the command's first key. */

export function ioRedisClusterCommands(
  client: IoRedisClusterLike,
  onError: (error: unknown) => void,
): Commands {
  return {
    cluster: true,
    // ioredis routes a command by its keys (EVALSHA's, XREAD's streams), following MOVED and ASK
    send: ([command, ...args]) => client.call(command!, ...args),
    state: () => ({
      ready: client.status === 'ready',
      description: `ioredis Cluster status: ${client.status}`,
    }),
    duplicate(name, onLost) {
      // ioredis 4 replaces redisOptions rather than merging them: merged here, for every major
      const redisOptions = { ...client.options?.redisOptions, connectionName: name };
      const copy = client.duplicate([], { redisOptions });
      copy.on('error', onError);
      return failuresAreLosses(ioRedisClusterCommands(copy, onError), onLost);
    },
    close() {
      client.disconnect();
      return Promise.resolve();
    },
  };
}

export function nodeRedisClusterCommands(
  client: NodeRedisClusterLike,
  onError: (error: unknown) => void,
): Commands {
  return {
    cluster: true,
    send: (args, key) => client.sendCommand(key, false, [...args]),
    state: () => ({
      ready: client.isOpen,
      description: `node-redis cluster ${client.isOpen ? 'open' : 'closed'}`,
    }),
    duplicate(_name, onLost) {
      // a reader waits on one shard's node: no connection to every primary up front
      const copy = client.duplicate({ minimizeConnections: true });
      copy.on('error', onError);
      const connected = copy.connect();
      connected.catch(ignore);
      const commands = nodeRedisClusterCommands(copy, onError);
      return failuresAreLosses(
        {
          ...commands,
          send: (args, key) => connected.then(() => commands.send(args, key)),
          close: () => closeOnceConnected(connected, commands),
        },
        onLost,
      );
    },
    async close() {
      if (!client.isOpen) return;
      if (typeof client.destroy === 'function') client.destroy();
      else await client.disconnect?.().catch(ignore);
    },
  };
}

/**
 * A Cluster client reconnects each node by itself and tells no single "connection lost": on a reader's
 * Cluster connection, the first failed command after a success is counted as one.
 */
function failuresAreLosses(commands: Commands, onLost: () => void): Commands {
  let up = true;
  return {
    ...commands,
    send: (args, key) =>
      commands.send(args, key).then(
        (reply) => {
          up = true;
          return reply;
        },
        (error: unknown) => {
          if (up) onLost();
          up = false;
          throw error;
        },
      ),
  };
}

import type { RawEntry } from './entries';
import type { Followed } from './followed';

/**
 * The blocking read over the followed topics from their cursors, with its first key (a Cluster client
 * routes by it); on a Cluster also over the shard's wake stream, from now.
 */
export function xreadCommand(
  blockMs: number,
  followed: readonly Followed[],
  wakeKey: string | undefined,
): [args: string[], key: string] {
  const keys = followed.map((f) => f.keys.log);
  const cursors = followed.map((f) => f.cursor!);
  if (wakeKey !== undefined) {
    keys.push(wakeKey);
    cursors.push('$');
  }
  return [['XREAD', 'BLOCK', String(blockMs), 'COUNT', '500', 'STREAMS', ...keys, ...cursors], keys[0]!];
}

/**
 * What ends a reader's pending read early. On one server, `CLIENT UNBLOCK` of its connection's id (once
 * known); a Cluster client cannot say which node a command goes to, so there the reader also waits on
 * its shard's wake stream, and an entry added to it ends the read (of every process reading the shard:
 * a spare read for the others, bounded as this one is).
 */
export function wakeCommand(wakeKey: string | undefined, clientId: string | undefined): string[] | undefined {
  if (wakeKey !== undefined) return ['XADD', wakeKey, 'MAXLEN', '1', '*', 'w', '1'];
  return clientId === undefined ? undefined : ['CLIENT', 'UNBLOCK', clientId];
}

/**
 * XREAD's reply as [key, entries] pairs, however the client hands it over: RESP2's array of pairs,
 * RESP3's map as a Map, as an object (node-redis), or flattened into [key, entries, key, entries]
 * (ioredis).
 */
export function streamsOf(reply: unknown): Array<[string, RawEntry[]]> {
  if (reply === null || reply === undefined) return [];
  if (reply instanceof Map) {
    return [...reply.entries()].map(([key, entries]) => [String(key), entries as RawEntry[]]);
  }
  if (!Array.isArray(reply)) return Object.entries(reply as Record<string, RawEntry[]>);
  if (reply.length > 0 && !Array.isArray(reply[0])) {
    const pairs: Array<[string, RawEntry[]]> = [];
    for (let i = 0; i + 1 < reply.length; i += 2) pairs.push([String(reply[i]), reply[i + 1] as RawEntry[]]);
    return pairs;
  }
  return reply.map((pair) => [String(pair[0]), pair[1] as RawEntry[]]);
}

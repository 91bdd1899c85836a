import type { RawEntry } from './entries';

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

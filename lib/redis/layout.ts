/**
 * Where a topic's keys live. Every script touches a topic's keys together — KEYS[1] meta (a hash:
 * epoch, seq), KEYS[2] log (a stream, ids `<seq>-0`), KEYS[3] the idempotency keys of its recent
 * appends (a sorted set) and KEYS[4] the realm (the emptyEpoch of topics with no log) — so on a Redis
 * Cluster all four must hash to one slot.
 *
 * On one server, each topic has its own hash tag (`{prefix:topic}`) and one realm serves the prefix.
 * A Cluster also refuses an `XREAD` over keys of several slots, and the live reader must wait on every
 * followed topic at once: so there, topics are grouped into `shards` hash slots spread evenly over the
 * slot space (and so over the primaries), each with its own realm, and a reader waits on each shard.
 */
export interface Keys {
  readonly meta: string;
  readonly log: string;
  /** The idempotency keys of the topic's recent appends and their seqs (a sorted set). */
  readonly idempotency: string;
  /** The emptyEpoch of the topic's slot: one per prefix on one server, one per shard on a Cluster. */
  readonly realm: string;
  /** Which of the layout's shards the topic is in (0 on one server). */
  readonly shard: number;
}

export interface Layout {
  /** How many groups of topics the live reader waits on, each with one blocking read. */
  readonly shards: number;
  keysOf(topic: string): Keys;
  /** On a Cluster, the stream a reader also waits on, so that another connection can wake it (`XADD`). */
  wakeKey(shard: number): string | undefined;
}

export function singleServerLayout(prefix: string): Layout {
  const realm = `${prefix}:realm`;
  return {
    shards: 1,
    keysOf(topic) {
      const tag = `{${prefix}:${topic}}`;
      return { meta: `${tag}:meta`, log: `${tag}:log`, idempotency: `${tag}:keys`, realm, shard: 0 };
    },
    wakeKey: () => undefined,
  };
}

/** Redis Cluster's hash slots. */
const SLOTS = 16_384;

export function clusterLayout(prefix: string, shards: number): Layout {
  const tags = shardTags(prefix, shards);
  return {
    shards,
    keysOf(topic) {
      const shard = crc16(topic) % shards;
      const tag = tags[shard]!;
      return {
        meta: `${tag}:${topic}:meta`,
        log: `${tag}:${topic}:log`,
        idempotency: `${tag}:${topic}:keys`,
        realm: `${tag}:realm`,
        shard,
      };
    },
    wakeKey: (shard) => `${tags[shard]!}:wake`,
  };
}

/**
 * A hash tag per shard, the n-th in the n-th equal part of the slot space: a Cluster gives each primary
 * a contiguous range of slots, so the shards spread over the primaries as evenly as their ranges do.
 */
function shardTags(prefix: string, shards: number): string[] {
  const tags: string[] = [];
  for (let shard = 0; shard < shards; shard++) {
    const from = Math.ceil((shard * SLOTS) / shards);
    const to = Math.ceil(((shard + 1) * SLOTS) / shards);
    for (let n = 0; ; n++) {
      const tag = `${prefix}:${shard}.${n}`;
      const slot = keySlot(tag);
      if (slot >= from && slot < to) {
        tags.push(`{${tag}}`);
        break;
      }
    }
  }
  return tags;
}

/** The slot Redis Cluster gives a key's hash tag (or the whole key without one). */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  if (open !== -1) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(key) % SLOTS;
}

/** CRC16-CCITT (XMODEM) of the UTF-8 bytes, as Redis Cluster hashes keys. */
function crc16(text: string): number {
  let crc = 0;
  for (const byte of Buffer.from(text, 'utf8')) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

import { createHash } from 'node:crypto';
import type { Commands } from './client';

/*
 * Every script that touches a topic takes the same keys — KEYS[1] meta (a hash: epoch, seq), KEYS[2]
 * log (a stream, ids `<seq>-0`), KEYS[3] the idempotency keys of its recent appends (a sorted set,
 * key → seq), KEYS[4] the realm — and begins with the same four arguments: ARGV[1] a candidate
 * token (used only if something new must be named), ARGV[2] the epoch this process last saw of the
 * topic ('' for none), ARGV[3] the highest seq it saw in it, ARGV[4] the realm it last saw.
 *
 * The realm is one token per prefix (per shard on a Cluster): the epoch of every topic with no log (the `emptyEpoch`). It
 * changes when Redis loses it (a flush, a restart) and whenever a process finds a log it knew gone or
 * gone back in time, so an id handed out while a topic had no log never resumes past a lost life.
 */

/**
 * Where the topic's log stands, as this process last saw it or not: sets `realm`, `epoch` (false when
 * there is no log), `head` and `now` (Redis's clock, in ms). A log found below what this process saw in
 * the same epoch went back in time (a restore from an older snapshot, a failover to a lagging replica):
 * its ids would be given again to other events, so it begins a new life — a new epoch, clients told to
 * reset. Epochs and realms begin with the time they were made (11 hex digits), so that a restore that
 * brings back an older life than the one this process saw is told from a newer life begun after a loss:
 * the older one would also give its ids again.
 */
const LIFE = `
local realm, epoch, head
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local function newRealm()
  realm = string.format('%011x', now) .. ARGV[1] .. 'Z'
  redis.call('SET', KEYS[4], realm)
end
local function begin()
  epoch = string.format('%011x', now) .. ARGV[1]
  head = 0
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
local function bornBefore(a, b)
  local pattern = '^' .. string.rep('%x', 11)
  local ta, tb = string.match(a, pattern), string.match(b, pattern)
  return ta ~= nil and tb ~= nil and ta < tb
end
realm = redis.call('GET', KEYS[4])
if (not realm) or (ARGV[4] ~= '' and bornBefore(realm, ARGV[4])) then newRealm() end
epoch = redis.call('HGET', KEYS[1], 'epoch')
head = 0
if epoch then head = tonumber(redis.call('HGET', KEYS[1], 'seq')) end
local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local lost, rewound = false, false
if epoch and #newest > 0 and tonumber(string.match(newest[1][1], '^(%d+)')) > head then
  rewound = true
elseif ARGV[2] ~= '' then
  if not epoch then lost = true
  elseif epoch ~= ARGV[2] then
    if bornBefore(epoch, ARGV[2]) then rewound = true else lost = true end
  elseif head < tonumber(ARGV[3]) then rewound = true end
end
if rewound then
  lost = true
  begin()
end
if lost and realm == ARGV[4] then newRealm() end
`;

/** The oldest seq kept (`head + 1` when none is). */
const FIRST = `
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first = head + 1
if #oldest > 0 then first = tonumber(string.match(oldest[1][1], '^(%d+)')) end
`;

/** Where the log stands: { realm, epoch | false, head, first }. Writes nothing unless a life was lost. */
export const POSITION = `${LIFE}${FIRST}
return {realm, epoch, head, first}
`;

/** Up to ARGV[6] events after seq ARGV[5], read atomically with where the log stands: { …position, entries }. */
export const READ = `${LIFE}${FIRST}
local entries = {}
if epoch then entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[5] .. '-0', '+', 'COUNT', ARGV[6]) end
return {realm, epoch, head, first, entries}
`;

/**
 * Appends a batch, atomically: the log begun (a new epoch, nothing left of a lost life) if there is
 * none; per event, the seq of an idempotency key already applied, else the next seq, `XADD <seq>-0`
 * (MAXLEN ~) and the key remembered. ARGV[5] maxLen, ARGV[6] how many appends' keys are kept, then per
 * event: its key, its field count, its fields. Returns { realm, epoch, seq… } in the batch's order.
 */
export const APPEND = `${LIFE}
if not epoch then begin() end
local reply = {realm, epoch}
local last = head
local i = 7
while i <= #ARGV do
  local key, count = ARGV[i], tonumber(ARGV[i + 1])
  local seq = redis.call('ZSCORE', KEYS[3], key)
  if seq then
    seq = tonumber(seq)
  else
    seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], seq .. '-0', 'e', epoch, 't', tostring(now),
      unpack(ARGV, i + 2, i + 1 + count))
    redis.call('ZADD', KEYS[3], seq, key)
    last = seq
  end
  reply[#reply + 1] = seq
  i = i + 2 + count
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (last - tonumber(ARGV[6]) + 1))
return reply
`;

/**
 * Where several logs stand, for the live reader: per meta key in KEYS, its epoch (false where there is
 * no log) and seq. Read-only: what it finds is acted on through POSITION.
 */
export const STANDING = `
local reply = {}
for i, key in ipairs(KEYS) do
  local meta = redis.call('HMGET', key, 'epoch', 'seq')
  reply[2 * i - 1] = meta[1]
  reply[2 * i] = tonumber(meta[2] or '0')
end
return reply
`;

/** Runs a script by its SHA, sending it whole after a NOSCRIPT (a new, restarted or flushed server). */
export class Script {
  readonly #source: string;
  readonly #sha: string;

  constructor(source: string) {
    this.#source = source;
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  async run(commands: Commands, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const rest = [String(keys.length), ...keys, ...args];
    try {
      return await commands.send(['EVALSHA', this.#sha, ...rest], keys[0]);
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
      // EVAL, not SCRIPT LOAD: it goes to the node that owns the keys (on a Cluster, SCRIPT LOAD would
      // go to any node) and leaves the script cached there
      return commands.send(['EVAL', this.#source, ...rest], keys[0]);
    }
  }
}

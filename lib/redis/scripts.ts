import { createHash } from 'node:crypto';
import type { Commands } from './client';

/**
 * The topic's epoch, its log begun if there is none: a new epoch, seq 0, and no stream — a stream left
 * without its meta (an evicted key) is from a lost life and is dropped, so its ids are never reused
 * silently. Sets `epoch`, and `begun` when this call began the log. KEYS: meta, log. ARGV[1]: a new
 * epoch to use if needed.
 */
const EPOCH_OR_BEGIN = `
local begun = false
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  begun = true
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
`;

/**
 * The log as a reader finds it, begun if there is none. ARGV[2]: seconds a log a subscriber began
 * (no event yet) may stay unused.
 */
const ENSURE_LOG = `${EPOCH_OR_BEGIN}
if begun and tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
local head = tonumber(redis.call('HGET', KEYS[1], 'seq'))
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first = head + 1
if #oldest > 0 then first = tonumber(string.match(oldest[1][1], '^(%d+)')) end
`;

/** Where the log stands: { epoch, head, first }. */
export const POSITION = `${ENSURE_LOG}
return {epoch, head, first}
`;

/**
 * Up to ARGV[4] events after seq ARGV[3], read atomically with where the log stands:
 * { epoch, head, first, entries }.
 */
export const READ = `${ENSURE_LOG}
local entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[3] .. '-0', '+', 'COUNT', ARGV[4])
return {epoch, head, first, entries}
`;

/**
 * One publish, atomic: the epoch made if absent, seq incremented, XADD with id <seq>-0 and
 * MAXLEN ~, the meta kept for good. ARGV: new epoch, maxLen, then the entry's field/value pairs.
 * Returns { epoch, seq }.
 */
export const PUBLISH = `${EPOCH_OR_BEGIN}
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('PERSIST', KEYS[1])
local time = redis.call('TIME')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'e', epoch,
  't', tostring(tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)), unpack(ARGV, 3))
return {epoch, seq}
`;

/** The epochs of several topics' logs (false where none): how the live reader notices a lost log. */
export const EPOCHS = `
local epochs = {}
for i, key in ipairs(KEYS) do epochs[i] = redis.call('HGET', key, 'epoch') end
return epochs
`;

/** Runs a script by its SHA, loading it once: again after a NOSCRIPT (a restarted or flushed server). */
export class Script {
  readonly #source: string;
  readonly #sha: string;

  constructor(source: string) {
    this.#source = source;
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  async run(commands: Commands, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    const call = ['EVALSHA', this.#sha, String(keys.length), ...keys, ...args];
    try {
      return await commands.send(call);
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
      await commands.send(['SCRIPT', 'LOAD', this.#source]);
      return commands.send(call);
    }
  }
}

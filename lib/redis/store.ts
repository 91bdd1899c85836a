import { createDebug } from '../core/debug';
import { checkCount, checkDuration, checkOptionsObject, optionError } from '../core/options';
import { HubStoreError } from '../hub/errors';
import { newEpoch } from '../hub/ids';
import type {
  AppendOptions,
  HubRecord,
  HubStore,
  LogId,
  LogPage,
  LogPosition,
  StoredEvent,
  StoreStats,
} from '../hub/store';
import { type Commands, commandsOf, type RedisClientLike } from './client';
import { type Keys, keysOf, type RawEntry, recordFields, toStoredEvent } from './entries';
import { LiveReader } from './reader';
import { POSITION, PUBLISH, READ, Script } from './scripts';

const debug = createDebug('redis');

/** Options of {@link redisStore}. */
export interface RedisStoreOptions {
  /** Events kept per topic (`XADD … MAXLEN ~`: at least this many). Default `10000`. */
  maxLen?: number;
  /** The first part of every key: `{<prefix>:<topic>}:meta` and `…:log`. Default `'sse'`. */
  prefix?: string;
  /** How long the live reader's `XREAD` blocks before it looks again (and checks for lost logs). Default `1000`. */
  blockMs?: number;
  /** How long a command may take before `publish` (and a resuming client) gives up on it. Default `5000`. */
  commandTimeoutMs?: number;
  /** Seconds a log made by a subscriber stays when no event is ever published to it. Default one day. */
  unusedLogTtlSeconds?: number;
}

const scripts = { position: new Script(POSITION), read: new Script(READ), publish: new Script(PUBLISH) };

/**
 * The hub across processes and machines, on Redis Streams. Per topic a stream holds the log and a
 * small hash its epoch and seq; a publish is one atomic script (so every process agrees on ids, and a
 * lost or evicted key becomes a new epoch — a reset, never a silent gap); one blocking reader per
 * process follows the topics with local subscribers. `client` is the app's own ioredis or node-redis
 * client; the reader runs on a duplicate of it, made when the first subscriber arrives.
 * @example createHub({ store: redisStore(new Redis(process.env.REDIS_URL), { maxLen: 10_000 }) })
 */
export function redisStore(client: RedisClientLike, options: RedisStoreOptions = {}): HubStore {
  const owner = 'redisStore';
  checkOptionsObject(options, owner);
  const prefix = options.prefix ?? 'sse';
  if (typeof prefix !== 'string' || prefix === '' || /[{}]/.test(prefix)) {
    throw optionError(owner, 'prefix', 'a non-empty string without { or }', prefix);
  }
  const settings: Settings = {
    maxLen: checkCount(options.maxLen, 'maxLen', owner, 10_000, 1),
    prefix,
    blockMs: checkDuration(options.blockMs, 'blockMs', owner, 1000),
    commandTimeoutMs: checkDuration(options.commandTimeoutMs, 'commandTimeoutMs', owner, 5000),
    unusedLogTtlSeconds: checkCount(options.unusedLogTtlSeconds, 'unusedLogTtlSeconds', owner, 86_400, 0),
  };
  const commands = commandsOf(client, (error) => debug('reader connection: %s', error));
  return new RedisStore(commands, settings);
}

interface Settings {
  readonly maxLen: number;
  readonly prefix: string;
  readonly blockMs: number;
  readonly commandTimeoutMs: number;
  readonly unusedLogTtlSeconds: number;
}

class RedisStore implements HubStore {
  readonly #commands: Commands;
  readonly #settings: Settings;
  readonly #reader: LiveReader;
  #failures = 0;
  /** Candidate epochs are this store's random token and a count: no random bytes per command. */
  readonly #instance = newEpoch();
  #candidates = 0;

  constructor(commands: Commands, settings: Settings) {
    this.#commands = commands;
    this.#settings = settings;
    this.#reader = new LiveReader(commands, settings.blockMs);
  }

  async append(topic: string, record: HubRecord, _options: AppendOptions): Promise<LogId> {
    const keys = this.#keys(topic);
    const reply = await this.#run('publish to', topic, () =>
      scripts.publish.run(
        this.#commands,
        [keys.meta, keys.log],
        [this.#candidateEpoch(), String(this.#settings.maxLen), ...recordFields(record)],
      ),
    );
    const [epoch, seq] = reply as [string, number];
    this.#reader.noticeEpoch(topic, String(epoch));
    return { epoch: String(epoch), seq: Number(seq) };
  }

  async position(topic: string): Promise<LogPosition> {
    const keys = this.#keys(topic);
    const reply = await this.#run('read the position of', topic, () =>
      scripts.position.run(
        this.#commands,
        [keys.meta, keys.log],
        [this.#candidateEpoch(), String(this.#settings.unusedLogTtlSeconds)],
      ),
    );
    return positionOf(reply as unknown[]);
  }

  async read(topic: string, after: number, limit: number): Promise<LogPage> {
    const keys = this.#keys(topic);
    const reply = (await this.#run('replay', topic, () =>
      scripts.read.run(
        this.#commands,
        [keys.meta, keys.log],
        [this.#candidateEpoch(), String(this.#settings.unusedLogTtlSeconds), String(after), String(limit)],
      ),
    )) as unknown[];
    const entries = (reply[3] ?? []) as RawEntry[];
    return { position: positionOf(reply), events: entries.map((entry) => toStoredEvent(entry).event) };
  }

  listen(topic: string, onEvents: (epoch: string, events: readonly StoredEvent[]) => void): Promise<void> {
    return this.#reader.follow(topic, this.#keys(topic), onEvents);
  }

  unlisten(topic: string): void {
    this.#reader.unfollow(topic);
  }

  stats(): StoreStats {
    return {
      readerLagMs: this.#reader.lagMs,
      readerReconnects: this.#reader.reconnects,
      readerTopics: this.#reader.topics,
      failedCommands: this.#failures,
    };
  }

  close(): Promise<void> {
    return this.#reader.close();
  }

  /** An epoch for a log the script finds missing (only then used): unique across processes and lives. */
  #candidateEpoch(): string {
    return `${this.#instance}${(this.#candidates++).toString(36)}`;
  }

  #keys(topic: string): Keys {
    return keysOf(this.#settings.prefix, topic);
  }

  /**
   * One command for the hub, failing clearly: after `commandTimeoutMs` at most (a client queues
   * commands while it reconnects, which would otherwise hold a publish until Redis is back), with
   * the cause and what the connection was doing.
   */
  async #run(what: string, topic: string, command: () => Promise<unknown>): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${this.#settings.commandTimeoutMs} ms`)),
        this.#settings.commandTimeoutMs,
      );
    });
    try {
      return await Promise.race([command(), timeout]);
    } catch (error) {
      this.#failures++;
      const cause = (error as Error)?.message ?? String(error);
      throw new HubStoreError(
        `redisStore: could not ${what} topic "${topic}": ${cause} (${this.#commands.state().description})`,
        { cause: error },
      );
    } finally {
      clearTimeout(timer);
    }
  }
}

function positionOf(reply: unknown[]): LogPosition {
  // every log is begun by the script that reads it: no id names a topic without one
  return { epoch: String(reply[0]), head: Number(reply[1]), first: Number(reply[2]), emptyEpoch: '' };
}

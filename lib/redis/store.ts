import { createDebug } from '../core/debug';
import { checkCount, checkDuration, checkOptionsObject, optionError } from '../core/options';
import { TIMED_OUT, within } from '../core/util';
import { HubStoreError } from '../hub/errors';
import { newEpoch } from '../hub/ids';
import type {
  AppendOptions,
  EventsListener,
  HubRecord,
  HubStore,
  LogId,
  LogPage,
  LogPosition,
  StoreStats,
} from '../hub/store';
import { type Commands, commandsOf, type RedisClientLike } from './client';
import { type RawEntry, recordFields, toStoredEvent } from './entries';
import { clusterLayout, type Keys, type Layout, singleServerLayout } from './layout';
import { APPEND, POSITION, READ, Script } from './scripts';
import { Seen } from './seen';
import { ShardReaders } from './shards';

const debug = createDebug('redis');

/** Options of {@link redisStore}. */
export interface RedisStoreOptions {
  /** Events kept per topic (`XADD … MAXLEN ~`: at least this many). Default `10000`. */
  maxLen?: number;
  /** The first part of every key: `{<prefix>:<topic>}:meta`, `…:log`, `…:keys`, and `<prefix>:realm`. Default `'sse'`. */
  prefix?: string;
  /**
   * On a Redis Cluster, how many hash slots the topics are grouped into (by a hash of the topic), each
   * read by one blocking read per process that follows a topic in it. Default `16`. Changing it moves
   * topics to new keys: their subscribers reset. Ignored on a single server.
   */
  clusterShards?: number;
  /** How long the live reader's `XREAD` blocks, and how often it checks every followed log's epoch. Default `1000`. */
  blockMs?: number;
  /** How long a command may take before `publish`, a resuming client or a new topic's `listen` gives up on it. Default `5000`. */
  commandTimeoutMs?: number;
  /** How many recent appends per topic keep their idempotency key (a resend or retry within them applies once). Default `1000`. */
  idempotencyWindow?: number;
}

const scripts = { position: new Script(POSITION), read: new Script(READ), append: new Script(APPEND) };

/** The most appends one script call takes: a bigger batch waits for the next call. */
const MAX_BATCH = 256;

/**
 * The hub across processes and machines, on Redis Streams. Per topic a stream holds the log, a small
 * hash its epoch and seq, and a sorted set the idempotency keys of its recent appends; the appends of
 * one topic in one turn are one atomic script (so every process agrees on ids, a resend applies once,
 * and a lost or evicted key becomes a new epoch — a reset, never a silent gap); one blocking reader per
 * process follows the topics with local subscribers. Reading a topic nobody published to writes
 * nothing. `client` is the app's own ioredis or node-redis client; the reader runs on a duplicate of
 * it, made when the first subscriber arrives.
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
    blockMs: checkDuration(options.blockMs, 'blockMs', owner, 1000),
    commandTimeoutMs: checkDuration(options.commandTimeoutMs, 'commandTimeoutMs', owner, 5000),
    idempotencyWindow: checkCount(options.idempotencyWindow, 'idempotencyWindow', owner, 1000, 1),
  };
  const shards = checkCount(options.clusterShards, 'clusterShards', owner, 16, 1);
  const commands = commandsOf(client, (error) => debug('reader connection: %s', error));
  const layout = commands.cluster ? clusterLayout(prefix, shards) : singleServerLayout(prefix);
  return new RedisStore(commands, settings, layout);
}

interface Settings {
  readonly maxLen: number;
  readonly blockMs: number;
  readonly commandTimeoutMs: number;
  readonly idempotencyWindow: number;
}

interface PendingAppend {
  readonly fields: string[];
  readonly key: string;
  resolve(id: LogId): void;
  reject(error: unknown): void;
}

class RedisStore implements HubStore {
  readonly #commands: Commands;
  readonly #settings: Settings;
  readonly #layout: Layout;
  readonly #reader: ShardReaders;
  readonly #seen = new Seen();
  /** Per topic, the appends waiting for its call in flight to finish: one call per topic at a time. */
  readonly #waiting = new Map<string, PendingAppend[]>();
  #failures = 0;
  /** Candidate epochs are this store's random token and a count: no random bytes per command. */
  readonly #instance = newEpoch();
  #candidates = 0;

  constructor(commands: Commands, settings: Settings, layout: Layout) {
    this.#commands = commands;
    this.#settings = settings;
    this.#layout = layout;
    this.#reader = new ShardReaders(
      commands,
      {
        run: (what, topic, command) => this.#run(what, topic, command),
        recheck: async (topic) => (await this.position(topic)).epoch,
        saw: (topic, epoch, seq) => this.#seen.saw(topic, epoch, seq),
      },
      settings.blockMs,
      layout,
    );
  }

  /**
   * Queues the append; the topic's queue goes to Redis as one script call, in call order, as soon as
   * no call of the topic is in flight — so ids follow the order of the calls, and a burst of one turn
   * costs Redis one script.
   */
  append(topic: string, record: HubRecord, options: AppendOptions): Promise<LogId> {
    return new Promise<LogId>((resolve, reject) => {
      const pending = { fields: recordFields(record), key: options.idempotencyKey, resolve, reject };
      const queue = this.#waiting.get(topic);
      if (queue !== undefined) {
        queue.push(pending);
        return;
      }
      this.#waiting.set(topic, [pending]);
      queueMicrotask(() => void this.#appendWaiting(topic));
    });
  }

  async #appendWaiting(topic: string): Promise<void> {
    const queue = this.#waiting.get(topic)!;
    const batch = queue.splice(0, MAX_BATCH);
    const args = [String(this.#settings.maxLen), String(this.#settings.idempotencyWindow)];
    for (const { key, fields } of batch) args.push(key, String(fields.length), ...fields);
    try {
      const reply = (await this.#script('publish to', topic, scripts.append, args)) as unknown[];
      const epoch = String(reply[1]);
      const seqs = reply.slice(2).map(Number);
      this.#seen.saw(topic, epoch, Math.max(...seqs));
      this.#reader.noticeEpoch(topic, this.#keys(topic), epoch);
      for (const [i, append] of batch.entries()) append.resolve({ epoch, seq: seqs[i]! });
    } catch (error) {
      for (const append of batch) append.reject(error);
    }
    if (queue.length > 0) void this.#appendWaiting(topic);
    else this.#waiting.delete(topic);
  }

  async position(topic: string): Promise<LogPosition> {
    return this.#positionOf(
      topic,
      (await this.#script('read the position of', topic, scripts.position)) as unknown[],
    );
  }

  async read(topic: string, after: number, limit: number): Promise<LogPage> {
    const reply = (await this.#script('replay', topic, scripts.read, [
      String(after),
      String(limit),
    ])) as unknown[];
    const entries = (reply[4] ?? []) as RawEntry[];
    return {
      position: this.#positionOf(topic, reply),
      events: entries.map((entry) => toStoredEvent(entry).event),
    };
  }

  listen(topic: string, onEvents: EventsListener): Promise<void> {
    return this.#reader.follow(topic, this.#keys(topic), onEvents);
  }

  unlisten(topic: string): void {
    this.#reader.unfollow(topic, this.#keys(topic));
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

  /** A topic's script, told what this process saw of the topic (see `Seen`). */
  #script(what: string, topic: string, script: Script, args: readonly string[] = []): Promise<unknown> {
    const keys = this.#keys(topic);
    const candidate = `${this.#instance}${(this.#candidates++).toString(36)}`;
    return this.#run(what, topic, () =>
      script.run(
        this.#commands,
        [keys.meta, keys.log, keys.idempotency, keys.realm],
        [candidate, ...this.#seen.args(topic, keys.shard), ...args],
      ),
    ).then((reply) => {
      this.#seen.realm(keys.shard, String((reply as unknown[])[0]));
      return reply;
    });
  }

  /** A script's { realm, epoch | null, head, first } as a position, remembered. */
  #positionOf(topic: string, reply: unknown[]): LogPosition {
    const emptyEpoch = String(reply[0]);
    const epoch = reply[1] == null ? undefined : String(reply[1]);
    const head = Number(reply[2]);
    this.#seen.saw(topic, epoch, head);
    return { epoch: epoch ?? emptyEpoch, head, first: Number(reply[3]), emptyEpoch };
  }

  #keys(topic: string): Keys {
    return this.#layout.keysOf(topic);
  }
  /**
   * One command for the hub, failing clearly: after `commandTimeoutMs` at most (a client queues
   * commands while it reconnects, which would otherwise hold a publish until Redis is back), with
   * the cause and what the connection was doing.
   */
  async #run<T>(what: string, topic: string, command: () => Promise<T>): Promise<T> {
    const ms = this.#settings.commandTimeoutMs;
    try {
      const reply = await within(command(), ms);
      if (reply === TIMED_OUT) throw new Error(`no answer within ${ms} ms`);
      return reply;
    } catch (error) {
      this.#failures++;
      const cause = (error as Error)?.message ?? String(error);
      throw new HubStoreError(
        `redisStore: could not ${what} topic "${topic}": ${cause} (${this.#commands.state().description})`,
        { cause: error },
      );
    }
  }
}

import { createDebug } from '../core/debug';
import { ignore } from '../core/util';
import type { StoredEvent } from '../hub/store';
import type { Commands } from './client';
import { type Keys, type RawEntry, toStoredEvent } from './entries';
import { EPOCHS, Script } from './scripts';

const debug = createDebug('redis');
const epochs = new Script(EPOCHS);

type Deliver = (epoch: string, events: readonly StoredEvent[]) => void;

interface Followed {
  readonly keys: Keys;
  readonly deliver: Deliver;
  /** Resolves once the cursor is set: every entry appended after it will be delivered. */
  readonly started: Promise<void>;
  markStarted(): void;
  /** The id of the last entry read, where the next read starts: never `$` once known. */
  cursor: string | undefined;
  epoch: string | undefined;
}

/**
 * The one live reader of a process: a blocking `XREAD` over the logs of the topics that have local
 * subscribers, on its own connection (a blocking command would stall every other command on the
 * app's). It resumes from the last id it saw — after a dropped connection too — and checks the logs'
 * epochs whenever a read times out or fails, so a log Redis lost (a flush, a restart, an evicted key)
 * is read from its new start instead of being waited on forever.
 */
export class LiveReader {
  readonly #main: Commands;
  readonly #blockMs: number;
  readonly #followed = new Map<string, Followed>();
  #connection: Commands | undefined;
  #connecting: Promise<Commands> | undefined;
  #clientId: string | undefined;
  #running = false;
  #closed = false;
  /** Bumped when the set of topics changes; the loop tells which set its pending read was made for. */
  #generation = 0;
  #readingGeneration = -1;
  #wakeLoop: (() => void) | undefined;
  /** How far behind its publish the newest event the reader delivered was, when delivered. */
  lagMs = 0;
  reconnects = 0;

  constructor(main: Commands, blockMs: number) {
    this.#main = main;
    this.#blockMs = blockMs;
  }

  get topics(): number {
    return this.#followed.size;
  }

  /** Starts following a topic's log; resolves once every entry appended from then on will be delivered. */
  follow(topic: string, keys: Keys, deliver: Deliver): Promise<void> {
    let markStarted!: () => void;
    const started = new Promise<void>((resolve) => {
      markStarted = resolve;
    });
    this.#followed.set(topic, { keys, deliver, started, markStarted, cursor: undefined, epoch: undefined });
    this.#changed();
    return started;
  }

  unfollow(topic: string): void {
    if (this.#followed.delete(topic)) this.#changed();
  }

  /** A publish of this process found a new life of the log: read it from its start, now. */
  noticeEpoch(topic: string, epoch: string): void {
    const followed = this.#followed.get(topic);
    if (followed === undefined || followed.epoch === undefined || followed.epoch === epoch) return;
    readFromStart(followed, epoch);
    this.#changed();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#followed.clear();
    this.#wake();
    const connection = this.#connection ?? (await this.#connecting?.catch(ignore));
    this.#connection = undefined;
    await connection?.close();
  }

  #changed(): void {
    this.#generation++;
    if (!this.#running && !this.#closed) {
      this.#running = true;
      void this.#loop();
    }
    this.#wake();
  }

  /** Makes the loop take the new set of topics at once: unblocks its pending read, or its idle wait. */
  #wake(): void {
    const idle = this.#wakeLoop;
    this.#wakeLoop = undefined;
    idle?.();
    if (this.#readingGeneration >= 0 && this.#readingGeneration !== this.#generation && this.#clientId) {
      this.#main.send(['CLIENT', 'UNBLOCK', this.#clientId]).catch((error: unknown) => {
        debug('could not unblock the live reader: %s', error);
      });
    }
  }

  async #loop(): Promise<void> {
    let backoff = 50;
    while (!this.#closed) {
      if (this.#followed.size === 0) {
        await new Promise<void>((resolve) => {
          this.#wakeLoop = resolve;
        });
        continue;
      }
      try {
        const connection = await this.#reader();
        await this.#startCursors(connection);
        const got = await this.#read(connection);
        backoff = 50;
        if (got === 0) await this.#checkEpochs(connection);
      } catch (error) {
        if (this.#closed) break;
        this.reconnects++;
        this.#clientId = undefined;
        debug('live reader failed (%s); retrying in %d ms from the last ids it saw', error, backoff);
        await new Promise((resolve) => setTimeout(resolve, backoff).unref());
        backoff = Math.min(backoff * 2, 2000);
        await this.#checkEpochs(this.#connection).catch(ignore);
      }
    }
    this.#running = false;
  }

  async #reader(): Promise<Commands> {
    if (this.#connection === undefined) {
      this.#connecting ??= this.#main.duplicate('express-streaming:live-reader');
      this.#connection = await this.#connecting;
      this.#connecting = undefined;
    }
    this.#clientId ??= String(await this.#connection.send(['CLIENT', 'ID']));
    return this.#connection;
  }

  /** A topic just followed starts at its log's newest entry: what came before, its subscribers read themselves. */
  async #startCursors(connection: Commands): Promise<void> {
    for (const followed of this.#followed.values()) {
      if (followed.cursor !== undefined) continue;
      const newest = await connection.send(['XREVRANGE', followed.keys.log, '+', '-', 'COUNT', '1']);
      const entry = (newest as RawEntry[] | null)?.[0];
      followed.cursor ??= entry === undefined ? '0-0' : String(entry[0]);
      followed.markStarted();
    }
  }

  /** One blocking read; resolves with how many events it delivered. */
  async #read(connection: Commands): Promise<number> {
    const followed = [...this.#followed.entries()];
    this.#readingGeneration = this.#generation;
    const reply = await connection
      .send([
        'XREAD',
        'BLOCK',
        String(this.#blockMs),
        'COUNT',
        '500',
        'STREAMS',
        ...followed.map(([, f]) => f.keys.log),
        ...followed.map(([, f]) => f.cursor!),
      ])
      .finally(() => {
        this.#readingGeneration = -1;
      });
    // A reply names streams by key: found in one map, not by a scan per stream (many topics, one read).
    const byLog = new Map(followed.map(([topic, f]) => [f.keys.log, { topic, followed: f }]));
    let delivered = 0;
    for (const [key, entries] of streamsOf(reply)) {
      const read = byLog.get(key);
      // unfollowed (or followed anew) while the read was pending: these entries are nobody's
      if (read === undefined || this.#followed.get(read.topic) !== read.followed) continue;
      delivered += this.#deliver(read.followed, entries);
    }
    return delivered;
  }

  /** Hands a read's entries to the topic's listener, as one batch: a burst is one write per subscriber. */
  #deliver(followed: Followed, entries: readonly RawEntry[]): number {
    if (entries.length === 0) return 0;
    followed.cursor = String(entries[entries.length - 1]![0]);
    const batch: StoredEvent[] = [];
    let newest = 0;
    for (const raw of entries) {
      const { epoch, event, publishedAt } = toStoredEvent(raw);
      if (followed.epoch !== undefined && epoch !== followed.epoch) {
        // A new life of the log, found mid-read: read it again from its start, so that its
        // subscribers get their reset followed by every event of the new life.
        this.#handOver(followed, batch, newest);
        readFromStart(followed, epoch);
        return entries.length;
      }
      followed.epoch = epoch;
      newest = publishedAt;
      batch.push(event);
    }
    this.#handOver(followed, batch, newest);
    return entries.length;
  }

  /** One batch to the topic's listener; the lag is read once per batch, from its newest event. */
  #handOver(followed: Followed, batch: StoredEvent[], newestPublishedAt: number): void {
    if (batch.length === 0) return;
    // Redis's clock against this host's: the same machine in tests, NTP-close in production
    this.lagMs = Math.max(0, Date.now() - newestPublishedAt);
    followed.deliver(followed.epoch!, batch);
  }

  /**
   * Compares each followed log's epoch with the one its entries carried: a log Redis lost and
   * started again (new epoch) has ids below the cursor, so it is read again from its start.
   */
  async #checkEpochs(connection: Commands | undefined): Promise<void> {
    if (connection === undefined || this.#followed.size === 0) return;
    const followed = [...this.#followed.values()];
    const current = (await epochs.run(
      connection,
      followed.map((f) => f.keys.meta),
      [],
    )) as Array<string | null | false>;
    followed.forEach((f, i) => {
      const epoch = current[i];
      if (typeof epoch !== 'string' || f.epoch === undefined || epoch === f.epoch) return;
      debug(
        'the log of a followed topic started again (epoch %s, was %s): reading it from its start',
        epoch,
        f.epoch,
      );
      readFromStart(f, epoch);
    });
  }
}

/** A new life of a followed log: its ids start again below the cursor, so it is read from its start. */
function readFromStart(followed: Followed, epoch: string): void {
  followed.epoch = epoch;
  followed.cursor = '0-0';
}

/**
 * XREAD's reply as [key, entries] pairs, however the client hands it over: RESP2's array of pairs,
 * RESP3's map as a Map, as an object (node-redis), or flattened into [key, entries, key, entries]
 * (ioredis).
 */
function streamsOf(reply: unknown): Array<[string, RawEntry[]]> {
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

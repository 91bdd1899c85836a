import { createDebug } from '../core/debug';
import { settledWithin } from '../core/util';
import type { EventsListener, StoredEvent } from '../hub/store';
import type { Commands } from './client';
import { type RawEntry, toStoredEvent } from './entries';
import { bornBefore, type Followed, readFromStart, restarted, type Standing, standingsOf } from './followed';
import type { Keys } from './layout';
import { streamsOf, wakeCommand, xreadCommand } from './xread';

const debug = createDebug('redis');

/** How long changes of the followed set gather before a pending read is re-issued for them. */
const REGROUP_MS = 20;
/** The longest close() waits for the reader's connection to be let go. */
const CLOSE_MS = 1000;

/** What the reader asks of its store: where a topic's log stands, from the store's own view. */
export interface ReaderHost {
  /** One command on the app's connection, bounded in time, failing as a `HubStoreError`. */
  run<T>(what: string, topic: string, command: () => Promise<T>): Promise<T>;
  /** The topic's log looked at again (a loss changes the emptyEpoch; a rewind begins a new life): its epoch now. */
  recheck(topic: string): Promise<string | undefined>;
  /** The reader handed this event over: the newest of the topic this process saw. */
  saw(topic: string, epoch: string, seq: number): void;
}

/**
 * The one live reader of a process: a blocking `XREAD` over the logs of the topics that have local
 * subscribers, on its own connection (a blocking command would stall every other command on the
 * app's). A topic starts at its log's head (its newest entry), looked up on the app's connection, so `listen`
 * answers without waiting for the pending read; the read is re-issued for new topics in groups (at
 * most one wake per {@link REGROUP_MS}), and a topic that left is simply not read again.
 * Every `blockMs`, busy or not, it checks where each followed log stands: a log Redis lost (a flush, a
 * restart, an eviction) or that went back in time is read from its new start.
 */
export class LiveReader {
  readonly #main: Commands;
  readonly #host: ReaderHost;
  readonly #blockMs: number;
  /** On a Cluster, the stream this reader also waits on, so that a new topic can wake it (see `wakeCommand`). */
  readonly #wakeKey: string | undefined;
  readonly #followed = new Map<string, Followed>();
  readonly #starting = new Map<string, Followed>();
  #startTimer: NodeJS.Immediate | undefined;
  #connection: Commands | undefined;
  #clientId: string | undefined;
  #running = false;
  #closed = false;
  /** The topics of the pending read: a followed one it lacks makes it re-issued. */
  #reading: ReadonlySet<Followed> | undefined;
  #regroupTimer: NodeJS.Timeout | undefined;
  #wakeLoop: (() => void) | undefined;
  #checkedAt = 0;
  /** When Redis last answered the reader: how long it has been silent is lag too. */
  #heardAt = Date.now();
  #deliveryLagMs = 0;
  reconnects = 0;

  constructor(main: Commands, host: ReaderHost, blockMs: number, wakeKey?: string) {
    this.#main = main;
    this.#host = host;
    this.#blockMs = blockMs;
    this.#wakeKey = wakeKey;
  }

  get topics(): number {
    return this.#followed.size + this.#starting.size;
  }

  /** How far behind Redis the reader is: its newest event's age when delivered, or its silence past a read's block. */
  get lagMs(): number {
    if (this.#followed.size === 0) return 0;
    return Math.max(this.#deliveryLagMs, Date.now() - this.#heardAt - this.#blockMs);
  }

  /**
   * Starts following a topic's log; resolves once every entry appended from then on will be
   * delivered, or rejects (a `HubStoreError`) when Redis does not answer within `commandTimeoutMs`.
   */
  follow(topic: string, keys: Keys, deliver: EventsListener): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const followed: Followed = {
        topic,
        keys,
        deliver,
        cursor: undefined,
        epoch: undefined,
        settle: (error) => (error === undefined ? resolve() : reject(error)),
      };
      this.#drop(topic);
      this.#starting.set(topic, followed);
      this.#startTimer ??= setImmediate(() => void this.#start());
    });
  }

  unfollow(topic: string): void {
    this.#drop(topic);
  }

  /** A publish of this process found a new life of the log: read it from its start, now. */
  noticeEpoch(topic: string, epoch: string): void {
    const followed = this.#followed.get(topic);
    if (followed === undefined || followed.epoch === epoch) return;
    readFromStart(followed, epoch);
  }

  /** Lets go of the connection at once, whatever Redis does: nothing waits on a pending read. */
  async close(): Promise<void> {
    this.#closed = true;
    clearImmediate(this.#startTimer);
    clearTimeout(this.#regroupTimer);
    for (const topic of [...this.#starting.keys(), ...this.#followed.keys()]) this.#drop(topic);
    this.#wakeLoop?.();
    const connection = this.#connection;
    this.#connection = undefined;
    // bounded: a client that cannot close a connection still being made must not hold hub.close()
    await settledWithin(connection?.close(), CLOSE_MS);
  }

  #drop(topic: string): void {
    const followed = this.#starting.get(topic) ?? this.#followed.get(topic);
    this.#starting.delete(topic);
    this.#followed.delete(topic);
    followed?.settle();
  }

  /**
   * Looks up where the topics followed this turn start — their logs' heads, in one script on the app's
   * connection — so that every entry appended after is read, and nothing of before.
   */
  async #start(): Promise<void> {
    this.#startTimer = undefined;
    const batch = [...this.#starting.values()];
    let standings: Standing[];
    try {
      const topics = batch.map((f) => f.topic).join('", "');
      standings = await this.#host.run('follow', topics, () => standingsOf(this.#main, batch));
    } catch (error) {
      for (const followed of batch) {
        if (this.#starting.get(followed.topic) !== followed) continue;
        this.#starting.delete(followed.topic);
        followed.settle(error as Error);
      }
      return;
    }
    for (const [i, followed] of batch.entries()) {
      if (this.#starting.get(followed.topic) !== followed) continue; // left, or followed anew
      this.#starting.delete(followed.topic);
      const { epoch, head } = standings[i]!;
      // entry ids are `<seq>-0`: the head's id is the newest entry's
      followed.epoch = epoch;
      followed.cursor = epoch === undefined ? '0-0' : `${head}-0`;
      if (epoch !== undefined) this.#host.saw(followed.topic, epoch, head);
      this.#followed.set(followed.topic, followed);
      followed.settle();
    }
    this.#regroup();
  }

  /** The pending read lacks a topic followed since: re-issue it, once for every change of a short while. */
  #regroup(): void {
    if (this.#closed) return;
    if (!this.#running) {
      this.#running = true;
      this.#heardAt = Date.now();
      void this.#loop();
    }
    const idle = this.#wakeLoop;
    this.#wakeLoop = undefined;
    idle?.();
    this.#regroupTimer ??= setTimeout(() => {
      this.#regroupTimer = undefined;
      const reading = this.#reading;
      if (reading === undefined) return;
      if ([...this.#followed.values()].every((followed) => reading.has(followed))) return;
      const wake = wakeCommand(this.#wakeKey, this.#clientId);
      if (wake === undefined) return;
      this.#main.send(wake, this.#wakeKey).catch((error: unknown) => {
        debug('could not wake the live reader: %s', error);
      });
    }, REGROUP_MS);
  }

  async #loop(): Promise<void> {
    let backoff = 50;
    while (!this.#closed) {
      if (this.#followed.size === 0) {
        await new Promise<void>((resolve) => {
          this.#wakeLoop = resolve;
        });
        this.#heardAt = Date.now();
        continue;
      }
      try {
        const connection = this.#reader();
        if (this.#wakeKey === undefined) this.#clientId ??= String(await connection.send(['CLIENT', 'ID']));
        if (Date.now() - this.#checkedAt >= this.#blockMs) await this.#check(connection);
        await this.#read(connection);
        backoff = 50;
      } catch (error) {
        if (this.#closed) break;
        this.#clientId = undefined;
        debug('live reader failed (%s); retrying in %d ms from the last ids it saw', error, backoff);
        await new Promise((resolve) => setTimeout(resolve, backoff).unref());
        backoff = Math.min(backoff * 2, 2000);
      }
    }
    this.#running = false;
  }

  #reader(): Commands {
    this.#connection ??= this.#main.duplicate('express-streaming:live-reader', () => {
      // a lost connection: a new one has a new id, and whatever it held is re-read from the cursors
      this.reconnects++;
      this.#clientId = undefined;
    });
    return this.#connection;
  }

  /** One blocking read over every followed topic from its cursor. */
  async #read(connection: Commands): Promise<void> {
    const followed = [...this.#followed.values()];
    this.#reading = new Set(followed);
    const reply = await connection
      .send(...xreadCommand(this.#blockMs, followed, this.#wakeKey))
      .finally(() => {
        this.#reading = undefined;
      });
    this.#heardAt = Date.now();
    // A reply names streams by key: found in one map, not by a scan per stream (many topics, one read).
    const byLog = new Map(followed.map((f) => [f.keys.log, f]));
    let delivered = 0;
    for (const [key, entries] of streamsOf(reply)) {
      const read = byLog.get(key);
      // left (or followed anew) while the read was pending: these entries are nobody's
      if (read === undefined || this.#followed.get(read.topic) !== read) continue;
      delivered += this.#deliver(read, entries);
    }
    if (delivered === 0) this.#deliveryLagMs = 0;
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
        this.#handOver(followed, batch, newest);
        // A new life of the log, found mid-read: read from its start, so that its subscribers get their
        // reset, then every event of it. An older life (an older snapshot restored: its ids were given
        // out since) is never followed: the check, now, has the store begin a new one.
        if (bornBefore(epoch, followed.epoch)) this.#checkedAt = 0;
        else readFromStart(followed, epoch);
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
    this.#deliveryLagMs = Math.max(0, Date.now() - newestPublishedAt);
    this.#host.saw(followed.topic, followed.epoch!, batch[batch.length - 1]!.seq);
    followed.deliver(followed.epoch!, batch);
  }

  /**
   * Where each followed log stands against where the reader is: a log gone (lost), of another epoch
   * (lost and begun again) or below the cursor in the same epoch (gone back in time) is looked at by
   * the store — which bumps its emptyEpoch, or begins a new life — and read again from its start.
   */
  async #check(connection: Commands): Promise<void> {
    this.#checkedAt = Date.now();
    const followed = [...this.#followed.values()];
    const standings = await standingsOf(connection, followed);
    this.#heardAt = Date.now();
    for (const [i, f] of followed.entries()) {
      if (!restarted(f, standings[i]!)) continue;
      debug('the log of topic "%s" was lost or went back in time: reading it from its new start', f.topic);
      // unanswered (Redis still loading a snapshot, say): looked at again at the next check, never
      // followed into whatever life Redis shows meanwhile
      const now = await this.#host.recheck(f.topic).then(
        (epoch) => ({ epoch }),
        () => undefined,
      );
      if (now !== undefined && this.#followed.get(f.topic) === f) readFromStart(f, now.epoch);
    }
  }
}

import { checkCount, checkDurationOrNull, checkOptionsObject } from '../core/options';
import { newEpoch } from './ids';
import type {
  AppendOptions,
  EventsListener,
  HubRecord,
  HubStore,
  LogId,
  LogPage,
  LogPosition,
  StoredEvent,
} from './store';

/** Options of {@link memoryStore}. */
export interface MemoryStoreOptions {
  /** Events kept per topic for resuming clients (a ring buffer). Default `1000`. */
  size?: number;
  /** Events older than this are let go. Default `300000` (5 minutes); `null` keeps them by count only. */
  maxAgeMs?: number | null;
}

/**
 * The hub's embedded store: a ring buffer per topic, in this process. A topic's log starts with a new
 * epoch at its first append and is let go once every event it kept has expired, so a topic nobody
 * publishes to costs nothing (no map entry, no timer); ids from an earlier run, another process or an
 * earlier life of the topic get a reset (`unknown-epoch`). One timer, unref'd, trims expired events,
 * and only while some topic keeps events.
 * @example createHub({ store: memoryStore({ size: 5000, maxAgeMs: 60_000 }) })
 */
export function memoryStore(options: MemoryStoreOptions = {}): HubStore {
  const owner = 'memoryStore';
  checkOptionsObject(options, owner);
  const size = checkCount(options.size, 'size', owner, 1000, 1);
  const maxAgeMs = checkDurationOrNull(options.maxAgeMs, 'maxAgeMs', owner, 300_000);
  return new MemoryStore(size, maxAgeMs);
}

class MemoryStore implements HubStore {
  readonly inProcess = true;
  readonly #size: number;
  readonly #maxAgeMs: number | null;
  readonly #logs = new Map<string, TopicLog>();
  readonly #listeners = new Map<string, EventsListener>();
  /** Epochs are this instance's token and a count of logs started, so no two lives share one. */
  readonly #instance = newEpoch();
  #started = 0;
  /** Bumped when a log is let go: ids handed out for a topic with no log may not resume past it. */
  #emptyGeneration = 0;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(size: number, maxAgeMs: number | null) {
    this.#size = size;
    this.#maxAgeMs = maxAgeMs;
  }

  append(topic: string, record: HubRecord, options: AppendOptions): Promise<LogId> {
    let log = this.#logs.get(topic);
    if (log === undefined) {
      log = new TopicLog(`${this.#instance}${(this.#started++).toString(36)}`, this.#size);
      this.#logs.set(topic, log);
    }
    const known = log.applied(options.idempotencyKey);
    if (known !== undefined) return Promise.resolve({ epoch: log.epoch, seq: known });
    const event = log.append(record, options.idempotencyKey, this.#now());
    this.#sweepWhileKept();
    this.#listeners.get(topic)?.(log.epoch, [event]);
    return Promise.resolve({ epoch: log.epoch, seq: event.seq });
  }

  position(topic: string): Promise<LogPosition> {
    return Promise.resolve(this.#positionOf(topic));
  }

  read(topic: string, after: number, limit: number): Promise<LogPage> {
    const position = this.#positionOf(topic);
    const events = this.#logs.get(topic)?.after(after, limit) ?? [];
    return Promise.resolve({ position, events });
  }

  listen(topic: string, onEvents: EventsListener): void {
    this.#listeners.set(topic, onEvents);
  }

  unlisten(topic: string): void {
    this.#listeners.delete(topic);
    const log = this.#logs.get(topic);
    if (log === undefined) return;
    log.trim(this.#cutoff());
    if (log.length === 0) this.#letGo(topic);
  }

  stats(): Record<string, number> {
    let events = 0;
    for (const log of this.#logs.values()) events += log.length;
    return { topics: this.#logs.size, keptEvents: events };
  }

  close(): Promise<void> {
    this.#stopSweeping();
    this.#logs.clear();
    this.#listeners.clear();
    return Promise.resolve();
  }

  #positionOf(topic: string): LogPosition {
    // Log epochs end in a base-36 count (lowercase): the capital marks an emptyEpoch, so the two never meet.
    const emptyEpoch = `${this.#instance}Z${this.#emptyGeneration.toString(36)}`;
    const log = this.#logs.get(topic);
    if (log === undefined) return { epoch: emptyEpoch, first: 1, head: 0, emptyEpoch };
    log.trim(this.#cutoff());
    return { epoch: log.epoch, first: log.first, head: log.head, emptyEpoch };
  }

  #now(): number {
    return this.#maxAgeMs === null ? 0 : Date.now();
  }

  #cutoff(): number {
    return this.#maxAgeMs === null ? Number.NEGATIVE_INFINITY : Date.now() - this.#maxAgeMs;
  }

  #sweepWhileKept(): void {
    if (this.#sweeper !== undefined || this.#maxAgeMs === null) return;
    this.#sweeper = setInterval(this.#sweep, Math.max(1000, Math.ceil(this.#maxAgeMs / 2)));
    this.#sweeper.unref();
  }

  /**
   * Trims every log; one whose every event expired and that nobody listens to is let go (a later
   * append begins a new life). A followed log is kept, so its live subscribers go on in its epoch.
   */
  readonly #sweep = (): void => {
    const cutoff = this.#cutoff();
    let kept = false;
    for (const [topic, log] of this.#logs) {
      log.trim(cutoff);
      if (log.length > 0) kept = true;
      else if (!this.#listeners.has(topic)) this.#letGo(topic);
    }
    if (!kept) this.#stopSweeping();
  };

  /** A log let go is a life lost: ids handed out while its topic had no log may not resume past it. */
  #letGo(topic: string): void {
    this.#logs.delete(topic);
    this.#emptyGeneration++;
  }

  #stopSweeping(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }
}

/** One life of a topic's log: the last `capacity` events, oldest first, in a ring, with their keys. */
class TopicLog {
  readonly epoch: string;
  readonly #capacity: number;
  readonly #events: StoredEvent[] = [];
  readonly #times: number[] = [];
  /** The idempotency keys of the events kept, and their seqs: the window a resend is recognised in. */
  readonly #keys: string[] = [];
  readonly #seqOfKey = new Map<string, number>();
  #oldest = 0;
  #length = 0;
  head = 0;

  constructor(epoch: string, capacity: number) {
    this.epoch = epoch;
    this.#capacity = capacity;
  }

  get length(): number {
    return this.#length;
  }

  get first(): number {
    return this.head - this.#length + 1;
  }

  applied(key: string): number | undefined {
    return this.#seqOfKey.get(key);
  }

  append(record: HubRecord, key: string, now: number): StoredEvent {
    const event: StoredEvent = { seq: ++this.head, record, wire: undefined };
    let slot: number;
    if (this.#length < this.#capacity) {
      slot = (this.#oldest + this.#length) % this.#capacity;
      this.#length++;
    } else {
      slot = this.#oldest;
      this.#forget(slot);
      this.#oldest = (this.#oldest + 1) % this.#capacity;
    }
    this.#events[slot] = event;
    this.#times[slot] = now;
    this.#keys[slot] = key;
    this.#seqOfKey.set(key, event.seq);
    return event;
  }

  /** Lets go of events appended before `cutoff`. */
  trim(cutoff: number): void {
    while (this.#length > 0 && (this.#times[this.#oldest] as number) < cutoff) {
      this.#forget(this.#oldest);
      this.#events[this.#oldest] = undefined as unknown as StoredEvent;
      this.#oldest = (this.#oldest + 1) % this.#capacity;
      this.#length--;
    }
  }

  after(seq: number, limit: number): StoredEvent[] {
    const first = this.first;
    const from = Math.max(seq + 1, first);
    const to = Math.min(this.head, from + limit - 1);
    const events: StoredEvent[] = [];
    for (let s = from; s <= to; s++)
      events.push(this.#events[(this.#oldest + (s - first)) % this.#capacity]!);
    return events;
  }

  #forget(slot: number): void {
    this.#seqOfKey.delete(this.#keys[slot]!);
    this.#keys[slot] = '';
  }
}

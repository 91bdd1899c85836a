import { checkCount, checkDurationOrNull, checkOptionsObject } from '../core/options';
import { newEpoch } from './ids';
import type { HubRecord, HubStore, LogPosition, StoredEvent } from './store';

/** Options of {@link memoryStore}. */
export interface MemoryStoreOptions {
  /** Events kept per topic for resuming clients (a ring buffer). Default `1000`. */
  size?: number;
  /** Events older than this are let go. Default `300000` (5 minutes); `null` keeps them by count only. */
  maxAgeMs?: number | null;
}

type Listener = (epoch: string, events: readonly StoredEvent[]) => void;

/**
 * The hub's embedded store: a ring buffer per topic, in this process. A topic's log starts with a new
 * epoch when it is first needed and is let go when it has no listener and keeps no event, so a topic
 * nobody uses costs nothing (no map entry, no timer); ids from an earlier run, another process or an
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
  readonly #size: number;
  readonly #maxAgeMs: number | null;
  readonly #logs = new Map<string, TopicLog>();
  /** Epochs are this instance's token and a count of logs started, so no two lives share one. */
  readonly #instance = newEpoch();
  #started = 0;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(size: number, maxAgeMs: number | null) {
    this.#size = size;
    this.#maxAgeMs = maxAgeMs;
  }

  append(topic: string, record: HubRecord): Promise<{ epoch: string; seq: number }> {
    const log = this.#logOf(topic);
    const event = log.append(record, this.#now());
    this.#sweepWhileKept();
    log.listener?.(log.epoch, [event]);
    return Promise.resolve({ epoch: log.epoch, seq: event.seq });
  }

  position(topic: string): Promise<LogPosition> {
    const log = this.#logOf(topic);
    log.trim(this.#cutoff());
    return Promise.resolve(log.position());
  }

  read(
    topic: string,
    after: number,
    limit: number,
  ): Promise<{ position: LogPosition; events: StoredEvent[] }> {
    const log = this.#logOf(topic);
    log.trim(this.#cutoff());
    return Promise.resolve({ position: log.position(), events: log.after(after, limit) });
  }

  listen(topic: string, onEvents: Listener): void {
    this.#logOf(topic).listener = onEvents;
  }

  unlisten(topic: string): void {
    const log = this.#logs.get(topic);
    if (!log) return;
    log.listener = undefined;
    log.trim(this.#cutoff());
    if (log.length === 0) this.#logs.delete(topic);
  }

  stats(): Record<string, number> {
    let events = 0;
    for (const log of this.#logs.values()) events += log.length;
    return { topics: this.#logs.size, keptEvents: events };
  }

  close(): Promise<void> {
    this.#stopSweeping();
    this.#logs.clear();
    return Promise.resolve();
  }

  #logOf(topic: string): TopicLog {
    let log = this.#logs.get(topic);
    if (log === undefined) {
      log = new TopicLog(`${this.#instance}${(this.#started++).toString(36)}`, this.#size);
      this.#logs.set(topic, log);
    }
    return log;
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

  readonly #sweep = (): void => {
    const cutoff = this.#cutoff();
    let kept = false;
    for (const [topic, log] of this.#logs) {
      log.trim(cutoff);
      if (log.length > 0) kept = true;
      else if (log.listener === undefined) this.#logs.delete(topic);
    }
    if (!kept) this.#stopSweeping();
  };

  #stopSweeping(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }
}

/** One life of a topic's log: the last `capacity` events, oldest first, in a ring. */
class TopicLog {
  readonly epoch: string;
  readonly #capacity: number;
  readonly #events: StoredEvent[] = [];
  readonly #times: number[] = [];
  #oldest = 0;
  #length = 0;
  #head = 0;
  listener: Listener | undefined;

  constructor(epoch: string, capacity: number) {
    this.epoch = epoch;
    this.#capacity = capacity;
  }

  get length(): number {
    return this.#length;
  }

  position(): LogPosition {
    return { epoch: this.epoch, first: this.#head - this.#length + 1, head: this.#head };
  }

  append(record: HubRecord, now: number): StoredEvent {
    const event: StoredEvent = { seq: ++this.#head, record, wire: undefined };
    if (this.#length < this.#capacity) {
      const slot = (this.#oldest + this.#length) % this.#capacity;
      this.#events[slot] = event;
      this.#times[slot] = now;
      this.#length++;
    } else {
      this.#events[this.#oldest] = event;
      this.#times[this.#oldest] = now;
      this.#oldest = (this.#oldest + 1) % this.#capacity;
    }
    return event;
  }

  /** Lets go of events appended before `cutoff`. */
  trim(cutoff: number): void {
    while (this.#length > 0 && (this.#times[this.#oldest] as number) < cutoff) {
      this.#events[this.#oldest] = undefined as unknown as StoredEvent;
      this.#oldest = (this.#oldest + 1) % this.#capacity;
      this.#length--;
    }
  }

  after(seq: number, limit: number): StoredEvent[] {
    const first = this.#head - this.#length + 1;
    const from = Math.max(seq + 1, first);
    const to = Math.min(this.#head, from + limit - 1);
    const events: StoredEvent[] = [];
    for (let s = from; s <= to; s++)
      events.push(this.#events[(this.#oldest + (s - first)) % this.#capacity]!);
    return events;
  }
}

import type { LogPosition, StoredEvent } from './store';

/** How much of each followed topic's recent past a hub keeps (see `HubOptions.tail`). */
export interface TailLimits {
  readonly events: number;
  readonly bytes: number;
  /** How long a topic whose last subscriber left stays followed, its tail warm (0: not at all). */
  readonly lingerMs: number;
}

/**
 * The recent events of one followed topic, exactly as its live feed brought them: contiguous seqs of
 * one epoch, oldest first, bounded by count and bytes. It answers a resuming client's position and
 * replay when the client's place falls inside it — with no store command — and never guesses: a gap,
 * a new epoch or a rewind in the feed starts it afresh, and what it does not hold, the store answers.
 * Its head may be behind the store's (events appended but not yet handed over); that is safe, since
 * they reach every subscriber through the live feed it joined first.
 */
export class Tail {
  readonly #limits: TailLimits;
  #epoch = '';
  #events: StoredEvent[] = [];
  /** Index of the oldest kept event in `#events` (trimmed from the front without shifting each time). */
  #start = 0;
  #bytes = 0;
  /** The topic's `emptyEpoch` as the store last said it (a store may keep one per part of its own). */
  emptyEpoch: string | undefined;

  constructor(limits: TailLimits) {
    this.#limits = limits;
  }

  /** Whether the tail holds anything it can answer from. */
  get warm(): boolean {
    return this.#events.length > this.#start;
  }

  get epoch(): string {
    return this.#epoch;
  }

  get head(): number {
    return this.warm ? this.#events[this.#events.length - 1]!.seq : 0;
  }

  get first(): number {
    return this.warm ? this.#events[this.#start]!.seq : 0;
  }

  /** Live events of the topic, in the order the feed handed them over. */
  take(epoch: string, events: readonly StoredEvent[]): void {
    for (const event of events) {
      if (epoch !== this.#epoch || event.seq !== this.head + 1) this.#restart(epoch);
      this.#events.push(event);
      this.#bytes += sizeOf(event);
    }
    this.#trim();
  }

  /** Where the log stands as far as the tail can vouch: `first` is the oldest seq it holds. */
  position(emptyEpoch: string): LogPosition {
    return { epoch: this.#epoch, first: this.first, head: this.head, emptyEpoch };
  }

  /** Whether a client at `seq` of `epoch` can be caught up from the tail alone. */
  covers(epoch: string, seq: number): boolean {
    return this.warm && epoch === this.#epoch && seq >= this.first - 1 && seq <= this.head;
  }

  /** Up to `limit` events after `seq`, which {@link covers} must vouch for. */
  after(seq: number, limit: number): StoredEvent[] {
    const from = this.#start + (seq + 1 - this.first);
    return this.#events.slice(from, Math.min(from + limit, this.#events.length));
  }

  #restart(epoch: string): void {
    this.#epoch = epoch;
    this.#events = [];
    this.#start = 0;
    this.#bytes = 0;
  }

  #trim(): void {
    const { events, bytes } = this.#limits;
    while (this.#events.length - this.#start > events || (this.#bytes > bytes && this.warm)) {
      this.#bytes -= sizeOf(this.#events[this.#start]!);
      this.#start++;
    }
    // let go of the trimmed front once it is as long as what is kept
    if (this.#start > 0 && this.#start >= this.#events.length - this.#start) {
      this.#events = this.#events.slice(this.#start);
      this.#start = 0;
    }
  }
}

/**
 * What an event costs the tail, roughly: its text three times — the record, the wire bytes the hub
 * caches on it, and their HTTP/1.1 frame — and a little for the objects.
 */
function sizeOf(event: StoredEvent): number {
  const { event: name, data, comment } = event.record;
  return 64 + 3 * ((name?.length ?? 0) + (data?.length ?? 0) + (comment?.length ?? 0));
}

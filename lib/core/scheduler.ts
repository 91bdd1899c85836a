/** Something the scheduler visits on every tick. */
export interface Ticking {
  tick(tick: number): void;
}

/**
 * One timer for every stream of a middleware instance, never one per connection: it ticks every
 * `periodMs` while at least one stream is registered and stops when the last one leaves, so an idle
 * server holds no timer at all. Streams compare tick numbers instead of reading the clock per write.
 * With a `null` period it only keeps the set of members.
 */
export class TickScheduler {
  readonly periodMs: number | null;
  readonly #members = new Set<Ticking>();
  #timer: NodeJS.Timeout | undefined;
  /** The number of the current tick; it grows by one every `periodMs`. A field: read on every write. */
  tick = 0;

  constructor(periodMs: number | null) {
    this.periodMs = periodMs;
  }

  get size(): number {
    return this.#members.size;
  }

  members(): IterableIterator<Ticking> {
    return this.#members.values();
  }

  add(member: Ticking): void {
    this.#members.add(member);
    if (!this.#timer && this.periodMs !== null) {
      this.#timer = setInterval(this.#run, this.periodMs);
      // A server with open streams still exits when the app closes it.
      this.#timer.unref();
    }
  }

  delete(member: Ticking): void {
    this.#members.delete(member);
    if (this.#members.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  readonly #run = (): void => {
    const tick = ++this.tick;
    for (const member of this.#members) member.tick(tick);
  };
}

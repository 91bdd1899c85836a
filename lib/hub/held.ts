import type { StoredEvent } from './store';

/** Live batches as the fan-out handed them over. */
export interface LiveBatch {
  readonly epoch: string;
  readonly events: readonly StoredEvent[];
}

/**
 * Live events that arrive while a subscriber catches up from the log, kept to be handed over after
 * it. Bounded: past `limit` events they are let go and the subscriber reads the log again instead
 * (it has them), so a client catching up slowly never makes its subscriber hold a busy topic's feed.
 */
export class HeldEvents {
  readonly #limit: number;
  #batches: LiveBatch[] | undefined;
  #count = 0;
  /** Too much arrived: what was held is gone, and the log must be read again. */
  overflowed = false;

  constructor(limit: number) {
    this.#limit = limit;
  }

  hold(epoch: string, events: readonly StoredEvent[]): void {
    if (this.overflowed) return;
    this.#count += events.length;
    if (this.#count > this.#limit) {
      this.clear();
      this.overflowed = true;
      return;
    }
    this.#batches ??= [];
    this.#batches.push({ epoch, events });
  }

  /** What was held, oldest first, let go of. */
  takeAll(): readonly LiveBatch[] | undefined {
    const batches = this.#batches;
    this.clear();
    return batches;
  }

  clear(): void {
    this.#batches = undefined;
    this.#count = 0;
  }
}

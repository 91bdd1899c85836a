import type { LogPosition, StoredEvent } from './store';

/**
 * Where a client stands in a topic's log: the life of the log it is in (`epoch`) and the last seq it
 * has — with the store's epoch for a topic that has no log, as last read, for a client placed on none.
 */
export class Place {
  epoch = '';
  last = 0;
  emptyEpoch: string | undefined;
  /** The live feed went back in time while the client caught up: where it goes on from. */
  #rewoundTo: LogPosition | undefined;

  /** Goes to where `position` stands (a first connection, a reset). */
  moveTo(position: LogPosition): void {
    this.epoch = position.epoch;
    this.last = position.head;
    this.emptyEpoch = position.emptyEpoch;
  }

  /**
   * Whether the client's place continues in a log of `epoch`: the same life, or — for a client placed
   * on a topic with no log, while the store says no log was lost since — the start of the log begun.
   */
  adopts(epoch: string, emptyEpoch: string | undefined): boolean {
    if (epoch === this.epoch) return true;
    if (this.last !== 0 || emptyEpoch === undefined || this.epoch !== emptyEpoch) return false;
    this.epoch = epoch;
    return true;
  }

  /** A position just before `event`: where a client goes live from when it is told to reset there. */
  before(epoch: string, event: StoredEvent): LogPosition {
    return { epoch, first: event.seq, head: event.seq - 1, emptyEpoch: this.emptyEpoch ?? '' };
  }

  /** Notes that the live feed went back in time to `first`, to be applied between two writes. */
  rewoundTo(epoch: string, first: StoredEvent): void {
    this.#rewoundTo = this.before(epoch, first);
  }

  /** A noted rewind that goes below the client's place: the position to reset to. */
  takeRewind(): LogPosition | undefined {
    const to = this.#rewoundTo;
    this.#rewoundTo = undefined;
    return to !== undefined && to.epoch === this.epoch && to.head < this.last ? to : undefined;
  }
}

import { CursorWriter, type Spot } from './cursor';
import { batchOf, wireWithId } from './encode';
import type { SetSubscriber } from './set-subscriber';
import type { StoredEvent } from './store';

/**
 * The subscribers of one topic set in this process. Those in step — live in every topic, unfiltered,
 * at the same place in each — get the same bytes: each live batch is encoded once, with the cursor
 * of the set's place, for all of them. A subscriber falls out of step when its bytes would differ (it
 * catches up, its stream did not take a batch, a gap, a rewind, a filter); its lanes then write for
 * it alone, and it steps in again once its places equal the set's.
 */
export class TopicSet {
  readonly key: string;
  readonly topics: readonly string[];
  readonly #inStep = new Set<SetSubscriber>();
  readonly #outOfStep = new Set<SetSubscriber>();
  /** Where the subscribers in step stand, by topic. */
  readonly #spots: Spot[];
  readonly #cursor: CursorWriter;

  constructor(key: string, first: SetSubscriber) {
    this.key = key;
    this.topics = first.topics;
    this.#spots = first.topics.map(() => ({ epoch: '', last: 0 }));
    this.#cursor = new CursorWriter(first.hashes);
  }

  get size(): number {
    return this.#inStep.size + this.#outOfStep.size;
  }

  members(): SetSubscriber[] {
    return [...this.#inStep, ...this.#outOfStep];
  }

  add(subscriber: SetSubscriber): void {
    this.#outOfStep.add(subscriber);
  }

  delete(subscriber: SetSubscriber): void {
    if (!this.#inStep.delete(subscriber)) this.#outOfStep.delete(subscriber);
  }

  /**
   * Live events of topic `index`: encoded once for the subscribers in step, when they follow on from
   * the set's place; handed to each other subscriber's lane. Returns the deliveries made with the
   * set's bytes (the lanes count their own).
   */
  take(index: number, epoch: string, events: readonly StoredEvent[], rewound: boolean): number {
    let shared = false;
    if (this.#inStep.size > 0) {
      const spot = this.#spots[index]!;
      if (!rewound && spot.epoch === epoch && events[0]!.seq === spot.last + 1) shared = true;
      // another life of the log, a rewind or a gap: each subscriber's lane judges it for its client
      else this.#scatter();
    }
    // those out of step now: one whose shared write is dropped below catches up instead
    const others = this.#outOfStep.size > 0 ? [...this.#outOfStep] : undefined;
    const delivered = shared ? this.#share(index, events) : 0;
    for (const subscriber of others ?? []) {
      try {
        subscriber.take(index, epoch, events, rewound);
        this.rejoin(subscriber);
      } catch (error) {
        // one subscriber's failure must not cost the others their events
        subscriber.fail(error);
      }
    }
    return delivered;
  }

  /** A subscriber whose places equal the set's steps in (the first one sets the set's place). */
  rejoin(subscriber: SetSubscriber): void {
    if (!this.#outOfStep.has(subscriber) || !subscriber.canShare) return;
    const spots = this.#spots;
    const places = subscriber.places;
    if (this.#inStep.size === 0) {
      // the first one in step: the set is where it is
      for (const [i, spot] of spots.entries()) {
        spot.epoch = places[i]!.epoch;
        spot.last = places[i]!.last;
      }
    } else if (!spots.every((spot, i) => spot.epoch === places[i]!.epoch && spot.last === places[i]!.last)) {
      return;
    }
    this.#outOfStep.delete(subscriber);
    this.#inStep.add(subscriber);
  }

  #scatter(): void {
    for (const subscriber of this.#inStep) this.#outOfStep.add(subscriber);
    this.#inStep.clear();
  }

  /** The broadcast loop of a topic set: one encoding of the batch, the same bytes to each subscriber in step. */
  #share(index: number, events: readonly StoredEvent[]): number {
    const spots = this.#spots;
    const spot = spots[index]!;
    const wires = events.map((event) => {
      spot.last = event.seq;
      return wireWithId(event.record, this.#cursor.write(spots));
    });
    const batch = batchOf(wires);
    let delivered = 0;
    for (const subscriber of this.#inStep) {
      try {
        const delivery = subscriber.takeShared(index, batch, spot.last);
        if (delivery === 'written') delivered += events.length;
        else if (delivery === 'dropped') {
          // its lane catches up from the log; the stream's next bytes are its own
          this.#inStep.delete(subscriber);
          this.#outOfStep.add(subscriber);
        }
      } catch (error) {
        subscriber.fail(error);
      }
    }
    return delivered;
  }
}

import { reportUnheard } from '../core/errors';
import type { EncodedEvent } from '../sse/encoded';
import { batchOf, wireOf } from './encode';
import type { HubStore, StoredEvent } from './store';
import type { Subscriber } from './subscriber';

/** The subscribers of one topic, and its live events of the current tick, written as one batch. */
class Topic {
  readonly name: string;
  readonly subscribers = new Set<Subscriber>();
  /** Resolves once the store hands over every event appended from then on. */
  following: Promise<void> = Promise.resolve();
  pending: Array<{ epoch: string; events: StoredEvent[] }> = [];
  /** Where the live feed stands: a seq at or below it in the same epoch is the log gone back in time. */
  liveEpoch = '';
  liveHead = 0;

  constructor(name: string) {
    this.name = name;
  }
}

/**
 * The live side of a hub: the topics that have subscribers in this process, each followed in the
 * store once, and the broadcast loop. Events a store hands over within one tick — or within
 * `coalesceMs` of the first — are gathered per topic and written as one batch: a burst is one write
 * per client, and the bytes are made once for every subscriber.
 */
export class FanOut {
  readonly #store: HubStore;
  /** How long live events wait to be written together; 0: until the end of the tick. */
  readonly #coalesceMs: number;
  readonly #topics = new Map<string, Topic>();
  /** Topics with events of this tick to fan out; flushed once, at the end of the tick. */
  #flushing: Topic[] = [];
  /** Deliveries made by the broadcast loop (the other paths count their own). */
  delivered = 0;

  constructor(store: HubStore, coalesceMs: number) {
    this.#store = store;
    this.#coalesceMs = coalesceMs;
  }

  /** Subscribers per topic with any, and their sum. */
  census(): { topics: Record<string, number>; subscribers: number } {
    // no prototype: a topic named `__proto__` (topics come from URLs) is a key like any other
    const topics: Record<string, number> = Object.create(null);
    let subscribers = 0;
    for (const topic of this.#topics.values()) {
      topics[topic.name] = topic.subscribers.size;
      subscribers += topic.subscribers.size;
    }
    return { topics, subscribers };
  }

  subscribersOf(topic: string): number {
    return this.#topics.get(topic)?.subscribers.size ?? 0;
  }

  /** Every subscriber of every topic, for the hub's close. */
  everySubscriber(): Subscriber[] {
    return [...this.#topics.values()].flatMap((topic) => [...topic.subscribers]);
  }

  /** Joins the topic's live fan-out; resolves once the store follows the topic. */
  join(subscriber: Subscriber): Promise<void> {
    let topic = this.#topics.get(subscriber.topic);
    if (topic === undefined) {
      const created = new Topic(subscriber.topic);
      this.#topics.set(created.name, created);
      created.following = new Promise<void>((resolve) =>
        resolve(this.#store.listen(created.name, (epoch, events) => this.#arrived(created, epoch, events))),
      );
      // A store that cannot follow the topic now (Redis down): its subscribers close (and reconnect
      // later); the next subscriber asks the store again instead of inheriting the failure.
      created.following.catch(() => this.#forget(created));
      topic = created;
    }
    topic.subscribers.add(subscriber);
    return topic.following;
  }

  leave(subscriber: Subscriber): void {
    const topic = this.#topics.get(subscriber.topic);
    if (topic === undefined || !topic.subscribers.delete(subscriber) || topic.subscribers.size > 0) return;
    this.#forget(topic);
  }

  #forget(topic: Topic): void {
    if (this.#topics.get(topic.name) !== topic) return;
    this.#topics.delete(topic.name);
    this.#store.unlisten(topic.name);
  }

  /** Live events from the store: gathered for the end of the tick, so a burst is one write per client. */
  #arrived(topic: Topic, epoch: string, events: readonly StoredEvent[]): void {
    if (this.#topics.get(topic.name) !== topic) return;
    const pending = topic.pending;
    if (pending.length === 0) {
      this.#flushing.push(topic);
      // one wait for every topic of the window: a timer per hub, never one per topic or subscriber
      if (this.#flushing.length === 1) {
        if (this.#coalesceMs === 0) process.nextTick(this.#flush);
        else setTimeout(this.#flush, this.#coalesceMs).unref();
      }
    }
    const last = pending[pending.length - 1];
    if (last !== undefined && last.epoch === epoch) last.events.push(...events);
    else pending.push({ epoch, events: [...events] });
  }

  readonly #flush = (): void => {
    const topics = this.#flushing;
    this.#flushing = [];
    for (const topic of topics) {
      const pending = topic.pending;
      topic.pending = [];
      for (const { epoch, events } of pending) {
        try {
          this.#broadcast(topic, epoch, events);
        } catch (error) {
          // an entry the hub cannot encode (written to the log by something else): reported, skipped
          reportUnheard(error);
        }
      }
    }
  };

  /** The broadcast loop: the same bytes to every subscriber; no encoding, closure or promise per client. */
  #broadcast(topic: Topic, epoch: string, events: readonly StoredEvent[]): void {
    if (topic.subscribers.size === 0) return;
    // A store hands each event over once, in order: a seq it handed over before is a rewind.
    const rewound = epoch === topic.liveEpoch && events[0]!.seq <= topic.liveHead;
    topic.liveEpoch = epoch;
    topic.liveHead = events[events.length - 1]!.seq;
    const wires: EncodedEvent[] = events.map((event) => wireOf(epoch, event));
    const batch = batchOf(wires);
    let delivered = 0;
    for (const subscriber of topic.subscribers) {
      try {
        delivered += subscriber.take(epoch, events, batch, rewound);
      } catch (error) {
        // one subscriber's failure must not cost the others their events (nor the process its life)
        subscriber.fail(error);
      }
    }
    this.delivered += delivered;
  }
}

import { reportUnheard } from '../core/errors';
import type { EncodedEvent } from '../sse/encoded';
import { batchOf, wireOf } from './encode';
import { type SetSubscriber, setKey } from './set-subscriber';
import type { HubStore, StoredEvent } from './store';
import type { Subscriber } from './subscriber';
import { Tail, type TailLimits } from './tail';
import { TopicSet } from './topic-set';
import type { TopicSubscriber } from './topic-subscriber';

/** The subscribers of one topic, and its live events of the current tick, written as one batch. */
class Topic {
  readonly name: string;
  /** Clients of this topic alone. */
  readonly subscribers = new Set<TopicSubscriber>();
  /** The topic sets that include this topic, and its index in each. */
  readonly sets = new Map<TopicSet, number>();
  /** Resolves once the store hands over every event appended from then on. */
  following: Promise<void> = Promise.resolve();
  pending: Array<{ epoch: string; events: StoredEvent[] }> = [];
  /** Where the live feed stands: a seq at or below it in the same epoch is the log gone back in time. */
  liveEpoch = '';
  liveHead = 0;
  /** The topic's recent events, as the live feed brought them (see {@link Tail}); none for an in-process store. */
  readonly tail: Tail | undefined;
  /** Set while the topic has no subscriber but stays followed, its tail warm for clients coming back. */
  lingering: NodeJS.Timeout | undefined;

  constructor(name: string, tail: TailLimits | null) {
    this.name = name;
    this.tail = tail === null ? undefined : new Tail(tail);
  }

  /** Its subscribers, those of its topic sets included. */
  get size(): number {
    let size = this.subscribers.size;
    for (const set of this.sets.keys()) size += set.size;
    return size;
  }
}

/**
 * The live side of a hub: the topics that have subscribers in this process, each followed in the
 * store once, and the broadcast loop. Events a store hands over within one tick — or within
 * `coalesceMs` of the first — are gathered per topic and written as one batch: a burst is one write
 * per client, and the bytes are made once for every subscriber of the topic alone, and once for every
 * topic set that includes it.
 */
export class FanOut {
  readonly #store: HubStore;
  /** How long live events wait to be written together; 0: until the end of the tick. */
  readonly #coalesceMs: number;
  readonly #tail: TailLimits | null;
  readonly #topics = new Map<string, Topic>();
  readonly #sets = new Map<string, TopicSet>();
  /** Topics with events of this tick to fan out; flushed once, at the end of the tick. */
  #flushing: Topic[] = [];
  /** Deliveries made by the broadcast loop (the other paths count their own). */
  delivered = 0;

  constructor(store: HubStore, coalesceMs: number, tail: TailLimits | null) {
    this.#store = store;
    this.#coalesceMs = coalesceMs;
    this.#tail = tail;
  }

  /** The topic's tail, if the hub keeps one and follows the topic. */
  tailOf(topic: string): Tail | undefined {
    return this.#topics.get(topic)?.tail;
  }

  /** The hub closes: lingering topics are let go at once. */
  close(): void {
    for (const topic of [...this.#topics.values()]) if (topic.lingering !== undefined) this.#forget(topic);
  }

  /** Subscribers per topic with any (a many-topic one under each of its topics), and the clients. */
  census(): { topics: Record<string, number>; subscribers: number } {
    // no prototype: a topic named `__proto__` (topics come from URLs) is a key like any other
    const topics: Record<string, number> = Object.create(null);
    let subscribers = 0;
    for (const topic of this.#topics.values()) {
      topics[topic.name] = topic.size;
      subscribers += topic.subscribers.size;
    }
    for (const set of this.#sets.values()) subscribers += set.size;
    return { topics, subscribers };
  }

  subscribersOf(topic: string): number {
    return this.#topics.get(topic)?.size ?? 0;
  }

  /** Every subscriber, for the hub's close. */
  everySubscriber(): Subscriber[] {
    const single = [...this.#topics.values()].flatMap((topic) => [...topic.subscribers]);
    return [...single, ...[...this.#sets.values()].flatMap((set) => set.members())];
  }

  /** Joins the topic's live fan-out; resolves once the store follows the topic. */
  join(subscriber: TopicSubscriber): Promise<void> {
    const topic = this.#follow(subscriber.topic);
    topic.subscribers.add(subscriber);
    return topic.following;
  }

  leave(subscriber: TopicSubscriber): void {
    const topic = this.#topics.get(subscriber.topic);
    if (topic?.subscribers.delete(subscriber)) this.#forgetUnused(topic);
  }

  /** Joins the fan-out of every topic of the set, in its topic set; resolves once the store follows each. */
  joinSet(subscriber: SetSubscriber): Promise<void> {
    const key = setKey(subscriber.topics);
    let set = this.#sets.get(key);
    if (set === undefined) {
      set = new TopicSet(key, subscriber);
      this.#sets.set(key, set);
    }
    set.add(subscriber);
    subscriber.set = set;
    // (again for each subscriber: a topic whose store failed to follow it was forgotten since)
    const topics = set.topics.map((name, index) => {
      const topic = this.#follow(name);
      topic.sets.set(set, index);
      return topic.following;
    });
    return Promise.all(topics).then(() => undefined);
  }

  leaveSet(subscriber: SetSubscriber): void {
    const set = subscriber.set;
    if (set === undefined || this.#sets.get(set.key) !== set) return;
    set.delete(subscriber);
    if (set.size > 0) return;
    this.#sets.delete(set.key);
    for (const name of set.topics) {
      const topic = this.#topics.get(name);
      if (topic?.sets.delete(set)) this.#forgetUnused(topic);
    }
  }

  /** The topic, followed in the store from its first subscriber on. */
  #follow(name: string): Topic {
    let topic = this.#topics.get(name);
    if (topic?.lingering !== undefined) {
      clearTimeout(topic.lingering);
      topic.lingering = undefined;
    }
    if (topic === undefined) {
      const created = new Topic(name, this.#tail);
      this.#topics.set(name, created);
      created.following = new Promise<void>((resolve) =>
        resolve(this.#store.listen(name, (epoch, events) => this.#arrived(created, epoch, events))),
      );
      // A store that cannot follow the topic now (Redis down): its subscribers close (and reconnect
      // later); the next subscriber asks the store again instead of inheriting the failure.
      created.following.catch(() => this.#forget(created));
      topic = created;
    }
    return topic;
  }

  /**
   * A topic nobody subscribes to any more is let go — after `lingerMs` if its tail is warm, so that
   * clients reconnecting elsewhere after a deploy or a network blip find their events in this process.
   * A topic nobody publishes to (a cold tail) costs nothing meanwhile: it goes at once.
   */
  #forgetUnused(topic: Topic): void {
    if (topic.subscribers.size > 0 || topic.sets.size > 0) return;
    const lingerMs = this.#tail?.lingerMs ?? 0;
    if (lingerMs > 0 && topic.tail?.warm) {
      topic.lingering = setTimeout(() => this.#forget(topic), lingerMs).unref();
    } else {
      this.#forget(topic);
    }
  }

  #forget(topic: Topic): void {
    if (this.#topics.get(topic.name) !== topic) return;
    clearTimeout(topic.lingering);
    topic.lingering = undefined;
    this.#topics.delete(topic.name);
    this.#store.unlisten(topic.name);
  }

  /** Live events from the store: gathered for the end of the tick, so a burst is one write per client. */
  #arrived(topic: Topic, epoch: string, events: readonly StoredEvent[]): void {
    if (this.#topics.get(topic.name) !== topic) return;
    // at once, before the flush: a client resuming meanwhile is caught up to here, and its lane then
    // skips these events when the flush hands them over
    topic.tail?.take(epoch, events);
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
    if (topic.subscribers.size === 0 && topic.sets.size === 0) return;
    // A store hands each event over once, in order: a seq it handed over before is a rewind.
    const rewound = epoch === topic.liveEpoch && events[0]!.seq <= topic.liveHead;
    topic.liveEpoch = epoch;
    topic.liveHead = events[events.length - 1]!.seq;
    let delivered = 0;
    if (topic.subscribers.size > 0) {
      const wires: EncodedEvent[] = events.map((event) => wireOf(epoch, event));
      const batch = batchOf(wires);
      for (const subscriber of topic.subscribers) {
        try {
          delivered += subscriber.take(epoch, events, batch, rewound);
        } catch (error) {
          // one subscriber's failure must not cost the others their events (nor the process its life)
          subscriber.fail(error);
        }
      }
    }
    for (const [set, index] of topic.sets) delivered += set.take(index, epoch, events, rewound);
    this.delivered += delivered;
  }
}

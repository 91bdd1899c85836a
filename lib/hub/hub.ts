import { channels } from '../core/diagnostics';
import { reportUnheard } from '../core/errors';
import { checkCount, checkFunction, checkOptionsObject, optionError } from '../core/options';
import { describeValue } from '../core/util';
import { type EncodedEvent, encodedText, holdsHead } from '../sse/encoded';
import { defaultSerialize, encodeRetry, type Serialize } from '../sse/encoder';
import { jitter } from '../sse/head';
import type { IdSource } from '../sse/last-event-id';
import { DEFAULT_RETRY_MS } from '../sse/options';
import { SseSubscription } from '../sse/types';
import { batchOf, recordOf, wireOf } from './encode';
import { HubClosedError } from './errors';
import { formatId, newEpoch } from './ids';
import { memoryStore } from './memory-store';
import type { HubRecord, HubStore, LogPage, LogPosition, StoredEvent } from './store';
import { type HubCounter, Subscriber, type SubscriberHost } from './subscriber';
import type {
  AnyEvents,
  Hub,
  HubEventInput,
  HubOptions,
  HubStats,
  PublishOptions,
  ResetReason,
  SubscribeOptions,
} from './types';

/** Long enough for a UUID with a prefix, short enough to keep a store's window of keys small. */
const MAX_KEY_LENGTH = 200;

const RESET_REASONS: readonly ResetReason[] = ['unknown-epoch', 'too-old', 'ahead', 'malformed', 'too-many'];

/**
 * A hub: fan-out with ids and exact resume. `hub.publish(topic, event)` encodes each event once and
 * writes the same bytes to every subscriber; `res.sse(hub.subscribe(topic, req))` replays what a
 * client missed after its `Last-Event-ID`, or sends `event: reset`, then goes live. With the default
 * `memoryStore()` it runs in one process; `redisStore()` (from `express-streaming/redis`) takes it
 * across processes and machines.
 * @example
 * const hub = createHub<{ msg: { text: string } }>();
 * app.get('/feed/:room', (req, res) => res.sse(hub.subscribe(`room:${req.params.room}`, req)));
 * await hub.publish('room:42', { event: 'msg', data: { text: 'hi' } });
 */
export function createHub<Events = AnyEvents>(options: HubOptions = {}): Hub<Events> {
  const owner = 'createHub';
  checkOptionsObject(options, owner);
  const store = options.store ?? memoryStore();
  for (const method of ['append', 'position', 'read', 'listen', 'unlisten', 'close'] as const) {
    if (typeof (store as unknown as Record<string, unknown>)[method] !== 'function') {
      throw optionError(owner, 'store', `a store (memoryStore(), redisStore(…)) with ${method}()`, store);
    }
  }
  const serialize = checkFunction(options.serialize, 'serialize', owner) ?? defaultSerialize;
  const maxReplay = checkCount(options.maxReplay, 'maxReplay', owner, 1000, 0);
  return new HubCore(store, serialize, maxReplay) as unknown as Hub<Events>;
}

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

class HubCore implements Hub, SubscriberHost {
  readonly maxReplay: number;
  readonly #store: HubStore;
  readonly #serialize: Serialize;
  readonly #topics = new Map<string, Topic>();
  /** Topics with events of this tick to fan out; flushed once, at the end of the tick. */
  #flushing: Topic[] = [];
  #closed = false;
  readonly #instance = newEpoch();
  #published = 0;
  readonly #counts: Record<HubCounter, number> = {
    published: 0,
    delivered: 0,
    replays: 0,
    replayed: 0,
    slowCloses: 0,
  };
  readonly #resets: Record<ResetReason, number> = Object.fromEntries(
    RESET_REASONS.map((r) => [r, 0]),
  ) as Record<ResetReason, number>;

  constructor(store: HubStore, serialize: Serialize, maxReplay: number) {
    this.#store = store;
    this.#serialize = serialize;
    this.maxReplay = maxReplay;
  }

  publish(topic: string, event: HubEventInput<AnyEvents>, options?: PublishOptions): Promise<string> {
    let record: HubRecord;
    let idempotencyKey: string;
    try {
      checkTopic(topic, 'hub.publish');
      idempotencyKey = checkPublishOptions(options) ?? this.#nextKey();
      if (this.#closed) throw new HubClosedError('hub.publish');
      record = recordOf(event, this.#serialize);
    } catch (error) {
      // a promise-returning call reports every failure as a rejection: `.catch()` and `.then(…, next)` see it
      return Promise.reject(error);
    }
    return this.#store.append(topic, record, { idempotencyKey }).then(({ epoch, seq }) => {
      this.#counts.published++;
      const id = formatId(epoch, seq);
      if (channels.hubPublish.hasSubscribers) {
        channels.hubPublish.publish({
          topic,
          id,
          event: record.event ?? 'message',
          subscribers: this.#topics.get(topic)?.subscribers.size ?? 0,
        });
      }
      return id;
    });
  }

  /** A key of this hub's own for a publish the caller gave none: a store's resend of it applies once. */
  #nextKey(): string {
    return `${this.#instance}.${(this.#published++).toString(36)}`;
  }

  subscribe(topic: string, req: IdSource, options: SubscribeOptions = {}): SseSubscription {
    checkTopic(topic, 'hub.subscribe');
    checkSubscribeOptions(options);
    if (typeof req !== 'object' || req === null || typeof req.headers !== 'object') {
      throw new TypeError(`hub.subscribe: expected \`req\` to be the request, got ${describeValue(req)}`);
    }
    let attached = false;
    const subscription: SseSubscription & { readonly [holdsHead]: true } = {
      // the client sees its stream open once its subscriber is positioned (Subscriber.#position)
      [holdsHead]: true,
      [SseSubscription]: (stream) => {
        if (attached)
          throw new TypeError(
            'hub.subscribe: a subscription runs on one stream; subscribe again for another',
          );
        attached = true;
        if (this.#closed) {
          stream.close();
          return;
        }
        new Subscriber(this, topic, req, options).attach(stream);
      },
    };
    return subscription;
  }

  stats(): HubStats {
    const topics: Record<string, number> = {};
    let subscribers = 0;
    for (const topic of this.#topics.values()) {
      topics[topic.name] = topic.subscribers.size;
      subscribers += topic.subscribers.size;
    }
    return {
      topics,
      subscribers,
      ...this.#counts,
      resets: { ...this.#resets },
      store: this.#store.stats?.() ?? {},
    };
  }

  async close(options: { retryMs?: number } = {}): Promise<void> {
    checkOptionsObject(options, 'hub.close');
    const retryMs = checkCount(options.retryMs, 'retryMs', 'hub.close', DEFAULT_RETRY_MS, 0);
    if (this.#closed) return;
    this.#closed = true;
    for (const topic of [...this.#topics.values()]) {
      for (const subscriber of [...topic.subscribers]) subscriber.closeWith(retryLine(retryMs));
    }
    await this.#store.close();
  }

  // --- SubscriberHost: what subscribers use of their hub ---

  read(topic: string, after: number, limit: number): Promise<LogPage> {
    return this.#store.read(topic, after, limit);
  }

  position(topic: string): Promise<LogPosition> {
    return this.#store.position(topic);
  }

  join(subscriber: Subscriber): Promise<void> {
    let topic = this.#topics.get(subscriber.topic);
    if (topic === undefined) {
      const created = new Topic(subscriber.topic);
      this.#topics.set(created.name, created);
      created.following = Promise.resolve(
        this.#store.listen(created.name, (epoch, events) => this.#arrived(created, epoch, events)),
      );
      topic = created;
    }
    topic.subscribers.add(subscriber);
    return topic.following;
  }

  leave(subscriber: Subscriber): void {
    const topic = this.#topics.get(subscriber.topic);
    if (topic === undefined || !topic.subscribers.delete(subscriber) || topic.subscribers.size > 0) return;
    this.#topics.delete(topic.name);
    this.#store.unlisten(topic.name);
  }

  counted(counter: HubCounter, by = 1): void {
    this.#counts[counter] += by;
  }

  countedReset(reason: ResetReason): void {
    this.#resets[reason]++;
  }

  // --- fan-out ---

  /** Live events from the store: gathered for the end of the tick, so a burst is one write per client. */
  #arrived(topic: Topic, epoch: string, events: readonly StoredEvent[]): void {
    if (this.#topics.get(topic.name) !== topic) return;
    const pending = topic.pending;
    if (pending.length === 0) {
      this.#flushing.push(topic);
      if (this.#flushing.length === 1) process.nextTick(this.#flush);
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
          this.#fanOut(topic, epoch, events);
        } catch (error) {
          // an entry the hub cannot encode (written to the log by something else): reported, skipped
          reportUnheard(error);
        }
      }
    }
  };

  /** The broadcast loop: the same bytes to every subscriber; no encoding, closure or promise per client. */
  #fanOut(topic: Topic, epoch: string, events: readonly StoredEvent[]): void {
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
    this.#counts.delivered += delivered;
  }
}

function retryLine(retryMs: number): EncodedEvent {
  return encodedText(encodeRetry(jitter(retryMs)));
}

function checkTopic(topic: unknown, owner: string): asserts topic is string {
  if (typeof topic !== 'string' || topic === '') {
    throw new TypeError(`${owner}: expected \`topic\` to be a non-empty string, got ${describeValue(topic)}`);
  }
}

function checkSubscribeOptions(options: SubscribeOptions): void {
  const owner = 'hub.subscribe';
  checkOptionsObject(options, owner);
  checkFunction(options.filter, 'filter', owner);
  if (options.from !== undefined && options.from !== 'earliest') {
    throw optionError(owner, 'from', "'earliest' or undefined", options.from);
  }
}

function checkPublishOptions(options: PublishOptions | undefined): string | undefined {
  const owner = 'hub.publish';
  if (options === undefined) return undefined;
  checkOptionsObject(options, owner);
  const key = options.idempotencyKey;
  if (key === undefined) return undefined;
  if (typeof key !== 'string' || key === '' || key.length > MAX_KEY_LENGTH) {
    throw optionError(owner, 'idempotencyKey', `a string of 1 to ${MAX_KEY_LENGTH} characters`, key);
  }
  return key;
}

import { channels } from '../core/diagnostics';
import { checkCount, checkDuration, checkFunction, checkOptionsObject } from '../core/options';
import { describeValue } from '../core/util';
import { type EncodedEvent, encodedText } from '../sse/encoded';
import { defaultSerialize, encodeRetry, type Serialize } from '../sse/encoder';
import { jitter } from '../sse/head';
import type { IdSource } from '../sse/last-event-id';
import { DEFAULT_RETRY_MS } from '../sse/options';
import { SseSubscription } from '../sse/types';
import {
  checkPublishOptions,
  checkStore,
  checkSubscribeOptions,
  checkTail,
  checkTopic,
  checkTopics,
} from './checks';
import { recordOf } from './encode';
import { HubClosedError } from './errors';
import { FanOut } from './fan-out';
import type { HubCounter, SubscriberHost } from './host';
import { formatId, newEpoch } from './ids';
import { memoryStore } from './memory-store';
import { SetSubscriber } from './set-subscriber';
import type { HubRecord, HubStore, LogPage, LogPosition } from './store';
import type { Subscriber } from './subscriber';
import { TopicSubscriber } from './topic-subscriber';
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
  const store = options.store === undefined ? memoryStore() : checkStore(options.store, owner);
  const serialize = checkFunction(options.serialize, 'serialize', owner) ?? defaultSerialize;
  const maxReplay = checkCount(options.maxReplay, 'maxReplay', owner, 1000, 0);
  // 0 (the default) or a duration a timer can wait
  const coalesceMs = options.coalesceMs === 0 ? 0 : checkDuration(options.coalesceMs, 'coalesceMs', owner, 0);
  const tail = checkTail(options.tail, store, owner);
  return new HubCore(
    store,
    serialize,
    maxReplay,
    new FanOut(store, coalesceMs, tail),
  ) as unknown as Hub<Events>;
}

class HubCore implements Hub, SubscriberHost {
  readonly maxReplay: number;
  readonly #store: HubStore;
  readonly #serialize: Serialize;
  readonly #fanOut: FanOut;
  #closed = false;
  readonly #instance = newEpoch();
  #published = 0;
  readonly #counts: Record<HubCounter, number> = {
    published: 0,
    delivered: 0,
    replays: 0,
    replayed: 0,
    slowCloses: 0,
    answeredFromTail: 0,
  };
  /** The store's `emptyEpoch` as it last said it of any topic: what a tail that heard none for its own carries. */
  #emptyEpoch = '';
  readonly #fromTail = new WeakSet<LogPosition>();
  readonly #resets: Record<ResetReason, number> = Object.fromEntries(
    RESET_REASONS.map((r) => [r, 0]),
  ) as Record<ResetReason, number>;

  constructor(store: HubStore, serialize: Serialize, maxReplay: number, fanOut: FanOut) {
    this.#store = store;
    this.#fanOut = fanOut;
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
          subscribers: this.#fanOut.subscribersOf(topic),
        });
      }
      return id;
    });
  }

  /** A key of this hub's own for a publish the caller gave none: a store's resend of it applies once. */
  #nextKey(): string {
    return `${this.#instance}.${(this.#published++).toString(36)}`;
  }

  subscribe(
    topics: string | readonly string[],
    req: IdSource,
    options: SubscribeOptions = {},
  ): SseSubscription {
    const maxTopics = checkSubscribeOptions(options);
    const set = checkTopics(topics, maxTopics);
    if (typeof req !== 'object' || req === null || typeof req.headers !== 'object') {
      throw new TypeError(`hub.subscribe: expected \`req\` to be the request, got ${describeValue(req)}`);
    }
    let attached = false;
    // The stream's head is held until the subscriber is positioned (Subscriber.#position).
    const subscription: SseSubscription = {
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
        const setup = { host: this, request: req, options, maxTopics };
        const subscriber: Subscriber =
          set === undefined ? new TopicSubscriber(setup, topics as string) : new SetSubscriber(setup, set);
        subscriber.attach(stream);
      },
    };
    return subscription;
  }

  stats(): HubStats {
    return {
      ...this.#fanOut.census(),
      ...this.#counts,
      delivered: this.#counts.delivered + this.#fanOut.delivered,
      resets: { ...this.#resets },
      store: this.#store.stats?.() ?? {},
    };
  }

  async close(options: { retryMs?: number } = {}): Promise<void> {
    checkOptionsObject(options, 'hub.close');
    const retryMs = checkCount(options.retryMs, 'retryMs', 'hub.close', DEFAULT_RETRY_MS, 0);
    if (this.#closed) return;
    this.#closed = true;
    for (const subscriber of this.#fanOut.everySubscriber()) subscriber.closeWith(retryLine(retryMs));
    this.#fanOut.close();
    await this.#store.close();
  }

  // --- SubscriberHost: what subscribers use of their hub ---

  read(topic: string, epoch: string, after: number, limit: number): Promise<LogPage> {
    const tail = this.#fanOut.tailOf(topic);
    if (tail?.covers(epoch, after)) {
      this.#counts.answeredFromTail++;
      return Promise.resolve({
        position: tail.position(tail.emptyEpoch ?? this.#emptyEpoch),
        events: tail.after(after, limit),
      });
    }
    return this.#store.read(topic, after, limit).then((page) => {
      this.#heardEmptyEpoch(topic, page.position.emptyEpoch);
      return page;
    });
  }

  position(topic: string, fresh: boolean): Promise<LogPosition> {
    const tail = this.#fanOut.tailOf(topic);
    if (!fresh && tail?.warm) {
      this.#counts.answeredFromTail++;
      const position = tail.position(tail.emptyEpoch ?? this.#emptyEpoch);
      this.#fromTail.add(position);
      return Promise.resolve(position);
    }
    return this.#store.position(topic).then((position) => {
      this.#heardEmptyEpoch(topic, position.emptyEpoch);
      return position;
    });
  }

  #heardEmptyEpoch(topic: string, emptyEpoch: string): void {
    this.#emptyEpoch = emptyEpoch;
    const tail = this.#fanOut.tailOf(topic);
    if (tail !== undefined) tail.emptyEpoch = emptyEpoch;
  }

  fromTail(position: LogPosition): boolean {
    return this.#fromTail.has(position);
  }

  join(subscriber: TopicSubscriber): Promise<void> {
    return this.#fanOut.join(subscriber);
  }

  leave(subscriber: TopicSubscriber): void {
    this.#fanOut.leave(subscriber);
  }

  joinSet(subscriber: SetSubscriber): Promise<void> {
    return this.#fanOut.joinSet(subscriber);
  }

  leaveSet(subscriber: SetSubscriber): void {
    this.#fanOut.leaveSet(subscriber);
  }

  counted(counter: HubCounter, by = 1): void {
    this.#counts[counter] += by;
  }

  countedReset(reason: ResetReason): void {
    this.#resets[reason]++;
  }
}

function retryLine(retryMs: number): EncodedEvent {
  return encodedText(encodeRetry(jitter(retryMs)));
}

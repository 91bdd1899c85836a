import { AsyncResource } from 'node:async_hooks';
import { createDebug } from '../core/debug';
import { reportUnheard } from '../core/errors';
import type { EncodedEvent } from '../sse/encoded';
import { type IdSource, readLastEventId } from '../sse/last-event-id';
import { type StreamSink, sinkOf } from '../sse/sink';
import { messageOf, positionEvent } from './encode';
import { HubStoreError } from './errors';
import type { SubscriberHost } from './host';
import { Lane, type LaneOwner } from './lane';
import type { Verdict } from './resume';
import type { LogPosition, StoredEvent } from './store';
import type { ResetReason, SubscribeOptions } from './types';

const debug = createDebug('hub');

/** A verdict that tells the client to reset (rather than resume, or start afresh). */
function isReset(verdict: Verdict): boolean {
  return typeof verdict === 'string' && verdict !== 'new';
}

/** What a subscriber is made of, besides its topics: the hub, the request and the subscription's options. */
export interface SubscriberSetup {
  readonly host: SubscriberHost;
  readonly request: IdSource;
  readonly options: SubscribeOptions;
  readonly maxTopics: number;
}

/**
 * One client of the hub: a stream and a lane per topic it follows. It joins the live fan-out of its
 * topics first (each lane holding what arrives), then positions the client in every topic by numbers,
 * and only then lets the client see its stream open; each lane then catches up from the log and goes
 * live on its own. {@link TopicSubscriber} follows one topic, `SetSubscriber` several.
 */
export abstract class Subscriber implements LaneOwner {
  readonly host: SubscriberHost;
  readonly request: IdSource;
  readonly lanes: readonly Lane[];
  /** The most topics a cursor the client sends may name. */
  readonly maxTopics: number;
  readonly #filter: SubscribeOptions['filter'];
  /** The request's async context, where the filter runs (it runs on another request's publish). */
  readonly #filterContext: AsyncResource | undefined;
  readonly #from: SubscribeOptions['from'];
  #sink: StreamSink | undefined;
  #closed = false;

  constructor(setup: SubscriberSetup, topics: readonly string[]) {
    const { host, options } = setup;
    this.host = host;
    this.request = setup.request;
    this.maxTopics = setup.maxTopics;
    this.#filter = options.filter;
    this.#from = options.from;
    if (options.filter !== undefined) {
      this.#filterContext = new AsyncResource('express-streaming:hub-filter', { requireManualDestroy: true });
    }
    this.lanes = topics.map((topic, index) => new Lane(this, topic, index));
  }

  /** The stream; lanes run only once it is attached. */
  get sink(): StreamSink {
    return this.#sink!;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get filtered(): boolean {
    return this.#filter !== undefined;
  }

  /** Joins the live fan-out of the subscriber's topics; resolves once the store follows every one. */
  protected abstract join(): Promise<void>;
  protected abstract leave(): void;
  /** Where the client goes on in each topic, by what its id says (a non-empty one). */
  protected abstract judge(lastEventId: string, positions: readonly LogPosition[]): Verdict[];
  abstract wire(lane: Lane, epoch: string, event: StoredEvent): EncodedEvent;
  abstract idAt(lane: Lane, seq: number): string;

  wentLive(_lane: Lane): void {}

  /** Starts on the stream `res.sse()` made: joins the fan-out, then positions the client and catches up. */
  attach(stream: unknown): void {
    const sink = sinkOf(stream);
    if (sink === undefined) {
      throw new TypeError(
        "hub.subscribe: the subscription runs on a stream of express-streaming's res.sse() (of the same major version)",
      );
    }
    this.#sink = sink;
    if (sink.closeReason !== undefined) return;
    sink.whenClosed(this.#close);
    // The logs are read only once the store follows the topics: what it misses, the logs have.
    void this.join()
      .then(() => this.#position(readLastEventId(this.request)))
      .catch(this.fail);
  }

  /** The subscription's filter; one that throws closes its subscription (and is reported), nobody else's. */
  accepts(lane: Lane, epoch: string, event: StoredEvent): boolean {
    const filter = this.#filter;
    if (filter === undefined) return true;
    try {
      return this.#filterContext!.runInAsyncScope(filter, undefined, messageOf(lane.topic, epoch, event));
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  /**
   * Judges the client's id by numbers, topic by topic: exact resume, new to the topic, or a reset.
   * Only then does the client see its stream open: whatever is published after its `onopen` lies past
   * this position, in every topic.
   */
  async #position(lastEventId: string | undefined): Promise<void> {
    const lanes = this.lanes;
    const host = this.host;
    // a replay of everything kept needs the log's own first seq: the store's
    const earliest = this.#from === 'earliest';
    const positions = await Promise.all(lanes.map((lane) => host.position(lane.topic, earliest)));
    if (this.#closed) return;
    let verdicts = this.#verdicts(lastEventId, positions);
    // The hub's tail may only say yes: a topic it cannot resume inside it is asked of the store.
    const asked = lanes.filter(
      (lane) => isReset(verdicts[lane.index]!) && host.fromTail(positions[lane.index]!),
    );
    if (asked.length > 0) {
      const again = await Promise.all(asked.map((lane) => host.position(lane.topic, true)));
      if (this.#closed) return;
      asked.forEach((lane, i) => {
        positions[lane.index] = again[i]!;
      });
      verdicts = this.#verdicts(lastEventId, positions);
    }
    this.sink.commitHead();
    let fresh = false;
    for (const lane of lanes) {
      if (lane.placeAt(positions[lane.index]!, verdicts[lane.index]!, this.#from)) fresh = true;
    }
    // every lane is placed: each reset's id says where the client stands in every topic
    for (const lane of lanes) {
      const verdict = verdicts[lane.index]!;
      if (isReset(verdict)) lane.reset(verdict as ResetReason, positions[lane.index]!);
    }
    // No replay, but an id: a reconnect before the first event resumes from here.
    const first = lanes[0]!;
    if (fresh && !(await this.sink.deliverPaced(positionEvent(this.idAt(first, first.place.last))))) return;
    await Promise.all(lanes.map((lane) => lane.catchUp()));
  }

  #verdicts(lastEventId: string | undefined, positions: readonly LogPosition[]): Verdict[] {
    if (lastEventId === undefined || lastEventId === '') return positions.map(() => 'new');
    return this.judge(lastEventId, positions);
  }

  /** The hub closes: the client gets a (jittered) `retry:` and the stream ends. */
  closeWith(retry: EncodedEvent): void {
    const sink = this.#sink;
    if (sink === undefined || this.#closed) return;
    sink.deliverLive(retry);
    sink.close();
  }

  readonly #close = (): void => {
    if (this.#closed) return;
    this.#closed = true;
    for (const lane of this.lanes) lane.stop();
    this.#filterContext?.emitDestroy();
    if (this.#sink?.closeReason === 'slow') this.host.counted('slowCloses');
    this.leave();
  };

  /**
   * Something failed under this subscriber: the store (Redis down while it resumed) — its client
   * closes and reconnects later — or the app's own code (a filter that throws), which is reported too.
   */
  readonly fail = (error: unknown): void => {
    if (error instanceof HubStoreError)
      debug(
        'subscriber on %s: %s',
        this.lanes.map((l) => l.topic),
        error,
      );
    else reportUnheard(error);
    if (!this.#closed) this.#sink?.close();
  };
}

import { AsyncResource } from 'node:async_hooks';
import { createDebug } from '../core/debug';
import { channels } from '../core/diagnostics';
import { reportUnheard } from '../core/errors';
import type { EncodedEvent } from '../sse/encoded';
import { type IdSource, readLastEventId } from '../sse/last-event-id';
import { type StreamSink, sinkOf } from '../sse/sink';
import { messageOf, positionEvent, resetEvent, wireOf } from './encode';
import { HubStoreError } from './errors';
import { HeldEvents } from './held';
import { PAGE, type SubscriberHost } from './host';
import { Place } from './place';
import { judge } from './resume';
import type { LogPosition, StoredEvent } from './store';
import type { ResetReason, SubscribeOptions } from './types';

const debug = createDebug('hub');

type Phase = 'catching-up' | 'live' | 'closed';

/**
 * One client of a topic. It joins the topic's live fan-out first (holding what arrives), then catches
 * up from the log — paced by the client — and only then goes live, skipping held events it already
 * got: no gap, no duplicate. Live events are checked by number: one whose seq is not the next sends
 * the subscriber back to the log to catch up (or to a reset when what it missed is gone), and so does
 * a live event the stream could not take now.
 */
export class Subscriber {
  readonly topic: string;
  readonly #host: SubscriberHost;
  readonly #filter: SubscribeOptions['filter'];
  /** The request's async context, where the filter runs (it runs on another request's publish). */
  readonly #filterContext: AsyncResource | undefined;
  readonly #from: SubscribeOptions['from'];
  readonly #request: IdSource;
  readonly #held: HeldEvents;
  #sink: StreamSink | undefined;
  #phase: Phase = 'catching-up';
  readonly #place = new Place();

  constructor(host: SubscriberHost, topic: string, request: IdSource, options: SubscribeOptions) {
    this.#host = host;
    this.topic = topic;
    this.#request = request;
    this.#filter = options.filter;
    this.#from = options.from;
    this.#held = new HeldEvents(Math.max(host.maxReplay, PAGE));
    if (options.filter !== undefined) {
      this.#filterContext = new AsyncResource('express-streaming:hub-filter', { requireManualDestroy: true });
    }
  }

  /** A getter, so that TypeScript does not assume the phase survives an `await` unchanged. */
  get #isClosed(): boolean {
    return this.#phase === 'closed';
  }

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
    const following = this.#host.join(this);
    // The log is read only once the store follows the topic: what it misses, the log has.
    void following.then(() => this.#position(readLastEventId(this.#request))).catch(this.fail);
  }

  /**
   * Live events of the topic, in order; `batch` is all of them as one write, made once for every
   * subscriber; `rewound`: the topic's live feed went back in time with them. The common case —
   * live, unfiltered, the next seq — is one write and no allocation; it returns how many events it
   * delivered, for the hub to count once per fan-out (the other paths count their own).
   */
  take(epoch: string, events: readonly StoredEvent[], batch: EncodedEvent, rewound: boolean): number {
    const first = events[0]!;
    if (rewound) this.#rewind(epoch, first);
    if (this.#phase !== 'live') {
      if (this.#phase === 'catching-up') this.#held.hold(epoch, events);
      return 0;
    }
    const place = this.#place;
    if (this.#filter === undefined && first.seq === place.last + 1 && place.adopts(epoch, place.emptyEpoch)) {
      const delivery = this.#sink!.deliverLive(batch);
      if (delivery === 'written') {
        place.last = events[events.length - 1]!.seq;
        return events.length;
      }
      if (delivery === 'dropped') this.#catchUpLater();
      return 0;
    }
    this.#takeEach(epoch, events);
    return 0;
  }

  /** The events one by one, while the subscriber stays live (a gap or a reset ends that). */
  #takeEach(epoch: string, events: readonly StoredEvent[]): void {
    for (let i = 0; i < events.length && this.#phase === 'live'; i++)
      this.#takeOne(epoch, events[i]!, events, i);
  }

  #takeOne(epoch: string, event: StoredEvent, batch: readonly StoredEvent[], index: number): void {
    const place = this.#place;
    if (epoch !== place.epoch && !(event.seq === 1 && place.adopts(epoch, place.emptyEpoch))) {
      // The log started a new life (Redis lost it): what this client had is gone.
      this.#reset('unknown-epoch', place.before(epoch, event));
    } else if (event.seq <= place.last) {
      // already written: the log gave it while catching up, before the live feed got this far
      return;
    } else if (event.seq !== place.last + 1) {
      debug('gap on %s: at %d, got %d; catching up from the log', this.topic, place.last, event.seq);
      this.#held.hold(epoch, batch.slice(index));
      this.#catchUpLater();
      return;
    }
    if (!this.#accepts(epoch, event)) {
      place.last = event.seq;
      return;
    }
    const delivery = this.#sink!.deliverLive(wireOf(epoch, event));
    if (delivery === 'written') {
      place.last = event.seq;
      this.#host.counted('delivered');
    } else if (delivery === 'dropped') {
      this.#catchUpLater();
    }
  }

  /** The subscription's filter; one that throws closes its subscription (and is reported), nobody else's. */
  #accepts(epoch: string, event: StoredEvent): boolean {
    const filter = this.#filter;
    if (filter === undefined) return true;
    try {
      return this.#filterContext!.runInAsyncScope(filter, undefined, messageOf(this.topic, epoch, event));
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  /**
   * Judges the client's id by numbers: exact resume, a first connection, or a reset. Only then does the
   * client see its stream open: whatever is published after its `onopen` lies past this position.
   */
  async #position(lastEventId: string | undefined): Promise<void> {
    const position = await this.#host.position(this.topic);
    if (this.#isClosed) return;
    this.#sink!.commitHead();
    const place = this.#place;
    place.moveTo(position);
    if (lastEventId === undefined || lastEventId === '') {
      if (this.#from === 'earliest') place.last = position.first - 1;
      // No replay, but an id: a reconnect before the first event resumes from here.
      else if (!(await this.#sink!.deliverPaced(positionEvent(position.epoch, position.head)))) return;
    } else {
      const verdict = judge(lastEventId, position, this.#host.maxReplay);
      if (typeof verdict === 'string') this.#reset(verdict, position);
      else place.last = verdict;
    }
    await this.#catchUp();
  }

  /** Back to the log: what the live feed brought could not be written now, or does not follow on. */
  #catchUpLater(): void {
    this.#phase = 'catching-up';
    void this.#catchUp().catch(this.fail);
  }

  /** Reads the log after the last seq, paced by the client, until it has what was there; then live. */
  async #catchUp(): Promise<void> {
    const place = this.#place;
    let replayed = 0;
    for (;;) {
      const { position, events } = await this.#host.read(this.topic, place.last, PAGE);
      if (this.#isClosed) return;
      place.emptyEpoch = position.emptyEpoch;
      if (this.#catchRewind()) continue;
      if (!place.adopts(position.epoch, position.emptyEpoch) || position.head < place.last) {
        // another life of the log, or this one gone back in time below what the client has
        this.#reset('unknown-epoch', position);
        continue;
      }
      if (position.first > place.last + 1) {
        this.#reset('too-old', position);
        continue;
      }
      for (const event of events) {
        place.last = event.seq;
        if (!this.#accepts(position.epoch, event)) continue;
        if (!(await this.#sink!.deliverPaced(wireOf(position.epoch, event)))) return;
        replayed++;
      }
      if (this.#isClosed) return;
      if (this.#catchRewind()) continue;
      if (place.last < position.head && events.length > 0) continue;
      if (this.#held.overflowed) {
        // What arrived meanwhile was too much to hold: the log has it.
        this.#held.overflowed = false;
        continue;
      }
      break;
    }
    if (replayed > 0) {
      this.#host.counted('replays');
      this.#host.counted('replayed', replayed);
    }
    this.#goLive();
  }

  /** Hands over what arrived while catching up (skipping what the log already gave), then goes live. */
  #goLive(): void {
    const held = this.#held.takeAll();
    this.#phase = 'live';
    if (held === undefined) return;
    for (const { epoch, events } of held) {
      // held while the log was read: what the log gave is behind the client, not a rewind
      const place = this.#place;
      const start = epoch === place.epoch ? events.findIndex((event) => event.seq > place.last) : 0;
      if (start < 0) continue;
      this.#takeEach(epoch, start === 0 ? events : events.slice(start));
      if (this.#phase !== 'live') return;
    }
  }

  /**
   * The topic's live feed went back in time to `first` (a store restored from an older snapshot, a
   * lagging replica promoted): the same ids now name other events. A client that has events at or
   * past that point must reload its state — a reset, never a silent skip of the "duplicates". One
   * catching up is reset between two of its writes, and reads the log again from there.
   */
  #rewind(epoch: string, first: StoredEvent): void {
    debug('the log of %s went back in time to %d', this.topic, first.seq);
    const place = this.#place;
    if (this.#phase === 'catching-up') {
      this.#held.clear();
      place.rewoundTo(epoch, first);
    } else if (this.#phase === 'live' && epoch === place.epoch && first.seq <= place.last) {
      this.#reset('unknown-epoch', place.before(epoch, first));
    }
  }

  /** A rewind that came while catching up, applied between two writes; true if there was one. */
  #catchRewind(): boolean {
    const to = this.#place.takeRewind();
    if (to !== undefined) this.#reset('unknown-epoch', to);
    return to !== undefined;
  }

  /** Tells the client to reload its state and positions it at the log's head, in the stream's own order. */
  #reset(reason: ResetReason, position: LogPosition): void {
    debug('reset on %s: %s', this.topic, reason);
    this.#host.countedReset(reason);
    if (channels.hubReset.hasSubscribers) {
      channels.hubReset.publish({
        topic: this.topic,
        reason,
        lastEventId: readLastEventId(this.#request),
        req: this.#request,
      });
    }
    this.#place.moveTo(position);
    // Resets are rare and small: written like a live event, never awaited. One the stream cannot take
    // now must not be lost: the stream ends, and its client is judged again when it reconnects.
    const reset = resetEvent(reason, this.topic, position.epoch, position.head);
    if (this.#sink!.deliverLive(reset) === 'dropped') this.#sink!.close();
  }

  /** The hub closes: the client gets a (jittered) `retry:` and the stream ends. */
  closeWith(retry: EncodedEvent): void {
    const sink = this.#sink;
    if (sink === undefined || this.#phase === 'closed') return;
    sink.deliverLive(retry);
    sink.close();
  }

  readonly #close = (): void => {
    if (this.#phase === 'closed') return;
    this.#phase = 'closed';
    this.#held.clear();
    this.#filterContext?.emitDestroy();
    if (this.#sink?.closeReason === 'slow') this.#host.counted('slowCloses');
    this.#host.leave(this);
  };

  /**
   * Something failed under this subscriber: the store (Redis down while it resumed) — its client
   * closes and reconnects later — or the app's own code (a filter that throws), which is reported too.
   */
  readonly fail = (error: unknown): void => {
    if (error instanceof HubStoreError) debug('subscriber on %s: %s', this.topic, error);
    else reportUnheard(error);
    if (this.#phase !== 'closed') this.#sink?.close();
  };
}

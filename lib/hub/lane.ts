import { createDebug } from '../core/debug';
import { channels } from '../core/diagnostics';
import type { EncodedEvent } from '../sse/encoded';
import { type IdSource, readLastEventId } from '../sse/last-event-id';
import type { StreamSink } from '../sse/sink';
import { resetEvent } from './encode';
import { HeldEvents } from './held';
import { PAGE, type SubscriberHost } from './host';
import { Place } from './place';
import type { Verdict } from './resume';
import type { LogPosition, StoredEvent } from './store';
import type { ResetReason, SubscribeOptions } from './types';

const debug = createDebug('hub');

/** What a lane needs of the subscriber it belongs to: the stream, and how its events get their id. */
export interface LaneOwner {
  readonly host: SubscriberHost;
  readonly request: IdSource;
  /** The stream, once attached (before any lane runs). */
  readonly sink: StreamSink;
  readonly closed: boolean;
  /** The event's bytes with the id the client resumes from once it has it: its lane at `event.seq`. */
  wire(lane: Lane, epoch: string, event: StoredEvent): EncodedEvent;
  /** The stream's id with `lane` at `seq` of its place's epoch, and every other topic where it stands. */
  idAt(lane: Lane, seq: number): string;
  /** The subscription's filter; one that throws closes its subscription. */
  accepts(lane: Lane, epoch: string, event: StoredEvent): boolean;
  /** The lane caught up and takes the live feed again. */
  wentLive(lane: Lane): void;
  readonly fail: (error: unknown) => void;
}

/**
 * One topic of a subscriber's stream. It catches up from the log — paced by the client — while it
 * holds what the live feed brings, and only then goes live, skipping held events it already wrote: no
 * gap, no duplicate. Live events are checked by number: one whose seq is not the next sends the lane
 * back to the log to catch up (or to a reset when what it missed is gone), and so does a live event
 * the stream could not take now. A many-topic stream has a lane per topic, each on its own.
 */
export class Lane {
  readonly topic: string;
  /** The topic's index in its subscription (0 for a one-topic stream). */
  readonly index: number;
  readonly place = new Place();
  /** Takes the live feed as it comes; otherwise it catches up from the log, holding the feed. */
  live = false;
  readonly #owner: LaneOwner;
  readonly #held: HeldEvents;

  constructor(owner: LaneOwner, topic: string, index: number) {
    this.#owner = owner;
    this.topic = topic;
    this.index = index;
    this.#held = new HeldEvents(Math.max(owner.host.maxReplay, PAGE));
  }

  /**
   * Places the lane by the verdict on the client's id, before anything is written; true if the topic is
   * new to the client and it stays at the head (so that the stream must tell it where that is).
   */
  placeAt(position: LogPosition, verdict: Verdict, from: SubscribeOptions['from']): boolean {
    this.place.moveTo(position);
    if (typeof verdict === 'number') this.place.last = verdict;
    else if (verdict === 'new' && from === 'earliest') this.place.last = position.first - 1;
    return verdict === 'new' && from !== 'earliest';
  }

  /** Live events of the topic, in order; `rewound`: the topic's live feed went back in time with them. */
  take(epoch: string, events: readonly StoredEvent[], rewound: boolean): void {
    if (this.#owner.closed) return;
    if (rewound) this.#rewind(epoch, events[0]!);
    if (this.live) this.#takeEach(epoch, events);
    else if (!this.#owner.closed) this.#held.hold(epoch, events);
  }

  /** The events one by one, while the lane stays live (a gap or a reset ends that). */
  #takeEach(epoch: string, events: readonly StoredEvent[]): void {
    for (let i = 0; i < events.length && this.live; i++) this.#takeOne(epoch, events[i]!, events, i);
  }

  #takeOne(epoch: string, event: StoredEvent, batch: readonly StoredEvent[], index: number): void {
    const place = this.place;
    if (epoch !== place.epoch && !(event.seq === 1 && place.adopts(epoch, place.emptyEpoch))) {
      // The log started a new life (Redis lost it): what this client had is gone.
      this.reset('unknown-epoch', place.before(epoch, event));
    } else if (event.seq <= place.last) {
      // already written: the log gave it while catching up, before the live feed got this far
      return;
    } else if (event.seq !== place.last + 1) {
      debug('gap on %s: at %d, got %d; catching up from the log', this.topic, place.last, event.seq);
      this.#held.hold(epoch, batch.slice(index));
      this.catchUpLater();
      return;
    }
    const owner = this.#owner;
    if (!owner.accepts(this, epoch, event)) {
      place.last = event.seq;
      return;
    }
    const delivery = owner.sink.deliverLive(owner.wire(this, epoch, event));
    if (delivery === 'written') {
      place.last = event.seq;
      owner.host.counted('delivered');
    } else if (delivery === 'dropped') {
      this.catchUpLater();
    }
  }

  /** Back to the log: what the live feed brought could not be written now, or does not follow on. */
  catchUpLater(): void {
    this.live = false;
    void this.catchUp().catch(this.#owner.fail);
  }

  /** Reads the log after the last seq, paced by the client, until it has what was there; then live. */
  async catchUp(): Promise<void> {
    const owner = this.#owner;
    const place = this.place;
    let replayed = 0;
    for (;;) {
      const { position, events } = await owner.host.read(this.topic, place.epoch, place.last, PAGE);
      if (owner.closed) return;
      place.emptyEpoch = position.emptyEpoch;
      if (this.#catchRewind()) continue;
      if (!place.adopts(position.epoch, position.emptyEpoch) || position.head < place.last) {
        // another life of the log, or this one gone back in time below what the client has
        this.reset('unknown-epoch', position);
        continue;
      }
      if (position.first > place.last + 1) {
        this.reset('too-old', position);
        continue;
      }
      for (const event of events) {
        place.last = event.seq;
        if (!owner.accepts(this, position.epoch, event)) continue;
        if (!(await owner.sink.deliverPaced(owner.wire(this, position.epoch, event)))) return;
        replayed++;
      }
      if (owner.closed) return;
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
      owner.host.counted('replays');
      owner.host.counted('replayed', replayed);
    }
    this.#goLive();
  }

  /** Hands over what arrived while catching up (skipping what the log already gave), then goes live. */
  #goLive(): void {
    const held = this.#held.takeAll();
    this.live = true;
    for (const { epoch, events } of held ?? []) {
      // held while the log was read: what the log gave is behind the client, not a rewind
      const place = this.place;
      const start = epoch === place.epoch ? events.findIndex((event) => event.seq > place.last) : 0;
      if (start < 0) continue;
      this.#takeEach(epoch, start === 0 ? events : events.slice(start));
      if (!this.live) return;
    }
    this.#owner.wentLive(this);
  }

  /**
   * The topic's live feed went back in time to `first` (a store restored from an older snapshot, a
   * lagging replica promoted): the same ids now name other events. A client that has events at or
   * past that point must reload its state — a reset, never a silent skip of the "duplicates". A lane
   * catching up is reset between two of its writes, and reads the log again from there.
   */
  #rewind(epoch: string, first: StoredEvent): void {
    debug('the log of %s went back in time to %d', this.topic, first.seq);
    const place = this.place;
    if (!this.live) {
      this.#held.clear();
      place.rewoundTo(epoch, first);
    } else if (epoch === place.epoch && first.seq <= place.last) {
      this.reset('unknown-epoch', place.before(epoch, first));
    }
  }

  /** A rewind that came while catching up, applied between two writes; true if there was one. */
  #catchRewind(): boolean {
    const to = this.place.takeRewind();
    if (to !== undefined) this.reset('unknown-epoch', to);
    return to !== undefined;
  }

  /** Tells the client to reload this topic and places the lane at the log's head, in the stream's own order. */
  reset(reason: ResetReason, position: LogPosition): void {
    debug('reset on %s: %s', this.topic, reason);
    const owner = this.#owner;
    owner.host.countedReset(reason);
    if (channels.hubReset.hasSubscribers) {
      const req = owner.request;
      channels.hubReset.publish({ topic: this.topic, reason, lastEventId: readLastEventId(req), req });
    }
    this.place.moveTo(position);
    // Resets are rare and small: written like a live event, never awaited. One the stream cannot take
    // now must not be lost: the stream ends, and its client is judged again when it reconnects.
    const reset = resetEvent(reason, this.topic, owner.idAt(this, position.head));
    if (owner.sink.deliverLive(reset) === 'dropped') owner.sink.close();
  }

  /** The stream closed: nothing more is held or taken. */
  stop(): void {
    this.live = false;
    this.#held.clear();
  }
}

import { createDebug } from '../core/debug';
import { channels } from '../core/diagnostics';
import { reportUnheard } from '../core/errors';
import {
  closeReason,
  commitHead,
  deliverLive,
  deliverPaced,
  type EncodedEvent,
  type EncodedSink,
  whenClosed,
} from '../sse/encoded';
import { type IdSource, readLastEventId } from '../sse/last-event-id';
import type { SseStream } from '../sse/types';
import { positionEvent, resetEvent, wireOf } from './encode';
import { HubStoreError } from './errors';
import { formatId, parseId } from './ids';
import type { LogPosition, StoredEvent } from './store';
import type { HubMessage, ResetReason, SubscribeOptions } from './types';

const debug = createDebug('hub');

/** Events read from the store per page of a replay. */
const PAGE = 100;

/** The hub's own counts, as `hub.stats()` reports them. */
export type HubCounter = 'published' | 'delivered' | 'replays' | 'replayed' | 'slowCloses';

/** What a subscriber needs of its hub: the store, the rules, and the counters it feeds. */
export interface SubscriberHost {
  readonly maxReplay: number;
  read(
    topic: string,
    after: number,
    limit: number,
  ): Promise<{ position: LogPosition; events: StoredEvent[] }>;
  position(topic: string): Promise<LogPosition>;
  /** Joins the topic's live fan-out; resolves once the store follows the topic. */
  join(subscriber: Subscriber): Promise<void>;
  leave(subscriber: Subscriber): void;
  counted(counter: HubCounter, by?: number): void;
  countedReset(reason: ResetReason): void;
}

type Phase = 'catching-up' | 'live' | 'closed';

/**
 * One client of a topic. It joins the topic's live fan-out first (buffering), then catches up from
 * the log — paced by the client — and only then goes live, dropping buffered events it already got:
 * no gap, no duplicate. Live events are checked by number: one whose seq is not the next sends the
 * subscriber back to the log to catch up (or to a reset when what it missed is gone).
 */
export class Subscriber {
  readonly topic: string;
  readonly #host: SubscriberHost;
  readonly #filter: SubscribeOptions['filter'];
  readonly #from: SubscribeOptions['from'];
  readonly #request: IdSource;
  #sink: (EncodedSink & SseStream) | undefined;
  #phase: Phase = 'catching-up';
  #epoch = '';
  #last = 0;
  /** The store's epoch for a topic with no log, as last read: a client positioned on none holds it. */
  #emptyEpoch: string | undefined;
  /** Live batches that arrived while catching up, replayed after it; `undefined` when none. */
  #held: Array<{ epoch: string; events: readonly StoredEvent[] }> | undefined;
  #heldCount = 0;
  /** Too much arrived while catching up: dropped, and read from the log instead. */
  #heldOverflowed = false;
  /** The live feed went back in time while catching up: where the client goes on from. */
  #rewoundTo: LogPosition | undefined;

  constructor(host: SubscriberHost, topic: string, request: IdSource, options: SubscribeOptions) {
    this.#host = host;
    this.topic = topic;
    this.#request = request;
    this.#filter = options.filter;
    this.#from = options.from;
  }

  get live(): boolean {
    return this.#phase === 'live';
  }

  /** A getter, so that TypeScript does not assume the phase survives an `await` unchanged. */
  get #isClosed(): boolean {
    return this.#phase === 'closed';
  }

  /** Starts on the stream `res.sse()` made: joins the fan-out, then positions the client and catches up. */
  attach(stream: SseStream): void {
    const sink = stream as EncodedSink & SseStream;
    if (typeof sink[deliverLive] !== 'function') {
      throw new TypeError("hub.subscribe: the subscription needs express-streaming's res.sse() to run on");
    }
    this.#sink = sink;
    if (sink.closed) return;
    sink[whenClosed](this.#close);
    const following = this.#host.join(this);
    // The log is read only once the store follows the topic: what it misses, the log has.
    void following.then(() => this.#position(readLastEventId(this.#request))).catch(this.fail);
  }

  /**
   * Live events of the topic, in order; `batch` is all of them as one write, made once for every
   * subscriber. The common case — live, unfiltered, the next seq — is one write and no allocation;
   * it returns how many events it delivered, for the hub to count once per fan-out (the other paths
   * count their own).
   */
  take(epoch: string, events: readonly StoredEvent[], batch: EncodedEvent, rewound = false): number {
    const first = events[0]!;
    if (rewound) this.#rewind(epoch, first);
    if (this.#phase !== 'live') {
      if (this.#phase === 'catching-up') this.#hold(epoch, events);
      return 0;
    }
    if (
      this.#filter === undefined &&
      first.seq === this.#last + 1 &&
      (epoch === this.#epoch || this.#adopts(epoch, this.#emptyEpoch))
    ) {
      this.#last = events[events.length - 1]!.seq;
      return this.#sink![deliverLive](batch) ? events.length : 0;
    }
    this.#takeEach(epoch, events);
    return 0;
  }

  /**
   * The topic's live feed went back in time to `first` (a store restored from an older snapshot, a
   * lagging replica promoted): the same ids now name other events. A client that has events at or
   * past that point must reload its state — a reset, never a silent skip of the "duplicates". One
   * catching up is reset once its pending write is done, and reads the log again from there.
   */
  #rewind(epoch: string, first: StoredEvent): void {
    debug('the log of %s went back in time to %d', this.topic, first.seq);
    if (this.#phase === 'catching-up') {
      this.#held = undefined;
      this.#heldCount = 0;
      this.#rewoundTo = this.#placeBefore(epoch, first);
    } else if (this.#phase === 'live' && epoch === this.#epoch && first.seq <= this.#last) {
      this.#reset('unknown-epoch', this.#placeBefore(epoch, first));
    }
  }

  /** A rewind that came while catching up, applied between two writes; true if there was one. */
  #catchRewind(): boolean {
    const to = this.#rewoundTo;
    this.#rewoundTo = undefined;
    if (to === undefined || to.epoch !== this.#epoch || to.head >= this.#last) return false;
    this.#reset('unknown-epoch', to);
    return true;
  }

  /** The events one by one, while the subscriber stays live (a gap or a reset ends that). */
  #takeEach(epoch: string, events: readonly StoredEvent[]): void {
    for (let i = 0; i < events.length && this.#phase === 'live'; i++)
      this.#takeOne(epoch, events[i]!, events, i);
  }

  #takeOne(epoch: string, event: StoredEvent, batch: readonly StoredEvent[], index: number): void {
    if (epoch !== this.#epoch && !(event.seq === 1 && this.#adopts(epoch, this.#emptyEpoch))) {
      // The log started a new life (Redis lost it): what this client had is gone.
      this.#reset('unknown-epoch', this.#placeBefore(epoch, event));
    } else if (event.seq <= this.#last) {
      // already written: the log gave it while catching up, before the live feed got this far
      return;
    } else if (event.seq !== this.#last + 1) {
      debug('gap on %s: at %d, got %d; catching up from the log', this.topic, this.#last, event.seq);
      this.#phase = 'catching-up';
      this.#hold(epoch, batch.slice(index));
      void this.#catchUp().catch(this.fail);
      return;
    }
    this.#last = event.seq;
    if (this.#accepts(epoch, event) && this.#sink![deliverLive](wireOf(epoch, event))) {
      this.#host.counted('delivered');
    }
  }

  /** The subscription's filter; one that throws closes its subscription (and is reported), nobody else's. */
  #accepts(epoch: string, event: StoredEvent): boolean {
    if (this.#filter === undefined) return true;
    try {
      return this.#filter(messageOf(this.topic, epoch, event));
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
    this.#sink![commitHead]();
    this.#epoch = position.epoch;
    this.#emptyEpoch = position.emptyEpoch;
    if (lastEventId === undefined || lastEventId === '') {
      if (this.#from === 'earliest') this.#last = position.first - 1;
      else {
        this.#last = position.head;
        // No replay, but an id: a reconnect before the first event resumes from here.
        if (!(await this.#sink![deliverPaced](positionEvent(position.epoch, position.head)))) return;
      }
    } else {
      const verdict = judge(lastEventId, position, this.#host.maxReplay);
      if (typeof verdict === 'string') this.#reset(verdict, position);
      else this.#last = verdict;
    }
    await this.#catchUp();
  }

  /** Reads the log after the last seq, paced by the client, until it has what was there; then live. */
  async #catchUp(): Promise<void> {
    let replayed = 0;
    for (;;) {
      const { position, events } = await this.#host.read(this.topic, this.#last, PAGE);
      if (this.#isClosed) return;
      if (this.#catchRewind()) continue;
      if (!this.#adopts(position.epoch, position.emptyEpoch) || position.head < this.#last) {
        // another life of the log, or this one gone back in time below what the client has
        this.#reset('unknown-epoch', position);
        continue;
      }
      if (position.first > this.#last + 1) {
        this.#reset('too-old', position);
        continue;
      }
      for (const event of events) {
        this.#last = event.seq;
        if (!this.#accepts(position.epoch, event)) continue;
        if (!(await this.#sink![deliverPaced](wireOf(position.epoch, event)))) return;
        replayed++;
      }
      if (this.#isClosed) return;
      if (this.#catchRewind()) continue;
      if (this.#last < position.head && events.length > 0) continue;
      if (this.#heldOverflowed) {
        // What arrived meanwhile was too much to hold: the log has it.
        this.#heldOverflowed = false;
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
    const held = this.#held;
    this.#held = undefined;
    this.#heldCount = 0;
    this.#phase = 'live';
    if (held === undefined) return;
    for (const { epoch, events } of held) {
      // held while the log was read: what the log gave is behind the client, not a rewind
      const start = epoch === this.#epoch ? events.findIndex((event) => event.seq > this.#last) : 0;
      if (start < 0) continue;
      this.#takeEach(epoch, start === 0 ? events : events.slice(start));
      if (this.#phase !== 'live') return;
    }
  }

  /**
   * Whether the client's place continues in a log of `epoch`: the same life, or — for a client placed
   * on a topic with no log, while the store says no log was lost since — the start of the log begun.
   */
  #adopts(epoch: string, emptyEpoch: string | undefined): boolean {
    if (epoch === this.#epoch) return true;
    if (this.#last !== 0 || emptyEpoch === undefined || this.#epoch !== emptyEpoch) return false;
    this.#epoch = epoch;
    return true;
  }

  /** A position just before `event`: where a client goes live from when it is told to reset there. */
  #placeBefore(epoch: string, event: StoredEvent): LogPosition {
    return { epoch, first: event.seq, head: event.seq - 1, emptyEpoch: this.#emptyEpoch ?? '' };
  }

  #hold(epoch: string, events: readonly StoredEvent[]): void {
    if (this.#heldOverflowed) return;
    this.#heldCount += events.length;
    if (this.#heldCount > Math.max(this.#host.maxReplay, PAGE)) {
      this.#held = undefined;
      this.#heldCount = 0;
      this.#heldOverflowed = true;
      return;
    }
    this.#held ??= [];
    this.#held.push({ epoch, events });
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
    this.#epoch = position.epoch;
    this.#last = position.head;
    // Resets are rare and small: written like a live event, never awaited.
    this.#sink![deliverLive](resetEvent(reason, this.topic, position.epoch, position.head));
  }

  /** The hub closes: the client gets a (jittered) `retry:` and the stream ends. */
  closeWith(retry: EncodedEvent): void {
    const sink = this.#sink;
    if (sink === undefined || this.#phase === 'closed') return;
    sink[deliverLive](retry);
    sink.close();
  }

  readonly #close = (): void => {
    if (this.#phase === 'closed') return;
    this.#phase = 'closed';
    this.#held = undefined;
    if (this.#sink?.[closeReason] === 'slow') this.#host.counted('slowCloses');
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

/** The seq to replay after, or why the client must reset. */
function judge(lastEventId: string, position: LogPosition, maxReplay: number): number | ResetReason {
  const id = parseId(lastEventId);
  if (id === 'malformed') return 'malformed';
  // `<emptyEpoch>-0`: placed while the topic had no log, and none was lost since: its log's start
  const placedBeforeLog = id.seq === 0 && id.epoch === position.emptyEpoch;
  if (id.epoch !== position.epoch && !placedBeforeLog) return 'unknown-epoch';
  if (id.seq > position.head) return 'ahead';
  if (position.first > id.seq + 1) return 'too-old';
  if (position.head - id.seq > maxReplay) return 'too-many';
  return id.seq;
}

const messages = new WeakMap<StoredEvent, HubMessage>();

function messageOf(topic: string, epoch: string, event: StoredEvent): HubMessage {
  let message = messages.get(event);
  if (message === undefined) {
    message = Object.freeze({
      topic,
      id: formatId(epoch, event.seq),
      event: event.record.event || 'message',
      data: event.record.data,
    });
    messages.set(event, message);
  }
  return message;
}

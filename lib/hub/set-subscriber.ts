import type { EncodedEvent } from '../sse/encoded';
import type { LiveDelivery } from '../sse/sink';
import { CursorWriter, topicHash } from './cursor';
import { wireWithId } from './encode';
import type { Lane } from './lane';
import type { Place } from './place';
import { judgeAll, type Verdict } from './resume';
import type { LogPosition, StoredEvent } from './store';
import { Subscriber, type SubscriberSetup } from './subscriber';
import type { TopicSet } from './topic-set';

/**
 * A client of several topics on one stream. Each event's id is a cursor of where the client stands in
 * every topic once it has the event, so a reconnect with any id resumes each topic exactly. While it
 * is live in every topic, unfiltered and where its {@link TopicSet} stands, it writes the bytes its
 * set encodes once for all such subscribers; otherwise its lanes encode their events themselves.
 */
export class SetSubscriber extends Subscriber {
  /** The topics, sorted and distinct: lane `i` follows `topics[i]`. */
  readonly topics: readonly string[];
  readonly hashes: readonly string[];
  /** The subscribers of the same topics in this process; set when it joins the fan-out. */
  set: TopicSet | undefined;
  /** The lanes' places, by topic: what the cursor says. */
  readonly places: readonly Place[];
  readonly #cursor: CursorWriter;

  constructor(setup: SubscriberSetup, topics: readonly string[]) {
    super(setup, topics);
    this.topics = topics;
    this.hashes = topics.map(topicHash);
    this.places = this.lanes.map((lane) => lane.place);
    this.#cursor = new CursorWriter(this.hashes);
  }

  /** Unfiltered and live in every topic: what the client gets can be its set's bytes. */
  get canShare(): boolean {
    return !this.closed && !this.filtered && this.lanes.every((lane) => lane.live);
  }

  /** Live events of topic `index`, for its lane to take on its own. */
  take(index: number, epoch: string, events: readonly StoredEvent[], rewound: boolean): void {
    this.lanes[index]!.take(epoch, events, rewound);
  }

  /** Writes its set's bytes of live events of topic `index`, which leave that topic's place at `last`. */
  takeShared(index: number, batch: EncodedEvent, last: number): LiveDelivery {
    const delivery = this.sink.deliverLive(batch);
    if (delivery === 'written') this.places[index]!.last = last;
    else if (delivery === 'dropped') this.lanes[index]!.catchUpLater();
    return delivery;
  }

  protected join(): Promise<void> {
    return this.host.joinSet(this);
  }

  protected leave(): void {
    this.host.leaveSet(this);
  }

  protected judge(lastEventId: string, positions: readonly LogPosition[]): Verdict[] {
    return judgeAll(lastEventId, this.hashes, positions, this.host.maxReplay, this.maxTopics);
  }

  wire(lane: Lane, _epoch: string, event: StoredEvent): EncodedEvent {
    return wireWithId(event.record, this.idAt(lane, event.seq));
  }

  idAt(lane: Lane, seq: number): string {
    return this.#cursor.write(this.places, lane.index, seq);
  }

  override wentLive(): void {
    this.set?.rejoin(this);
  }
}

/** The name of a topic set: the same for every subscriber of the same topics, whatever their order. */
export function setKey(topics: readonly string[]): string {
  return JSON.stringify(topics);
}

import type { EncodedEvent } from '../sse/encoded';
import { wireOf } from './encode';
import { formatId } from './ids';
import type { Lane } from './lane';
import { judge, type Verdict } from './resume';
import type { LogPosition, StoredEvent } from './store';
import { Subscriber, type SubscriberSetup } from './subscriber';

/** A client of one topic: its events' ids are the topic's own, `<epoch>-<seq>`, and written as stored. */
export class TopicSubscriber extends Subscriber {
  readonly topic: string;
  readonly #lane: Lane;

  constructor(setup: SubscriberSetup, topic: string) {
    super(setup, [topic]);
    this.topic = topic;
    this.#lane = this.lanes[0]!;
  }

  /**
   * Live events of the topic, in order; `batch` is all of them as one write, made once for every
   * subscriber; `rewound`: the topic's live feed went back in time with them. The common case —
   * live, unfiltered, the next seq — is one write and no allocation; it returns how many events it
   * delivered, for the hub to count once per fan-out (the other paths count their own).
   */
  take(epoch: string, events: readonly StoredEvent[], batch: EncodedEvent, rewound: boolean): number {
    const lane = this.#lane;
    const place = lane.place;
    if (
      lane.live &&
      !rewound &&
      !this.filtered &&
      events[0]!.seq === place.last + 1 &&
      place.adopts(epoch, place.emptyEpoch)
    ) {
      const delivery = this.sink.deliverLive(batch);
      if (delivery === 'written') {
        place.last = events[events.length - 1]!.seq;
        return events.length;
      }
      if (delivery === 'dropped') lane.catchUpLater();
      return 0;
    }
    lane.take(epoch, events, rewound);
    return 0;
  }

  protected join(): Promise<void> {
    return this.host.join(this);
  }

  protected leave(): void {
    this.host.leave(this);
  }

  protected judge(lastEventId: string, positions: readonly LogPosition[]): Verdict[] {
    return [judge(lastEventId, this.topic, positions[0]!, this.host.maxReplay, this.maxTopics)];
  }

  wire(_lane: Lane, epoch: string, event: StoredEvent): EncodedEvent {
    return wireOf(epoch, event);
  }

  idAt(lane: Lane, seq: number): string {
    return formatId(lane.place.epoch, seq);
  }
}

import type { SetSubscriber } from './set-subscriber';
import type { LogPage, LogPosition } from './store';
import type { TopicSubscriber } from './topic-subscriber';
import type { ResetReason } from './types';

/** Events read from the store per page of a replay. */
export const PAGE = 100;

/** The hub's own counts, as `hub.stats()` reports them. */
export type HubCounter = 'published' | 'delivered' | 'replays' | 'replayed' | 'slowCloses';

/** What a subscriber needs of its hub: the store, the rules, and the counters it feeds. */
export interface SubscriberHost {
  readonly maxReplay: number;
  read(topic: string, after: number, limit: number): Promise<LogPage>;
  position(topic: string): Promise<LogPosition>;
  /** Joins the topic's live fan-out; resolves once the store follows the topic. */
  join(subscriber: TopicSubscriber): Promise<void>;
  leave(subscriber: TopicSubscriber): void;
  /** Joins the live fan-out of every topic of the set; resolves once the store follows each. */
  joinSet(subscriber: SetSubscriber): Promise<void>;
  leaveSet(subscriber: SetSubscriber): void;
  counted(counter: HubCounter, by?: number): void;
  countedReset(reason: ResetReason): void;
}

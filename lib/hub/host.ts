import type { SetSubscriber } from './set-subscriber';
import type { LogPage, LogPosition } from './store';
import type { TopicSubscriber } from './topic-subscriber';
import type { ResetReason } from './types';

/** Events read from the store per page of a replay. */
export const PAGE = 100;

/** The hub's own counts, as `hub.stats()` reports them. */
export type HubCounter =
  | 'published'
  | 'delivered'
  | 'replays'
  | 'replayed'
  | 'slowCloses'
  | 'answeredFromTail';

/** What a subscriber needs of its hub: the store, the rules, and the counters it feeds. */
export interface SubscriberHost {
  readonly maxReplay: number;
  /** A page of the topic's log after `after`, for a client in `epoch`: from the hub's tail where it holds it. */
  read(topic: string, epoch: string, after: number, limit: number): Promise<LogPage>;
  /**
   * Where the topic's log stands: from the hub's tail when it is warm — a place it can only vouch for
   * resuming inside it — unless `fresh` asks the store.
   */
  position(topic: string, fresh: boolean): Promise<LogPosition>;
  /** Whether the hub's tail gave `position`: any verdict but a resume inside it must ask the store. */
  fromTail(position: LogPosition): boolean;
  /** Joins the topic's live fan-out; resolves once the store follows the topic. */
  join(subscriber: TopicSubscriber): Promise<void>;
  leave(subscriber: TopicSubscriber): void;
  /** Joins the live fan-out of every topic of the set; resolves once the store follows each. */
  joinSet(subscriber: SetSubscriber): Promise<void>;
  leaveSet(subscriber: SetSubscriber): void;
  counted(counter: HubCounter, by?: number): void;
  countedReset(reason: ResetReason): void;
}

import type { EncodedEvent } from '../sse/encoded';

/**
 * One event as a store keeps it: its fields, already turned into text by the hub's `serialize` (so
 * any process can write it without knowing the app's types). The hub adds the `id` line.
 */
export interface HubRecord {
  readonly event?: string | undefined;
  readonly data?: string | undefined;
  readonly comment?: string | undefined;
  readonly retry?: number | undefined;
}

/** An event of a topic's log, with its place in it. */
export interface StoredEvent {
  readonly seq: number;
  readonly record: HubRecord;
  /** The hub's encoded bytes, cached by stores that keep this object (the memory store) for replays. */
  wire?: EncodedEvent | undefined;
}

/** Where one life of a topic's log stands: `first` is the oldest kept seq (`head + 1` when none is). */
export interface LogPosition {
  readonly epoch: string;
  readonly first: number;
  readonly head: number;
}

/** What a store counts of itself for `hub.stats()` (a Redis store: its live reader's lag and reconnects). */
export type StoreStats = Readonly<Record<string, number>>;

/**
 * The hub's log and its cross-process fan-out. Every topic has a log whose life is named by an
 * `epoch` (a token made when the log starts) and whose events are numbered 1, 2, 3 … with no holes;
 * a lost log shows up as a new epoch, never as a silent gap. The memory store and the Redis store
 * implement it; so can any other engine with an ordered, trimmed log per topic.
 */
export interface HubStore {
  /** Appends one event and resolves with the id it got; rejects with an error naming the cause. */
  append(topic: string, record: HubRecord): Promise<{ epoch: string; seq: number }>;
  /** Where the topic's log stands, making the log (a new epoch, no events) if there is none. */
  position(topic: string): Promise<LogPosition>;
  /** Up to `limit` events with seq above `after`, in order, and where the log stood when read. */
  read(
    topic: string,
    after: number,
    limit: number,
  ): Promise<{ position: LogPosition; events: StoredEvent[] }>;
  /**
   * Hands every new event of `topic` — published by this process or another — to `onEvents`, in
   * order. One listener per topic: the hub fans out to its own subscribers. A store that needs time
   * to start following (the Redis store's reader) returns a promise, resolved once every event
   * appended from then on will be handed over: the hub reads the log only after it.
   */
  listen(
    topic: string,
    onEvents: (epoch: string, events: readonly StoredEvent[]) => void,
  ): void | Promise<void>;
  /** Stops handing `topic`'s events over; the store may let go of what it kept for the topic. */
  unlisten(topic: string): void;
  stats?(): StoreStats;
  /** Stops reading and lets go of what the store holds (its reader's connection, its timers). */
  close(): Promise<void>;
}

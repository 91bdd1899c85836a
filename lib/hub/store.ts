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

/** Where an event landed: the life of the log (`epoch`) and its number in it. */
export interface LogId {
  readonly epoch: string;
  readonly seq: number;
}

/**
 * Where one life of a topic's log stands: `first` is the oldest kept seq (`head + 1` when none is).
 * A topic with no log yet (nothing ever published, or its log was lost) stands at `head` 0 in the
 * store's `emptyEpoch`, and nothing is written to the store to say so.
 */
export interface LogPosition {
  readonly epoch: string;
  readonly first: number;
  readonly head: number;
  /**
   * The epoch the store gives the topic while it has no log, as it stands now. A client positioned while
   * the topic had none holds `<emptyEpoch>-0`; as long as the topic's `emptyEpoch` is unchanged, no
   * log it knew of was lost since, so that id resumes the topic's log from its start. A store changes
   * its `emptyEpoch` whenever it may have lost a log (a flush, a restart, an expired log let go), so
   * that such ids are then judged `unknown-epoch` rather than resumed past a lost life.
   */
  readonly emptyEpoch: string;
}

/** A page of a log read after a seq, and where the log stood when it was read. */
export interface LogPage {
  readonly position: LogPosition;
  readonly events: StoredEvent[];
}

/** How one append is told apart from a resend of it. */
export interface AppendOptions {
  /**
   * The same key twice is one event: a store that already applied an append with this key (within a
   * bounded window of recent appends to the topic) answers with that append's id and adds nothing.
   */
  readonly idempotencyKey: string;
}

/** What a store counts of itself for `hub.stats()` (a Redis store: its live reader's lag and reconnects). */
export type StoreStats = Readonly<Record<string, number>>;

/** Hands over a topic's new events, in order, all of one epoch. */
export type EventsListener = (epoch: string, events: readonly StoredEvent[]) => void;

/**
 * The hub's log and its cross-process fan-out. Every topic has a log whose life is named by an
 * `epoch` (a token made when the log starts) and whose events are numbered 1, 2, 3 … with no holes;
 * a lost log shows up as a new epoch, never as a silent gap. The memory store and the Redis store
 * implement it; so can any other engine with an ordered, trimmed log per topic —
 * `runStoreContract()` (`express-streaming/testing`) checks one against these rules:
 *
 * - A topic is any non-empty string, compared exactly (no case folding, no normalisation).
 * - An epoch is 1 to 64 letters and digits (an id `<epoch>-<seq>` splits at its last `-`). A topic's
 *   `emptyEpoch` changes only when a log may have been lost, and is never given again after; a log
 *   begun may take it as its epoch. A store whose parts fail apart may keep one per part (the Redis
 *   store on a Cluster: one per shard), so two topics' may differ.
 * - An idempotency key belongs to its topic; stores sharing one engine (processes) share its keys.
 * - A record comes back as appended; a field left out is `undefined`, never `null`. The store never
 *   sets an event's `wire` (the hub caches its bytes there) and hands over objects the hub may write to.
 * - `read` gives exactly the events kept above `after`, up to `limit` — fewer only when fewer are
 *   kept — so an empty page means the log holds nothing more.
 * - `listen` hands over new events only (never the log's past), in non-empty batches; its promise
 *   settles even when `unlisten` or `close` comes first. After the engine went back in time, the store
 *   begins a new epoch, or hands the new events over although their seqs were handed before (the hub
 *   tells its clients); it never skips them.
 * - `stats()` answers synchronously. `position` and `read` may come after `close()`: they settle.
 *
 * Every promise a store returns settles in bounded time, whatever its engine does; a failure is a
 * rejection (`HubStoreError` naming the cause), never a synchronous throw.
 */
export interface HubStore {
  /**
   * Appends one event and resolves with the id it got: the next seq of the topic's log, the log begun
   * (a new epoch) if there is none. Applied once per `idempotencyKey`.
   */
  append(topic: string, record: HubRecord, options: AppendOptions): Promise<LogId>;
  /** Where the topic's log stands. Writes nothing: a topic with no log is at head 0 of `emptyEpoch`. */
  position(topic: string): Promise<LogPosition>;
  /** Up to `limit` events with seq above `after`, in order, and where the log stood when read. */
  read(topic: string, after: number, limit: number): Promise<LogPage>;
  /**
   * Hands every new event of `topic` — published by this process or another — to `onEvents`, in
   * order and with no hole (a log begun anew is handed over from its first event, in its new epoch).
   * One listener per topic: the hub fans out to its own subscribers. A store that needs time to start
   * following returns a promise, resolved once every event appended from then on will be handed over
   * (the hub reads the log only after it), or rejected when the store cannot follow in bounded time.
   */
  listen(topic: string, onEvents: EventsListener): void | Promise<void>;
  /** Stops handing `topic`'s events over; the store may let go of what it kept for the topic. */
  unlisten(topic: string): void;
  stats?(): StoreStats;
  /**
   * The store's reads cost nothing (it lives in this process): the hub keeps no tail of its own of
   * the topics it follows (see `HubOptions.tail`).
   */
  readonly inProcess?: boolean;
  /** Stops reading and lets go of what the store holds (its reader's connection, its timers). */
  close(): Promise<void>;
}

import type { Serialize, SseEventInput } from '../sse/encoder';
import type { IdSource } from '../sse/last-event-id';
import type { SseSubscription } from '../sse/types';
import type { HubStore, StoreStats } from './store';

/**
 * Why a resuming client could not be given exactly what it missed, sent to it as `event: reset` with
 * `data: {"reason": …}`: its id names another life of the log (`unknown-epoch`), events it missed are
 * gone (`too-old`), it claims events that do not exist yet (`ahead`), its id is not one the hub gives
 * (`malformed`), or it missed more than `maxReplay` (`too-many`).
 */
export type ResetReason = 'unknown-epoch' | 'too-old' | 'ahead' | 'malformed' | 'too-many';

/** The events a hub may publish, by name: `{ msg: { text: string }; typing: { user: string } }`. */
export type HubEventMap = Record<string, unknown>;

/** No event map: any event object or bare data. */
export type AnyEvents = { readonly [anyEvents]: true };
declare const anyEvents: unique symbol;

/**
 * What `publish` accepts. With an event map, an event object whose `event` names an entry and whose
 * `data` has that entry's type; without one, any event (object or bare data). The hub assigns `id`.
 */
export type HubEventInput<Events> = Events extends AnyEvents
  ? SseEventInput
  : {
      [Name in keyof Events & string]: {
        event: Name;
        data: Events[Name];
        comment?: string;
        retry?: number;
        id?: never;
      };
    }[keyof Events & string];

/** The names of a hub's events: those of its event map, or any string without one. */
export type HubEventName<Events> = Events extends AnyEvents ? string : keyof Events & string;

/**
 * An event as a subscription's `filter` sees it, the same in every process: `data` is the serialized
 * text, `id` the event's own in its topic (`<epoch>-<seq>`, even on a many-topic stream). A hub with
 * an event map gives its filters a `HubMessage<HubEventName<Events>>`: `event` is one of the map's
 * names (a filter typed with a plain `HubMessage` fits it too).
 */
export interface HubMessage<Name extends string = string> {
  readonly topic: string;
  readonly id: string;
  /** The event's name; `'message'` for an unnamed one. */
  readonly event: Name;
  readonly data: string | undefined;
}

/** Options of {@link createHub}. */
export interface HubOptions {
  /** Where the log lives. Default: `memoryStore()`, in this process. */
  store?: HubStore;
  /** Turns non-string `data` into text, once per event. Default: `JSON.stringify`. */
  serialize?: Serialize;
  /** The most events one resuming client is replayed; past it, a reset (`too-many`). Default `1000`. */
  maxReplay?: number;
  /**
   * A latency budget for busy topics: the live events of a topic that arrive within this many
   * milliseconds of the first reach each subscriber as one write, which costs the server a fraction of
   * one write per event. Default `0`: the events of one turn of the event loop are one write.
   */
  coalesceMs?: number;
  /**
   * How much of each followed topic's recent past the hub keeps, as the live feed brings it, to answer
   * resuming clients without asking the store: `events` and `bytes` bound each topic's tail; a topic
   * whose last subscriber left stays followed for `lingerMs` (so that clients reconnecting after a
   * deploy find it warm). Default `{ events: 100, bytes: 131072, lingerMs: 5000 }` for a store in
   * another process (Redis); `null`, and the default for the memory store, keeps none.
   */
  tail?: { events?: number; bytes?: number; lingerMs?: number } | null;
}

/** Options of one `hub.publish()`. */
export interface PublishOptions {
  /**
   * Names this publish so that it is applied once however often it is sent: a retry after a
   * `HubStoreError` (the store may have applied it before failing to answer) with the same key
   * resolves with the first id instead of adding the event again. Stores recognise a key among the
   * topic's recent appends (the memory store: its `size`; Redis: see `redisStore`). Default: a key
   * the hub makes, so that a client library's own resend is applied once.
   */
  idempotencyKey?: string;
}

/** Options of one `hub.subscribe()`. */
export interface SubscribeOptions<Events = AnyEvents> {
  /** Which events this client gets; the others still advance its position (they are not "missed"). */
  filter?: (message: HubMessage<HubEventName<Events>>) => boolean;
  /**
   * `'earliest'`: a first connection (no `Last-Event-ID`) is replayed everything kept — on a
   * many-topic stream, so is each topic the client's cursor does not name.
   */
  from?: 'earliest';
  /**
   * The most distinct topics a many-topic subscription may follow (more is a `TypeError`), and the
   * most a client's cursor may name (more: every topic resets, `malformed`). Default `32`, at most `256`.
   */
  maxTopics?: number;
}

/** `hub.stats()`: what operators ask for. */
export interface HubStats {
  /** Subscribers per topic with any: a many-topic subscriber counts under each of its topics. */
  readonly topics: Readonly<Record<string, number>>;
  /** Subscribers (streams): a many-topic subscriber counts once. */
  readonly subscribers: number;
  /** Events published through this hub. */
  readonly published: number;
  /** Event deliveries to live subscribers (one event to one subscriber counts one). */
  readonly delivered: number;
  /** Replays run, and the events they wrote. */
  readonly replays: number;
  readonly replayed: number;
  readonly resets: Readonly<Record<ResetReason, number>>;
  /** Subscribers closed for falling behind (`bufferBytes` or the write deadline). */
  readonly slowCloses: number;
  /** Positions and replay pages answered from the hub's tail of a topic, with no store command. */
  readonly answeredFromTail: number;
  /** The store's own figures (the Redis store: its live reader's lag and reconnects). */
  readonly store: StoreStats;
}

/** A fan-out hub: `res.sse(hub.subscribe(topic, req))` and `hub.publish(topic, event)`. */
export interface Hub<Events = AnyEvents> {
  /**
   * Gives the event the topic's next id `<epoch>-<seq>`, encodes it once and writes the same bytes to
   * every subscriber of the topic (in every process sharing the store). Resolves with the id; rejects
   * — never throws — when the event is invalid (a `TypeError`), the hub is closed (`HubClosedError`) or
   * the store cannot take it (Redis down: `HubStoreError`, naming the cause).
   */
  publish(topic: string, event: HubEventInput<Events>, options?: PublishOptions): Promise<string>;
  /**
   * A subscription for `res.sse()`: replays what the client missed after its `Last-Event-ID` (header,
   * else the `lastEventId` query), or tells it to `reset`, then goes live. An array of topics is one
   * stream of all their events, each event's id a cursor of every topic's position, and each topic
   * resumed (or reset) on its own.
   */
  subscribe(
    topics: string | readonly string[],
    req: IdSource,
    options?: SubscribeOptions<Events>,
  ): SseSubscription;
  stats(): HubStats;
  /** Every subscription gets a jittered `retry:` and ends; the store lets go of its reader. */
  close(options?: { retryMs?: number }): Promise<void>;
}

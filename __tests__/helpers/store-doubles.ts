import { randomBytes } from 'node:crypto';
import type {
  EventsListener,
  HubRecord,
  HubStore,
  LogId,
  LogPage,
  LogPosition,
  StoredEvent,
} from '../../lib';

const token = () => randomBytes(6).toString('hex');

interface Log {
  epoch: string;
  head: number;
  events: StoredEvent[];
  keys: Map<string, number>;
}

/**
 * A log engine in memory that can do what real engines do to a store — lose a topic's log, go back
 * in time, serve several processes — with stores on it as those processes have them. It hands events
 * to listeners on a later turn, as a remote engine does. The store contract's own test double: it
 * keeps every rule, so that each check is seen passing where the memory store cannot take part.
 */
export class SimulatedEngine {
  readonly #logs = new Map<string, Log>();
  readonly #stores = new Set<Map<string, EventsListener>>();
  #emptyEpoch = token();

  /** A store on this engine, as one process has it: its own listeners, the engine's logs. */
  store(): HubStore {
    const listeners = new Map<string, EventsListener>();
    this.#stores.add(listeners);
    return {
      append: async (topic, record, options) => this.#append(topic, record, options.idempotencyKey),
      position: async (topic) => this.#position(topic),
      read: async (topic, after, limit) => this.#read(topic, after, limit),
      listen: (topic, onEvents) => {
        listeners.set(topic, onEvents);
        return Promise.resolve();
      },
      unlisten: (topic) => {
        listeners.delete(topic);
      },
      close: async () => {
        listeners.clear();
        this.#stores.delete(listeners);
      },
    };
  }

  /** The log of `topic` gone (a flush, an evicted key): the store's emptyEpoch changes with it. */
  lose(topic: string): void {
    this.#logs.delete(topic);
    this.#emptyEpoch = token();
  }

  /** The log of `topic` as it was at `head` (a restore from an older snapshot). */
  rewind(topic: string, head: number): void {
    const log = this.#logs.get(topic)!;
    log.events = log.events.filter((event) => event.seq <= head);
    log.head = head;
  }

  #append(topic: string, record: HubRecord, key: string): LogId {
    let log = this.#logs.get(topic);
    if (log === undefined) {
      log = { epoch: token(), head: 0, events: [], keys: new Map() };
      this.#logs.set(topic, log);
    }
    const known = log.keys.get(key);
    if (known !== undefined) return { epoch: log.epoch, seq: known };
    const event: StoredEvent = { seq: ++log.head, record, wire: undefined };
    log.events.push(event);
    log.keys.set(key, event.seq);
    const epoch = log.epoch;
    // every process that follows the topic now gets it, a moment later
    const following = [...this.#stores].flatMap((listeners) => {
      const listener = listeners.get(topic);
      return listener === undefined ? [] : [{ listeners, listener }];
    });
    setImmediate(() => {
      for (const { listeners, listener } of following) {
        if (listeners.get(topic) === listener) listener(epoch, [event]);
      }
    });
    return { epoch, seq: event.seq };
  }

  #position(topic: string): LogPosition {
    const log = this.#logs.get(topic);
    const emptyEpoch = this.#emptyEpoch;
    if (log === undefined) return { epoch: emptyEpoch, first: 1, head: 0, emptyEpoch };
    return { epoch: log.epoch, first: log.events[0]?.seq ?? log.head + 1, head: log.head, emptyEpoch };
  }

  #read(topic: string, after: number, limit: number): LogPage {
    const events = this.#logs.get(topic)?.events.filter((event) => event.seq > after) ?? [];
    return { position: this.#position(topic), events: events.slice(0, limit) };
  }
}

/** A store that forwards every call to `inner`, but for the methods `overrides` replaces. */
export function forwarding(inner: HubStore, overrides: Partial<HubStore> = {}): HubStore {
  return {
    append: (topic, record, options) => inner.append(topic, record, options),
    position: (topic) => inner.position(topic),
    read: (topic, after, limit) => inner.read(topic, after, limit),
    listen: (topic, onEvents) => inner.listen(topic, onEvents),
    unlisten: (topic) => inner.unlisten(topic),
    close: () => inner.close(),
    ...(inner.stats === undefined ? {} : { stats: () => inner.stats!() }),
    ...overrides,
  };
}

/**
 * `inner` with its seqs numbered by `seqOf` (a hole, a repeat) everywhere they show: in ids, pages,
 * positions and what listeners are handed.
 */
export function renumbered(inner: HubStore, seqOf: (seq: number) => number): HubStore {
  const event = (stored: StoredEvent): StoredEvent => ({ ...stored, seq: seqOf(stored.seq) });
  const position = (p: LogPosition): LogPosition => ({
    ...p,
    head: p.head === 0 ? 0 : seqOf(p.head),
    first: p.head === 0 ? p.first : seqOf(p.first),
  });
  return forwarding(inner, {
    append: async (topic, record, options) => {
      const id = await inner.append(topic, record, options);
      return { ...id, seq: seqOf(id.seq) };
    },
    position: async (topic) => position(await inner.position(topic)),
    read: async (topic, after, limit) => {
      const page = await inner.read(topic, 0, Number.MAX_SAFE_INTEGER);
      const events = page.events.map(event).filter((e) => e.seq > after);
      return { position: position(page.position), events: events.slice(0, limit) };
    },
    listen: (topic, onEvents) => inner.listen(topic, (epoch, events) => onEvents(epoch, events.map(event))),
  });
}

/** Which epoch a renaming sees: a log's (ids, pages, listeners), a position's with no log, the emptyEpoch. */
export type EpochKind = 'log' | 'none' | 'empty';

/** `inner` with its epochs renamed by `epochOf(topic, epoch, kind)` everywhere they show. */
export function reEpoched(
  inner: HubStore,
  epochOf: (topic: string, epoch: string, kind: EpochKind) => string,
): HubStore {
  const position = (topic: string, p: LogPosition): LogPosition => ({
    ...p,
    epoch: epochOf(topic, p.epoch, p.head === 0 && p.epoch === p.emptyEpoch ? 'none' : 'log'),
    emptyEpoch: epochOf(topic, p.emptyEpoch, 'empty'),
  });
  return forwarding(inner, {
    append: async (topic, record, options) => {
      const id = await inner.append(topic, record, options);
      return { ...id, epoch: epochOf(topic, id.epoch, 'log') };
    },
    position: async (topic) => position(topic, await inner.position(topic)),
    read: async (topic, after, limit) => {
      const page = await inner.read(topic, after, limit);
      return { ...page, position: position(topic, page.position) };
    },
    listen: (topic, onEvents) =>
      inner.listen(topic, (epoch, events) => onEvents(epochOf(topic, epoch, 'log'), events)),
  });
}

/**
 * The memory store's way of losing a log: every event it kept expired while nobody listened. The
 * wall clock is moved past `maxAgeMs` only while the store trims the topic (through `unlisten`, which
 * trims and lets go of a log whose events all expired), then put back.
 */
export function expireMemoryLog(topic: string, store: HubStore, maxAgeMs = 300_000): void {
  const realNow = Date.now;
  const later = realNow() + maxAgeMs + 1;
  Date.now = () => later;
  try {
    store.unlisten(topic);
  } finally {
    Date.now = realNow;
  }
}

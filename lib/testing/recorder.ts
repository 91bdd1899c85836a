import { setImmediate as nextTurn } from 'node:timers/promises';
import type { EventsListener, LogId, StoredEvent } from '../hub/store';
import { messageOf, quoted } from './bounded';
import type { CheckedStore } from './checked-store';
import { checkEvent } from './checked-store';

/** One event as a listener was handed it: its fields then (`event`), and the object itself (`raw`). */
interface Handed {
  readonly epoch: string;
  readonly event: StoredEvent;
  readonly raw: StoredEvent;
}

/** Resolves when `ready()` holds, re-checked whenever `wake` is called; fails naming `what` after `ms`. */
class Waiters {
  #wake: Array<() => void> = [];

  wake(): void {
    for (const resolve of this.#wake.splice(0)) resolve();
  }

  async until(ready: () => boolean, what: () => string, ms: number): Promise<void> {
    // the monotonic clock: a hook may move the wall clock (to expire a log) while a check waits
    const deadline = performance.now() + ms;
    while (!ready()) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what()}`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#wake.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }
}

/**
 * A listener that keeps what it is handed, never throwing into the store: what is wrong with a batch
 * (not an array, empty, out of order inside) is noted and fails the check afterwards.
 */
export class Recorder {
  readonly handed: Handed[] = [];
  readonly problems: string[] = [];
  readonly #what: string;
  readonly #ms: number;
  readonly #waiters = new Waiters();

  constructor(what: string, ms: number) {
    this.#what = what;
    this.#ms = ms;
  }

  readonly listener: EventsListener = (epoch, events) => {
    try {
      this.#take(epoch, events);
    } catch (error) {
      this.problems.push(`${this.#what} was handed a batch it could not read: ${messageOf(error)}`);
    }
    this.#waiters.wake();
  };

  #take(epoch: unknown, events: unknown): void {
    if (typeof epoch !== 'string' || epoch === '') {
      this.problems.push(`${this.#what} was handed the epoch ${JSON.stringify(epoch)}`);
    }
    if (!Array.isArray(events) || events.length === 0) {
      this.problems.push(`${this.#what} was handed ${Array.isArray(events) ? 'an empty batch' : 'no array'}`);
      return;
    }
    events.forEach((event, i) => {
      checkEvent(event, `${this.#what}: batch[${i}]`);
      if (i > 0 && event.seq !== events[i - 1].seq + 1) {
        this.problems.push(
          `${this.#what} was handed a batch out of order: seq ${events[i - 1].seq}, then ${event.seq}`,
        );
      }
      // the event's fields as they were handed over: a store that reuses its objects cannot change them later
      this.handed.push({
        epoch: String(epoch),
        event: { ...event, record: { ...event.record } },
        raw: event,
      });
    });
  }

  seqs(): number[] {
    return this.handed.map((h) => h.event.seq);
  }

  /** Resolves once `ready()` holds for what was handed over, or fails saying what was awaited and what came. */
  async until(ready: (handed: readonly Handed[]) => boolean, what: string): Promise<void> {
    await this.#waiters.until(
      () => ready(this.handed),
      () => `${what} (${this.#what} was handed seqs [${summarize(this.seqs())}])`,
      this.#ms,
    );
  }

  /** Waits until the seq `seq` of `epoch` was handed over. */
  untilHanded(epoch: string, seq: number): Promise<void> {
    return this.until(
      (handed) => handed.some((h) => h.epoch === epoch && h.event.seq === seq),
      `seq ${seq} of epoch ${epoch}`,
    );
  }
}

/**
 * Appends to a topic one event after another from its own async loop, giving the event loop a turn
 * between appends (so a store that answers at once cannot starve timers and other checks' steps),
 * until stopped. Keeps which record went under which seq.
 */
export class Producer {
  readonly dataBySeq = new Map<number, string>();
  epoch: string | undefined;
  highest = 0;
  readonly #store: CheckedStore;
  readonly #topic: string;
  readonly #ms: number;
  readonly #waiters = new Waiters();
  #stopping = false;
  #running = true;
  #failure: unknown;

  constructor(store: CheckedStore, topic: string, ms: number) {
    this.#store = store;
    this.#topic = topic;
    this.#ms = ms;
    void this.#loop();
  }

  async #loop(): Promise<void> {
    try {
      for (let n = 1; !this.#stopping; n++) {
        const data = `produced ${n}`;
        this.#took(await this.#store.append(this.#topic, { data }), data);
        await nextTurn();
      }
    } catch (error) {
      this.#failure = error;
    } finally {
      this.#running = false;
      this.#waiters.wake();
    }
  }

  #took(id: LogId, data: string): void {
    if (this.epoch !== undefined && id.epoch !== this.epoch) {
      throw new Error(`append(${quoted(this.#topic)}) changed epoch from ${this.epoch} to ${id.epoch}`);
    }
    this.epoch = id.epoch;
    this.dataBySeq.set(id.seq, data);
    this.highest = Math.max(this.highest, id.seq);
    this.#waiters.wake();
  }

  /** Resolves once an append got a seq of at least `seq`. */
  async reached(seq: number): Promise<void> {
    await this.#waiters.until(
      () => this.highest >= seq || !this.#running,
      () => `appends to ${quoted(this.#topic)} up to seq ${seq} (at ${this.highest})`,
      this.#ms,
    );
    this.#rethrow();
  }

  /** Stops appending and resolves once the last append settled: `highest` is then final. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#waiters.until(
      () => !this.#running,
      () => `the last append to ${quoted(this.#topic)} to settle`,
      this.#ms,
    );
    this.#rethrow();
  }

  #rethrow(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }
}

/** Seqs as a short text: runs folded ("1–40, 42, 44–50"). */
export function summarize(seqs: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < seqs.length; ) {
    let j = i;
    while (j + 1 < seqs.length && seqs[j + 1] === seqs[j]! + 1) j++;
    parts.push(j === i ? String(seqs[i]) : `${seqs[i]}–${seqs[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

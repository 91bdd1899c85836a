import assert from 'node:assert/strict';
import { describeValue } from '../core/util';
import type { HubStore } from '../hub/store';
import { bounded, isThenable, messageOf, quoted, thrownSynchronously } from './bounded';
import { CheckedStore, missingMethod } from './checked-store';
import { Producer, Recorder } from './recorder';

/** The options a run was given, checked, with their defaults. */
export interface Settings {
  readonly timeoutMs: number;
  readonly topicPrefix: string;
  readonly loseLog: ((topic: string, store: HubStore) => unknown) | undefined;
  readonly losesListenedLogs: boolean;
  readonly rewind: ((topic: string, head: number, store: HubStore) => unknown) | undefined;
  readonly sharedEngine: boolean;
}

export type MakeStore = () => HubStore | Promise<HubStore>;

/**
 * What one check works with: stores made for it alone, topics no other check (or run) uses, listeners
 * and producers it may wait on, each wait bounded. `finish()` lets go of all of it, whatever happened.
 */
export class CheckContext {
  readonly ms: number;
  readonly #settings: Settings;
  readonly #makeStore: MakeStore;
  readonly #base: string;
  readonly #stores: CheckedStore[] = [];
  readonly #recorders: Recorder[] = [];
  readonly #producers: Producer[] = [];
  #keys = 0;

  constructor(settings: Settings, makeStore: MakeStore, base: string) {
    this.#settings = settings;
    this.#makeStore = makeStore;
    this.#base = base;
    this.ms = settings.timeoutMs;
  }

  /** A topic of this check's own: `<topicPrefix>:<run>:<check>:<label>`. */
  topic(label: string): string {
    return `${this.#base}:${label}`;
  }

  /** A fresh store from `makeStore()`, closed by `finish()` unless the check closes it. */
  async store(): Promise<CheckedStore> {
    let made: unknown;
    try {
      made = this.#makeStore();
    } catch (error) {
      throw new Error(`makeStore() threw: ${messageOf(error)}`, { cause: error });
    }
    const raw = isThenable(made) ? await this.#awaitStore(Promise.resolve(made)) : made;
    const missing = missingMethod(raw);
    assert.ok(missing === undefined, `makeStore() gave ${describeValue(raw)}, with no ${missing}() method`);
    const store = new CheckedStore(raw as HubStore, this.ms, () => `${this.#base}.${this.#keys++}`);
    this.#stores.push(store);
    return store;
  }

  /** The store `makeStore()` promised; one that comes after the timeout is closed when it comes. */
  async #awaitStore(made: Promise<unknown>): Promise<unknown> {
    try {
      return await bounded(made, this.ms, 'makeStore()');
    } catch (error) {
      made
        .then((late) => (missingMethod(late) === undefined ? (late as HubStore).close() : undefined))
        .catch(() => undefined);
      throw new Error(`makeStore() failed: ${messageOf(error)}`, { cause: error });
    }
  }

  /** A listener that keeps what it is handed; any batch it could not read fails the check at its end. */
  recorder(what = 'the listener'): Recorder {
    const recorder = new Recorder(what, this.ms);
    this.#recorders.push(recorder);
    return recorder;
  }

  /** A fresh store listening to a topic of the check's own (`label`), with the recorder it hands events to. */
  async listening(label: string): Promise<{ store: CheckedStore; topic: string; recorder: Recorder }> {
    const store = await this.store();
    const topic = this.topic(label);
    const recorder = this.recorder();
    await store.listen(topic, recorder.listener);
    return { store, topic, recorder };
  }

  /** Starts appending to `topic` from a loop of its own; stopped by `finish()` if the check does not. */
  producer(store: CheckedStore, topic: string): Producer {
    const producer = new Producer(store, topic, this.ms);
    this.#producers.push(producer);
    return producer;
  }

  /** Makes the store lose `topic`'s log, through the `loseLog` option. */
  loseLog(topic: string, store: CheckedStore): Promise<void> {
    return this.#hook(`loseLog(${quoted(topic)})`, () => this.#settings.loseLog!(topic, store.raw));
  }

  /** Takes `topic`'s log back to `head`, through the `rewind` option. */
  rewind(topic: string, head: number, store: CheckedStore): Promise<void> {
    return this.#hook(`rewind(${quoted(topic)}, ${head})`, () =>
      this.#settings.rewind!(topic, head, store.raw),
    );
  }

  async #hook(what: string, call: () => unknown): Promise<void> {
    let result: unknown;
    try {
      result = call();
    } catch (error) {
      throw thrownSynchronously(`the hook ${what}`, error);
    }
    if (isThenable(result)) await bounded(result, this.ms, `the hook ${what}`);
  }

  /** What a listener of the check could not read, as a failure. */
  assertRecordersSound(): void {
    const problems = this.#recorders.flatMap((recorder) => recorder.problems);
    assert.ok(problems.length === 0, problems.join('; '));
  }

  /**
   * Stops the producers and closes every store the check did not close, each bounded: the first
   * failure is returned (a store whose `close()` hangs or rejects fails the check that made it).
   */
  async finish(): Promise<unknown> {
    let failure: unknown;
    for (const producer of this.#producers) await producer.stop().catch(() => undefined);
    for (const store of this.#stores) {
      if (store.closed) continue;
      await store.close().catch((error: unknown) => {
        failure ??= error;
      });
    }
    return failure;
  }
}

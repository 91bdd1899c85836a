import { releaseIterable } from '../core/release';
import { describeValue, isGeneratorFunction, uncalledGenerator } from '../core/util';
import { BodyContentType } from './plan';

type Items<T> = AsyncIterable<T> | Iterable<T>;

/** How items are framed: each serialized item, then what closes the body after the last one. */
interface Framing {
  readonly owner: string;
  item(json: string, index: number): string;
  end(count: number): string | undefined;
}

const LINES: Framing = {
  owner: 'ndjson',
  item: (json) => `${json}\n`,
  end: () => undefined,
};

const ARRAY: Framing = {
  owner: 'jsonArray',
  item: (json, index) => `${index === 0 ? '[' : ','}${json}`,
  end: (count) => (count === 0 ? '[]' : ']'),
};

/**
 * A body that serializes each item of a (possibly endless) source as it arrives. Closing it closes a
 * closable source (a Channel) directly, since a pending take would hold up anything else.
 */
class SerializedItems<T> implements AsyncIterable<string> {
  readonly [BodyContentType]: string;
  readonly #items: Items<T>;
  readonly #framing: Framing;

  constructor(items: Items<T>, contentType: string, framing: Framing) {
    this[BodyContentType] = contentType;
    this.#items = items;
    this.#framing = framing;
  }

  [Symbol.asyncIterator](): AsyncIterator<string> {
    return new FramingIterator(this.#items, this.#framing);
  }

  close(): void {
    releaseIterable(this.#items);
  }
}

/**
 * Frames the items one by one. Not a generator on purpose: a generator's `return()` waits behind its
 * pending `next()`, so a slow cursor would be released only once its next row arrived; this one
 * passes `return()` straight to the source.
 */
class FramingIterator<T> implements AsyncIterator<string> {
  readonly #source: AsyncIterator<T> | Iterator<T>;
  readonly #sync: boolean;
  readonly #framing: Framing;
  #count = 0;
  #done = false;

  constructor(items: Items<T>, framing: Framing) {
    const asyncIterable = items as Partial<AsyncIterable<T>>;
    this.#sync = typeof asyncIterable[Symbol.asyncIterator] !== 'function';
    this.#source = this.#sync
      ? (items as Iterable<T>)[Symbol.iterator]()
      : (items as AsyncIterable<T>)[Symbol.asyncIterator]();
    this.#framing = framing;
  }

  async next(): Promise<IteratorResult<string>> {
    if (this.#done) return { done: true, value: undefined };
    const step = await this.#source.next();
    if (step.done) {
      this.#done = true;
      const tail = this.#framing.end(this.#count);
      return tail === undefined ? { done: true, value: undefined } : { done: false, value: tail };
    }
    // `for await` over a sync iterable awaits each value; so do we.
    const item: unknown = this.#sync ? await step.value : step.value;
    const index = this.#count++;
    return { done: false, value: this.#framing.item(toJson(item, index, this.#framing.owner), index) };
  }

  return(): Promise<IteratorResult<string>> {
    this.#done = true;
    releaseIterable(undefined, this.#source);
    return Promise.resolve({ done: true, value: undefined });
  }
}

function checkItems(items: unknown, owner: string): void {
  if (isGeneratorFunction(items)) throw uncalledGenerator(owner, items);
  const iterable = items as { [Symbol.asyncIterator]?: unknown; [Symbol.iterator]?: unknown } | null;
  const ok =
    typeof iterable === 'object' &&
    iterable !== null &&
    (typeof iterable[Symbol.asyncIterator] === 'function' || typeof iterable[Symbol.iterator] === 'function');
  if (!ok)
    throw new TypeError(`${owner}: expected an iterable or async iterable, got ${describeValue(items)}`);
}

function toJson(item: unknown, index: number, owner: string): string {
  const text = JSON.stringify(item);
  if (text === undefined) {
    throw new TypeError(`${owner}: item ${index} cannot be serialized as JSON, got ${describeValue(item)}`);
  }
  return text;
}

/**
 * Streams each item as one line of JSON (`application/x-ndjson`), flushed as it arrives.
 * @example res.stream(ndjson(db.cursor('select * from t')))
 */
export function ndjson<T>(items: Items<T>): AsyncIterable<string> {
  checkItems(items, 'ndjson');
  return new SerializedItems(items, 'application/x-ndjson', LINES);
}

/**
 * Streams the items as one JSON array (`application/json`), element by element, so a client's
 * `JSON.parse` of the whole body works while the server never holds more than one item.
 */
export function jsonArray<T>(items: Items<T>): AsyncIterable<string> {
  checkItems(items, 'jsonArray');
  return new SerializedItems(items, 'application/json; charset=utf-8', ARRAY);
}

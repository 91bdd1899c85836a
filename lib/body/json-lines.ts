import { releaseIterable } from '../core/release';
import { describeValue } from '../core/util';
import { BodyContentType } from './plan';

type Items<T> = AsyncIterable<T> | Iterable<T>;

/**
 * A body that serialises each item of a (possibly endless) source as it arrives. Closing it closes a
 * closable source (a Channel) directly, since the generator's `return()` would wait behind a pending take.
 */
class SerialisedItems<T> implements AsyncIterable<string> {
  readonly [BodyContentType]: string;
  readonly #items: Items<T>;
  readonly #frame: (items: Items<T>) => AsyncGenerator<string>;

  constructor(items: Items<T>, contentType: string, frame: (items: Items<T>) => AsyncGenerator<string>) {
    this[BodyContentType] = contentType;
    this.#items = items;
    this.#frame = frame;
  }

  [Symbol.asyncIterator](): AsyncIterator<string> {
    return this.#frame(this.#items);
  }

  close(): void {
    releaseIterable(this.#items);
  }
}

function checkItems(items: unknown, owner: string): void {
  const iterable = items as { [Symbol.asyncIterator]?: unknown; [Symbol.iterator]?: unknown } | null;
  const ok =
    typeof iterable === 'object' &&
    iterable !== null &&
    (typeof iterable[Symbol.asyncIterator] === 'function' || typeof iterable[Symbol.iterator] === 'function');
  if (!ok)
    throw new TypeError(`${owner}: expected an iterable or async iterable, got ${describeValue(items)}`);
}

function serialise(item: unknown, index: number, owner: string): string {
  const text = JSON.stringify(item);
  if (text === undefined) {
    throw new TypeError(`${owner}: item ${index} cannot be serialised as JSON, got ${describeValue(item)}`);
  }
  return text;
}

async function* lines<T>(items: Items<T>): AsyncGenerator<string> {
  let index = 0;
  for await (const item of items) yield `${serialise(item, index++, 'ndjson')}\n`;
}

async function* arrayElements<T>(items: Items<T>): AsyncGenerator<string> {
  let index = 0;
  for await (const item of items) {
    yield `${index === 0 ? '[' : ','}${serialise(item, index, 'jsonArray')}`;
    index++;
  }
  yield index === 0 ? '[]' : ']';
}

/**
 * Streams each item as one line of JSON (`application/x-ndjson`), flushed as it arrives.
 * @example res.stream(ndjson(db.cursor('select * from t')))
 */
export function ndjson<T>(items: Items<T>): AsyncIterable<string> {
  checkItems(items, 'ndjson');
  return new SerialisedItems(items, 'application/x-ndjson', lines);
}

/**
 * Streams the items as one JSON array (`application/json`), element by element, so a client's
 * `JSON.parse` of the whole body works while the server never holds more than one item.
 */
export function jsonArray<T>(items: Items<T>): AsyncIterable<string> {
  checkItems(items, 'jsonArray');
  return new SerialisedItems(items, 'application/json; charset=utf-8', arrayElements);
}

import type { Readable, Writable } from 'node:stream';
import { types } from 'node:util';
import { destroyQuietly, releaseIterable, releaseUnstarted } from '../core/release';
import type { StreamContext } from '../core/response';
import {
  describeValue,
  hasMethod,
  ignore,
  isGeneratorFunction,
  isPlainObject,
  uncalledGenerator,
} from '../core/util';
import type { ChunkSource } from '../core/write-loop';
import { type FileBody, isFileBody } from './file';
import { BodyWriterSource } from './function-body';
import { readableSource } from './readable-source';

/** A function body, Pedestal's and Ring's writer function: the response ends when `out` ends. */
export type BodyFunction = (out: Writable, ctx: StreamContext) => void | Promise<void>;

/**
 * The protocol for body types users define (Ring's `StreamableResponseBody`): an object with this
 * symbol method writes itself to `out`, exactly as a {@link BodyFunction} does. Its optional
 * `contentType` is used when the app set none. `Symbol.for` keeps the ESM and CommonJS builds in agreement.
 */
export const StreamableBody: unique symbol = Symbol.for('express-streaming.StreamableBody') as never;
export interface StreamableBody {
  [StreamableBody](out: Writable, ctx: StreamContext): void | Promise<void>;
  readonly contentType?: string;
}

/** A default Content-Type carried by a body wrapper such as `ndjson()`; `Symbol.for` for the same reason. */
export const BodyContentType: unique symbol = Symbol.for('express-streaming.contentType') as never;

type Chunk = string | Uint8Array;
type JsonObject = { readonly [key: string]: unknown };

/** Everything `res.stream()` accepts; see the README's table for how each is sent. */
export type StreamBody =
  | null
  | undefined
  | string
  | Uint8Array
  | ArrayBuffer
  | FileBody
  | Readable
  | ReadableStream<Chunk>
  | Blob
  | Response
  | StreamableBody
  | AsyncIterable<Chunk>
  | Iterable<Chunk>
  | BodyFunction
  | readonly unknown[]
  | JsonObject;

const TEXT_TYPE = 'text/plain; charset=utf-8';
const BINARY_TYPE = 'application/octet-stream';
const JSON_TYPE = 'application/json; charset=utf-8';

/** How one body is to be sent, decided before anything is written. */
export type BodyPlan =
  | { readonly kind: 'empty' }
  | { readonly kind: 'whole'; readonly bytes: Chunk; readonly type: string }
  | { readonly kind: 'file'; readonly file: FileBody }
  | StreamPlan;

export interface StreamPlan {
  readonly kind: 'stream';
  /** Default Content-Type, used only when none is set. */
  readonly type: string | undefined;
  /** Exact length where the body knows it (a Blob). */
  readonly length?: number | undefined;
  /** Made over time (not known in full at the start): a buffering proxy must pass each chunk on. */
  readonly overTime: boolean;
  /** Status and end-to-end headers of a fetch `Response`. */
  readonly response?:
    | { status: number; statusText: string; headers: [string, string | string[]][] }
    | undefined;
  /** Starts the producer. */
  open(ctx: StreamContext): ChunkSource;
  /** Lets go of a producer that will never be started (HEAD, 204, 304, a failure before the start). */
  dispose(): void;
}

/**
 * Decides how a body is sent: the first matching rule wins. Strings and bytes are iterable, so they
 * come first; every protocol (our symbols, streams, iterators) is tried before "plain object → JSON",
 * and detection is by behaviour or `Symbol.for`, never `instanceof` alone.
 */
export function planBody(body: unknown): BodyPlan {
  if (body === null || body === undefined) return { kind: 'empty' };
  if (typeof body === 'string') return { kind: 'whole', bytes: body, type: TEXT_TYPE };
  if (types.isUint8Array(body)) return { kind: 'whole', bytes: body, type: BINARY_TYPE };
  if (ArrayBuffer.isView(body)) {
    return {
      kind: 'whole',
      bytes: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
      type: BINARY_TYPE,
    };
  }
  if (types.isAnyArrayBuffer(body)) return { kind: 'whole', bytes: new Uint8Array(body), type: BINARY_TYPE };
  if (isFileBody(body)) return { kind: 'file', file: body };
  if (hasMethod(body, StreamableBody)) {
    const streamable = body as unknown as StreamableBody;
    return writerPlan(streamable, (out, ctx) => streamable[StreamableBody](out, ctx));
  }
  if (hasTag(body, 'Response')) return responsePlan(body as Response);
  if (hasTag(body, 'Blob') || hasTag(body, 'File')) return blobPlan(body as Blob);
  if (hasMethod(body, 'getReader')) return webStreamPlan(body as ReadableStream<unknown>, BINARY_TYPE, true);
  if (isReadable(body)) return readablePlan(body);
  if (hasMethod(body, Symbol.asyncIterator)) return asyncIterablePlan(body as AsyncIterable<unknown>);
  if (isGeneratorFunction(body)) throw uncalledGenerator('res.stream', body);
  if (typeof body === 'function') return writerPlan(body, body as BodyFunction);
  if (Array.isArray(body)) return jsonPlan(body);
  if (hasMethod(body, Symbol.iterator)) return iterablePlan(body as Iterable<unknown>);
  if (isPlainObject(body)) return jsonPlan(body);
  throw new TypeError(
    `res.stream: cannot send ${describeValue(body)} as a body; expected a string, bytes, a plain object or array, ` +
      'file(), a Readable, a ReadableStream, a Blob, a Response, a Channel, an (async) iterable, a function (out, ctx), ' +
      'or an object implementing StreamableBody',
  );
}

function jsonPlan(body: object): BodyPlan {
  let text: string;
  try {
    text = JSON.stringify(body);
  } catch (error) {
    throw new TypeError(`res.stream: the body could not be serialized as JSON: ${(error as Error).message}`);
  }
  return { kind: 'whole', bytes: text, type: JSON_TYPE };
}

function writerPlan(owner: unknown, write: BodyFunction): StreamPlan {
  const type = (owner as { contentType?: unknown }).contentType;
  return {
    kind: 'stream',
    type: typeof type === 'string' ? type : BINARY_TYPE,
    overTime: true,
    open(ctx) {
      const source = new BodyWriterSource();
      try {
        source.settleWith(write(source.out, ctx));
      } catch (error) {
        source.fail(error ?? new Error('the function body threw without a reason'));
      }
      return source;
    },
    dispose: ignore,
  };
}

function readablePlan(stream: Readable): StreamPlan {
  return {
    kind: 'stream',
    type: BINARY_TYPE,
    overTime: true,
    open: () => readableSource(stream, 'a chunk of the Readable'),
    dispose: () => destroyQuietly(stream),
  };
}

function webStreamPlan(
  stream: ReadableStream<unknown>,
  type: string,
  overTime: boolean,
  length?: number,
): StreamPlan {
  if (stream.locked)
    throw new TypeError('res.stream: the ReadableStream is locked (a reader already holds it)');
  return {
    kind: 'stream',
    type,
    overTime,
    length,
    open() {
      const reader = stream.getReader();
      return {
        itemName: 'a chunk of the ReadableStream',
        next: () => reader.read(),
        release: (reason) => {
          reader.cancel(reason).catch(ignore);
        },
      };
    },
    dispose: () => {
      stream.cancel().catch(ignore);
    },
  };
}

function blobPlan(blob: Blob): StreamPlan {
  return webStreamPlan(blob.stream(), blob.type || BINARY_TYPE, false, blob.size);
}

/** Header fields that describe one connection or an encoding `fetch` already undid: never forwarded. */
const NOT_FORWARDED = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-encoding',
  'content-length',
]);

function responsePlan(response: Response): StreamPlan {
  if (response.bodyUsed) throw new TypeError('res.stream: the Response body has already been read');
  const dropped = new Set(NOT_FORWARDED);
  for (const token of (response.headers.get('connection') ?? '').split(','))
    dropped.add(token.trim().toLowerCase());
  const headers: [string, string | string[]][] = [];
  response.headers.forEach((value, name) => {
    if (!dropped.has(name) && name !== 'set-cookie') headers.push([name, value]);
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers.push(['set-cookie', cookies]);
  const meta = { status: response.status, statusText: response.statusText, headers };
  const body = response.body;
  if (!body) {
    return {
      kind: 'stream',
      type: undefined,
      overTime: false,
      response: meta,
      open: emptySource,
      dispose: ignore,
    };
  }
  return { ...webStreamPlan(body, BINARY_TYPE, true), response: meta };
}

function emptySource(): ChunkSource {
  return { itemName: 'nothing', next: () => ({ done: true, value: undefined }), release: ignore };
}

function asyncIterablePlan(iterable: AsyncIterable<unknown>): StreamPlan {
  const hint = (iterable as { [BodyContentType]?: unknown })[BodyContentType];
  return iteratorPlan(
    iterable,
    () => iterable[Symbol.asyncIterator](),
    typeof hint === 'string' ? hint : BINARY_TYPE,
  );
}

function iterablePlan(iterable: Iterable<unknown>): StreamPlan {
  return iteratorPlan(iterable, () => iterable[Symbol.iterator](), BINARY_TYPE);
}

/**
 * A sync or async iterable: pulled through its iterator. Release closes a closable source (a Channel)
 * first, because `return()` would queue behind a pending take.
 */
function iteratorPlan(
  iterable: AsyncIterable<unknown> | Iterable<unknown>,
  iterate: () => Iterator<unknown> | AsyncIterator<unknown>,
  type: string,
): StreamPlan {
  return {
    kind: 'stream',
    type,
    overTime: true,
    open: () => {
      const iterator = iterate();
      return {
        itemName: 'an iterable item',
        next: () => iterator.next(),
        release: () => releaseIterable(iterable, iterator),
      };
    },
    dispose: () => releaseUnstarted(iterable),
  };
}

function hasTag(value: unknown, tag: string): boolean {
  return (
    typeof value === 'object' && value !== null && Object.prototype.toString.call(value) === `[object ${tag}]`
  );
}

function isReadable(value: unknown): value is Readable {
  return (
    hasMethod(value, 'pipe') &&
    hasMethod(value, 'read') &&
    hasMethod(value, 'destroy') &&
    hasMethod(value, Symbol.asyncIterator)
  );
}

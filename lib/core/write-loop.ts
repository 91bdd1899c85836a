import { types } from 'node:util';
import { describeValue, isPromiseLike } from './util';
import { GONE, type ResponseWriter, type StreamOutcome } from './writer';

/**
 * A pull source of body chunks: every body type (Readable, web stream, iterator, channel, function
 * writer) is turned into one of these so that a single loop writes them all.
 */
export interface ChunkSource {
  /** The next chunk, or `done`; may answer synchronously (sync iterables). */
  next(): PromiseLike<IteratorResult<unknown>> | IteratorResult<unknown>;
  /** Lets go of the producer at once (destroy, cancel, return, close); idempotent, never throws. */
  release(reason?: unknown): void;
  /** What one item is called in error messages, e.g. "iterable item". */
  readonly itemName: string;
}

/** A chunk as the response accepts it; anything else is a programmer error named in a TypeError. */
export function toChunk(value: unknown, itemName: string): string | Uint8Array {
  if (typeof value === 'string' || types.isUint8Array(value)) return value;
  if (types.isAnyArrayBuffer(value)) return new Uint8Array(value);
  throw new TypeError(`${itemName} must be a string or a Uint8Array, got ${describeValue(value)}`);
}

/**
 * The one write loop every streamed body goes through: pull a chunk, write it, flush, wait for
 * `'drain'` when the socket is full — every wait raced with the client leaving, which releases the
 * source at once. Errors are thrown to the caller, which knows how to report them.
 */
export async function pump(writer: ResponseWriter, source: ChunkSource): Promise<StreamOutcome> {
  writer.whenAborted(() => source.release(writer.signal.reason));
  if (writer.gone) {
    source.release(writer.signal.reason);
    return 'aborted';
  }
  for (;;) {
    const pending = source.next();
    const step = isPromiseLike(pending) ? await writer.untilGone(pending) : pending;
    if (step === GONE || writer.gone) return 'aborted';
    if (step.done) break;
    const chunk = toChunk(step.value, source.itemName);
    if (chunk.length === 0) continue;
    if (!writer.write(chunk) && !(await writer.drained())) return 'aborted';
  }
  return writer.end();
}

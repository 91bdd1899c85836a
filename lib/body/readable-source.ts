import type { Readable } from 'node:stream';
import { ignore } from '../core/util';
import type { ChunkSource } from '../core/write-loop';

/**
 * Pulls a Node Readable with `read()`: buffered chunks are handed over synchronously, and the body is
 * done at `'end'` — the stream's async iterator only finishes at `'close'`, which for a file comes after
 * its descriptor closed, late enough for a client that already has every byte to hang up first.
 */
export function readableSource(stream: Readable, itemName: string): ChunkSource {
  let wake: (() => void) | undefined;
  let failure: { error: unknown } | undefined;
  let ended = false;
  const wakeUp = () => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const onEnd = () => {
    ended = true;
    wakeUp();
  };
  const onError = (error: unknown) => {
    failure = { error };
    wakeUp();
  };
  stream.on('readable', wakeUp);
  stream.on('end', onEnd);
  stream.on('error', onError);
  stream.on('close', wakeUp);
  // Kept for as long as the stream lives, like pipeline() does: an 'error' after 'end' or during
  // destroy() (a cursor whose close fails once the connection dropped) must not crash the process.
  stream.on('error', ignore);
  const detach = () => {
    stream.off('readable', wakeUp);
    stream.off('end', onEnd);
    stream.off('error', onError);
    stream.off('close', wakeUp);
  };
  const next = (): IteratorResult<unknown> | Promise<IteratorResult<unknown>> => {
    const chunk: unknown = stream.read();
    if (chunk !== null) return { done: false, value: chunk };
    if (failure) throw failure.error;
    if (stream.errored) throw stream.errored;
    if (ended || stream.readableEnded) {
      detach();
      return { done: true, value: undefined };
    }
    if (stream.closed) throw new Error('the Readable was destroyed before it ended');
    return new Promise<void>((resolve) => {
      wake = resolve;
    }).then(next);
  };
  return {
    itemName,
    next,
    release: () => {
      detach();
      stream.destroy();
    },
  };
}

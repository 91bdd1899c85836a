import { hasMethod, ignore, isPromiseLike } from './util';

/**
 * Lets go of an iterable source: a channel (anything with `close()`) is closed directly, because
 * `return()` would queue behind a pending take; then the iterator is `return()`ed. Never throws, and
 * a rejected `return()` is swallowed: the response is already being torn down.
 */
export function releaseIterable(source: unknown, iterator?: { return?(): unknown }): void {
  attempt(() => (hasMethod(source, 'close') ? (source as { close(): unknown }).close() : undefined));
  attempt(() => iterator?.return?.());
}

/**
 * Lets go of an iterable source that was never started (HEAD, a client already gone, admission
 * control). A Node stream is destroyed: returning an iterator it never started leaves it open. Any
 * other has its iterator made only to be returned, which is how a ReadableStream is cancelled; one that
 * refuses to be iterated (a locked stream) is left as it is.
 */
export function releaseUnstarted(source: AsyncIterable<unknown> | Iterable<unknown>): void {
  if (!hasMethod(source, 'close') && hasMethod(source, 'destroy') && hasMethod(source, 'on')) {
    destroyQuietly(source as unknown as Parameters<typeof destroyQuietly>[0]);
    return;
  }
  const iterate = () =>
    Symbol.asyncIterator in source
      ? (source as AsyncIterable<unknown>)[Symbol.asyncIterator]()
      : (source as Iterable<unknown>)[Symbol.iterator]();
  releaseIterable(source, { return: () => iterate().return?.() });
}

/**
 * Destroys a producer stream, keeping an `'error'` listener on it: its own clean-up may fail (a
 * cursor whose close throws once the connection dropped), which must not crash the process.
 */
export function destroyQuietly(stream: {
  on(event: 'error', listener: () => void): unknown;
  destroy(): unknown;
}): void {
  stream.on('error', ignore);
  stream.destroy();
}

function attempt(release: () => unknown): void {
  try {
    const result = release();
    if (isPromiseLike(result)) result.then(ignore, ignore);
  } catch {
    // The producer's own clean-up failed; the response is already being torn down.
  }
}

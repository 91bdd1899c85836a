import { describeValue } from '../core/util';

/**
 * Settles like `promise`, or rejects naming `what` once `ms` have passed: a store (or a hook) that
 * hangs fails the step instead of hanging the run. The race handles a late rejection of `promise`, so
 * none is left unhandled.
 */
export function bounded<T>(promise: PromiseLike<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/**
 * Calls a method that promises a result and bounds it: a synchronous throw or a value that is not a
 * promise is a failure of the store's own (the hub calls `.then()` on what it gets, and reports every
 * failure of a publish as a rejection).
 */
export function promised<T>(what: string, ms: number, call: () => Promise<T>): Promise<T> {
  let result: unknown;
  try {
    result = call();
  } catch (error) {
    return Promise.reject(thrownSynchronously(what, error));
  }
  if (!isThenable(result)) {
    return Promise.reject(new Error(`${what} returned ${describeValue(result)}, not a promise`));
  }
  return bounded(result as PromiseLike<T>, ms, what);
}

/**
 * Calls a method and waits, bounded, for what it returns to settle, resolved or rejected: for calls
 * whose answer does not matter, only that they end (a listen cancelled, a read after close).
 */
export async function settles(what: string, ms: number, call: () => unknown, mayReturnNothing = false) {
  let result: unknown;
  try {
    result = call();
  } catch (error) {
    throw thrownSynchronously(what, error);
  }
  if (result === undefined && mayReturnNothing) return;
  if (!isThenable(result)) throw new Error(`${what} returned ${describeValue(result)}, not a promise`);
  await bounded(
    Promise.resolve(result).then(
      () => undefined,
      () => undefined,
    ),
    ms,
    what,
  );
}

export function thrownSynchronously(what: string, error: unknown): Error {
  return new Error(
    `${what} threw synchronously (a store reports failure as a rejection): ${messageOf(error)}`,
    { cause: error },
  );
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : describeValue(error);
}

/** A topic as a message shows it: quoted, and clipped when long. */
export function quoted(topic: string): string {
  return topic.length > 48 ? `${JSON.stringify(topic.slice(0, 47))}…` : JSON.stringify(topic);
}

/** Waits `ms`: only for pacing a producer or a client, never before asserting that nothing happened. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `check()` is true, polling; fails naming `what` (made at the failure) after `ms`. */
export async function until(check: () => boolean, what: string | (() => string), ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    }
    await sleep(5);
  }
}

/**
 * Polls `read()` until its value has not changed for `quietMs` (while `ready()` holds), then returns
 * it. This is how a test asserts that something stopped or did not happen: it waits for the state to
 * settle instead of sleeping a guessed time.
 */
export async function untilStable<T>(
  read: () => T,
  what: string,
  {
    quietMs = 100,
    ready = () => true,
    ms = 5000,
  }: { quietMs?: number; ready?: () => boolean; ms?: number } = {},
): Promise<T> {
  const deadline = Date.now() + ms;
  let last = read();
  let since = Date.now();
  for (;;) {
    await sleep(10);
    const now = read();
    if (!Object.is(now, last) || !ready()) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return now;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for a stable state: ${what}`);
  }
}

export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Waits `ms`: only for pacing a producer or a client, never before asserting that nothing happened. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `check()` is true, polling; fails naming `what` (made at the failure) after `ms`. */
export function until(check: () => boolean, what: string | (() => string), ms = 3000): Promise<void> {
  return untilAsync(async () => check(), what, ms);
}

/**
 * {@link until} for a check that has to be awaited (a query, or an attempt retried until it succeeds):
 * each check settles before the next one starts, so it must settle on its own (a command timeout, a
 * refused connection).
 */
export async function untilAsync(
  check: () => Promise<boolean>,
  what: string | (() => string),
  ms = 3000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    }
    await sleep(5);
  }
}

/** Whether `attempt` resolves (a check for {@link untilAsync} that retries it while it rejects). */
export const succeeds = (attempt: Promise<unknown>): Promise<boolean> =>
  attempt.then(
    () => true,
    () => false,
  );

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

/**
 * Counts the timers made through the global timer functions from now on and not yet cleared or fired —
 * unref'd ones included, which `process.getActiveResourcesInfo()` does not list (the library's own
 * heartbeat timer is unref'd). `restore()` puts the real functions back.
 */
export function trackTimers(): { live(): number; restore(): void } {
  const live = new Set<unknown>();
  const real = {
    setTimeout: globalThis.setTimeout,
    clearTimeout: globalThis.clearTimeout,
    setInterval: globalThis.setInterval,
    clearInterval: globalThis.clearInterval,
  };
  const replace = (name: keyof typeof real, value: unknown) => {
    Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  };
  replace('setTimeout', (callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = real.setTimeout(
      (...given: unknown[]) => {
        live.delete(timer);
        callback(...given);
      },
      ms,
      ...args,
    );
    live.add(timer);
    return timer;
  });
  replace('setInterval', (callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const timer = real.setInterval(callback, ms, ...args);
    live.add(timer);
    return timer;
  });
  const clear = (timer: NodeJS.Timeout | undefined) => {
    live.delete(timer);
    real.clearTimeout(timer);
  };
  replace('clearTimeout', clear);
  replace('clearInterval', clear);
  return {
    live: () => live.size,
    restore: () => {
      for (const name of Object.keys(real) as Array<keyof typeof real>) replace(name, real[name]);
    },
  };
}

/**
 * Resolves once what is already queued has run — the `'error'` a destroyed stream emits on the next
 * tick, say — so that a test asserting "nothing crashed" asserts after the crash would have happened.
 */
export const afterPendingEvents = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

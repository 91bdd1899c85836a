import { sleep } from './wait';

/**
 * An endless source, as a live feed is: `text` every `everyMs` until it is let go. `released()`
 * tells whether its `finally` ran — whether whoever streamed it released it.
 */
export function endlessTicks(
  text = 'tick\n',
  everyMs = 5,
): { body: AsyncGenerator<string>; released: () => boolean } {
  let released = false;
  async function* ticks() {
    try {
      for (;;) {
        yield text;
        await sleep(everyMs);
      }
    } finally {
      released = true;
    }
  }
  return { body: ticks(), released: () => released };
}

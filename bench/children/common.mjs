// What the server and client children share: the clock of the publish stamps and the stamp's width.

/** Digits of the publish stamp in µs after an event's '#': 15 stay below 2^53, cover 30 years of uptime. */
export const STAMP_DIGITS = 15;

/** µs on CLOCK_MONOTONIC, the clock every process of the machine shares (no BigInt per event). */
export function nowUs() {
  const [s, ns] = process.hrtime();
  return s * 1e6 + Math.floor(ns / 1000);
}

/** Sends `message` to the parent, if it is still there. */
export function tell(message) {
  if (process.connected) process.send(message);
}

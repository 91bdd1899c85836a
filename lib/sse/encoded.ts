/**
 * An event encoded once, to be written as is to any number of streams: its wire bytes, and the same
 * bytes framed as one HTTP/1.1 chunk, made the first time a stream on the framed socket path needs them.
 */
export interface EncodedEvent {
  readonly bytes: Buffer;
  framed: Buffer | undefined;
}

/** Already-encoded wire text (a hub's `reset` event, say), wrapped for delivery. */
export function encodedText(text: string): EncodedEvent {
  return { bytes: Buffer.from(text), framed: undefined };
}

const CRLF = Buffer.from('\r\n');

/** The event as one HTTP/1.1 chunk — size line, bytes, CRLF — made once and shared by every stream. */
export function framedBytes(event: EncodedEvent): Buffer {
  event.framed ??= Buffer.concat([Buffer.from(`${event.bytes.length.toString(16)}\r\n`), event.bytes, CRLF]);
  return event.framed;
}

/**
 * How a hub hands a stream bytes it encoded once. The methods are keyed by `Symbol.for`, so a hub
 * from one build of the package (ESM or CommonJS) can write to streams of the other.
 */
export const deliverLive: unique symbol = Symbol.for('express-streaming.sse.deliverLive') as never;
export const deliverPaced: unique symbol = Symbol.for('express-streaming.sse.deliverPaced') as never;
export const closeReason: unique symbol = Symbol.for('express-streaming.sse.closeReason') as never;
export const whenClosed: unique symbol = Symbol.for('express-streaming.sse.whenClosed') as never;
export const commitHead: unique symbol = Symbol.for('express-streaming.sse.commitHead') as never;
/**
 * Marks a subscription that commits the stream's head itself, once it knows where its client starts
 * (a hub subscriber, after its store answered): until then the client has not seen the stream open, so
 * nothing published after its `onopen` can fall before its starting point.
 */
export const holdsHead: unique symbol = Symbol.for('express-streaming.sse.holdsHead') as never;

export interface EncodedSink {
  /**
   * Writes a live event now and never waits: `false` if the stream is closed, or was just closed as
   * `'slow'` because the event would put it more than `bufferBytes` behind.
   */
  [deliverLive](event: EncodedEvent): boolean;
  /** Writes a replayed event paced by the client (not counted against `bufferBytes`); `false` once closed. */
  [deliverPaced](event: EncodedEvent): Promise<boolean>;
  /** Why the stream closed (`'client'`, `'server'`, `'error'`, `'slow'`), once it has. */
  readonly [closeReason]: string | undefined;
  /**
   * Runs `hook` once when the stream closes, whatever the cause: a plain callback, where listening on
   * the stream's `signal` would cost each subscriber an AbortSignal and its listener maps.
   */
  [whenClosed](hook: () => void): void;
  /** Commits the response head now, if it is not out yet (see {@link holdsHead}). */
  [commitHead](): void;
}

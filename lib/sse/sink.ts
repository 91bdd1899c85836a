import type { EncodedEvent } from './encoded';
import type { SseCloseReason } from './types';

/**
 * The one link between a hub and the SSE streams it writes to: a stream made by `res.sse()` answers
 * this key with its {@link StreamSink}. The key is `Symbol.for` — a hub from one build of the package
 * (ESM or CommonJS) writes to streams of the other — and carries the interface's version, so that a
 * build with another interface is told apart instead of misread.
 */
export const STREAM_SINK: unique symbol = Symbol.for('express-streaming.sse.sink/1') as never;

/**
 * What became of a live event: written; `dropped` — the stream is open but did not take it (a burst
 * bigger than the client's buffer, or `onSlowClient: 'drop'`), so the writer must send it later,
 * paced; or the stream is `closed` (it was, or it just was as `'slow'`).
 */
export type LiveDelivery = 'written' | 'dropped' | 'closed';

/** How a hub writes bytes it encoded once to a stream, and learns of the stream's end. */
export interface StreamSink {
  /** Writes a live event now, never waiting (the slow-client rule decides what cannot be taken). */
  deliverLive(event: EncodedEvent): LiveDelivery;
  /** Writes an event paced by the client (a replay: not counted against `bufferBytes`); `false` once closed. */
  deliverPaced(event: EncodedEvent): Promise<boolean>;
  /**
   * Lets the client see the stream open. A subscription holds the response head until it knows where
   * its client starts, so that nothing published after the client's `onopen` can fall before that
   * point; the head also goes out with the first byte written, or as the stream ends.
   */
  commitHead(): void;
  /**
   * Runs `hook` once when the stream closes, whatever the cause: a plain callback, where listening on
   * the stream's `signal` would cost each subscriber an AbortSignal listener.
   */
  whenClosed(hook: () => void): void;
  /** Why the stream closed (`'client'`, `'server'`, `'error'`, `'slow'`), once it has. */
  readonly closeReason: SseCloseReason | undefined;
  close(): void;
}

/** The stream's sink, or `undefined` for a stream that is not `res.sse()`'s (of this interface version). */
export function sinkOf(stream: unknown): StreamSink | undefined {
  const sink = (stream as { [STREAM_SINK]?: unknown } | null)?.[STREAM_SINK];
  return typeof sink === 'object' && sink !== null ? (sink as StreamSink) : undefined;
}

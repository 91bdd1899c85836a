import type { Channel } from '../channel/channel';
import type { AnyRequest, AnyResponse } from '../core/response';
import type { SseEventInput } from './encoder';
import type { SseStreamOptions } from './options';

/** Why a stream ended: the client left, the app (or its source) ended it, it failed, or it was too slow. */
export type SseCloseReason = 'client' | 'server' | 'error' | 'slow';

/** The handle `res.sse()` returns. Network conditions never throw here: sends resolve `false` instead. */
export interface SseStream<D = unknown> {
  /**
   * Sends one event: an object whose keys are all among `event`, `data`, `id`, `retry`, `comment`, or
   * anything else as the data of an unnamed event. Resolves `true` once the event is handed to the
   * socket below its high-water mark (so a producer that awaits it is paced by its client), `false`
   * once the stream is closed. An invalid event (CR/LF in `event` or `id`, …) throws a `TypeError`.
   */
  send(event: SseEventInput<D>): Promise<boolean>;
  /** Writes a `:` comment (split per line); `false` if the stream is closed. */
  comment(text: string): boolean;
  /** Ends the stream from the server side (`onClose` hears `'server'`); idempotent. */
  close(): void;
  /** The client's `Last-Event-ID` header, or its `lastEventId` query parameter on a first connection. */
  readonly lastEventId: string | undefined;
  /** Aborted when the stream ends, whatever the cause: hand it to producers. */
  readonly signal: AbortSignal;
  readonly closed: boolean;
}

/** What a ready function and `onClose` are handed. */
export interface SseContext<D = unknown> {
  readonly req: AnyRequest;
  readonly res: AnyResponse;
  readonly signal: AbortSignal;
  readonly lastEventId: string | undefined;
  readonly stream: SseStream<D>;
}

/**
 * Pedestal's `start-stream` ready function: it gets a channel to put events on and must return at once
 * while its producer runs; closing the channel ends the stream. If it throws, the stream is torn down.
 */
export type SseReadyFunction<D = unknown> = (
  events: Channel<SseEventInput<D>>,
  ctx: SseContext<D>,
) => void | Promise<void>;

/**
 * The protocol a hub subscription implements to plug into `res.sse()`: it is handed the stream and
 * drives it. `Symbol.for` keeps the ESM and CommonJS builds in agreement.
 */
export const SseSubscription: unique symbol = Symbol.for('express-streaming.SseSubscription') as never;
export interface SseSubscription<D = unknown> {
  [SseSubscription](stream: SseStream<D>, ctx: SseContext<D>): void;
}

/** What `res.sse(source)` accepts: a ready function, a Channel or any AsyncIterable of events, a subscription. */
export type SseSource<D = unknown> =
  | SseReadyFunction<D>
  | AsyncIterable<SseEventInput<D>>
  | SseSubscription<D>;

/** `res.sse` as Connect and node:http users type it once `sseChannel()` is mounted. */
export interface SseResponse {
  sse<D = unknown>(source?: SseSource<D>, options?: SseStreamOptions): SseStream<D>;
}

/** Options of `closeAll()`. */
export interface CloseAllOptions {
  /** The base of the jittered `retry:` each client gets. Default: the middleware's `retryMs` (or 3000). */
  retryMs?: number;
  /** How long to wait for every response to be handed to the OS before destroying the rest. Default `5000`; `null` waits forever. */
  graceMs?: number | null;
}

/** The `sseChannel()` middleware, with graceful shutdown. */
export interface SseMiddleware {
  (req: AnyRequest, res: AnyResponse, next: (error?: unknown) => void): void;
  /**
   * Sends every open stream a jittered `retry:` and ends it, so clients reconnect spread out elsewhere.
   * Resolves once every response is done; a client that stopped reading is cut off after `graceMs`.
   */
  closeAll(options?: CloseAllOptions): Promise<void>;
  /** How many streams are open now. */
  readonly size: number;
}

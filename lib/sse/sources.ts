import { releaseUnstarted } from '../core/release';
import { describeValue, ignore, isGeneratorFunction, uncalledGenerator } from '../core/util';
import type { SseConnection } from './connection';
import { holdsHead } from './encoded';
import type { SseEventInput } from './encoder';
import { type SseReadyFunction, type SseSource, SseSubscription } from './types';

/** How a source feeds a stream; validated before the response head goes out. */
export interface SourceAttacher<D> {
  start(stream: SseConnection<D>): void;
  dispose(): void;
  /** The source commits the head itself (see {@link holdsHead}). */
  readonly holdsHead?: boolean;
}

export function sourceAttacher<D>(source: SseSource<D> | undefined): SourceAttacher<D> {
  if (source === undefined || source === null) return { start: ignore, dispose: ignore };
  if (typeof (source as Partial<SseSubscription<D>>)[SseSubscription] === 'function') {
    const subscription = source as SseSubscription<D>;
    return {
      start: (stream) => stream.runSubscription(subscription),
      dispose: ignore,
      holdsHead: (subscription as { [holdsHead]?: unknown })[holdsHead] === true,
    };
  }
  if (typeof (source as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function') {
    const iterable = source as AsyncIterable<SseEventInput<D>>;
    return {
      start: (stream) => void stream.consume(iterable),
      dispose: () => releaseUnstarted(iterable),
    };
  }
  if (isGeneratorFunction(source)) throw uncalledGenerator('res.sse', source);
  if (typeof source === 'function') {
    const ready = source as SseReadyFunction<D>;
    return { start: (stream) => stream.runReadyFunction(ready), dispose: ignore };
  }
  throw new TypeError(
    `res.sse: expected the source to be a function (events, ctx), a Channel or AsyncIterable of events, or a hub subscription, got ${describeValue(source)}`,
  );
}

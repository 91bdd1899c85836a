import { Channel } from '../channel/channel';
import { releaseIterable, releaseUnstarted } from '../core/release';
import { describeValue, ignore, isGeneratorFunction, isPromiseLike, uncalledGenerator } from '../core/util';
import { GONE } from '../core/writer';
import type { SseConnection } from './connection';
import type { SseEventInput } from './encoder';
import { type SseReadyFunction, type SseSource, SseSubscription } from './types';

/** How a source feeds a stream; validated before the response head goes out. */
export interface SourceAttacher<D> {
  start(stream: SseConnection<D>): void;
  dispose(): void;
  /**
   * The source commits the head itself: a subscription, once it knows where its client starts (see
   * `StreamSink.commitHead`). Every other source lets the head go out at once.
   */
  readonly holdsHead: boolean;
}

const NO_SOURCE: SourceAttacher<never> = { start: ignore, dispose: ignore, holdsHead: false };

export function sourceAttacher<D>(source: SseSource<D> | undefined): SourceAttacher<D> {
  if (source === undefined || source === null) return NO_SOURCE;
  if (typeof (source as Partial<SseSubscription<D>>)[SseSubscription] === 'function') {
    const subscription = source as SseSubscription<D>;
    return { start: (stream) => runSubscription(stream, subscription), dispose: ignore, holdsHead: true };
  }
  if (typeof (source as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function') {
    const iterable = source as AsyncIterable<SseEventInput<D>>;
    return {
      start: (stream) => void consume(stream, iterable),
      dispose: () => releaseUnstarted(iterable),
      holdsHead: false,
    };
  }
  if (isGeneratorFunction(source)) throw uncalledGenerator('res.sse', source);
  if (typeof source === 'function') {
    const ready = source as SseReadyFunction<D>;
    return { start: (stream) => runReadyFunction(stream, ready), dispose: ignore, holdsHead: false };
  }
  throw new TypeError(
    `res.sse: expected the source to be a function (events, ctx), a Channel or AsyncIterable of events, or a hub subscription, got ${describeValue(source)}`,
  );
}

/** Pedestal's start-stream: the ready function gets a channel; closing it ends the stream. */
function runReadyFunction<D>(stream: SseConnection<D>, ready: SseReadyFunction<D>): void {
  const events = new Channel<SseEventInput<D>>(10);
  // Before `ready` runs: a stream it closes at once must refuse its puts from then on.
  stream.whenClosed(() => events.close());
  try {
    const returned: unknown = ready(events, stream);
    if (isPromiseLike(returned)) returned.then(ignore, (error: unknown) => stream.fail(error));
  } catch (error) {
    stream.fail(error);
    return;
  }
  void consume(stream, events);
}

function runSubscription<D>(stream: SseConnection<D>, subscription: SseSubscription<D>): void {
  try {
    subscription[SseSubscription](stream, stream);
  } catch (error) {
    stream.fail(error);
  }
}

/** Writes every event of the source, paced by the client; the source's end ends the stream. Never rejects. */
async function consume<D>(stream: SseConnection<D>, source: AsyncIterable<SseEventInput<D>>): Promise<void> {
  let iterator: AsyncIterator<SseEventInput<D>> | undefined;
  stream.whenClosed(() => releaseIterable(source, iterator));
  if (stream.closed) return;
  try {
    // Inside the try: a source can refuse to be iterated (a locked ReadableStream throws here).
    iterator = source[Symbol.asyncIterator]();
    for (;;) {
      const step = await stream.untilGone(iterator.next());
      if (step === GONE || stream.closed) return;
      if (step.done) {
        stream.close();
        return;
      }
      await stream.send(step.value);
      if (stream.closed) return;
    }
  } catch (error) {
    stream.fail(error);
  }
}

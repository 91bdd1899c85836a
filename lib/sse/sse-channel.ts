import { checkCount } from '../core/options';
import { type AnyRequest, type AnyResponse, asResponse, type ResponseLike } from '../core/response';
import { TickScheduler } from '../core/scheduler';
import { ignore } from '../core/util';
import { type ConnectionSettings, SseConnection } from './connection';
import {
  checkSseOptions,
  DEFAULT_RETRY_MS,
  type SseOptions,
  type SseStreamOptions,
  withStreamOptions,
} from './options';
import { sourceAttacher } from './sources';
import type { SseMiddleware, SseResponse, SseSource, SseStream } from './types';

let warnedAboutReplacedSse = false;

/**
 * Adds `res.sse(source?, options?)`: a Server-Sent Events stream with spec-exact encoding, heartbeats
 * from one shared timer, per-client buffering limits, resume ids, and a teardown that runs exactly once.
 * @example app.get('/counter', (req, res) => res.sse((events) => { … events.put({ event: 'counter', data: i }) … }))
 */
export function sseChannel(options: SseOptions = {}): SseMiddleware {
  const checked = checkSseOptions(options, 'sseChannel');
  const { heartbeatMs, writeTimeoutMs } = checked;
  const periods = [heartbeatMs, writeTimeoutMs].filter((ms): ms is number => ms !== null).map((ms) => ms / 2);
  const periodMs = periods.length > 0 ? Math.max(1, Math.min(...periods)) : null;
  const settings: ConnectionSettings = {
    ...checked,
    // heartbeat after n whole ticks of silence: the silence a client sees is then at most n × period
    heartbeatTicks: heartbeatMs === null || periodMs === null ? null : Math.floor(heartbeatMs / periodMs),
    deadlineTicks: writeTimeoutMs === null || periodMs === null ? null : Math.ceil(writeTimeoutMs / periodMs),
  };
  const streams = new TickScheduler(periodMs);

  function sse<D>(this: AnyResponse, source?: SseSource<D>, callOptions?: SseStreamOptions): SseStream<D> {
    return openStream(asResponse(this), streams, withStreamOptions(settings, callOptions), source);
  }

  const middleware = function sseChannel(
    _req: AnyRequest,
    res: AnyResponse,
    next: (error?: unknown) => void,
  ) {
    const current = (res as Partial<SseResponse>).sse;
    if (current !== undefined && current !== sse && !isOurs(current)) warnReplacedSse();
    (res as unknown as SseResponse).sse = sse;
    next();
  } as SseMiddleware;
  Object.defineProperty(sse, OURS, { value: true });
  Object.defineProperties(middleware, {
    size: { get: () => streams.size },
    closeAll: {
      value: (shutdown: { retryMs?: number } = {}) => {
        const retryMs = checkCount(
          shutdown.retryMs,
          'retryMs',
          'sseChannel.closeAll',
          settings.retryMs ?? DEFAULT_RETRY_MS,
          0,
        );
        const ended = [...streams.members()].map((stream) =>
          (stream as SseConnection<unknown>).shutdown(retryMs),
        );
        return Promise.all(ended).then(ignore);
      },
    },
  });
  return middleware;
}

const OURS = Symbol('express-streaming.sse');
function isOurs(value: unknown): boolean {
  return typeof value === 'function' && (value as unknown as Record<symbol, unknown>)[OURS] === true;
}

function warnReplacedSse(): void {
  if (warnedAboutReplacedSse) return;
  warnedAboutReplacedSse = true;
  process.emitWarning(
    'res.sse was already set by another library; sseChannel() replaces it on the responses it handles',
    { code: 'EXPRESS_STREAMING_SSE_REPLACED' },
  );
}

function openStream<D>(
  res: ResponseLike,
  streams: TickScheduler,
  settings: ConnectionSettings,
  source: SseSource<D> | undefined,
): SseStream<D> {
  if (res.headersSent) {
    throw new TypeError(
      'res.sse: the response head was already sent; call res.sse() before writing anything',
    );
  }
  const attach = sourceAttacher(source);
  const stream = new SseConnection<D>(res, streams, settings);
  if (settings.maxStreams !== null && streams.size >= settings.maxStreams) {
    stream.turnAway();
    attach.dispose();
    return stream;
  }
  stream.start();
  attach.start(stream);
  return stream;
}

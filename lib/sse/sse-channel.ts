import { answeredAsUncalledFactory } from '../core/misuse';
import { checkCount, checkDurationOrNull, checkOptionsObject } from '../core/options';
import {
  type AnyRequest,
  type AnyResponse,
  asResponse,
  isResponseGone,
  type ResponseLike,
} from '../core/response';
import { TickScheduler } from '../core/scheduler';
import { TIMED_OUT, within } from '../core/util';
import { type ConnectionSettings, SseConnection } from './connection';
import {
  checkSseOptions,
  DEFAULT_RETRY_MS,
  type SseOptions,
  type SseStreamOptions,
  withStreamOptions,
} from './options';
import { sourceAttacher } from './sources';
import type { CloseAllOptions, SseMiddleware, SseResponse, SseSource, SseStream } from './types';

/** How long `closeAll()` waits for responses to be handed to the OS before it destroys the rest. */
const DEFAULT_GRACE_MS = 5000;

let warnedAboutReplacedSse = false;

/**
 * Adds `res.sse(source?, options?)`: a Server-Sent Events stream with spec-exact encoding, heartbeats
 * from one shared timer, per-client buffering limits, resume ids, and a teardown that runs exactly once.
 * @example app.get('/counter', (req, res) => res.sse((events) => { … events.put({ event: 'counter', data: i }) … }))
 */
export function sseChannel(options?: SseOptions): SseMiddleware;
export function sseChannel(...args: unknown[]): SseMiddleware | undefined {
  if (answeredAsUncalledFactory('sseChannel', args)) return undefined;
  const checked = checkSseOptions((args[0] === undefined ? {} : args[0]) as SseOptions, 'sseChannel');
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
      // async, so bad options reject like every other failure of a promise-returning call (a caller's
      // .catch() sees them) rather than throwing before the promise exists
      value: async (shutdown: CloseAllOptions = {}) => {
        const owner = 'sseChannel.closeAll';
        checkOptionsObject(shutdown, owner);
        const retryMs = checkCount(
          shutdown.retryMs,
          'retryMs',
          owner,
          settings.retryMs ?? DEFAULT_RETRY_MS,
          0,
        );
        const graceMs = checkDurationOrNull(shutdown.graceMs, 'graceMs', owner, DEFAULT_GRACE_MS);
        return closeEvery([...streams.members()] as SseConnection<unknown>[], retryMs, graceMs);
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

/**
 * Ends every stream with a jittered `retry:`; resolves once each response is done, or — for a client
 * that stopped reading, whose end would never be handed to the OS — once `graceMs` has passed and
 * what is left was destroyed.
 */
async function closeEvery(
  open: SseConnection<unknown>[],
  retryMs: number,
  graceMs: number | null,
): Promise<void> {
  const ended = Promise.all(open.map((stream) => stream.shutdown(retryMs)));
  if (graceMs === null) {
    await ended;
    return;
  }
  if ((await within(ended, graceMs)) !== TIMED_OUT) return;
  for (const stream of open) stream.destroyUnfinished();
  await ended;
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
  // The handler may have awaited something first: a client already gone gets no stream at all.
  if (isResponseGone(res)) {
    attach.dispose();
    stream.abandon();
    return stream;
  }
  const head = res.req.method === 'HEAD';
  if (head || (settings.maxStreams !== null && streams.size >= settings.maxStreams)) {
    attach.dispose();
    stream.endAtOnce(!head);
    return stream;
  }
  stream.start(attach.holdsHead);
  attach.start(stream);
  return stream;
}

import { STATUS_CODES } from 'node:http';
import { createDebug } from './debug';
import type { ResponseLike, StreamContext } from './response';
import type { ResponseWriter, StreamOutcome } from './writer';

const debug = createDebug('error');

/** Hears about a stream's error; `ctx.res.headersSent` tells whether the client saw a status for it. */
export type ErrorHandler = (error: unknown, ctx: StreamContext) => void;

type Next = (error?: unknown) => void;

/**
 * Fails a response the one right way for where it stands. Before the first byte: a real status,
 * through the app's own error handling — Express's `req.next`, else the `next` our middleware received
 * (Connect), else a plain-text answer (node:http). After it: the client must see truncation, so the
 * response is destroyed, never ended, and no error text is written into the body.
 */
export function failStream(
  writer: ResponseWriter,
  ctx: StreamContext,
  error: unknown,
  onError: ErrorHandler | undefined,
  next: Next | undefined,
): StreamOutcome {
  const res = writer.res;
  const routeTo = typeof res.req.next === 'function' ? (res.req.next as Next) : next;
  // The app's error handling hears (and logs) an error it answers; any other must not go unheard.
  report(error, ctx, onError, !res.headersSent && routeTo !== undefined);
  if (res.headersSent) {
    debug('failing after the headers were sent, truncating: %s', error);
    writer.truncate(error);
    return 'errored';
  }
  writer.abandon(error);
  if (routeTo) routeTo(error);
  else answerWithStatus(res, error);
  return 'errored';
}

function report(
  error: unknown,
  ctx: StreamContext,
  onError: ErrorHandler | undefined,
  answered: boolean,
): void {
  if (!onError) {
    if (answered) debug('stream error, handed to the app: %s', error);
    else reportUnheard(error);
    return;
  }
  try {
    onError(error, ctx);
  } catch (thrown) {
    debug('onError threw: %s', thrown);
    reportUnheard(thrown);
  }
}

/**
 * Reports an error no handler of the app hears — one after the first byte, which no error handler
 * can answer any more — the way Express's final handler reports errors: its stack on `console.error`,
 * except under `NODE_ENV=test`.
 */
export function reportUnheard(error: unknown): void {
  debug('error: %s', error);
  if (process.env.NODE_ENV === 'test') return;
  console.error(error instanceof Error && error.stack ? error.stack : `express-streaming: ${String(error)}`);
}

/** The node:http answer: `err.status` (or `statusCode`) if it is an error status, else 500, as text. */
function answerWithStatus(res: ResponseLike, error: unknown): void {
  const status = errorStatus(error);
  const details = error as { expose?: unknown; message?: unknown; headers?: unknown };
  const text =
    details.expose === true && typeof details.message === 'string' ? details.message : STATUS_CODES[status];
  res.statusCode = status;
  if (typeof details.headers === 'object' && details.headers !== null) {
    for (const [name, value] of Object.entries(details.headers)) {
      if (typeof value === 'string' || typeof value === 'number') res.setHeader(name, value);
    }
  }
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Content-Length', Buffer.byteLength(text ?? ''));
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

function errorStatus(error: unknown): number {
  const candidate = (error as { status?: unknown; statusCode?: unknown } | null) ?? {};
  const status = candidate.status ?? candidate.statusCode;
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599
    ? status
    : 500;
}

/**
 * The one Server-Sent Events encoder of the suite: it turns an event into its exact wire text, following
 * the WHATWG HTML "Server-sent events" parsing rules, so that no input can ever produce a second event or
 * an extra field (no injection).
 *
 * Framing, pinned byte for byte:
 * - fields are written as `name: value` with a single space, one per line, each ending with LF; CR is
 *   never written;
 * - order: comment lines, `event`, `id`, `retry`, then `data` lines, then one blank line;
 * - `data` (and comments) are split on CRLF, LF and lone CR, one line each; `""` gives one `data: ` line;
 * - a heartbeat is `:\n\n` (`encodeComment('')`).
 *
 * @example
 * encodeEvent('hello'); // 'data: hello\n\n'
 * encodeEvent({ event: 'tick', id: 7, data: { n: 1 } }); // 'event: tick\nid: 7\ndata: {"n":1}\n\n'
 * encodeEvent({ comment: 'ok' }); // ': ok\n\n' (a comment only: nothing is dispatched)
 */

import { describeValue } from '../core/util';

/**
 * One Server-Sent Event. Every field is optional; a field whose value is `undefined` counts as absent.
 *
 * - `event`: the event type (the client's `addEventListener` name); no CR or LF. `""` means `message`.
 * - `data`: the payload. A string is sent as is; anything else goes through `serialize` (JSON by default).
 *   Without `data` no `data:` line is written and the client dispatches nothing — but it still records
 *   `id` and `retry`. So `{ id }` alone is a "priming" event that only sets the resume point, and
 *   `{ event: 'done' }` alone reaches no listener: write `{ event: 'done', data: '' }` instead.
 * - `id`: the last event id the client sends back as `Last-Event-ID`; a string without CR, LF or NUL, or
 *   an integer. `""` resets the client's last id.
 * - `retry`: the client's reconnection delay in milliseconds; a non-negative safe integer.
 * - `comment`: written as `:` lines, ignored by clients (useful as a keep-alive or for debugging).
 */
export interface SseEvent<D = unknown> {
  event?: string;
  data?: D;
  id?: string | number;
  retry?: number;
  comment?: string;
}

/** What may be sent: an event object (see {@link isSseEvent}), or bare data for an unnamed event. */
export type SseEventInput<D = unknown> = SseEvent<D> | D;

/** Turns non-string `data` into text. It may return line breaks; they are split into `data:` lines. */
export type Serialize = (data: unknown) => string;

/**
 * The default {@link Serialize}: a string passes through as is, anything else is `JSON.stringify`ed.
 *
 * @throws TypeError when `data` has no JSON form (`undefined`, a function, a symbol) or cannot be
 *   serialized (a BigInt, a circular structure).
 */
export const defaultSerialize: Serialize = (data) => {
  if (typeof data === 'string') return data;
  let json: string | undefined;
  try {
    json = JSON.stringify(data);
  } catch (error) {
    // BigInt and circular structures: name the field. Errors thrown by a user's toJSON pass through.
    if (!(error instanceof TypeError)) throw error;
    throw new TypeError(
      `defaultSerialize: \`data\` must be JSON-serializable, got ${describeValue(data)} (${error.message})`,
      { cause: error },
    );
  }
  if (json === undefined) {
    throw new TypeError(`defaultSerialize: \`data\` must be JSON-serializable, got ${describeValue(data)}`);
  }
  return json;
};

const EVENT_KEYS: ReadonlySet<PropertyKey> = new Set(['event', 'data', 'id', 'retry', 'comment']);

/**
 * Whether `value` is an event object rather than bare data: a plain object (prototype `Object.prototype`
 * or `null`) with at least one own key, every one of them among `event`, `data`, `id`, `retry`, `comment`.
 * Anything else — a string, a number, `null`, an array, a `Date`, a class instance, `{}` or
 * `{ id: 42, name: 'Ada' }` — is the data of an unnamed event.
 */
export function isSseEvent(value: unknown): value is SseEvent {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  const keys = Reflect.ownKeys(value);
  if (keys.length === 0) return false;
  for (const key of keys) {
    if (!EVENT_KEYS.has(key)) return false;
  }
  return true;
}

/**
 * The wire text of one event, to be turned into a `Buffer` once and written (to every subscriber).
 *
 * Bare data always gives `data:` lines. An event object gives, in this order: one `: line` per comment
 * line (`:` for an empty one), `event: `, `id: `, `retry: `, then one `data: line` per data line, then a
 * blank line. An object with only comments dispatches nothing on the client.
 *
 * @param event - an event object or bare data (see {@link isSseEvent}).
 * @param serialize - turns non-string data into text. Defaults to {@link defaultSerialize}.
 * @throws TypeError for CR or LF in `event` or `id`, NUL in `id`, a `retry` that is not a non-negative
 *   safe integer, a non-string `comment`, a `serialize` result that is not a string, or an event object
 *   whose fields are all `undefined`.
 * @example
 * encodeEvent({ event: 'x', data: 'A\rB' }); // 'event: x\ndata: A\ndata: B\n\n'
 */
export function encodeEvent(event: SseEventInput, serialize: Serialize = defaultSerialize): string {
  if (!isSseEvent(event)) return `${encodeData(event, serialize)}\n`;

  const { comment, event: name, id, retry, data } = event;
  let out = '';
  if (comment !== undefined) {
    if (typeof comment !== 'string') {
      throw new TypeError(`encodeEvent: \`comment\` must be a string, got ${describeValue(comment)}`);
    }
    out += commentLines(comment);
  }
  if (name !== undefined) {
    if (typeof name !== 'string') {
      throw new TypeError(`encodeEvent: \`event\` must be a string, got ${describeValue(name)}`);
    }
    if (name.indexOf('\n') !== -1 || name.indexOf('\r') !== -1) {
      throw new TypeError(`encodeEvent: \`event\` must not contain CR or LF, got ${describeValue(name)}`);
    }
    out += `event: ${name}\n`;
  }
  if (id !== undefined) {
    if (typeof id === 'string') {
      // A client ignores an id containing NUL, which would silently break resuming.
      if (id.indexOf('\n') !== -1 || id.indexOf('\r') !== -1 || id.indexOf('\0') !== -1) {
        throw new TypeError(`encodeEvent: \`id\` must not contain CR, LF or NUL, got ${describeValue(id)}`);
      }
    } else if (!Number.isInteger(id)) {
      throw new TypeError(`encodeEvent: \`id\` must be a string or an integer, got ${describeValue(id)}`);
    }
    out += `id: ${id}\n`;
  }
  if (retry !== undefined) out += retryLine('encodeEvent', 'retry', retry);
  if (data !== undefined) out += encodeData(data, serialize);
  if (out === '') {
    throw new TypeError(
      'encodeEvent: an event object must set at least one of `event`, `data`, `id`, `retry` or `comment`, ' +
        'got only undefined fields',
    );
  }
  return `${out}\n`;
}

/**
 * A comment block: one `: line` per line of `text` (`:` for an empty line), then a blank line.
 * `encodeComment('')` is the minimal heartbeat, `:\n\n`. Clients ignore comments; no event is dispatched.
 */
export function encodeComment(text: string): string {
  if (typeof text !== 'string') {
    throw new TypeError(`encodeComment: \`text\` must be a string, got ${describeValue(text)}`);
  }
  return `${commentLines(text)}\n`;
}

/** `retry: <ms>\n\n`: sets the client's reconnection delay without dispatching an event. */
export function encodeRetry(ms: number): string {
  return `${retryLine('encodeRetry', 'ms', ms)}\n`;
}

function encodeData(data: unknown, serialize: Serialize): string {
  if (typeof data === 'string') return splitLines(data, 'data: ', 'data: ');
  if (typeof serialize !== 'function') {
    throw new TypeError(`encodeEvent: \`serialize\` must be a function, got ${describeValue(serialize)}`);
  }
  const text: unknown = serialize(data);
  if (typeof text !== 'string') {
    throw new TypeError(`encodeEvent: \`serialize\` must return a string, got ${describeValue(text)}`);
  }
  return splitLines(text, 'data: ', 'data: ');
}

function commentLines(text: string): string {
  return splitLines(text, ': ', ':');
}

function retryLine(caller: string, field: string, ms: unknown): string {
  if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms < 0) {
    throw new TypeError(
      `${caller}: \`${field}\` must be a non-negative safe integer, got ${describeValue(ms)}`,
    );
  }
  return `retry: ${ms}\n`;
}

const LF = 10;

/**
 * `prefix + line + '\n'` for every line of `text` (`empty + '\n'` for an empty line), splitting on CRLF,
 * LF and lone CR as an SSE parser does. Scans with `indexOf` (no regex) and allocates nothing extra when
 * `text` has no line break, the common case.
 */
function splitLines(text: string, prefix: string, empty: string): string {
  let cr = text.indexOf('\r');
  let lf = text.indexOf('\n');
  if (cr === -1 && lf === -1) return text === '' ? `${empty}\n` : `${prefix}${text}\n`;

  let out = '';
  let start = 0;
  while (cr !== -1 || lf !== -1) {
    const isCr = cr !== -1 && (lf === -1 || cr < lf);
    const end = isCr ? cr : lf;
    out += end === start ? `${empty}\n` : `${prefix}${text.slice(start, end)}\n`;
    start = end + 1;
    if (isCr && text.charCodeAt(start) === LF) start++; // CRLF is one break
    if (cr !== -1 && cr < start) cr = text.indexOf('\r', start);
    if (lf !== -1 && lf < start) lf = text.indexOf('\n', start);
  }
  out += start === text.length ? `${empty}\n` : `${prefix}${text.slice(start)}\n`;
  return out;
}

import { createReadStream } from 'node:fs';
import { isAbsolute } from 'node:path';
import send, { type SendOptions } from 'send';
import { optionError } from '../core/options';
import { describeValue } from '../core/util';

const OWNER = 'file';
const FILE_BODY = Symbol.for('express-streaming.file');
/** Half of a UTF-16 surrogate pair standing alone: `encodeURI` throws on it, and no file has such a name. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** `send`'s options (`root`, `dotfiles`, `maxAge`, `etag`, `lastModified`, `acceptRanges`, …). */
export type FileOptions = SendOptions;

/** A file to stream, made by {@link file}. */
export interface FileBody {
  readonly [FILE_BODY]: true;
  readonly path: string;
  readonly options: FileOptions;
}

/**
 * A file body for `res.stream()`, served through `send` as `res.sendFile` serves it: Range (206),
 * ETag and Last-Modified with conditional GET (304), HEAD, dotfiles, and `root` confinement (403 on
 * traversal). A missing file or a directory is a 404 error through the app's error handling.
 *
 * @param path absolute, or relative to `options.root`; it is URI-encoded before `send` decodes it, so
 *   `100%.csv` and `a b.csv` are served as named.
 * @example res.stream(file('reports/big.csv', { root: DATA }))
 */
export function file(path: string, options: FileOptions = {}): FileBody {
  if (typeof path !== 'string' || path.length === 0)
    throw optionError(OWNER, 'path', 'a non-empty string', path);
  if (LONE_SURROGATE.test(path)) {
    throw new TypeError(
      `file: expected \`path\` to be well-formed Unicode, got ${describeValue(path)} (a lone surrogate cannot name a file)`,
    );
  }
  if (typeof options !== 'object' || options === null)
    throw optionError(OWNER, 'options', 'an object', options);
  if (options.root !== undefined && typeof options.root !== 'string') {
    throw optionError(OWNER, 'root', 'a string', options.root);
  }
  if (options.root === undefined && !isAbsolute(path)) {
    throw new TypeError(
      `file: \`path\` must be absolute or \`root\` must be given, got ${JSON.stringify(path)}`,
    );
  }
  return { [FILE_BODY]: true, path, options: { index: false, ...options } };
}

export function isFileBody(value: unknown): value is FileBody {
  return (
    typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[FILE_BODY] === true
  );
}

/** What `send` may do with the response, told back to the caller. */
export interface FileHandlers {
  /** `send` set the headers and wants the bytes: here is the open file, for the write loop. */
  onStream(stream: import('node:fs').ReadStream): void;
  /** `send` refused (404, 403, 412, 416, …) before writing anything. */
  onError(error: Error): void;
}

/**
 * Lets `send` decide the status and headers (it ends HEAD and 304 responses itself), but takes the
 * file's bytes into our write loop instead of send's `pipe`, so that abort, backpressure, flushing and
 * truncation on a read error behave exactly as for every other body.
 */
export function sendFile(
  req: import('node:stream').Readable,
  res: import('node:http').ServerResponse,
  body: FileBody,
  handlers: FileHandlers,
): void {
  const sender = send(req, encodeURI(body.path), body.options);
  sender.on('error', (error: Error) => handlers.onError(error));
  sender.on('directory', () => handlers.onError(notFoundDirectory(body.path)));
  sender.stream = (path: string, options?: {}) => handlers.onStream(createReadStream(path, options));
  sender.pipe(res);
}

function notFoundDirectory(path: string): Error {
  return Object.assign(new Error(`EISDIR, ${JSON.stringify(path)} is a directory`), {
    code: 'EISDIR',
    status: 404,
    statusCode: 404,
    expose: true,
  });
}

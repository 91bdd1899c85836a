import { isBodyless, type ResponseLike } from '../core/response';
import { describeValue } from '../core/util';

/** Why the request or the status rules trailers out, if they do: these are dropped quietly. */
export function trailersRuledOut(res: ResponseLike): string | undefined {
  const req = res.req;
  if (req.method === 'HEAD') return 'a HEAD response has no body';
  // Node answers HTTP/1.0 with a close-delimited body (and would throw ERR_HTTP_TRAILER_INVALID).
  if (
    (req.httpVersionMajor === 1 && req.httpVersionMinor === 0) ||
    (res as { useChunkedEncodingByDefault?: boolean }).useChunkedEncodingByDefault === false
  ) {
    return 'an HTTP/1.0 client gets a close-delimited body, which has no trailers';
  }
  if (isBodyless(res)) return `a ${res.statusCode} response has no body`;
  return undefined;
}

export function headerNames(value: number | string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const joined = Array.isArray(value) ? value.join(',') : String(value);
  return joined
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== '');
}

export function contentLengthError(names: string): TypeError {
  return new TypeError(
    `res.setTrailer: cannot send trailer ${names}: the app set Content-Length, so the body is not ` +
      'chunked and has no trailers; remove Content-Length to use trailers',
  );
}

export function undeclaredError(name: string): TypeError {
  return new TypeError(
    `res.setTrailer: trailer ${name} was not announced before the headers went out; declare it with ` +
      `chunked({ trailers: ['${name}'] }) or call res.setTrailer() before the first res.chunk()`,
  );
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const INVALID_VALUE_CHAR = /[^\t\x20-\x7e\x80-\xff]/;

/** RFC 9110 section 6.5.1: fields that frame, route, authenticate or control the message are no trailers. */
const FORBIDDEN_TRAILERS = new Set([
  'authorization',
  'cache-control',
  'connection',
  'content-encoding',
  'content-length',
  'content-range',
  'content-type',
  'host',
  'keep-alive',
  'proxy-authorization',
  'set-cookie',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export function checkTrailerName(name: unknown, what: string): string {
  if (typeof name !== 'string' || !TOKEN.test(name)) {
    throw new TypeError(`${what} must be a header name (an RFC 9110 token), got ${describeValue(name)}`);
  }
  const key = name.toLowerCase();
  if (FORBIDDEN_TRAILERS.has(key)) {
    throw new TypeError(
      `${what} must not be ${key}: it frames, routes or controls the message, so it cannot be a trailer`,
    );
  }
  return key;
}

export function checkTrailerValue(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || INVALID_VALUE_CHAR.test(value)) {
    throw new TypeError(
      `res.setTrailer: the value of ${name} must be a string without CR, LF or other control ` +
        `characters, got ${describeValue(value)}`,
    );
  }
}

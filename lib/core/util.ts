/** Swallows a rejection or an event on purpose (it is reported elsewhere, or cannot matter). */
export function ignore(): void {}

export function isPromiseLike<T = unknown>(value: unknown): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** True for `{}` literals and `Object.create(null)`, from any realm; false for class instances. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === null) return true;
  return (
    Object.getPrototypeOf(proto) === null &&
    (proto as { constructor?: { name?: string } }).constructor?.name === 'Object'
  );
}

export function hasMethod<K extends PropertyKey>(
  value: unknown,
  key: K,
): value is Record<K, (...args: never[]) => unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as Record<K, unknown>)[key] === 'function'
  );
}

export function isGeneratorFunction(value: unknown): boolean {
  const tag = Object.prototype.toString.call(value);
  return tag === '[object AsyncGeneratorFunction]' || tag === '[object GeneratorFunction]';
}

/** The error for a generator function passed where what it generates was meant: it says how to call it. */
export function uncalledGenerator(owner: string, fn: unknown): TypeError {
  const name = (fn as { name?: unknown }).name;
  const shown = typeof name === 'string' && name !== '' ? name : 'generator';
  return new TypeError(
    `${owner}: got the generator function ${shown} itself, not what it generates; call it: ${owner}(${shown}())`,
  );
}

// Settled promises are immutable: the immediate answers are shared instead of allocated per call.
export const resolvedTrue: Promise<boolean> = Promise.resolve(true);
export const resolvedFalse: Promise<boolean> = Promise.resolve(false);

const SHOWN_MAX = 60;

/**
 * Names a value for an error message, the one way every message of the package does it: its kind, and
 * its value where that is short and safe to print. Strings are quoted as JSON, so a CR, LF or NUL in
 * them stays visible. Never throws, whatever the value (a Proxy, a circular object, no prototype).
 */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case 'undefined':
      return 'undefined';
    case 'string':
      return `a string (${clip(JSON.stringify(value))})`;
    case 'number':
      return `number (${Object.is(value, -0) ? '-0' : String(value)})`;
    case 'bigint':
      return `bigint (${value}n)`;
    case 'boolean':
      return `boolean (${value})`;
    case 'symbol':
      return `a symbol (${value.toString()})`;
    case 'function':
      return `a function${value.name ? ` (${value.name})` : ''}`;
    default:
      return value === null ? 'null' : describeObject(value as object);
  }
}

function describeObject(value: object): string {
  try {
    if (Array.isArray(value)) return withJson('an array', value);
    if (isPlainObject(value)) return withJson('an object', value);
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof name === 'string' && name !== '' ? `an instance of ${name}` : 'an object';
  } catch {
    return 'an object';
  }
}

/** `kind (json)` when the JSON is short, else just the kind: a message names a value, it does not dump it. */
function withJson(kind: string, value: object): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    // circular, or a BigInt inside
  }
  return json !== undefined && json.length <= SHOWN_MAX ? `${kind} (${json})` : kind;
}

function clip(text: string): string {
  return text.length > SHOWN_MAX ? `${text.slice(0, SHOWN_MAX - 1)}…` : text;
}

/** What {@link within} resolves with when the time ran out first. */
export const TIMED_OUT: unique symbol = Symbol('timed out');

/**
 * `promise`'s outcome if it settles within `ms`, else {@link TIMED_OUT}: for waits that must not hang
 * on a stuck peer. The timer is cleared either way, so nothing is left to keep the process alive.
 */
export function within<T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(resolve, ms, TIMED_OUT);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Waits for `promise` to settle, or `ms` at most: for clean-up that must not hang on a stuck peer. */
export async function settledWithin(promise: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (promise !== undefined) await within(promise.then(ignore, ignore), ms);
}

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

/** Names a value for an error message: its type, and its value where short and safe. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  switch (typeof value) {
    case 'string':
      return `a string (${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)})`;
    case 'number':
    case 'bigint':
    case 'boolean':
      return `${typeof value} (${String(value)})`;
    case 'symbol':
      return `a symbol (${String(value)})`;
    case 'function':
      return `a function${value.name ? ` (${value.name})` : ''}`;
    default: {
      if (Array.isArray(value)) return 'an array';
      const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
      return typeof name === 'string' && name !== 'Object' ? `an instance of ${name}` : 'an object';
    }
  }
}

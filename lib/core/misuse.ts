/**
 * Catches a middleware factory mounted without its call — `app.use(streamBody)` for
 * `app.use(streamBody())` — which would otherwise take the request for its options and never call
 * `next`, hanging every request. Returns true (and answers the request with an error through `next`)
 * when `args` are a request, a response and a `next`.
 */
export function answeredAsUncalledFactory(name: string, args: readonly unknown[]): boolean {
  const [req, res, next] = args;
  if (args.length !== 3 || typeof next !== 'function' || !isRequest(req) || typeof res !== 'object')
    return false;
  (next as (error: unknown) => void)(
    new TypeError(
      `${name} is a middleware factory, and was mounted without its call: call it: app.use(${name}())`,
    ),
  );
  return true;
}

function isRequest(value: unknown): boolean {
  const req = value as { method?: unknown; headers?: unknown; url?: unknown } | null;
  return (
    typeof req === 'object' &&
    req !== null &&
    typeof req.method === 'string' &&
    typeof req.url === 'string' &&
    typeof req.headers === 'object'
  );
}

/** What the id is read from: a request's headers and target. */
export interface IdSource {
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly url?: string | undefined;
}

/**
 * The client's `Last-Event-ID` header, else the `lastEventId` query parameter of a first connection.
 * Read from the raw query string, never through `new URL()`, which throws for request targets Node and
 * Express accept (`http://a:99999/x`, `//`): a target that cannot be read means no id.
 */
export function readLastEventId(req: IdSource): string | undefined {
  const header = req.headers['last-event-id'];
  if (typeof header === 'string') return header;
  const url = req.url ?? '';
  const query = url.indexOf('?');
  if (query === -1 || !url.includes('lastEventId=', query)) return undefined;
  const hash = url.indexOf('#', query);
  return (
    new URLSearchParams(url.slice(query + 1, hash === -1 ? undefined : hash)).get('lastEventId') ?? undefined
  );
}

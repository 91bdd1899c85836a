import type { RequestLike } from '../core/response';

/** The client's `Last-Event-ID` header, else the `lastEventId` query parameter of a first connection. */
export function readLastEventId(req: RequestLike): string | undefined {
  const header = req.headers['last-event-id'];
  if (typeof header === 'string') return header;
  const url = req.url ?? '';
  if (!url.includes('lastEventId=')) return undefined;
  return new URL(url, 'http://localhost').searchParams.get('lastEventId') ?? undefined;
}

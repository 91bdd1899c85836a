/**
 * Where the last id lives between page loads. A fresh `EventSource` cannot send `Last-Event-ID`, so a
 * reloaded page sends the kept id as the `lastEventId` query parameter instead; on its own reconnects
 * EventSource sends the header, which the server reads first, so the query's older id never counts then.
 */
export interface IdKeeper {
  read(): string | undefined;
  write(id: string): void;
}

const PREFIX = 'express-streaming:last-event-id:';

/** The stream's absolute URL, without a fragment (which is never sent). */
export function streamUrl(url: string): string {
  const absolute = new URL(url, globalThis.location?.href);
  absolute.hash = '';
  return absolute.href;
}

/** The default storage key: one per stream URL, so two streams of one page keep their own ids. */
export const defaultKey = (href: string): string => PREFIX + href;

/**
 * The URL a new EventSource opens: with the kept id appended as a query parameter — appended rather than
 * set through `URLSearchParams`, which would re-encode the app's own parameters.
 */
export function resumeUrl(href: string, id: string | undefined): string {
  if (id === undefined || id === '') return href;
  const separator = !href.includes('?') ? '?' : /[?&]$/.test(href) ? '' : '&';
  return `${href}${separator}lastEventId=${encodeURIComponent(id)}`;
}

/**
 * Keeps the id in `sessionStorage` (one tab's, surviving its reloads). Storage the page may not use —
 * a sandboxed frame, storage turned off, a full quota — keeps nothing and never throws: the stream
 * still works, only a reload starts afresh.
 */
export function idKeeper(key: string | null): IdKeeper {
  const storage = key === null ? undefined : sessionStorageOrNothing();
  if (storage === undefined || key === null) return { read: () => undefined, write: () => {} };
  return {
    read: () => attempt(() => storage.getItem(key) ?? undefined),
    write: (id) => attempt(() => (id === '' ? storage.removeItem(key) : storage.setItem(key, id))),
  };
}

function sessionStorageOrNothing(): Storage | undefined {
  return attempt(() => globalThis.sessionStorage ?? undefined);
}

function attempt<T>(use: () => T): T | undefined {
  try {
    return use();
  } catch {
    return undefined;
  }
}

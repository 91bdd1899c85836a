/** What `publish` rejects with (and `subscribe` streams are closed for) once `hub.close()` was called. */
export class HubClosedError extends Error {
  constructor(operation: string) {
    super(`${operation}: the hub is closed`);
    Object.defineProperty(this, 'name', { value: 'HubClosedError', configurable: true, writable: true });
  }
}

/**
 * A store could not do what the hub asked — publish, position or replay — and says why (Redis down,
 * no answer in time): `publish` rejects with it, and a resuming client is closed to retry later.
 */
export class HubStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    Object.defineProperty(this, 'name', { value: 'HubStoreError', configurable: true, writable: true });
  }
}

/** What `publish` rejects with (and `subscribe` streams are closed for) once `hub.close()` was called. */
export class HubClosedError extends Error {
  constructor(operation: string) {
    super(`${operation}: the hub is closed`);
    Object.defineProperty(this, 'name', { value: 'HubClosedError', configurable: true, writable: true });
  }
}

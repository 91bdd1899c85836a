/**
 * Why the hub could not give the page exactly what it missed (the `reason` of its `event: reset`). The
 * same names as the server's `ResetReason`; this module imports nothing, so it spells them out.
 */
export type ResetReason = 'unknown-epoch' | 'too-old' | 'ahead' | 'malformed' | 'too-many';

/** Options of {@link openStream}. */
export interface OpenStreamOptions {
  /**
   * The hub could not resume the page (`reason`, and the `topic` when the stream carries several):
   * events may be missing, so reload what the page shows. The stream goes on live. Without it, a
   * warning is written to the console.
   */
  onReset?: (reason: ResetReason, topic: string | undefined) => void;
  /** The stream opened (again, after each reconnect). */
  onOpen?: (event: Event) => void;
  /** The connection failed or dropped; `stream.readyState` tells whether EventSource retries (0) or gave up (2). */
  onError?: (event: Event) => void;
  /** Turns an event's `data` into what listeners get. Default: `JSON.parse`, the hub's default serialize undone. */
  parse?: (data: string, type: string) => unknown;
  /**
   * Where the last id is kept in `sessionStorage`, so that a reload of the page resumes. Default:
   * derived from the stream's URL; `null` keeps nothing.
   */
  storageKey?: string | null;
  /** Passed to `EventSource`: send cookies to another origin. */
  withCredentials?: boolean;
}

/** Event names taken by EventSource and by the hub, which have options of their own. */
export type ReservedEventName = 'open' | 'error' | 'reset';

/** A listener of one event: `data` parsed, `event` the browser's own `MessageEvent`. */
export type StreamListener<Data> = (data: Data, event: MessageEvent<string>) => void;

/** An open stream from {@link openStream}, typed by the hub's event map. */
export interface EventStream<Events> {
  /** Listens to events named `type` (`'message'` for unnamed ones); returns the function that stops it. */
  on<Name extends Exclude<keyof Events & string, ReservedEventName>>(
    type: Name,
    listener: StreamListener<Events[Name]>,
  ): () => void;
  /** Closes the connection for good; the last id stays kept, so a later `openStream` resumes. */
  close(): void;
  /** The id of the last event seen (kept across reloads), or `undefined`. */
  readonly lastEventId: string | undefined;
  /** EventSource's: `0` connecting (or retrying), `1` open, `2` closed. */
  readonly readyState: 0 | 1 | 2;
}

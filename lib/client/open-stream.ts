import { defaultKey, idKeeper, resumeUrl, streamUrl } from './last-id';
import type { EventStream, OpenStreamOptions, ResetReason, StreamListener } from './types';

/** Names `on` refuses: EventSource's own events and the hub's reset each have an option instead. */
const RESERVED = new Map([
  ['open', 'onOpen'],
  ['error', 'onError'],
  ['reset', 'onReset'],
  ['hub:position', 'nothing: the client keeps the position itself'],
]);
const OPTIONS = ['onReset', 'onOpen', 'onError', 'parse', 'storageKey', 'withCredentials'];

/**
 * Opens a Server-Sent Events stream around the browser's `EventSource`, typed by the hub's event map:
 * events arrive parsed, a hub's `reset` reaches `onReset`, and the last id is kept in `sessionStorage`
 * so that a reloaded page resumes where it was.
 * @example
 * const stream = openStream<{ msg: { text: string } }>('/feed/room:42', { onReset: reloadMessages });
 * stream.on('msg', (data) => show(data.text));
 */
export function openStream<Events = Record<string, unknown>>(
  url: string | URL,
  options: OpenStreamOptions = {},
): EventStream<Events> {
  checkOptions(url, options);
  const { onOpen, onError, withCredentials = false } = options;
  const href = streamUrl(String(url));
  const onReset = options.onReset ?? warnReset(href);
  const parse = options.parse ?? ((data: string) => JSON.parse(data) as unknown);
  const keeper = idKeeper(options.storageKey === undefined ? defaultKey(href) : options.storageKey);
  let lastEventId = keeper.read();
  const source = new EventSource(resumeUrl(href, lastEventId), { withCredentials });
  if (onOpen) source.addEventListener('open', onOpen);
  if (onError) source.addEventListener('error', onError);

  // Every event the page sees moves the kept id, before any listener of the page runs. Ids are kept
  // as given: opaque, whatever they encode (a multi-topic cursor too).
  const remember = (event: MessageEvent<string>) => {
    lastEventId = event.lastEventId === '' ? undefined : event.lastEventId;
    keeper.write(event.lastEventId);
  };
  // Data is parsed once per event, whatever the number of listeners; an event whose data cannot be
  // parsed is reported (thrown from this listener, so the browser reports it) and reaches no listener.
  const parsed = new WeakMap<MessageEvent<string>, unknown>();
  const tracked = new Set<string>();
  const track = (type: string) => {
    if (tracked.has(type)) return;
    tracked.add(type);
    source.addEventListener(type, (event: MessageEvent<string>) => {
      remember(event);
      parsed.set(event, parseData(parse, event, options.parse !== undefined));
    });
  };
  track('message');
  // The hub's first event to a new connection says where it stands, with no data: kept, not delivered.
  source.addEventListener('hub:position', remember);
  source.addEventListener('reset', (event: MessageEvent<string>) => {
    remember(event);
    const { reason, topic } = JSON.parse(event.data) as { reason: ResetReason; topic?: unknown };
    onReset(reason, typeof topic === 'string' ? topic : undefined);
  });

  return {
    on(type: string, listener: StreamListener<never>) {
      checkListener(type, listener);
      track(type);
      const deliver = (event: MessageEvent<string>) => {
        if (parsed.has(event)) listener(parsed.get(event) as never, event);
      };
      source.addEventListener(type, deliver);
      return () => source.removeEventListener(type, deliver);
    },
    close: () => source.close(),
    get lastEventId() {
      return lastEventId;
    },
    get readyState() {
      return source.readyState as 0 | 1 | 2;
    },
  };
}

function parseData(
  parse: (data: string, type: string) => unknown,
  event: MessageEvent<string>,
  custom: boolean,
): unknown {
  try {
    return parse(event.data, event.type);
  } catch (error) {
    const how = custom ? 'the parse option threw' : 'it is not JSON; pass a parse option for other data';
    throw new TypeError(
      `openStream: could not parse the data of a "${event.type}" event (id ${JSON.stringify(event.lastEventId)}): ${how}: ${String(error)}`,
      { cause: error },
    );
  }
}

/** Without `onReset` a reset is never silent: the page is told in the console what it may have missed. */
function warnReset(href: string) {
  return (reason: ResetReason, topic: string | undefined): void => {
    console.warn(
      `express-streaming/client: ${href} was reset (${reason}${topic === undefined ? '' : ` on ${topic}`}): ` +
        'events may be missing; pass onReset to reload what the page shows',
    );
  };
}

function checkOptions(url: unknown, options: unknown): asserts options is OpenStreamOptions {
  if (typeof EventSource !== 'function') {
    throw new TypeError(
      'openStream: there is no EventSource here; it runs in a browser (or with one on globalThis)',
    );
  }
  if (typeof url !== 'string' && !(url instanceof URL)) fail('url', 'a string or a URL', url);
  if (typeof options !== 'object' || options === null) fail('options', 'an object', options);
  for (const [name, value] of Object.entries(options)) {
    if (!OPTIONS.includes(name)) {
      throw new TypeError(`openStream: no option \`${name}\`; the options are ${OPTIONS.join(', ')}`);
    }
    if (value === undefined) continue;
    if (name === 'storageKey' && value !== null && typeof value !== 'string') {
      fail(name, 'a string, or null to keep nothing', value);
    }
    if (name === 'withCredentials' && typeof value !== 'boolean') fail(name, 'a boolean', value);
    if (name.startsWith('on') || name === 'parse') {
      if (typeof value !== 'function') fail(name, 'a function', value);
    }
  }
}

function checkListener(type: unknown, listener: unknown): void {
  if (typeof type !== 'string') fail('type', 'an event name', type, 'stream.on');
  const option = RESERVED.get(type);
  if (option !== undefined)
    fail('type', `an event of the stream; for "${type}" pass ${option} to openStream`, type, 'stream.on');
  if (typeof listener !== 'function') fail('listener', 'a function', listener, 'stream.on');
}

function fail(name: string, expected: string, value: unknown, owner = 'openStream'): never {
  throw new TypeError(`${owner}: \`${name}\` must be ${expected}, got ${describe(value)}`);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return `a function ${value.name}`.trimEnd();
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' && value !== null ? 'an object' : String(value);
}

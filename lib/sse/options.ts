import {
  checkCountOrNull,
  checkDurationOrNull,
  checkFunction,
  checkOptionsObject,
  optionError,
} from '../core/options';
import { isPlainObject } from '../core/util';
import { defaultSerialize, type Serialize } from './encoder';
import type { SseCloseReason, SseContext } from './types';

/** Options of {@link sseChannel}, checked once when the middleware is made; `null` disables. */
export interface SseOptions {
  /** The longest silence a client sees: a `:` comment goes out when nothing else was written for that long. Default `15000`. */
  heartbeatMs?: number | null;
  /** `retry:` sent on connect, jittered per connection (×0.67–1.67) so reconnects spread out. Default `3000`. */
  retryMs?: number | null;
  /** Most unsent bytes one client may have queued before `onSlowClient` applies. Default 1 MiB. */
  bufferBytes?: number | null;
  /** `'close'` (default: the client reconnects and resumes) or `'drop'` (the event is skipped). */
  onSlowClient?: 'close' | 'drop';
  /** Longest time a client may leave written bytes unread before it is closed as slow. Default `30000`. */
  writeTimeoutMs?: number | null;
  /** Turns non-string `data` into text. Default: `JSON.stringify`. */
  serialize?: Serialize;
  /** Extra response headers, set after the SSE defaults. */
  headers?: Readonly<Record<string, string>>;
  /** Most open streams of this middleware; past it a client gets 200, a jittered `retry:` and an end. Default: no limit. */
  maxStreams?: number | null;
  /** Called exactly once for every end of a stream, with why it ended (Pedestal's `on-client-disconnect`). */
  onClose?: (reason: SseCloseReason, ctx: SseContext) => void;
}

export const DEFAULT_RETRY_MS = 3000;

/**
 * Every option's check, default included: the one place an option is read. `satisfies` makes a new
 * field of {@link SseOptions} without a check here a compile error, and {@link SseSettings} is
 * derived from what the checks return.
 */
const CHECKS = {
  heartbeatMs: (value: unknown, owner: string) => checkDurationOrNull(value, 'heartbeatMs', owner, 15_000),
  retryMs: (value: unknown, owner: string) => checkCountOrNull(value, 'retryMs', owner, DEFAULT_RETRY_MS, 0),
  bufferBytes: (value: unknown, owner: string) =>
    checkCountOrNull(value, 'bufferBytes', owner, 1024 * 1024, 1),
  onSlowClient: (value: unknown, owner: string): 'close' | 'drop' => {
    if (value === undefined) return 'close';
    if (value !== 'close' && value !== 'drop')
      throw optionError(owner, 'onSlowClient', "'close' or 'drop'", value);
    return value;
  },
  writeTimeoutMs: (value: unknown, owner: string) =>
    checkDurationOrNull(value, 'writeTimeoutMs', owner, 30_000),
  serialize: (value: unknown, owner: string): Serialize =>
    checkFunction(value as Serialize | undefined, 'serialize', owner) ?? defaultSerialize,
  headers: (value: unknown, owner: string) => checkHeaders(value, owner),
  maxStreams: (value: unknown, owner: string) => checkCountOrNull(value, 'maxStreams', owner, null, 0),
  onClose: (value: unknown, owner: string) => checkFunction(value as SseOptions['onClose'], 'onClose', owner),
} satisfies { readonly [K in keyof Required<SseOptions>]: (value: unknown, owner: string) => unknown };

type OptionName = keyof typeof CHECKS;

/** The options of a middleware (or of one stream), checked, with their defaults. */
export type SseSettings = { readonly [K in OptionName]: ReturnType<(typeof CHECKS)[K]> };

/** The options one `res.sse()` call may set for its own stream; the rest belong to the middleware. */
const PER_STREAM = ['retryMs', 'serialize', 'headers', 'onClose'] as const;

/** The options one `res.sse()` call may set for its own stream. */
export type SseStreamOptions = Pick<SseOptions, (typeof PER_STREAM)[number]>;

/** How a stream's own value combines with the middleware's; by default it replaces it. */
const COMBINE: {
  readonly [K in OptionName]?: (base: SseSettings[K], own: SseSettings[K]) => SseSettings[K];
} = {
  headers: (base, own) => [...base, ...own],
};

/** Checks every option of {@link SseOptions} once; `owner` names the factory in the errors. */
export function checkSseOptions(options: SseOptions, owner: string): SseSettings {
  checkOptionsObject(options, owner);
  const settings: Record<string, unknown> = {};
  for (const name of Object.keys(CHECKS) as OptionName[]) {
    settings[name] = CHECKS[name](options[name], owner);
  }
  return settings as SseSettings;
}

/** The middleware's settings with one stream's own options on top; the defaults of unset ones are not applied. */
export function withStreamOptions<S extends SseSettings>(
  settings: S,
  options: SseStreamOptions | undefined,
): S {
  if (options === undefined) return settings;
  checkOptionsObject(options, 'res.sse');
  const merged: Record<string, unknown> = { ...settings };
  for (const name of PER_STREAM) {
    if (options[name] === undefined) continue;
    const own = CHECKS[name](options[name], 'res.sse');
    const combine = COMBINE[name] as ((base: unknown, own: unknown) => unknown) | undefined;
    merged[name] = combine ? combine(settings[name], own) : own;
  }
  return merged as S;
}

function checkHeaders(value: unknown, owner: string): ReadonlyArray<readonly [string, string]> {
  if (value === undefined) return [];
  if (!isPlainObject(value)) throw optionError(owner, 'headers', 'an object of strings', value);
  return Object.entries(value).map(([name, header]) => {
    if (typeof header !== 'string') throw optionError(owner, `header ${name}`, 'a string', header);
    return [name, header] as const;
  });
}

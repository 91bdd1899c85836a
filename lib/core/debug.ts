/**
 * A tiny `DEBUG=express-streaming:*` logger. Disconnects and dropped trailers are normal events, so they
 * are logged here, quietly, instead of being thrown at user code. The pattern syntax follows the `debug`
 * package (comma- or space-separated names, `*` wildcards, a leading `-` to exclude) without depending on it.
 */
export type DebugLog = ((message: string, ...details: unknown[]) => void) & { readonly enabled: boolean };

function patternToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*?');
  return new RegExp(`^${escaped}$`);
}

function isEnabled(namespace: string, setting: string | undefined): boolean {
  if (!setting) return false;
  let enabled = false;
  for (const part of setting.split(/[\s,]+/)) {
    if (!part) continue;
    if (part.startsWith('-')) {
      if (patternToRegExp(part.slice(1)).test(namespace)) return false;
    } else if (patternToRegExp(part).test(namespace)) {
      enabled = true;
    }
  }
  return enabled;
}

/** Creates the logger for `express-streaming:<area>`; it is a no-op unless `DEBUG` names it. */
export function createDebug(area: string): DebugLog {
  const namespace = `express-streaming:${area}`;
  const enabled = isEnabled(namespace, process.env.DEBUG);
  const log = (message: string, ...details: unknown[]) => {
    if (enabled) console.error(`${namespace} ${message}`, ...details);
  };
  return Object.assign(log, { enabled });
}

/** Callbacks to run once, in the order they were added. */
export type Hook = () => void;

/**
 * Hooks as an owner keeps them in one field: a single hook is kept as is, so the usual owner (one
 * hook per response or stream) allocates no array.
 */
export type Hooks = Hook | Hook[] | undefined;

/** `hooks` with `hook` added after the others. */
export function withHook(hooks: Hooks, hook: Hook): Hooks {
  if (hooks === undefined) return hook;
  if (typeof hooks === 'function') return [hooks, hook];
  hooks.push(hook);
  return hooks;
}

/** Runs each hook once, in order; the owner clears its field first, so a hook that re-enters runs nothing twice. */
export function runHooks(hooks: Hooks): void {
  if (typeof hooks === 'function') hooks();
  else if (hooks !== undefined) for (const hook of hooks) hook();
}

import fs from 'node:fs';
import vm from 'node:vm';

/**
 * Node's own process object, not the copy jest hands tests: Node emits 'warning' (and the other
 * process events) only on it, and its active resources are the real ones.
 */
export const nodeProcess = vm.runInThisContext('process') as NodeJS.Process;

/** How many file descriptors this process holds open now. */
export function openFileDescriptors(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

const LISTENED = ['close', 'drain', 'error', 'finish'] as const;
export type ListenerCounts = Record<(typeof LISTENED)[number], number>;

/** The 'close', 'drain', 'error' and 'finish' listeners an emitter (a response, a socket) carries now. */
export function listenerCounts(emitter: NodeJS.EventEmitter): ListenerCounts {
  return Object.fromEntries(LISTENED.map((event) => [event, emitter.listenerCount(event)])) as ListenerCounts;
}

import assert from 'node:assert/strict';
import type { LogId, LogPosition } from '../hub/store';
import type { CheckedStore } from './checked-store';
import type { CheckContext } from './context';
import { summarize } from './recorder';

/** What a check needs beyond a store, and is skipped without. */
export type Need = 'loseLog' | 'losesListenedLogs' | 'rewind' | 'sharedEngine';

/** One rule of the contract: its name is what users see in the result. */
export interface StoreCheck {
  readonly name: string;
  readonly needs?: readonly Need[];
  run(t: CheckContext): Promise<void>;
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

/** Appends `count` events one after another, `<label> 1` … as their data; resolves with their ids. */
export async function appendAll(
  store: CheckedStore,
  topic: string,
  count: number,
  label: string,
): Promise<LogId[]> {
  const ids: LogId[] = [];
  for (let n = 1; n <= count; n++) ids.push(await store.append(topic, { data: `${label} ${n}` }));
  return ids;
}

export function assertSeqs(actual: readonly number[], expected: readonly number[], what: string): void {
  assert.ok(
    actual.length === expected.length && actual.every((seq, i) => seq === expected[i]),
    `${what}: got seqs [${summarize(actual)}], expected [${summarize(expected)}]`,
  );
}

/** The one epoch all of `ids` share. */
export function oneEpoch(ids: readonly LogId[], what: string): string {
  const epochs = [...new Set(ids.map((id) => id.epoch))];
  assert.ok(epochs.length === 1, `${what} came in ${epochs.length} epochs (${epochs.join(', ')}), not one`);
  return epochs[0]!;
}

/** The seqs of `ids`, sorted: distinct and 1 … n when the store numbers without holes or repeats. */
export function sortedSeqs(ids: readonly LogId[]): number[] {
  return ids.map((id) => id.seq).sort((a, b) => a - b);
}

/** Where a position places the log, without its emptyEpoch: what most assertions compare. */
export function placeOf(position: LogPosition): { epoch: string; first: number; head: number } {
  return { epoch: position.epoch, first: position.first, head: position.head };
}

/** What the hub caches in an event's `wire`; a marker of the contract's own stands in for it. */
export const WIRE = Object.freeze({ bytes: Buffer.from('id: cached\n\n'), framed: undefined });

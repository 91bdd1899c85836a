import { randomBytes } from 'node:crypto';
import { isNativeError } from 'node:util/types';
import { checkDuration, checkFunction, checkOptionsObject, optionError } from '../core/options';
import type { HubStore } from '../hub/store';
import { appendChecks } from './append-checks';
import type { Need, StoreCheck } from './check';
import { CheckContext, type MakeStore, type Settings } from './context';
import { lifeChecks } from './life-checks';
import { liveChecks } from './live-checks';
import { readChecks } from './read-checks';

/** Options of {@link runStoreContract}. */
export interface StoreContractOptions {
  /**
   * How long one step of a check may take — a store call, a hook, a wait for a listener — before the
   * check fails (so a store that hangs fails instead of hanging the run). Default `5000`.
   */
  timeoutMs?: number;
  /** The start of every topic the checks use; each run and check adds its own part. Default `'contract'`. */
  topicPrefix?: string;
  /**
   * Makes `store` lose the log of `topic` the way its engine can lose one (Redis: its keys deleted,
   * evicted or flushed; SQL: its rows deleted; the memory store: every event expired). Without it the
   * lost-log checks are skipped.
   */
  loseLog?: (topic: string, store: HubStore) => void | Promise<void>;
  /**
   * Whether `loseLog` can lose a log the store is listening to. Default `true`; `false` (the memory
   * store, which never lets go of a followed log) skips the check of a listener across a loss.
   */
  losesListenedLogs?: boolean;
  /**
   * Takes the log of `topic` back in time to when its head was `head`, in the same epoch — the later
   * events gone, the next append numbered `head + 1` again — as a restore from an older snapshot or
   * a promoted replica that lagged does. Without it the check of a log gone back in time is skipped.
   */
  rewind?: (topic: string, head: number, store: HubStore) => void | Promise<void>;
  /**
   * `true` when the stores `makeStore()` gives share one engine, as processes on one Redis do: the
   * checks across processes then run. Default `false`.
   */
  sharedEngine?: boolean;
  /** Names of the only checks to run (the others are reported skipped). */
  only?: readonly string[];
  /** Names of checks not to run (reported skipped). */
  skip?: readonly string[];
}

/** What a run found: every check of the contract is in exactly one of the three lists, in order. */
export interface StoreContractResult {
  passed: string[];
  failed: Array<{ name: string; error: Error }>;
  skipped: Array<{ name: string; reason: string }>;
}

const CHECKS: readonly StoreCheck[] = [...appendChecks, ...readChecks, ...liveChecks, ...lifeChecks];

/** The names of the contract's checks, in the order they run: what `only` and `skip` take. */
export const storeContractChecks: readonly string[] = Object.freeze(CHECKS.map((check) => check.name));

const WITHOUT: Record<Need, string> = {
  loseLog: 'no loseLog option: the store cannot be made to lose a log',
  losesListenedLogs: 'losesListenedLogs is false: the store never loses a log it listens to',
  rewind: 'no rewind option: the engine cannot be taken back in time',
  sharedEngine: 'sharedEngine is not set: two stores of makeStore() share no log',
};

/**
 * Checks a {@link HubStore} against the rules the hub relies on — seqs without holes or repeats,
 * idempotent appends, positions that write nothing, the readiness of `listen`, lost logs as new
 * epochs — and resolves with what passed, failed and was skipped; it never throws for a store's
 * fault, so any test runner can assert on the result. Each check gets fresh stores from
 * `makeStore()` (closed whatever happens) and topics of its own; every step is bounded by `timeoutMs`.
 * @example
 * const { failed } = await runStoreContract(() => myStore(), { loseLog: (topic) => dropLog(topic) });
 * assert.deepEqual(failed, []);
 */
export function runStoreContract(
  makeStore: () => HubStore | Promise<HubStore>,
  options: StoreContractOptions = {},
): Promise<StoreContractResult> {
  let settings: Settings;
  let selected: (check: StoreCheck) => string | undefined;
  try {
    if (typeof makeStore !== 'function') {
      throw optionError('runStoreContract', 'makeStore', 'a function that makes a store', makeStore);
    }
    settings = settingsOf(options);
    selected = selection(options);
  } catch (error) {
    return Promise.reject(error);
  }
  return run(makeStore, settings, selected);
}

async function run(
  makeStore: MakeStore,
  settings: Settings,
  selected: (check: StoreCheck) => string | undefined,
): Promise<StoreContractResult> {
  const result: StoreContractResult = { passed: [], failed: [], skipped: [] };
  const runId = randomBytes(6).toString('hex');
  // One check at a time: a hook may act on the whole engine (a flush, a restart), a race is judged on
  // an engine no other check is loading, and a check that leaves a hung store behind fails alone.
  for (const [index, check] of CHECKS.entries()) {
    const reason = selected(check) ?? check.needs?.map((need) => missing(need, settings)).find(Boolean);
    if (reason !== undefined) {
      result.skipped.push({ name: check.name, reason });
      continue;
    }
    const t = new CheckContext(settings, makeStore, `${settings.topicPrefix}:${runId}:${index}`);
    let failure: unknown;
    try {
      await check.run(t);
      t.assertRecordersSound();
    } catch (error) {
      failure = error;
    }
    const closing = await t.finish();
    failure ??= closing;
    if (failure === undefined) result.passed.push(check.name);
    else result.failed.push({ name: check.name, error: asError(failure) });
  }
  return result;
}

function missing(need: Need, settings: Settings): string | undefined {
  const present = {
    loseLog: settings.loseLog !== undefined,
    losesListenedLogs: settings.losesListenedLogs,
    rewind: settings.rewind !== undefined,
    sharedEngine: settings.sharedEngine,
  }[need];
  return present ? undefined : WITHOUT[need];
}

function settingsOf(options: StoreContractOptions): Settings {
  const owner = 'runStoreContract';
  checkOptionsObject(options, owner);
  const topicPrefix = options.topicPrefix ?? 'contract';
  if (typeof topicPrefix !== 'string' || topicPrefix === '') {
    throw optionError(owner, 'topicPrefix', 'a non-empty string', topicPrefix);
  }
  return {
    timeoutMs: checkDuration(options.timeoutMs, 'timeoutMs', owner, 5000),
    topicPrefix,
    loseLog: checkFunction(options.loseLog, 'loseLog', owner),
    losesListenedLogs: checkBoolean(options.losesListenedLogs, 'losesListenedLogs', true),
    rewind: checkFunction(options.rewind, 'rewind', owner),
    sharedEngine: checkBoolean(options.sharedEngine, 'sharedEngine', false),
  };
}

function checkBoolean(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value === 'boolean') return value;
  throw optionError('runStoreContract', name, 'a boolean', value);
}

/** Why a check is left out by `only` or `skip`, if it is. */
function selection(options: StoreContractOptions): (check: StoreCheck) => string | undefined {
  const only = checkNames(options.only, 'only');
  const skip = checkNames(options.skip, 'skip');
  return (check) => {
    if (only !== undefined && !only.has(check.name)) return 'not named in the only option';
    if (skip?.has(check.name)) return 'named in the skip option';
    return undefined;
  };
}

function checkNames(names: unknown, option: string): Set<string> | undefined {
  if (names === undefined) return undefined;
  const expected = 'an array of names from storeContractChecks';
  if (!Array.isArray(names)) throw optionError('runStoreContract', option, expected, names);
  for (const name of names) {
    if (!storeContractChecks.includes(name)) throw optionError('runStoreContract', option, expected, name);
  }
  return new Set(names);
}

function asError(failure: unknown): Error {
  // isNativeError, not instanceof: node:assert's errors may come from another realm (a test runner's vm)
  return isNativeError(failure) ? failure : new Error(`the check failed with ${String(failure)}`);
}

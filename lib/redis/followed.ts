import type { EventsListener } from '../hub/store';
import type { Commands } from './client';
import { seqOf } from './entries';
import type { Keys } from './layout';
import { Script, STANDING } from './scripts';

const standing = new Script(STANDING);
/** Metas asked about per script call: a long key list would hold Redis in one script. */
const CHECK_CHUNK = 1000;

/** A topic the live reader follows, and where it stands in the topic's log. */
export interface Followed {
  readonly topic: string;
  readonly keys: Keys;
  readonly deliver: EventsListener;
  /** Set once the topic's starting point is known; until then its entries are not read. */
  cursor: string | undefined;
  /** The log's life its entries carry (`undefined` while the topic has no log). */
  epoch: string | undefined;
  settle(error?: Error): void;
}

/** A new life of a followed log: its ids start again below the cursor, so it is read from its start. */
export function readFromStart(followed: Followed, epoch: string | undefined): void {
  followed.epoch = epoch;
  followed.cursor = '0-0';
}

/** Where a followed log stands in Redis: its epoch (`undefined` with no log) and its head seq. */
export interface Standing {
  readonly epoch: string | undefined;
  readonly head: number;
}

/** Where each log stands, read with the reader's own script, a chunk of metas per call. */
export async function standingsOf(connection: Commands, followed: readonly Followed[]): Promise<Standing[]> {
  const standings: Standing[] = [];
  for (let at = 0; at < followed.length; at += CHECK_CHUNK) {
    const chunk = followed.slice(at, at + CHECK_CHUNK);
    const reply = (await standing.run(
      connection,
      chunk.map((f) => f.keys.meta),
      [],
    )) as unknown[];
    for (let i = 0; i < chunk.length; i++) {
      standings.push({
        epoch: reply[2 * i] == null ? undefined : String(reply[2 * i]),
        head: Number(reply[2 * i + 1]),
      });
    }
  }
  return standings;
}

/**
 * Whether the followed log's life changed under the reader: gone (lost), of another epoch (lost and
 * begun again), or below the cursor in the same epoch (gone back in time). A log begun where there was
 * none is not a change: the reader reads it from its start anyway.
 */
export function restarted(followed: Followed, { epoch, head }: Standing): boolean {
  const readTo = seqOf(followed.cursor!);
  if (epoch === followed.epoch) return epoch !== undefined && head < readTo;
  return !(followed.epoch === undefined && readTo === 0);
}

/**
 * Whether epoch `a` was made before epoch `b`: both begin with the time Redis made them (11 hex digits;
 * see the scripts' LIFE). False when either does not (an epoch of an earlier version).
 */
export function bornBefore(a: string, b: string): boolean {
  const time = /^[0-9a-f]{11}/;
  const [ta, tb] = [time.exec(a)?.[0], time.exec(b)?.[0]];
  return ta !== undefined && tb !== undefined && ta < tb;
}

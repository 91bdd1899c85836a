import type { EventsListener } from '../hub/store';
import type { Commands } from './client';
import { type Keys, seqOf } from './entries';
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

/**
 * The followed logs whose life changed under the reader, with the epoch Redis has now: gone (lost), of
 * another epoch (lost and begun again), or below the cursor in the same epoch (gone back in time).
 */
export async function findRestarted(
  connection: Commands,
  followed: readonly Followed[],
): Promise<Array<{ followed: Followed; epoch: string | undefined }>> {
  const restarted: Array<{ followed: Followed; epoch: string | undefined }> = [];
  for (let at = 0; at < followed.length; at += CHECK_CHUNK) {
    const chunk = followed.slice(at, at + CHECK_CHUNK);
    const reply = (await standing.run(
      connection,
      chunk.map((f) => f.keys.meta),
      [],
    )) as unknown[];
    for (const [i, f] of chunk.entries()) {
      const epoch = reply[2 * i] == null ? undefined : String(reply[2 * i]);
      const readTo = seqOf(f.cursor!);
      if (
        epoch === f.epoch
          ? epoch === undefined || Number(reply[2 * i + 1]) >= at
          : f.epoch === undefined && readTo === 0
      ) {
        continue; // as the reader left it, or a log begun where there was none: read on
      }
      restarted.push({ followed: f, epoch });
    }
  }
  return restarted;
}

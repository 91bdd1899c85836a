/**
 * The id of an event on a many-topic stream: a cursor naming, for every topic of the subscription,
 * where the client stands in it (`epoch` and last `seq`) once it has the event. Version 1 is
 *
 *     ~1<entry>.<entry>…        entry = <hash><shared><rest>-<seq>
 *
 * - `~1`: the version; a single-topic id `<epoch>-<seq>` never begins with `~`.
 * - `hash`: 4 letters and digits naming the topic (FNV-1a of its UTF-16 code units, mixed, in base
 *   62), so that a cursor from another topic set is still read topic by topic. Two topics of one
 *   set may share a hash (about one set of 32 topics in 30,000): each entry then goes to the
 *   topic whose log is in the entry's epoch.
 * - `shared` (one base-36 digit) and `rest`: the entry's epoch is the previous entry's first `shared`
 *   characters followed by `rest`. Entries are ordered by epoch, so epochs begun by one store instance
 *   (which share a long prefix) cost a few characters each.
 * - `seq` in base 36.
 *
 * Letters, digits and `~ . -` only: nothing to escape in a header or in a query, no CR, LF or NUL.
 */

/** Where a client stands in one topic: what a cursor says of it. */
export interface Spot {
  epoch: string;
  last: number;
}

/** A cursor's entry, read back: a topic's hash, and an id in that topic. */
export interface CursorEntry {
  readonly hash: string;
  readonly epoch: string;
  readonly seq: number;
}

const VERSION = '~1';
const DIGITS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** The longest prefix one digit of `shared` can say. */
const MAX_SHARED = 35;
/** hash, shared, an epoch of 64, `-`, a safe integer in base 36, `.`: a bound to refuse long text early. */
const MAX_ENTRY_LENGTH = 4 + 1 + 64 + 1 + 11 + 1;
const ENTRY = /^([0-9A-Za-z]{4})([0-9a-z])([0-9A-Za-z]{0,64})-(0|[1-9a-z][0-9a-z]{0,10})$/;

export function isCursor(text: string): boolean {
  return text.startsWith(VERSION);
}

/** The topic's name in a cursor: the same in every process, for as long as the format is version 1. */
export function topicHash(topic: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < topic.length; i++) hash = Math.imul(hash ^ topic.charCodeAt(i), 0x01000193);
  // mixed (MurmurHash3's finalizer), so that names alike (room:1, room:2 …) spread over the 4 digits
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  hash = (hash ^ (hash >>> 16)) >>> 0;
  let text = '';
  for (let i = 0; i < 4; i++) {
    text += DIGITS[hash % 62];
    hash = Math.floor(hash / 62);
  }
  return text;
}

/**
 * Writes cursors for one topic set: the layout (entry order, epochs front-coded) is made again only
 * when an epoch changed, so that a cursor costs one base-36 number per topic.
 */
export class CursorWriter {
  readonly #hashes: readonly string[];
  /** The epochs the layout was made for, by topic. */
  #epochs: string[] = [];
  /** Topics in entry order, and each entry's text up to its seq. */
  #order: number[] = [];
  #heads: string[] = [];

  constructor(hashes: readonly string[]) {
    this.#hashes = hashes;
  }

  /** The cursor of `spots` (by topic), with topic `index` at `seq` instead when given. */
  write(spots: readonly Spot[], index = -1, seq = 0): string {
    if (!this.#laidOutFor(spots)) this.#layOut(spots);
    const order = this.#order;
    const heads = this.#heads;
    let text = VERSION;
    for (let k = 0; k < order.length; k++) {
      const topic = order[k]!;
      text += heads[k]! + (topic === index ? seq : spots[topic]!.last).toString(36);
    }
    return text;
  }

  #laidOutFor(spots: readonly Spot[]): boolean {
    const epochs = this.#epochs;
    for (let i = 0; i < spots.length; i++) if (spots[i]!.epoch !== epochs[i]) return false;
    return epochs.length === spots.length;
  }

  #layOut(spots: readonly Spot[]): void {
    this.#epochs = spots.map((spot) => spot.epoch);
    const epochs = this.#epochs;
    this.#order = epochs
      .map((_, i) => i)
      .sort((a, b) => (epochs[a]! < epochs[b]! ? -1 : epochs[a]! > epochs[b]! ? 1 : a - b));
    let previous = '';
    this.#heads = this.#order.map((topic, k) => {
      const epoch = epochs[topic]!;
      const shared = Math.min(sharedLength(previous, epoch), MAX_SHARED);
      previous = epoch;
      return `${k === 0 ? '' : '.'}${this.#hashes[topic]}${shared.toString(36)}${epoch.slice(shared)}-`;
    });
  }
}

function sharedLength(a: string, b: string): number {
  const most = Math.min(a.length, b.length);
  let n = 0;
  while (n < most && a.charCodeAt(n) === b.charCodeAt(n)) n++;
  return n;
}

/** A cursor's entries, or `malformed` for text no hub writes (more than `maxEntries` entries included). */
export function readCursor(text: string, maxEntries: number): CursorEntry[] | 'malformed' {
  if (!isCursor(text) || text.length > VERSION.length + maxEntries * MAX_ENTRY_LENGTH) return 'malformed';
  const parts = text.slice(VERSION.length).split('.');
  if (parts.length > maxEntries) return 'malformed';
  const entries: CursorEntry[] = [];
  let previous = '';
  for (const part of parts) {
    const match = ENTRY.exec(part);
    if (!match) return 'malformed';
    const shared = Number.parseInt(match[2]!, 36);
    const epoch = previous.slice(0, shared) + match[3]!;
    const seq = Number.parseInt(match[4]!, 36);
    if (shared > previous.length || epoch === '' || epoch.length > 64 || !Number.isSafeInteger(seq)) {
      return 'malformed';
    }
    entries.push({ hash: match[1]!, epoch, seq });
    previous = epoch;
  }
  return entries;
}

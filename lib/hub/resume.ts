import { type CursorEntry, isCursor, readCursor, topicHash } from './cursor';
import { type ParsedId, parseId } from './ids';
import type { LogPosition } from './store';
import type { ResetReason } from './types';

/** Where a client goes on in one topic: after a seq, from the head as new to the topic, or after a reset. */
export type Verdict = number | 'new' | ResetReason;

/**
 * Where a resuming client goes on from in its one topic, judged by numbers alone — never by whether
 * its own id is still stored. A many-topic cursor counts by its entry for the topic; one that does not
 * name the topic is a first connection.
 */
export function judge(
  lastEventId: string,
  topic: string,
  position: LogPosition,
  maxReplay: number,
  maxTopics: number,
): Verdict {
  if (isCursor(lastEventId)) {
    return judgeAll(lastEventId, [topicHash(topic)], [position], maxReplay, maxTopics)[0]!;
  }
  const id = parseId(lastEventId);
  return id === 'malformed' ? 'malformed' : judgeId(id, position, maxReplay);
}

/**
 * Where a client goes on in each topic of a many-topic stream (`hashes` and `positions` by topic).
 * Each entry of its cursor is judged on its own; a topic the cursor does not name is new to the
 * client, an entry of a topic no longer subscribed is ignored. A plain `<epoch>-<seq>` id names no
 * topic, but a log's epoch is its topic's own: it counts for the one topic whose log is in that
 * epoch, and the others are new; when no topic's log is (or the epoch is that of topics with no
 * log, which any of them may be), the topic it came from cannot be told, and every topic resets.
 */
export function judgeAll(
  lastEventId: string,
  hashes: readonly string[],
  positions: readonly LogPosition[],
  maxReplay: number,
  maxTopics: number,
): Verdict[] {
  const verdicts: Verdict[] = positions.map(() => 'new');
  if (!isCursor(lastEventId)) {
    const id = parseId(lastEventId);
    if (id === 'malformed') return verdicts.fill('malformed');
    const owners = positions.flatMap((p, i) => (p.epoch === id.epoch && p.epoch !== p.emptyEpoch ? [i] : []));
    if (owners.length !== 1) return verdicts.fill('unknown-epoch');
    verdicts[owners[0]!] = judgeId(id, positions[owners[0]!]!, maxReplay);
    return verdicts;
  }
  const entries = readCursor(lastEventId, maxTopics);
  if (entries === 'malformed') return verdicts.fill('malformed');
  for (const entry of entries) {
    const topic = ownerOf(entry, hashes, positions, verdicts);
    if (topic !== -1) verdicts[topic] = judgeId(entry, positions[topic]!, maxReplay);
  }
  return verdicts;
}

/**
 * The topic a cursor's entry is of: a topic with its hash not judged yet — should two topics of the
 * set share a hash, the one whose log is in the entry's epoch.
 */
function ownerOf(
  entry: CursorEntry,
  hashes: readonly string[],
  positions: readonly LogPosition[],
  verdicts: readonly Verdict[],
): number {
  let owner = -1;
  for (let i = 0; i < hashes.length; i++) {
    if (hashes[i] !== entry.hash || verdicts[i] !== 'new') continue;
    if (positions[i]!.epoch === entry.epoch) return i;
    if (owner === -1) owner = i;
  }
  return owner;
}

/**
 * One topic's id judged against its log: the seq to replay after, or why the client must reset. An id
 * `<emptyEpoch>-0` was handed out while the topic had no log; while the store's `emptyEpoch` is
 * unchanged no log was lost since, so it resumes the log from its start.
 */
function judgeId(
  id: Exclude<ParsedId, 'malformed'>,
  position: LogPosition,
  maxReplay: number,
): number | ResetReason {
  const placedBeforeLog = id.seq === 0 && id.epoch === position.emptyEpoch;
  if (id.epoch !== position.epoch && !placedBeforeLog) return 'unknown-epoch';
  if (id.seq > position.head) return 'ahead';
  if (position.first > id.seq + 1) return 'too-old';
  if (position.head - id.seq > maxReplay) return 'too-many';
  return id.seq;
}

import { parseId } from './ids';
import type { LogPosition } from './store';
import type { ResetReason } from './types';

/**
 * Where a resuming client goes on from, judged by numbers alone — never by whether its own id is
 * still stored: the seq to replay after, or why it must reset. An id `<emptyEpoch>-0` was handed out
 * while the topic had no log; while the store's `emptyEpoch` is unchanged no log was lost since, so
 * it resumes the log from its start.
 */
export function judge(lastEventId: string, position: LogPosition, maxReplay: number): number | ResetReason {
  const id = parseId(lastEventId);
  if (id === 'malformed') return 'malformed';
  const placedBeforeLog = id.seq === 0 && id.epoch === position.emptyEpoch;
  if (id.epoch !== position.epoch && !placedBeforeLog) return 'unknown-epoch';
  if (id.seq > position.head) return 'ahead';
  if (position.first > id.seq + 1) return 'too-old';
  if (position.head - id.seq > maxReplay) return 'too-many';
  return id.seq;
}

import type { HubRecord, StoredEvent } from '../hub/store';

/** A stream entry as Redis returns it: its id and a flat list of fields and values. */
export type RawEntry = [id: string, fields: string[]];

/** The fields of a stream entry: the record, its epoch and when Redis took it. */
const FIELD = { epoch: 'e', time: 't', event: 'n', data: 'd', comment: 'c', retry: 'r' } as const;

/** The entry's fields after the epoch and time the publish script puts first. */
export function recordFields(record: HubRecord): string[] {
  const fields: string[] = [];
  if (record.event !== undefined) fields.push(FIELD.event, record.event);
  if (record.data !== undefined) fields.push(FIELD.data, record.data);
  if (record.comment !== undefined) fields.push(FIELD.comment, record.comment);
  if (record.retry !== undefined) fields.push(FIELD.retry, String(record.retry));
  return fields;
}

export function toStoredEvent(raw: RawEntry): { epoch: string; event: StoredEvent; publishedAt: number } {
  const [id, fields] = raw;
  const values: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) values[String(fields[i])] = String(fields[i + 1]);
  const record: HubRecord = {
    event: values[FIELD.event],
    data: values[FIELD.data],
    comment: values[FIELD.comment],
    retry: values[FIELD.retry] === undefined ? undefined : Number(values[FIELD.retry]),
  };
  return {
    epoch: values[FIELD.epoch] ?? '',
    event: { seq: seqOf(String(id)), record, wire: undefined },
    publishedAt: Number(values[FIELD.time] ?? Date.now()),
  };
}

/** Entry ids are `<seq>-0`: every process agrees on them. */
export function seqOf(id: string): number {
  return Number.parseInt(id, 10);
}

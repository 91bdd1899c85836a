import { describeValue } from '../core/util';
import { type EncodedEvent, encodedText } from '../sse/encoded';
import { encodeEvent, isSseEvent, type Serialize } from '../sse/encoder';
import { formatId } from './ids';
import type { HubRecord, StoredEvent } from './store';
import type { HubMessage } from './types';

/**
 * An event's wire text around its id line, made once per event in each process: field order puts the
 * comment and `event:` before `id:`, `retry:` and `data:` after it, so the id the store assigns is
 * spliced in without encoding anything again.
 */
interface WireParts {
  readonly beforeId: string;
  readonly afterId: string;
}

/** Parts made at publish, found again when the memory store hands the same record back for fan-out. */
const partsOfRecord = new WeakMap<HubRecord, WireParts>();

/**
 * Checks and serializes a published event once: the record a store keeps (text only) and its wire
 * parts. Every field is validated here, before the store sees it: a bad event never gets an id.
 */
export function recordOf(event: unknown, serialize: Serialize): HubRecord {
  const fields = isSseEvent(event) ? event : { data: event };
  if (fields.id !== undefined) {
    throw new TypeError(
      `hub.publish: the hub assigns ids (<epoch>-<seq>); leave \`id\` out, got ${describeValue(fields.id)}`,
    );
  }
  const data = fields.data === undefined ? undefined : serializeData(fields.data, serialize);
  const record: HubRecord = { event: fields.event, data, comment: fields.comment, retry: fields.retry };
  partsOfRecord.set(record, partsOf(record));
  return record;
}

function serializeData(data: unknown, serialize: Serialize): string {
  if (typeof data === 'string') return data;
  const text: unknown = serialize(data);
  if (typeof text !== 'string') {
    throw new TypeError(`hub.publish: \`serialize\` must return a string, got ${describeValue(text)}`);
  }
  return text;
}

function partsOf(record: HubRecord): WireParts {
  const { comment, event, retry, data } = record;
  const before = comment === undefined && event === undefined ? '' : encodeEvent({ comment, event });
  const after = retry === undefined && data === undefined ? '' : encodeEvent({ retry, data });
  // encodeEvent ends each with the blank line that ends an event: the parts are its inside
  return { beforeId: before.slice(0, -1), afterId: after.slice(0, -1) };
}

/** The event's bytes with its id, made once per event (and cached where the store keeps the event). */
export function wireOf(epoch: string, event: StoredEvent): EncodedEvent {
  if (event.wire !== undefined) return event.wire;
  const wire = wireWithId(event.record, formatId(epoch, event.seq));
  event.wire = wire;
  return wire;
}

/** The event's bytes with the id given: a many-topic stream's cursor, say. */
export function wireWithId(record: HubRecord, id: string): EncodedEvent {
  let parts = partsOfRecord.get(record);
  if (parts === undefined) {
    parts = partsOf(record);
    partsOfRecord.set(record, parts);
  }
  return encodedText(`${parts.beforeId}id: ${id}\n${parts.afterId}\n`);
}

/** Several events as one write: the same bytes each would be, concatenated once for every subscriber. */
export function batchOf(wires: readonly EncodedEvent[]): EncodedEvent {
  if (wires.length === 1) return wires[0]!;
  return { bytes: Buffer.concat(wires.map((wire) => wire.bytes)), framed: undefined };
}

/** The event a client that cannot resume gets first, with the position it goes live from as its id. */
export function resetEvent(reason: string, topic: string, id: string): EncodedEvent {
  return encodedText(encodeEvent({ event: 'reset', id, data: JSON.stringify({ reason, topic }) }));
}

/**
 * What a first connection gets before anything else: an event with no data whose id is where the
 * client stands, so that a reconnect before the first real event resumes from there. It is named
 * (`hub:position`), so a page's `onmessage` never sees it, yet EventSource dispatches it — with its
 * id, which a page that keeps its place itself (the browser client) must see: an id-only event would
 * set EventSource's own last id without telling the page.
 */
export function positionEvent(id: string): EncodedEvent {
  return encodedText(encodeEvent({ event: POSITION_EVENT, id, data: '' }));
}

/** The name of {@link positionEvent}: namespaced, so that it never collides with an app's own events. */
export const POSITION_EVENT = 'hub:position';

const messages = new WeakMap<StoredEvent, HubMessage>();

/** The event as a subscription's filter sees it: made once per event, whatever the number of filters. */
export function messageOf(topic: string, epoch: string, event: StoredEvent): HubMessage {
  let message = messages.get(event);
  if (message === undefined) {
    message = Object.freeze({
      topic,
      id: formatId(epoch, event.seq),
      event: event.record.event || 'message',
      data: event.record.data,
    });
    messages.set(event, message);
  }
  return message;
}

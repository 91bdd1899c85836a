/**
 * An event encoded once, to be written as is to any number of streams: its wire bytes, and the same
 * bytes framed as one HTTP/1.1 chunk, made the first time a stream on the framed socket path needs them.
 */
export interface EncodedEvent {
  readonly bytes: Buffer;
  framed: Buffer | undefined;
}

/** Already-encoded wire text (a hub's `reset` event, say), wrapped for delivery. */
export function encodedText(text: string): EncodedEvent {
  return { bytes: Buffer.from(text), framed: undefined };
}

const CRLF = Buffer.from('\r\n');

/** The event as one HTTP/1.1 chunk — size line, bytes, CRLF — made once and shared by every stream. */
export function framedBytes(event: EncodedEvent): Buffer {
  event.framed ??= Buffer.concat([Buffer.from(`${event.bytes.length.toString(16)}\r\n`), event.bytes, CRLF]);
  return event.framed;
}

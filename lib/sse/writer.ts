import { OutgoingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { type Deferred, deferred } from '../core/deferred';
import type { ResponseLike } from '../core/response';
import { resolvedFalse, resolvedTrue } from '../core/util';
import { ResponseWriter } from '../core/writer';
import { type EncodedEvent, framedBytes } from './encoded';
import { directSocket, frameChunk } from './framed-socket';
import { writeSseHead } from './head';
import type { SseCloseReason } from './types';

/** What a stream writes: wire text it made, or bytes a hub encoded once for every subscriber. */
export type SseChunk = string | EncodedEvent;

/**
 * `writableEnded` read through its own getter: the plain property read is slow on Express's
 * re-prototyped `res` (a long, megamorphic prototype chain), and this runs on every framed write.
 */
const writableEnded = Object.getOwnPropertyDescriptor(OutgoingMessage.prototype, 'writableEnded')!.get as (
  this: ResponseLike,
) => boolean;

/**
 * The bytes of one SSE response: its head, the one write path — each chunk framed straight onto the
 * socket where that is byte for byte what `res.write` would send (see {@link directSocket}),
 * `res.write` everywhere else — and the one drain wait, on whichever of the two it writes to.
 */
export class SseWriter {
  readonly response: ResponseWriter;
  /** Set once the head is out, where each chunk may go to the socket as one framed chunk. */
  #socket: Socket | undefined;
  #headSent = false;
  /** While backed up: resolves `true` on `'drain'`, `false` once the stream is released. */
  #drain: Deferred<boolean> | undefined;

  constructor(res: ResponseLike) {
    this.response = new ResponseWriter(res);
  }

  get res(): ResponseLike {
    return this.response.res;
  }

  /** The SSE head is out: the client saw the stream open. */
  get headSent(): boolean {
    return this.#headSent;
  }

  /** A write returned false and no `'drain'` came yet. */
  get backedUp(): boolean {
    return this.#drain !== undefined;
  }

  /** Bytes written and not yet handed to the OS (the socket's queue included). */
  get queued(): number {
    return this.res.writableLength;
  }

  /** Whether the client leaves bytes unread past the high-water mark: what the write deadline watches. */
  get blocked(): boolean {
    if (this.#socket !== undefined) return this.#socket.writableNeedDrain;
    const res = this.res as ResponseLike & { writableNeedDrain?: boolean };
    return res.writableNeedDrain ?? res.writableLength >= res.writableHighWaterMark;
  }

  /** Writes the SSE head unless it is out already, and picks the write path; true if it wrote it. */
  writeHead(headers: ReadonlyArray<readonly [string, string]>): boolean {
    if (this.#headSent) return false;
    this.#headSent = true;
    writeSseHead(this.res, headers);
    this.#socket = directSocket(this.res);
    return true;
  }

  /**
   * Writes one chunk now; `false` means the client is backed up ({@link drained} tells when it is
   * not). On the framed path a chunk after the app's own `res.end()` would corrupt the next response
   * on the connection: such a write goes to the response writer, which refuses it and notices the end.
   */
  write(chunk: SseChunk): boolean {
    const socket = this.#socket;
    const belowHighWaterMark =
      socket !== undefined && !writableEnded.call(this.res)
        ? socket.write(typeof chunk === 'string' ? frameChunk(chunk) : framedBytes(chunk))
        : this.response.write(typeof chunk === 'string' ? chunk : chunk.bytes);
    if (!belowHighWaterMark && !this.response.gone) this.#backUp();
    return belowHighWaterMark;
  }

  /** Resolves `true` once the client took what was queued, `false` if the stream ends first. */
  drained(): Promise<boolean> {
    return this.#drain?.promise ?? (this.response.gone ? resolvedFalse : resolvedTrue);
  }

  /**
   * Ends the response as a stream ending for `reason` should: untouched for a client that left; a
   * clean end for the server's own end, cut off after `writeTimeoutMs` if the client stopped reading
   * (an ended response would otherwise hold its socket forever); a visible truncation for a failure.
   * A stream that ends before its held head went out still answers as a stream, so that EventSource
   * reconnects: any other answer would make it give up for good.
   */
  end(
    reason: SseCloseReason,
    cause: unknown,
    headers: ReadonlyArray<readonly [string, string]>,
    writeTimeoutMs: number | null,
  ): void {
    const response = this.response;
    if (reason === 'client') {
      response.detach();
      return;
    }
    this.writeHead(headers);
    if (reason !== 'server') {
      response.truncate(cause);
      return;
    }
    void response.end();
    if (writeTimeoutMs !== null && !response.done) response.res.setTimeout(writeTimeoutMs);
  }

  /** Lets go of the socket: a pending drain wait resolves `false`. */
  release(): void {
    this.#socket?.off('drain', this.#drained);
    this.#socket = undefined;
    this.#drained();
  }

  /** One drain wait per backed-up spell, on what the stream writes to. */
  #backUp(): void {
    if (this.#drain !== undefined) return;
    this.#drain = deferred();
    if (this.#socket !== undefined) this.#socket.once('drain', this.#drained);
    else void this.response.drained().then(this.#drained);
  }

  readonly #drained = (): void => {
    const drain = this.#drain;
    this.#drain = undefined;
    drain?.resolve(!this.response.gone);
  };
}

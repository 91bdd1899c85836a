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
 * The bytes of one SSE response: its head, the one write path — each chunk framed straight onto the
 * socket where that is byte for byte what `res.write` would send (see {@link directSocket}),
 * `res.write` everywhere else — and the one drain wait, on whichever of the two it writes to.
 */
export class SseWriter {
  readonly response: ResponseWriter;
  /**
   * Set once the head is out, where each chunk may go to the socket as one framed chunk; unset at once
   * when the app ends the response itself (`'prefinish'`, which `res.end()` emits before it returns
   * when nothing of the response's own is queued — the case on this path): a chunk after its final one
   * would corrupt the next response on the connection. Watching for that costs each write nothing.
   */
  #socket: Socket | undefined;
  #headSent = false;
  /** While backed up: resolves `true` on `'drain'`, `false` once the stream is released. */
  #drain: Deferred<boolean> | undefined;
  /** The socket whose `'drain'` that wait listens for (the framed path's), to let go of it. */
  #drainOn: Socket | undefined;

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
    if (this.#socket !== undefined) this.res.once('prefinish', this.#endedElsewhere);
    return true;
  }

  /**
   * Writes one chunk now; `false` means the client is backed up ({@link drained} tells when it is
   * not). Off the framed path — after the app's own `res.end()` too — it goes to the response writer,
   * which refuses a write after the end and notices it.
   */
  write(chunk: SseChunk): boolean {
    const socket = this.#socket;
    const belowHighWaterMark =
      socket !== undefined
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
    this.#endedElsewhere();
    this.#drained();
  }

  /** One drain wait per backed-up spell, on what the stream writes to. */
  #backUp(): void {
    if (this.#drain !== undefined) return;
    this.#drain = deferred();
    this.#drainOn = this.#socket;
    if (this.#drainOn !== undefined) this.#drainOn.once('drain', this.#drained);
    else void this.response.drained().then(this.#drained);
  }

  /** Off the framed path for good: the response is ending (by the app, or by {@link release}). */
  readonly #endedElsewhere = (): void => {
    if (this.#socket === undefined) return;
    this.#socket = undefined;
    this.res.off('prefinish', this.#endedElsewhere);
  };

  readonly #drained = (): void => {
    this.#drainOn?.off('drain', this.#drained);
    this.#drainOn = undefined;
    const drain = this.#drain;
    this.#drain = undefined;
    drain?.resolve(!this.response.gone);
  };
}

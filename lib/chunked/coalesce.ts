import { resolvedTrue } from '../core/util';
import type { ChunkedStream } from './chunked-stream';

/**
 * Gathers small chunks and writes them as one, after `maxDelayMs` or at `maxBytes`, whichever is
 * first. Held bytes are copies: a gathered chunk resolves at once, so its caller may reuse its buffer.
 */
export class CoalescingWindow {
  readonly #stream: ChunkedStream;
  readonly #maxDelayMs: number;
  readonly #maxBytes: number;
  #parts: Buffer[] = [];
  #size = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(stream: ChunkedStream, maxDelayMs: number, maxBytes: number) {
    this.#stream = stream;
    this.#maxDelayMs = maxDelayMs;
    this.#maxBytes = maxBytes;
  }

  add(data: string | Uint8Array): Promise<boolean> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    if (this.#size === 0 && bytes.byteLength >= this.#maxBytes) return this.#stream.write(bytes);
    this.#parts.push(typeof data === 'string' ? (bytes as Buffer) : Buffer.from(bytes));
    this.#size += bytes.byteLength;
    if (this.#size >= this.#maxBytes) return this.flush();
    this.#timer ??= setTimeout(this.#onTimer, this.#maxDelayMs);
    return resolvedTrue;
  }

  flush(): Promise<boolean> {
    this.#clearTimer();
    if (this.#size === 0) return resolvedTrue;
    const parts = this.#parts;
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.#size);
    this.#parts = [];
    this.#size = 0;
    return this.#stream.write(data);
  }

  discard(): void {
    this.#clearTimer();
    this.#parts = [];
    this.#size = 0;
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    if (this.#stream.gone) this.discard();
    // Whoever waits on the drain is the next chunk past the window; this flush has no caller.
    else void this.flush();
  };

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

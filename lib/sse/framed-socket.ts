import { OutgoingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ResponseLike } from '../core/response';

/**
 * The socket an event may be written to directly, as one framed HTTP/1.1 chunk — only where that is
 * byte for byte what `res.write` would do: HTTP/1.1 with chunked coding chosen by Node, `res.write`
 * not patched (compression and the like fall back to it), the socket this response's own, and nothing
 * queued inside `res` ahead of it. HTTP/1.0 and HTTP/2 always use `res.write`.
 */
export function directSocket(res: ResponseLike): Socket | undefined {
  const socket = res.socket;
  const eligible =
    socket !== null &&
    !socket.destroyed &&
    res.req.httpVersionMajor === 1 &&
    res.req.httpVersionMinor === 1 &&
    res.chunkedEncoding === true &&
    res.write === OutgoingMessage.prototype.write &&
    res.writableLength === socket.writableLength;
  return eligible ? socket : undefined;
}

/** One HTTP/1.1 chunk: its size line, the bytes, CRLF — what `res.write(text)` puts on the wire. */
export function frameChunk(text: string): string {
  return `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
}

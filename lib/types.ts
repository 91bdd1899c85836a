import type { ServerResponse } from 'node:http';
import type { StreamBody } from './body/plan';
import type { StreamBodyResponse, StreamOptions } from './body/stream-body';
import type { ChunkedResponse } from './chunked/chunked';
import type { StreamOutcome } from './core/writer';
import type { SseStreamOptions } from './sse/options';
import type { SseResponse, SseSource, SseStream } from './sse/types';

/**
 * Express's `Response` gains the helpers once the package is imported (method syntax, so that an app
 * mounting only some of the middlewares still type-checks). Without `@types/express` this only declares
 * an empty global namespace.
 */
declare global {
  namespace Express {
    interface Response {
      /** Sends `body` whole or streamed; needs `streamBody()`. Resolves `'finished' | 'aborted' | 'errored'`, never rejects. */
      stream(body: StreamBody, options?: StreamOptions): Promise<StreamOutcome>;
      /** Writes one chunk now (flushed chunked transfer); needs `chunked()`. `false` once the client is gone. */
      chunk(data: string | Uint8Array): Promise<boolean>;
      /** Sets a trailer field sent after the last chunk; needs `chunked()`. `false` where trailers cannot be sent. */
      setTrailer(name: string, value: string): boolean;
      /** Starts a Server-Sent Events stream; needs `sseChannel()`. */
      sse<D = unknown>(source?: SseSource<D>, options?: SseStreamOptions): SseStream<D>;
    }
  }
}

/** A node:http or Connect response with every helper of the suite, for apps that mount all three middlewares. */
export type StreamingResponse = ServerResponse & StreamBodyResponse & ChunkedResponse & SseResponse;

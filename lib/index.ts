export type { BodyFunction, StreamBody, StreamContext } from './bodies';
export { BodyContentType, StreamableBody } from './bodies';
export type { ChannelBuffer } from './channel';
export {
  Channel,
  ChannelOverflowError,
  droppingBuffer,
  fixedBuffer,
  isChannel,
  MAX_PENDING,
  slidingBuffer,
} from './channel';
export type { ChunkedOptions, ChunkedResponse, CoalesceOptions } from './chunked';
export { chunked } from './chunked';
export type { ErrorHandler } from './errors';
export type { FileBody, FileOptions } from './file';
export { file } from './file';
export { jsonArray, ndjson } from './json-lines';
export type { AnyRequest, AnyResponse } from './response';
export type {
  SseCloseReason,
  SseContext,
  SseMiddleware,
  SseOptions,
  SseReadyFunction,
  SseResponse,
  SseSource,
  SseStream,
  SseStreamOptions,
} from './sse';
export { SseSubscription, sseChannel } from './sse';
export type { Serialize, SseEvent, SseEventInput } from './sse-encoder';
export { defaultSerialize, encodeComment, encodeEvent, encodeRetry, isSseEvent } from './sse-encoder';
export type { StreamBodyOptions, StreamBodyResponse, StreamOptions } from './stream-body';
export { sendStream, streamBody } from './stream-body';
export type { StreamingResponse } from './types';
export type { StreamOutcome } from './write-loop';

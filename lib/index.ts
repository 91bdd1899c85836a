export type { FileBody, FileOptions } from './body/file';
export { file } from './body/file';
export { jsonArray, ndjson } from './body/json-lines';
export type { BodyFunction, StreamBody } from './body/plan';
export { BodyContentType, StreamableBody } from './body/plan';
export type { StreamBodyOptions, StreamBodyResponse, StreamOptions } from './body/stream-body';
export { sendStream, streamBody } from './body/stream-body';
export type { ChannelBuffer } from './channel/buffers';
export { droppingBuffer, fixedBuffer, slidingBuffer } from './channel/buffers';
export { Channel, ChannelOverflowError, isChannel, MAX_PENDING } from './channel/channel';
export type { ChunkedOptions, ChunkedResponse, CoalesceOptions } from './chunked/chunked';
export { chunked } from './chunked/chunked';
export type { ErrorHandler } from './core/errors';
export type { AnyRequest, AnyResponse, StreamContext } from './core/response';
export type { StreamOutcome } from './core/writer';
export { HubClosedError, HubStoreError } from './hub/errors';
export { createHub } from './hub/hub';
export type { MemoryStoreOptions } from './hub/memory-store';
export { memoryStore } from './hub/memory-store';
export type {
  AppendOptions,
  EventsListener,
  HubRecord,
  HubStore,
  LogId,
  LogPage,
  LogPosition,
  StoredEvent,
  StoreStats,
} from './hub/store';
export type {
  AnyEvents,
  Hub,
  HubEventInput,
  HubEventMap,
  HubEventName,
  HubMessage,
  HubOptions,
  HubStats,
  PublishOptions,
  ResetReason,
  SubscribeOptions,
} from './hub/types';
export type { Serialize, SseEvent, SseEventInput } from './sse/encoder';
export { defaultSerialize, encodeComment, encodeEvent, encodeRetry, isSseEvent } from './sse/encoder';
export type { SseOptions, SseStreamOptions } from './sse/options';
export { sseChannel } from './sse/sse-channel';
export type {
  CloseAllOptions,
  SseCloseReason,
  SseContext,
  SseMiddleware,
  SseReadyFunction,
  SseResponse,
  SseSource,
  SseStream,
} from './sse/types';
export { SseSubscription } from './sse/types';
export type { StreamingResponse } from './types';

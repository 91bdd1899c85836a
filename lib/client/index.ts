export { openStream } from './open-stream';
export type { EventStream, OpenStreamOptions, ReservedEventName, ResetReason, StreamListener } from './types';

import diagnostics from 'node:diagnostics_channel';

/**
 * The stream lifecycle on `node:diagnostics_channel`, as undici and node:http publish theirs, so APM
 * agents and OpenTelemetry subscribe without wrapping anything. Publishing is guarded by
 * `hasSubscribers` at every call site: with nobody listening it costs one property read. Channels are
 * global by name, so both builds of the package (ESM and CommonJS) publish on the same ones.
 */
export const channels = {
  /** A stream started: `{ req, res, stream, lastEventId }`. */
  sseOpen: diagnostics.channel('express-streaming:sse:open'),
  /** A stream ended, once: `{ req, res, stream, reason, error }`. */
  sseClose: diagnostics.channel('express-streaming:sse:close'),
  /** An event was published: `{ topic, id, event, subscribers }` (local subscribers of the topic). */
  hubPublish: diagnostics.channel('express-streaming:hub:publish'),
  /** A subscriber could not resume and was told to reset: `{ topic, reason, lastEventId, req }`. */
  hubReset: diagnostics.channel('express-streaming:hub:reset'),
} as const;

import diagnostics from 'node:diagnostics_channel';
import { Counter, Gauge, Registry } from 'prom-client';

/**
 * Prometheus metrics for express-streaming, wired the way an operator would: the library publishes
 * its stream lifecycle on `node:diagnostics_channel` (no wrapping, no hooks into the app), and this
 * file subscribes to those channels and feeds prom-client. Channels are global by name, so one
 * subscription sees every `sseChannel()` and every hub in the process, whichever build loaded them.
 *
 *   express-streaming:sse:open     { req, res, stream, lastEventId }
 *   express-streaming:sse:close    { req, res, stream, reason, error }   reason: client | server | error | slow
 *   express-streaming:hub:publish  { topic, id, event, subscribers }
 *   express-streaming:hub:reset    { topic, reason, lastEventId, req }   reason: unknown-epoch | too-old | …
 *
 * @example
 * const metrics = createMetrics();
 * app.get('/metrics', async (req, res) => res.type(metrics.contentType).send(await metrics.text()));
 * // on shutdown: metrics.close();
 */
export function createMetrics(): { contentType: string; text(): Promise<string>; close(): void } {
  const registry = new Registry(); // its own registry: nothing global, several apps per process are fine
  const registers = [registry];

  const openStreams = new Gauge({
    name: 'express_streaming_sse_open_streams',
    help: 'SSE streams open now',
    registers,
  });
  const opened = new Counter({
    name: 'express_streaming_sse_opened_total',
    help: 'SSE streams opened',
    registers,
  });
  const closed = new Counter({
    name: 'express_streaming_sse_closed_total',
    help: 'SSE streams closed, by reason (client, server, error, slow)',
    labelNames: ['reason'],
    registers,
  });
  // Label by topic only while topics are few and fixed (here: chat, ticks); per-room topics would
  // make one series each — label those by event name instead.
  const published = new Counter({
    name: 'express_streaming_hub_published_total',
    help: 'Events published through a hub, by topic',
    labelNames: ['topic'],
    registers,
  });
  const resets = new Counter({
    name: 'express_streaming_hub_resets_total',
    help: 'Clients that could not resume and were told to reset, by reason',
    labelNames: ['reason'],
    registers,
  });

  const subscriptions: Array<[name: string, onMessage: (message: unknown) => void]> = [
    [
      'express-streaming:sse:open',
      () => {
        opened.inc();
        openStreams.inc();
      },
    ],
    [
      'express-streaming:sse:close',
      (message) => {
        closed.inc({ reason: (message as { reason: string }).reason });
        openStreams.dec();
      },
    ],
    [
      'express-streaming:hub:publish',
      (message) => published.inc({ topic: (message as { topic: string }).topic }),
    ],
    [
      'express-streaming:hub:reset',
      (message) => resets.inc({ reason: (message as { reason: string }).reason }),
    ],
  ];
  for (const [name, onMessage] of subscriptions) diagnostics.subscribe(name, onMessage);

  return {
    contentType: registry.contentType,
    text: () => registry.metrics(),
    // Unsubscribe with the same functions: a closed app stops counting (and is garbage collected).
    close: () => {
      for (const [name, onMessage] of subscriptions) diagnostics.unsubscribe(name, onMessage);
    },
  };
}

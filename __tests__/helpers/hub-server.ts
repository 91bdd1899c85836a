import http from 'node:http';
import type { Socket } from 'node:net';
import { createParser } from 'eventsource-parser';
import express from 'express';
import { type Hub, type SseMiddleware, type SseOptions, type SubscribeOptions, sseChannel } from '../../lib';
import { listen, type Running } from './servers';

/** An Express 5 app whose `/feed/:topic` subscribes to `hub` (options from `subscribeOptions(req)`). */
export async function serveHub(
  hub: Hub<never> | Hub,
  sseOptions: SseOptions = { retryMs: null },
  subscribeOptions: (req: http.IncomingMessage) => SubscribeOptions = () => ({}),
): Promise<Running & { sse: SseMiddleware; connections: Set<Socket> }> {
  const sse = sseChannel(sseOptions);
  const app = express();
  app.use(sse);
  app.get('/feed/:topic', (req, res) => {
    res.sse((hub as Hub).subscribe(String(req.params.topic), req, subscribeOptions(req)));
  });
  const server = http.createServer(app);
  const connections = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });
  return Object.assign(await listen(server), { sse, connections });
}

export interface ParsedEvent {
  event: string;
  id: string | undefined;
  data: string;
}

/** The events of an SSE body as a page listening for them sees them (not the hub's `hub:position`), and the id a browser would resume from. */
export function parseEvents(body: string): { events: ParsedEvent[]; lastId: string | undefined } {
  const events: ParsedEvent[] = [];
  let lastId: string | undefined;
  const parser = createParser({
    onEvent: (event) => {
      // the hub's position marker: a page that does not listen for it never sees it
      if (event.event === 'hub:position') return;
      events.push({ event: event.event ?? 'message', id: event.id, data: event.data });
    },
  });
  parser.feed(body);
  // The id a client resumes from, as a browser keeps it: that of the last complete event, whoever
  // listens to it (and id-only events, which eventsource-parser reports to no one); a cut-off last
  // event does not count.
  const complete = body.slice(0, body.lastIndexOf('\n\n') + 1);
  for (const match of complete.matchAll(/^id: (.*)$/gm)) lastId = match[1];
  return { events, lastId };
}

/** The data of a client's events of one name, in order. */
export function dataOf(client: { readonly body: string }, name = 'msg'): string[] {
  return parseEvents(client.body)
    .events.filter((e) => e.event === name)
    .map((e) => e.data);
}

/** '1' … 'n' as strings, as event data arrives. */
export const range = (from: number, to: number): string[] =>
  Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

/**
 * Publishes `msg` events whose data are `from` … `to` (each followed by `:` and `size` x's when `size`
 * is given); resolves with their ids, in order.
 */
export async function publishMany(
  hub: Hub,
  topic: string,
  from: number,
  to: number,
  size = 0,
): Promise<string[]> {
  const ids: string[] = [];
  for (let i = from; i <= to; i++) {
    ids.push(
      await hub.publish(topic, { event: 'msg', data: size > 0 ? `${i}:${'x'.repeat(size)}` : String(i) }),
    );
  }
  return ids;
}

import http from 'node:http';
import type { Socket } from 'node:net';
import { createParser } from 'eventsource-parser';
import express from 'express';
import {
  createHub,
  type Hub,
  type HubOptions,
  type SseMiddleware,
  type SseOptions,
  type SubscribeOptions,
  sseChannel,
} from '../../lib';
import { closeAll, listen, type Running } from './servers';
import { afterPendingEvents, untilAsync } from './wait';

/**
 * An Express 5 app whose `/feed/:topic` subscribes to `hub`, and `/topics/:list` to the comma-separated
 * topics of `list` on one stream (options from `subscribeOptions(req)`).
 */
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
  app.get('/topics/:list', (req, res) => {
    res.sse((hub as Hub).subscribe(String(req.params.list).split(','), req, subscribeOptions(req)));
  });
  const server = http.createServer(app);
  const connections = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });
  return Object.assign(await listen(server), { sse, connections });
}

/**
 * A test file's `hubOf(options)`: the hubs it makes are closed after each test, then every server and
 * client of ./servers.ts. Call it once, at the top of the file.
 */
export function hubsClosedAfterEach(): (options?: HubOptions) => Hub {
  const hubs: Hub[] = [];
  afterEach(async () => {
    await Promise.all(hubs.splice(0).map((hub) => hub.close()));
    await closeAll();
  });
  return (options) => {
    const hub = createHub(options);
    hubs.push(hub);
    return hub;
  };
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

/**
 * Publishes `msg` events `<topic>:<n>` for n in from … to, to each topic in turn, each in a turn of the
 * event loop of its own (events of several topics published in one turn reach a stream grouped by
 * topic); resolves with their ids, in order.
 */
export async function publishRounds(
  hub: Hub,
  topics: readonly string[],
  from: number,
  to: number,
): Promise<string[]> {
  const ids: string[] = [];
  for (let n = from; n <= to; n++) {
    for (const topic of topics) {
      ids.push(await hub.publish(topic, { event: 'msg', data: `${topic}:${n}` }));
      await afterPendingEvents();
    }
  }
  return ids;
}

/** The topic and number of an event whose data is `<topic>:<n>`, or `<topic>:<n> <padding>`. */
export function numbered(data: string): [topic: string, n: number] {
  const match = /^(.+):(\d+)(?: .*)?$/s.exec(data);
  if (!match) throw new Error(`not <topic>:<n>: ${data.slice(0, 40)}`);
  return [match[1]!, Number(match[2])];
}

/** The numbers of each topic's `msg` events (see {@link numbered}), in the order they arrived. */
export function byTopic(
  events: ReadonlyArray<{ readonly event?: string; readonly data: string }>,
): Record<string, number[]> {
  const seen: Record<string, number[]> = {};
  for (const event of events) {
    if (event.event !== undefined && event.event !== 'msg') continue;
    const [topic, n] = numbered(event.data);
    seen[topic] = [...(seen[topic] ?? []), n];
  }
  return seen;
}

/** from … to, as numbers. */
export const numbers = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Publishes a `msg` of `data` once the store takes it, retried under one key, `data` (applied once however many tries); its id, alone in an array. */
export async function untilPublished(hub: Hub, topic: string, data: string): Promise<string[]> {
  const ids: string[] = [];
  await untilAsync(
    () =>
      hub.publish(topic, { event: 'msg', data }, { idempotencyKey: data }).then(
        (id) => {
          ids.push(id);
          return true;
        },
        () => false,
      ),
    `a publish of ${data} to succeed`,
    10_000,
  );
  return ids;
}

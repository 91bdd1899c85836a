// Compiled by `npm run typecheck`: the helpers are typed on Express's res once the package is imported,
// and misuse is a compile error (each @ts-expect-error fails the check if the error disappears).
import http from 'node:http';
import express from 'express';
import {
  type Channel,
  chunked,
  type SseEventInput,
  type StreamingResponse,
  sseChannel,
  streamBody,
} from '../../lib';

const app = express();
app.use(streamBody());
app.use(chunked());
const sse = sseChannel();
app.use(sse);

app.get('/stream', async (_req, res) => {
  const outcome: 'finished' | 'aborted' | 'errored' = await res.stream(['json', 'array']);
  // @ts-expect-error a number is not a body
  await res.stream(42);
  return outcome;
});

app.get('/chunk', async (_req, res) => {
  const accepted: boolean = await res.chunk('token');
  const declared: boolean = res.setTrailer('x-checksum', 'abc');
  // @ts-expect-error chunks are strings or bytes
  await res.chunk({ token: 1 });
  return accepted && declared;
});

app.get('/events', (_req, res) => {
  const stream = res.sse<{ n: number }>();
  void stream.send({ event: 'tick', data: { n: 1 } });
  // @ts-expect-error the data type is narrowed by the type parameter
  void stream.send({ data: { n: 'one' } });
  res.sse((events: Channel<SseEventInput<string>>, ctx) => {
    void events.put({ data: ctx.lastEventId ?? 'first' });
  });
});

void sse.closeAll({ retryMs: 1000 });

http.createServer((req, res) => {
  streamBody()(req, res, () => {
    void (res as StreamingResponse).stream('plain node:http');
  });
});

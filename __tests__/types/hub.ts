// Compiled by `npm run typecheck`: a hub narrowed to an event map checks event/data pairs at compile
// time (each @ts-expect-error fails the check if the error disappears).
import express from 'express';
import { createHub, type HubMessage, sseChannel } from '../../lib';

interface ChatEvents {
  msg: { text: string };
  typing: { user: string };
}

const chat = createHub<ChatEvents>();
const app = express();
app.use(sseChannel());
app.get('/chat/:room', (req, res) => {
  res.sse(chat.subscribe(`room:${req.params.room}`, req, { filter: (m: HubMessage) => m.event === 'msg' }));
});

export async function publishes(): Promise<string[]> {
  return [
    await chat.publish('room:1', { event: 'msg', data: { text: 'hi' } }),
    await chat.publish('room:1', { event: 'typing', data: { user: 'ada' }, comment: 'ok' }),
  ];
}

export async function misuses(): Promise<void> {
  // @ts-expect-error `msg` carries { text }, not { user }
  await chat.publish('room:1', { event: 'msg', data: { user: 'ada' } });
  // @ts-expect-error no such event in the map
  await chat.publish('room:1', { event: 'join', data: {} });
  // @ts-expect-error the hub assigns ids
  await chat.publish('room:1', { event: 'msg', data: { text: 'hi' }, id: 7 });
  // @ts-expect-error an event map takes named events only
  await chat.publish('room:1', 'bare data');
}

// Without a map, any event or bare data.
const loose = createHub();
export const ids: Array<Promise<string>> = [
  loose.publish('t', 'bare data'),
  loose.publish('t', { event: 'x', data: [1, 2] }),
];

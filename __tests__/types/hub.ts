// Compiled by `npm run typecheck`: a hub narrowed to an event map checks event/data pairs at compile
// time (each @ts-expect-error fails the check if the error disappears).
import express from 'express';
import { createHub, type HubEventName, type HubMessage, type SubscribeOptions, sseChannel } from '../../lib';

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
// Many topics on one stream: any array of topics, readonly ones too.
const followed = ['room:1', 'user:7'] as const;
app.get('/feed', (req, res) => {
  res.sse(chat.subscribe(followed, req, { maxTopics: 8, filter: (m) => m.event !== 'typing' }));
});

// The filter of a hub with an event map gets its event names.
export const filters: Array<NonNullable<SubscribeOptions<ChatEvents>['filter']>> = [
  (m) => m.event === 'msg' && m.topic.startsWith('room:'),
  (m: HubMessage<HubEventName<ChatEvents>>) => m.data !== undefined,
  // @ts-expect-error no such event in the map: the comparison can never be true
  (m) => m.event === 'join',
];
export const named: HubMessage<'msg' | 'typing'>['event'] = 'typing';

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
  const req = { headers: {} };
  // @ts-expect-error topics are strings
  chat.subscribe(['room:1', 7], req);
  // @ts-expect-error a filter is a function of the message
  chat.subscribe('room:1', req, { filter: 'msg' });
}

// Without a map, any event or bare data, and a filter sees any name.
const loose = createHub();
loose.subscribe(['a', 'b'], { headers: {} }, { filter: (m) => m.event === 'anything' });
export const ids: Array<Promise<string>> = [
  loose.publish('t', 'bare data'),
  loose.publish('t', { event: 'x', data: [1, 2] }),
];

// Compiled by `npm run typecheck`: the browser client is typed by the same event map as the hub
// (each @ts-expect-error fails the check if the error disappears).
import { createHub, type ResetReason as HubResetReason } from '../../lib';
import { type EventStream, openStream, type ResetReason } from '../../lib/client';

interface ChatEvents {
  msg: { text: string };
  typing: { user: string };
}

// The map a server's hub publishes is the map a page listens with.
export const hub = createHub<ChatEvents>();
const stream: EventStream<ChatEvents> = openStream<ChatEvents>('/chat/room:1', {
  onReset: (reason: ResetReason, topic: string | undefined) => console.log(reason, topic),
});

export const stop: () => void = stream.on('msg', (data, event) => {
  const text: string = data.text;
  const id: string = event.lastEventId;
  console.log(text, id);
});
stream.on('typing', (data) => console.log(data.user.toUpperCase()));

export function misuses(): void {
  // @ts-expect-error no such event in the map
  stream.on('join', () => {});
  // @ts-expect-error `msg` carries { text }, not { user }
  stream.on('msg', (data: { user: string }) => console.log(data.user));
  // @ts-expect-error `typing` has no `text`
  stream.on('typing', (data) => console.log(data.text));
  // @ts-expect-error a reset goes to onReset, never to a listener
  openStream<{ reset: string }>('/x').on('reset', () => {});
  // @ts-expect-error an option that does not exist
  openStream('/x', { onreset: () => {} });
  // @ts-expect-error stored ids are strings
  openStream('/x', { storageKey: 42 });
}

// Without a map, any event name, its data unknown until checked.
const loose = openStream('/feed', { storageKey: null, parse: (data, type) => (type === 'text' ? data : 0) });
loose.on('anything', (data: unknown) => console.log(data));
export const state: 0 | 1 | 2 = loose.readyState;
export const last: string | undefined = loose.lastEventId;

// The client spells out the hub's reset reasons: the two lists are the same.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const sameReasons: Same<ResetReason, HubResetReason> = true;

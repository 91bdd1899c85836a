import { randomBytes } from 'node:crypto';

/**
 * A new epoch: a random token naming one life of a topic's log. Letters and digits only, so that an
 * id `<epoch>-<seq>` splits at its last `-` without ambiguity.
 */
export function newEpoch(): string {
  return randomBytes(9).toString('base64url').replace(/[-_]/g, 'x');
}

export function formatId(epoch: string, seq: number): string {
  return `${epoch}-${seq}`;
}

/** What a client's `Last-Event-ID` says, judged by numbers. */
export type ParsedId = { readonly epoch: string; readonly seq: number } | 'malformed';

const ID = /^([A-Za-z0-9]{1,64})-(0|[1-9][0-9]{0,15})$/;

export function parseId(text: string): ParsedId {
  const match = ID.exec(text);
  if (!match) return 'malformed';
  const seq = Number(match[2]);
  return Number.isSafeInteger(seq) ? { epoch: match[1]!, seq } : 'malformed';
}

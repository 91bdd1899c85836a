import net from 'node:net';
import { EventSource } from 'eventsource';
import { closeWithServers, dechunk } from './servers';
import { until } from './wait';

/**
 * A raw-socket SSE client: the exact bytes, with arrival times, and a way to stop reading. The next
 * `closeAll()` of servers.ts closes it.
 */
export class RawSseClient {
  readonly socket: net.Socket;
  readonly arrivals: Array<{ at: number; text: string }> = [];
  closed = false;
  #buffer = Buffer.alloc(0);

  constructor(port: number, path: string, headers: Record<string, string> = {}, version = '1.1') {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('data', (data: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, data]);
      this.arrivals.push({ at: Date.now(), text: data.toString('latin1') });
    });
    this.socket.on('close', () => {
      this.closed = true;
    });
    this.socket.on('error', () => {});
    const lines = [`GET ${path} HTTP/${version}`, 'Host: 127.0.0.1', 'Accept: text/event-stream'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    this.socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    closeWithServers(this);
  }

  get head(): string {
    const text = this.#buffer.toString('latin1');
    const end = text.indexOf('\r\n\r\n');
    return end === -1 ? '' : text.slice(0, end);
  }

  header(name: string): string | undefined {
    const line = this.head.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
    return line?.slice(line.indexOf(':') + 1).trim();
  }

  /** The de-chunked body so far. */
  get body(): string {
    const raw = this.#rawBody();
    return /chunked/i.test(this.header('transfer-encoding') ?? '')
      ? dechunk(raw).body.toString('utf8')
      : raw.toString();
  }

  /** Whether the chunked body ended with its final zero-length chunk. */
  get terminated(): boolean {
    return dechunk(this.#rawBody()).terminated;
  }

  async waitFor(predicate: (body: string) => boolean, what: string, ms = 3000): Promise<string> {
    await until(
      () => predicate(this.body),
      () => `${what}; body so far: ${JSON.stringify(this.body)}`,
      ms,
    );
    return this.body;
  }

  /** Waits for the end of the response: its final chunk (keep-alive may hold the socket), or the socket closing. */
  waitEnded(ms = 3000): Promise<void> {
    return until(
      () => this.closed || this.terminated,
      () => `the end; body so far: ${JSON.stringify(this.body)}`,
      ms,
    );
  }

  waitClosed(ms = 3000): Promise<void> {
    return until(() => this.closed, 'the server to close the connection', ms);
  }

  close(): void {
    this.socket.destroy();
  }

  #rawBody(): Buffer {
    const end = this.#buffer.indexOf('\r\n\r\n');
    return end === -1 ? Buffer.alloc(0) : this.#buffer.subarray(end + 4);
  }
}

export interface ReceivedEvent {
  type: string;
  data: string;
  lastEventId: string;
}

/** The real `eventsource` client, collecting events of the given types; the next `closeAll()` closes it. */
export function collectEvents(
  url: string,
  types: string[] = ['message'],
): { source: EventSource; events: ReceivedEvent[] } {
  const source = closeWithServers(new EventSource(url));
  const events: ReceivedEvent[] = [];
  for (const type of types) {
    source.addEventListener(type, (event) => {
      events.push({ type, data: event.data, lastEventId: event.lastEventId });
    });
  }
  return { source, events };
}

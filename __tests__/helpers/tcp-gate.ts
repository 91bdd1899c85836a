import net from 'node:net';

/**
 * A TCP gate in front of a server, for faults a server cannot make itself: while `open`, connections are
 * relayed; while shut, new connections are accepted and then held — no byte through, no answer — as a
 * half-dead network or a firewall dropping packets leaves them. Connections made while open go on.
 */
export class TcpGate {
  open = true;
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();

  private constructor(server: net.Server) {
    this.#server = server;
  }

  static async before(port: number): Promise<TcpGate> {
    const server = net.createServer();
    const gate = new TcpGate(server);
    server.on('connection', (client) => {
      gate.#track(client);
      if (!gate.open) return; // held: accepted, never relayed
      const upstream = net.connect(port, '127.0.0.1');
      gate.#track(upstream);
      client.pipe(upstream).pipe(client);
      upstream.on('close', () => client.destroy());
      client.on('close', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return gate;
  }

  get url(): string {
    return `redis://127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => this.#sockets.delete(socket));
  }
}

import type http from 'node:http';
import {
  type ChunkedResponse,
  chunked,
  type SseResponse,
  type StreamBody,
  type StreamOptions,
  type StreamOutcome,
  sseChannel,
  streamBody,
} from '../lib';
import { requireComponent } from './helpers/components';
import { findNginx, type Nginx, startNginx } from './helpers/nginx';
import { closeAll, type Handler, nodeHttpFramework } from './helpers/servers';
import { RawSseClient } from './helpers/sse-client';
import { deferred, sleep, until, untilStable } from './helpers/wait';

type Res = http.ServerResponse &
  ChunkedResponse &
  SseResponse & { stream(body: StreamBody, options?: StreamOptions): Promise<StreamOutcome> };

const nginxPath = findNginx();
const nginx = requireComponent('nginx', nginxPath !== undefined, 'REQUIRE_NGINX');

/** A client reading the raw bytes as they come, asking for the connection to close after the response. */
const readThrough = (port: number, path: string) => new RawSseClient(port, path, { Connection: 'close' });

/** [name, directives, whether nginx holds a close-delimited body back until its end] */
const CONFIGURATIONS: Array<[string, string, boolean]> = [
  ["nginx's defaults (proxy_buffering on, HTTP/1.0 to the upstream)", '', true],
  ['proxy_http_version 1.1', 'proxy_http_version 1.1; proxy_set_header Connection "";', false],
];

nginx.describe(`behind a real nginx${nginx.label}`, () => {
  describe.each(CONFIGURATIONS)('with %s', (_name, location, holdsBodies) => {
    let proxy: Nginx | undefined;
    const gates: Array<{ promise: Promise<void>; resolve: () => void }> = [];
    const outcomes: StreamOutcome[] = [];
    /** A gated generator wrote its first part and waits on its gate. */
    let reachedGate = false;

    afterEach(async () => {
      for (const gate of gates.splice(0)) gate.resolve();
      outcomes.splice(0);
      reachedGate = false;
      await proxy?.stop();
      proxy = undefined;
      await closeAll();
    });

    /** The app behind a new nginx: the proxy, and the app's own port for looking past it. */
    async function serveBehindNginx(): Promise<{ proxy: Nginx; upstreamPort: number }> {
      const gated = (options?: StreamOptions): Handler => {
        return (_req, res) => {
          const gate = deferred();
          gates.push(gate);
          void (res as Res)
            .stream(
              (async function* () {
                yield 'first;';
                // asked for more: the write loop has written the first part
                reachedGate = true;
                await gate.promise;
                yield 'second;';
              })(),
              options,
            )
            .then((outcome) => outcomes.push(outcome));
        };
      };
      const app = await nodeHttpFramework.listen({
        use: [
          streamBody() as unknown as Handler,
          chunked() as unknown as Handler,
          sseChannel({ retryMs: null }) as unknown as Handler,
        ],
        routes: {
          '/generator': gated(),
          '/buffered': gated({ proxyBuffering: true }),
          '/chunk': (_req, res) => {
            const gate = deferred();
            gates.push(gate);
            void (async () => {
              await (res as Res).chunk('first;');
              await gate.promise;
              await (res as Res).chunk('second;');
              res.end();
            })();
          },
          '/sse': (_req, res) => {
            const gate = deferred();
            gates.push(gate);
            const stream = (res as Res).sse();
            void stream.send('first').then(() => gate.promise.then(() => stream.close()));
          },
          '/failing': (_req, res) =>
            void (res as Res).stream(
              (async function* () {
                yield 'partial;';
                await sleep(20);
                throw new Error('the source failed');
              })(),
            ),
        },
      });
      proxy = await startNginx(nginxPath!, app.port, location);
      return { proxy, upstreamPort: app.port };
    }

    it.each([
      ['res.stream(generator)', '/generator', 'first;'],
      ['res.chunk()', '/chunk', 'first;'],
      ['res.sse()', '/sse', 'data: first\n\n'],
    ])('passes %s on as it is written, not at its end', async (_what, route, first) => {
      const { proxy, upstreamPort } = await serveBehindNginx();
      // What tells nginx to pass the body on: the upstream's header (nginx itself never forwards it).
      const direct = readThrough(upstreamPort, route);
      await until(() => direct.head !== '', 'the upstream head');
      expect(direct.head).toMatch(/\r\nx-accel-buffering: no\r\n/i);
      direct.close();
      const client = readThrough(proxy.port, route);
      // The producer waits on its gate: the first part can only arrive if nginx passed it on.
      await until(
        () => client.body === first,
        () => `"${first}" through nginx before the end; got ${JSON.stringify(client.body)}`,
      );
      for (const gate of gates) gate.resolve();
      await until(() => client.closed, 'the end');
      expect(client.terminated).toBe(true);
    });

    it(`${holdsBodies ? 'holds' : 'passes on'} a body whose app kept the proxy's buffering (proxyBuffering: true)`, async () => {
      const { proxy } = await serveBehindNginx();
      const client = readThrough(proxy.port, '/buffered');
      await until(() => reachedGate, 'the upstream to write its first part');
      // With its defaults nginx holds the body while it is not over: what X-Accel-Buffering: no prevents.
      if (holdsBodies) {
        expect(await untilStable(() => client.body, 'what passed nginx', { quietMs: 300 })).toBe('');
      } else {
        await until(() => client.body === 'first;', 'the first part through nginx');
      }
      gates[0]?.resolve();
      await until(() => client.closed, 'the end');
      expect(client.body).toBe('first;second;');
      expect(client.terminated).toBe(true);
      expect(outcomes).toEqual(['finished']);
    });

    it('shows a failure after the head to the client as a truncated body, never a clean end', async () => {
      const { proxy } = await serveBehindNginx();
      const client = readThrough(proxy.port, '/failing');
      await until(() => client.closed, 'the connection to close', 5000);
      expect(client.head).toMatch(/^HTTP\/1\.1 200 /);
      expect(client.body).toBe('partial;');
      expect(client.terminated).toBe(false);
      expect(proxy?.errorLog()).toMatch(/upstream|reset by peer|prematurely closed/);
    });
  });
});

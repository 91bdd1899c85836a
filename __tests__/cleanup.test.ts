import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import zlib from 'node:zlib';
import compression from 'compression';
import {
  type ChunkedResponse,
  chunked,
  file,
  type SseResponse,
  type StreamBody,
  type StreamContext,
  type StreamOutcome,
  sseChannel,
  streamBody,
} from '../lib';
import { type ListenerCounts, listenerCounts, nodeProcess, openFileDescriptors } from './helpers/resources';
import {
  abortAfter,
  type Handler,
  httpGet,
  listen,
  nodeHttpFramework,
  type Running,
} from './helpers/servers';
import { deferred, until } from './helpers/wait';

const FILES = path.join(__dirname, 'fixtures', 'files');
const ABORTS_PER_KIND = 50;
const CONCURRENCY = 10;

type Res = http.ServerResponse & { stream(body: StreamBody): Promise<StreamOutcome> };
/** How many descriptors are open beyond `baseline`, once they are back to it or after a second. */
async function descriptorsAbove(baseline: number): Promise<number> {
  // A count still above the baseline after the wait is the answer, not an error.
  await until(() => openFileDescriptors() <= baseline, 'descriptors back to baseline', 1000).catch(() => {});
  return Math.max(0, openFileDescriptors() - baseline);
}

/** An endless source that holds a file descriptor (of /dev/zero) for as long as it is open. */
const ZERO = '/dev/zero';
const CHUNK = 16 * 1024;

/** Every body kind, each holding a descriptor while it streams and endless, so only an abort ends it. */
function bodyOf(kind: string, bigFile: string): StreamBody {
  switch (kind) {
    case 'generator':
      return (async function* () {
        const handle = await fs.promises.open(ZERO, 'r');
        try {
          for (;;) {
            const { buffer, bytesRead } = await handle.read(Buffer.alloc(CHUNK), 0, CHUNK, null);
            yield buffer.subarray(0, bytesRead);
          }
        } finally {
          await handle.close();
        }
      })();
    case 'Readable':
      return fs.createReadStream(ZERO, { highWaterMark: CHUNK });
    case 'web stream': {
      let handle: fs.promises.FileHandle | undefined;
      return new ReadableStream<Uint8Array>({
        async start() {
          handle = await fs.promises.open(ZERO, 'r');
        },
        async pull(controller) {
          const { buffer, bytesRead } = await handle!.read(Buffer.alloc(CHUNK), 0, CHUNK, null);
          controller.enqueue(buffer.subarray(0, bytesRead));
        },
        async cancel() {
          await handle?.close();
        },
      });
    }
    case 'function body':
      return (out: Writable, _ctx: StreamContext) => {
        fs.createReadStream(ZERO, { highWaterMark: CHUNK }).pipe(out);
      };
    case 'file':
      return file(bigFile);
    default:
      throw new Error(`no such kind: ${kind}`);
  }
}

const KINDS = ['generator', 'Readable', 'web stream', 'function body', 'file'];

describe('clean-up', () => {
  let tmp: string;
  let bigFile: string;
  // Collected over the whole file: the aborts run in a beforeAll, before any beforeEach.
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  const maxListenersWarnings = () => warnings.filter((w) => w.name === 'MaxListenersExceededWarning');

  beforeAll(() => {
    nodeProcess.on('warning', onWarning);
    // A sparse 64 MiB file: far more than socket buffers hold, so a client leaving always cuts it short.
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'express-streaming-cleanup-'));
    bigFile = path.join(tmp, 'sparse.bin');
    fs.writeFileSync(bigFile, '');
    fs.truncateSync(bigFile, 64 * 1024 * 1024);
  });
  afterAll(() => {
    nodeProcess.off('warning', onWarning);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe(`after ${ABORTS_PER_KIND} aborted streams of each kind on one server`, () => {
    let app: Running;
    let baselineDescriptors: number;
    const leakedDescriptors = new Map<string, number>();
    const outcomes = new Map<string, StreamOutcome[]>();
    const responses: Array<{ kind: string; res: http.ServerResponse; before: ListenerCounts }> = [];

    beforeAll(async () => {
      const routes: Record<string, Handler> = {};
      for (const kind of KINDS) {
        outcomes.set(kind, []);
        routes[`/${encodeURIComponent(kind)}`] = (_req, res) => {
          responses.push({ kind, res, before: listenerCounts(res) });
          void (res as Res).stream(bodyOf(kind, bigFile)).then((o) => outcomes.get(kind)?.push(o));
        };
      }
      app = await nodeHttpFramework.listen({ use: [streamBody() as unknown as Handler], routes });
      baselineDescriptors = openFileDescriptors();
      for (const kind of KINDS) {
        const route = `/${encodeURIComponent(kind)}`;
        for (let done = 0; done < ABORTS_PER_KIND; done += CONCURRENCY) {
          await Promise.all(
            Array.from({ length: CONCURRENCY }, () =>
              // Past the head and into the body, then the client leaves.
              abortAfter(app.port, route, (bytes) => bytes.length > 4096),
            ),
          );
        }
        await until(() => outcomes.get(kind)?.length === ABORTS_PER_KIND, `${kind} streams to settle`);
        // Counted against the baseline, less what earlier kinds leaked, so each kind answers for its own.
        const leakedSoFar = [...leakedDescriptors.values()].reduce((a, b) => a + b, 0);
        leakedDescriptors.set(kind, (await descriptorsAbove(baselineDescriptors)) - leakedSoFar);
      }
    }, 15_000);

    afterAll(() => app.close());

    it.each(KINDS)('%s: every stream resolved "aborted"', (kind) => {
      expect(outcomes.get(kind)).toEqual(Array(ABORTS_PER_KIND).fill('aborted'));
    });

    it.each(KINDS)(
      '%s: the open file descriptors are back to what they were once the server had started',
      (kind) => {
        expect(leakedDescriptors.get(kind)).toBe(0);
      },
    );

    it('all kinds together: the descriptors are back to the baseline', async () => {
      expect(await descriptorsAbove(baselineDescriptors)).toBe(0);
    });

    it.each(KINDS)('%s: no listener is left on the responses', (kind) => {
      const mine = responses.filter((r) => r.kind === kind);
      expect(mine).toHaveLength(ABORTS_PER_KIND);
      for (const { res, before } of mine) expect(listenerCounts(res)).toEqual(before);
    });

    it('no MaxListenersExceededWarning was emitted', async () => {
      await new Promise((resolve) => setImmediate(resolve));
      expect(maxListenersWarnings()).toEqual([]);
    });
  });

  describe('under compression(), on a long compressed stream', () => {
    // compression() moves 'drain' listeners onto its zlib stream; incompressible bytes make zlib's
    // buffer fill on every write, so every chunk waits for a drain.
    const CHUNKS = 256;
    const chunk = () => crypto.randomBytes(64 * 1024);
    const helpers: Array<[string, (res: http.ServerResponse, sample: () => void) => Promise<unknown>]> = [
      [
        'res.stream',
        (res, sample) =>
          (res as Res).stream(
            (async function* () {
              for (let i = 0; i < CHUNKS; i++) {
                sample();
                yield chunk();
              }
            })(),
          ),
      ],
      [
        'res.chunk',
        async (res, sample) => {
          for (let i = 0; i < CHUNKS; i++) {
            sample();
            await (res as unknown as ChunkedResponse).chunk(chunk());
          }
          res.end();
        },
      ],
      [
        'res.sse',
        async (res, sample) => {
          const stream = (res as unknown as SseResponse).sse();
          for (let i = 0; i < CHUNKS; i++) {
            sample();
            await stream.send(chunk().toString('base64'));
          }
          stream.close();
        },
      ],
    ];

    it.each(helpers)('%s keeps one drain listener per response, however many waits', async (_name, write) => {
      // zlib's exports are read-only (jest.spyOn cannot assign them) but configurable.
      const createGzip = zlib.createGzip;
      const gzips: zlib.Gzip[] = [];
      Object.defineProperty(zlib, 'createGzip', {
        configurable: true,
        value: (options?: zlib.ZlibOptions) => {
          const gzip = createGzip(options);
          gzips.push(gzip);
          return gzip;
        },
      });
      let most = 0;
      const sample = () => {
        most = Math.max(most, gzips[0]?.listenerCount('drain') ?? 0);
      };
      const done = deferred();
      const app = await nodeHttpFramework.listen({
        use: [
          compression({ threshold: 0 }) as unknown as Handler,
          streamBody() as unknown as Handler,
          chunked() as unknown as Handler,
          sseChannel({
            retryMs: null,
            bufferBytes: null,
            headers: { 'Cache-Control': 'no-cache' },
          }) as unknown as Handler,
        ],
        routes: {
          '/': (_req, res) => {
            res.setHeader('Content-Type', 'text/plain');
            res.setHeader('Cache-Control', 'no-cache');
            void write(res, sample).then(() => done.resolve());
          },
        },
      });
      try {
        const got = await httpGet(`${app.url}/`, { headers: { 'Accept-Encoding': 'gzip' } });
        await done.promise;
        expect(got.complete).toBe(true);
        expect(got.headers['content-encoding']).toBe('gzip');
        expect(zlib.gunzipSync(got.body).length).toBeGreaterThanOrEqual(CHUNKS * 64 * 1024);
        expect(gzips).toHaveLength(1);
        // compression() moves 'drain' listeners onto its zlib stream: the writer's one is there while it
        // waits (at least one wait happened, or this would test nothing), and never one per wait
        expect(most).toBeGreaterThanOrEqual(1);
        expect(most).toBeLessThanOrEqual(2);
        await new Promise((resolve) => setImmediate(resolve));
        expect(maxListenersWarnings()).toEqual([]);
      } finally {
        Object.defineProperty(zlib, 'createGzip', { configurable: true, value: createGzip });
        await app.close();
      }
    });
  });

  describe('on one keep-alive connection', () => {
    it('400 sequential res.stream() calls leave no listeners behind and no MaxListenersExceededWarning', async () => {
      const leftOnRes: string[] = [];
      const sockets = new Set<unknown>();
      const socketCounts: ListenerCounts[] = [];
      const bodies: Array<() => StreamBody> = [
        () =>
          (async function* () {
            yield 'gen';
          })(),
        () => fs.createReadStream(path.join(FILES, 'name.txt')),
        () => new Blob(['blob']),
        () => (out: Writable) => {
          out.end('fn');
        },
        () => file('name.txt', { root: FILES }),
        () => ['json'],
      ];
      const expected = ['gen', 'tobi', 'blob', 'fn', 'tobi', '["json"]'];
      let served = 0;
      const server = http.createServer((req, res) => {
        sockets.add(req.socket);
        socketCounts.push(listenerCounts(req.socket));
        const i = served++ % bodies.length;
        streamBody()(req, res, () => {
          const before = listenerCounts(res);
          void (res as Res).stream(bodies[i]!()).then(() => {
            const after = listenerCounts(res);
            if (JSON.stringify(after) !== JSON.stringify(before)) {
              leftOnRes.push(JSON.stringify({ before, after }));
            }
          });
        });
      });
      const app = await listen(server);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let n = 0; n < 400; n++) {
          const body = await new Promise<string>((resolve, reject) => {
            http
              .get(`${app.url}/`, { agent }, (res) => {
                const parts: Buffer[] = [];
                res.on('data', (d: Buffer) => parts.push(d));
                res.on('end', () => resolve(Buffer.concat(parts).toString()));
              })
              .on('error', reject);
          });
          expect(body).toBe(expected[n % expected.length]);
        }
      } finally {
        agent.destroy();
        await app.close();
      }
      expect(served).toBe(400);
      expect(sockets.size).toBe(1);
      // What the socket carries is the same on the last request as on the second: nothing piles up.
      expect(socketCounts[399]).toEqual(socketCounts[1]);
      expect(leftOnRes).toEqual([]);
      await new Promise((resolve) => setImmediate(resolve));
      expect(maxListenersWarnings()).toEqual([]);
    });
  });
});

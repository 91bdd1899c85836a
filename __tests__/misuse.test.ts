import type http from 'node:http';
import {
  chunked,
  jsonArray,
  ndjson,
  type SseResponse,
  type StreamBody,
  type StreamOutcome,
  sseChannel,
  streamBody,
} from '../lib';
import { closeAll, frameworks, type Handler, httpGet, rawRequest } from './helpers/servers';
import { until } from './helpers/wait';

type Res = http.ServerResponse & SseResponse & { stream(body: StreamBody): Promise<StreamOutcome> };

afterEach(closeAll);

describe.each(frameworks)('mistakes caught under $name', (framework) => {
  function errorRecorder(errors: unknown[]) {
    // four parameters: Express tells error handlers by their arity
    return (err: unknown, _req: http.IncomingMessage, res: http.ServerResponse, _next: unknown) => {
      errors.push(err);
      res.statusCode = 500;
      res.end('handled');
    };
  }

  describe.each([
    ['streamBody', streamBody],
    ['chunked', chunked],
    ['sseChannel', sseChannel],
  ])('app.use(%s) without its call', (name, factory) => {
    it(`answers every request with an error that says to call it: app.use(${name}())`, async () => {
      const errors: unknown[] = [];
      const app = await framework.listen({
        use: [factory as unknown as Handler],
        routes: { '/': (_req, res) => res.end('route reached') },
        onError: errorRecorder(errors),
      });
      const got = await httpGet(`${app.url}/`);
      expect(got.status).toBe(500);
      expect(got.body.toString()).toBe('handled');
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(TypeError);
      expect(String(errors[0])).toContain(`call it: app.use(${name}())`);
    });
  });

  it('res.sse(generatorFunction) is a TypeError that says to call it', async () => {
    let thrown: unknown;
    const app = await framework.listen({
      use: [sseChannel() as unknown as Handler],
      routes: {
        '/': (_req, res) => {
          try {
            (res as Res).sse(async function* ticks() {
              yield 'never';
            } as never);
          } catch (error) {
            thrown = error;
            res.end('refused');
          }
        },
      },
    });
    expect((await rawRequest(app.port, '/')).body.toString()).toBe('refused');
    expect(thrown).toBeInstanceOf(TypeError);
    expect(String(thrown)).toContain('call it: res.sse(ticks())');
  });
});

describe('ndjson() and jsonArray() given a generator function', () => {
  it.each([
    ['ndjson', ndjson],
    ['jsonArray', jsonArray],
  ])('%s says to call it', (name, wrap) => {
    async function* rows() {
      yield { id: 1 };
    }
    expect(() => wrap(rows as never)).toThrow(
      new TypeError(
        `${name}: got the generator function rows itself, not what it generates; call it: ${name}(rows())`,
      ),
    );
  });
});

describe('errors no handler can answer any more are never silent', () => {
  const environment = process.env.NODE_ENV;
  let logged: unknown[][] = [];
  beforeEach(() => {
    logged = [];
    jest.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
      logged.push(args);
    });
  });
  afterEach(() => {
    process.env.NODE_ENV = environment;
    jest.restoreAllMocks();
  });

  async function failAfterFirstByte(): Promise<StreamOutcome[]> {
    const outcomes: StreamOutcome[] = [];
    const app = await frameworks[0]!.listen({
      use: [streamBody() as unknown as Handler],
      routes: {
        '/': (_req, res) => {
          void (res as Res)
            .stream(
              (async function* () {
                yield 'first';
                yield 42 as unknown as string;
              })(),
            )
            .then((outcome) => outcomes.push(outcome));
        },
      },
    });
    const raw = await rawRequest(app.port, '/');
    expect(raw.terminated).toBe(false);
    await until(() => outcomes.length === 1, 'the outcome');
    return outcomes;
  }

  it('reports an error after the first byte on console.error, as Express reports errors', async () => {
    process.env.NODE_ENV = 'production';
    expect(await failAfterFirstByte()).toEqual(['errored']);
    expect(logged).toHaveLength(1);
    expect(String(logged[0]?.[0])).toMatch(
      /an iterable item must be a string or a Uint8Array, got number \(42\)/,
    );
  });

  it('stays quiet under NODE_ENV=test, as Express does', async () => {
    process.env.NODE_ENV = 'test';
    expect(await failAfterFirstByte()).toEqual(['errored']);
    expect(logged).toEqual([]);
  });

  it("reports an SSE source's failure on console.error", async () => {
    process.env.NODE_ENV = 'production';
    const app = await frameworks[0]!.listen({
      use: [sseChannel({ retryMs: null }) as unknown as Handler],
      routes: {
        '/': (_req, res) => {
          (res as Res).sse(
            (async function* () {
              yield 'first';
              throw new Error('the feed broke');
            })(),
          );
        },
      },
    });
    await rawRequest(app.port, '/');
    await until(() => logged.length === 1, 'the report');
    expect(String(logged[0]?.[0])).toContain('the feed broke');
  });
});

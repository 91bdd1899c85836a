import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BUILD_OUTPUTS } from './helpers/global-setup';

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist');
const FIXTURES = path.join(__dirname, 'fixtures', 'dual');

interface Arrived {
  status: number;
  type: string | null;
  body: string;
  complete: boolean;
}

interface AcrossBuilds {
  identity: { distinctCopies: boolean; sameStreamableSymbol: boolean };
  results: Record<string, Arrived>;
  outcomes: Record<string, string>;
}

/** Runs a fixture script in its own `node` process and parses the JSON it prints. */
function runFixture<T>(script: string): Promise<T> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(FIXTURES, script)],
      { cwd: ROOT, timeout: 10_000, env: { ...process.env, NODE_OPTIONS: '' } },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`${script} failed: ${error.message}\n${stderr}`));
          return;
        }
        try {
          resolve(JSON.parse(stdout) as T);
        } catch {
          reject(new Error(`${script} printed no JSON:\n${stdout}\n${stderr}`));
        }
      },
    );
  });
}

const EXPECTED_BODIES: Record<string, Partial<Arrived>> = {
  '/streamable': { type: 'text/x-streamable', body: 'written by itself' },
  '/ndjson': { type: 'application/x-ndjson', body: '{"id":1}\n{"id":2,"name":"Ada"}\n' },
  '/json-array': { type: 'application/json; charset=utf-8', body: '[1,2,3]' },
  '/file': { type: 'text/plain; charset=utf-8', body: 'tobi' },
};

const EXPORTS = {
  streamBody: 'function',
  sendStream: 'function',
  file: 'function',
  ndjson: 'function',
  jsonArray: 'function',
  StreamableBody: 'symbol',
};

describe('ESM and CommonJS builds', () => {
  it('exist in dist/: an ESM and a CommonJS entry, each with its types', () => {
    for (const name of BUILD_OUTPUTS) expect(fs.statSync(path.join(DIST, name)).size).toBeGreaterThan(0);
    expect(fs.readFileSync(path.join(DIST, 'index.cjs'), 'utf8')).toMatch(/module\.exports|exports\./);
    expect(fs.readFileSync(path.join(DIST, 'index.js'), 'utf8')).toMatch(/^export \{/m);
  });

  describe.each([
    ['the CommonJS streamBody() streams bodies made by the ESM build', 'esm-bodies-cjs-middleware.mjs'],
    ['the ESM streamBody() streams bodies made by the CommonJS build', 'cjs-bodies-esm-middleware.cjs'],
  ])('in one process, %s', (_title, script) => {
    let run: AcrossBuilds;
    beforeAll(async () => {
      run = await runFixture<AcrossBuilds>(script);
    }, 15_000);

    it('with both copies really loaded, sharing only the Symbol.for symbols', () => {
      expect(run.identity).toEqual({ distinctCopies: true, sameStreamableSymbol: true });
    });

    it.each([
      [
        'a StreamableBody object made with the other build’s symbol, with its own content type',
        '/streamable',
      ],
      ['an ndjson() body', '/ndjson'],
      ['a jsonArray() body', '/json-array'],
      ['a file() body, typed from its extension', '/file'],
    ])('%s', (_name, route) => {
      expect(run.results[route]).toEqual({ status: 200, complete: true, ...EXPECTED_BODIES[route] });
      expect(run.outcomes[route]).toBe('finished');
    });
  });

  describe.each([
    ['ESM', 'redis-entry.mjs'],
    ['CommonJS', 'redis-entry.cjs'],
  ])('express-streaming/redis beside express-streaming (%s)', (_format, script) => {
    it('shares one copy of each class: an error the Redis store throws is the main entry’s HubStoreError', async () => {
      expect(await runFixture(script)).toEqual({ name: 'HubStoreError', sameClass: true, sameMessage: true });
    });
  });

  describe.each([
    ['ESM', 'testing-entry.mjs'],
    ['CommonJS', 'testing-entry.cjs'],
  ])('express-streaming/testing (%s)', (_format, script) => {
    it('runs the store contract on the main entry’s memory store: nothing fails', async () => {
      const got = await runFixture<{ checks: number; passed: number; failed: string[]; skipped: number }>(
        script,
      );
      expect(got.failed).toEqual([]);
      expect(got.passed + got.skipped).toBe(got.checks);
      expect(got.passed).toBeGreaterThan(got.skipped);
    });
  });

  describe('resolution by the package’s own name, through its exports map', () => {
    it('import() gives dist/index.js and require() gives dist/index.cjs, with the public API', async () => {
      const got = await runFixture<{
        importResolved: string;
        requireResolved: string;
        importExports: Record<string, string>;
        requireExports: Record<string, string>;
        distinctCopies: boolean;
        sameStreamableSymbol: boolean;
      }>('self-reference.mjs');
      expect(got.importResolved).toBe(path.join(DIST, 'index.js'));
      expect(got.requireResolved).toBe(path.join(DIST, 'index.cjs'));
      expect(got.importExports).toEqual(EXPORTS);
      expect(got.requireExports).toEqual(EXPORTS);
      expect(got.distinctCopies).toBe(true);
      expect(got.sameStreamableSymbol).toBe(true);
    });

    it('works from a CommonJS file too (require and import())', async () => {
      const got = await runFixture<{
        requireResolved: string;
        importExports: Record<string, string>;
        requireExports: Record<string, string>;
        distinctCopies: boolean;
      }>('self-reference.cjs');
      expect(got.requireResolved).toBe(path.join(DIST, 'index.cjs'));
      expect(got.importExports).toEqual(EXPORTS);
      expect(got.requireExports).toEqual(EXPORTS);
      expect(got.distinctCopies).toBe(true);
    });
  });
});

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  linkDependencies,
  packTarball,
  ROOT,
  removeScratch,
  scratchDir,
  unpackInto,
} from './helpers/package';
import { importsOf, readmeBlocks } from './helpers/readme';

/**
 * A CommonJS app's TypeScript (no `"type": "module"`) using both entry points, as the packed package
 * is installed: it compiles under every module resolution a tsconfig may choose. Each
 * `@ts-expect-error` fails the compile if the types it checks became `any`; an entry point without
 * types is a TS2307. (That every client major's own types fit `redisStore()` is checked by
 * `npm run typecheck`, in `__tests__/types/redis-clients.ts`.)
 */
const CONSUMER = `
import express from 'express';
import Redis from 'ioredis';
import { createHub, file, type Hub, sseChannel, streamBody } from 'express-streaming';
import { type RedisStoreOptions, redisStore } from 'express-streaming/redis';

const options: RedisStoreOptions = { prefix: 'app', maxLen: 1000 };
export const hub: Hub = createHub({ store: redisStore(new Redis(), options) });

const app = express();
app.use(streamBody());
app.use(sseChannel());
app.get('/feed', (req, res) => {
  res.sse(hub.subscribe('news', req));
});
app.get('/report', (_req, res, next) => {
  res.stream(file('/srv/report.csv')).then(() => undefined, next);
});

// @ts-expect-error maxLen is a number
redisStore(new Redis(), { maxLen: 'many' });
// @ts-expect-error res.stream() takes a body, not a number
app.get('/wrong', (_req, res) => res.stream(42));
`;

/** The module resolutions a tsconfig may choose: the legacy default (node10), Node's own (node16), bundlers'. */
const RESOLUTIONS = {
  node10: { module: 'commonjs', moduleResolution: 'node10' },
  node16: { module: 'node16', moduleResolution: 'node16' },
  bundler: { module: 'preserve', moduleResolution: 'bundler' },
};

/** What `tsc --build --verbose` printed for each project, by resolution. */
const printed: Record<string, string> = {};
let app: string | undefined;

beforeAll(async () => {
  app = scratchDir('types');
  await unpackInto(await packTarball(app), app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'legacy-app', private: true }));
  fs.writeFileSync(path.join(app, 'app.ts'), CONSUMER);
  // the README's TypeScript, compiled as an app's own files, with what it imports installed beside
  const examples = readmeBlocks().filter((block) => block.lang === 'ts');
  for (const block of examples) fs.writeFileSync(path.join(app, `readme-${block.line}.ts`), block.code);
  const installed = new Set(['@types', 'express', 'ioredis', ...examples.flatMap((b) => importsOf(b.code))]);
  installed.delete('express-streaming');
  linkDependencies(app, Object.fromEntries([...installed].map((name) => [name, name])));
  for (const [name, resolution] of Object.entries(RESOLUTIONS)) {
    // what `tsc --init` writes, with a target that has #private fields (ES5 has none), and the
    // decorators NestJS uses
    const compilerOptions = {
      strict: true,
      esModuleInterop: true,
      skipLibCheck: true,
      target: 'es2019',
      experimentalDecorators: true,
      types: ['node'],
      noEmit: true,
      ...resolution,
    };
    fs.writeFileSync(
      path.join(app, `tsconfig.${name}.json`),
      JSON.stringify({ compilerOptions, files: ['app.ts', ...examples.map((b) => `readme-${b.line}.ts`)] }),
    );
  }
  // one process for the three projects: they share what they parse
  const output = await tsc(app, [
    '--build',
    '--verbose',
    ...Object.keys(RESOLUTIONS).map((n) => `tsconfig.${n}.json`),
  ]);
  for (const section of output.split(/^.*Building project '.*\/tsconfig\.(?=\w+\.json')/m).slice(1)) {
    printed[section.slice(0, section.indexOf('.'))] = section.slice(section.indexOf('\n') + 1);
  }
}, 60_000);
afterAll(() => removeScratch(app));

function tsc(cwd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), ...args],
      { cwd, timeout: 60_000 },
      (_error, stdout, stderr) => resolve(stdout + stderr),
    );
  });
}

describe('the packed package, type-checked by a CommonJS TypeScript app', () => {
  it.each(Object.keys(RESOLUTIONS))(
    "compiles imports of express-streaming and express-streaming/redis, and the README's TypeScript, under %s resolution",
    (name) => {
      expect(printed[name]).toBeDefined();
      expect(printed[name]!.match(/error TS\d+.*/g) ?? []).toEqual([]);
    },
  );
});

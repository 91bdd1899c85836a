import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
/** What the build reads: a change to any of them makes `dist/` stale. */
const INPUTS = ['lib', 'tsup.config.ts', 'package.json', 'tsconfig.json'];
/**
 * What the build writes to `dist/`: every Node entry point, in both module formats, with its types;
 * the browser client, ESM only.
 */
export const BUILD_OUTPUTS = [
  'index.js',
  'index.cjs',
  'index.d.ts',
  'index.d.cts',
  'redis.js',
  'redis.cjs',
  'redis.d.ts',
  'redis.d.cts',
  'client.js',
  'client.d.ts',
  'testing.js',
  'testing.cjs',
  'testing.d.ts',
  'testing.d.cts',
];

function newestMtime(entry: string): number {
  const stat = fs.statSync(entry);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const name of fs.readdirSync(entry)) newest = Math.max(newest, newestMtime(path.join(entry, name)));
  return newest;
}

function oldestOutput(): number {
  let oldest = Number.POSITIVE_INFINITY;
  for (const name of BUILD_OUTPUTS) {
    const file = path.join(ROOT, 'dist', name);
    if (!fs.existsSync(file)) return 0;
    oldest = Math.min(oldest, fs.statSync(file).mtimeMs);
  }
  return oldest;
}

/**
 * Tests of the built package (both module formats, the example app's child processes) must never run
 * against a `dist/` older than `lib/`: a bare `npx jest` after an edit rebuilds first.
 */
export default function buildIfStale(): void {
  const newestInput = Math.max(...INPUTS.map((entry) => newestMtime(path.join(ROOT, entry))));
  if (oldestOutput() >= newestInput) return;
  process.stderr.write('\ndist/ is older than lib/: building it with tsup first\n');
  execFileSync('npx', ['tsup', '--silent'], { cwd: ROOT, stdio: 'inherit', timeout: 120_000 });
}

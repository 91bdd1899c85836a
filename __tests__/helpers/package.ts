import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const ROOT = path.resolve(__dirname, '..', '..');

/** A directory of a test's own under the OS's temporary directory; removed by {@link removeScratch}. */
export function scratchDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `express-streaming-${name}-`));
}

export function removeScratch(dir: string | undefined): void {
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * `npm pack` of the package as built (global setup builds `dist/` first): the tarball a user installs,
 * holding only what `files` lets in. Resolves with its path inside `into`.
 */
export async function packTarball(into: string): Promise<string> {
  const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', into], {
    cwd: ROOT,
    timeout: 60_000,
  });
  return path.join(into, stdout.trim().split('\n').at(-1)!);
}

/** The tarball's contents as `node_modules/express-streaming` of `app` (what npm would unpack there). */
export async function unpackInto(tarball: string, app: string): Promise<void> {
  const target = path.join(app, 'node_modules', 'express-streaming');
  fs.mkdirSync(target, { recursive: true });
  await run('tar', ['xzf', tarball, '-C', target, '--strip-components=1']);
}

/**
 * Makes packages installed in the repository resolvable from `app` as a user's install would: each
 * `name: installed` links `app/node_modules/<name>` to the repository's `node_modules/<installed>`
 * (`{ express: 'express4' }` gives the app Express 4).
 */
export function linkDependencies(app: string, links: Record<string, string>): void {
  for (const [name, installed] of Object.entries(links)) {
    const link = path.join(app, 'node_modules', name);
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'node_modules', installed), link, 'dir');
  }
}

/** The repository itself as `app/node_modules/express-streaming`: resolved by its name, through `exports`, to `dist/`. */
export function linkPackage(app: string): void {
  fs.mkdirSync(path.join(app, 'node_modules'), { recursive: true });
  fs.symlinkSync(ROOT, path.join(app, 'node_modules', 'express-streaming'), 'dir');
}

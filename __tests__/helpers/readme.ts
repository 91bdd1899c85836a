import fs from 'node:fs';
import path from 'node:path';

/**
 * A fenced code block of README.md. Its info string says how the README test uses it:
 *
 * - `js run=<name>`, `mjs run=<name>`, `ts run=<name>`: a whole program (CommonJS, an ES module,
 *   TypeScript compiled to CommonJS), run as written; its `listen(3000)` gets a free port instead.
 * - `js in-app=<name>`: a part of the first example's app (it uses that example's `express`, `app` and
 *   `hub`, and declares everything else it uses), run appended to it.
 * - `html page=<name>`: a page opened in Chromium from the origin of the program of block `<name>`.
 * - `ts typecheck`: only type-checked, as every `ts` block is, against the packed package (the types
 *   test).
 *
 * A block of another language (`sh`, `nginx`) is not run.
 */
export interface ReadmeBlock {
  /** The line of the opening fence. */
  readonly line: number;
  readonly lang: string;
  readonly role: 'run' | 'in-app' | 'page' | 'typecheck' | undefined;
  readonly name: string | undefined;
  readonly code: string;
}

export const README = path.resolve(__dirname, '..', '..', 'README.md');

/** The languages whose blocks must have a role: what a reader would paste into an app or a page. */
export const RUNNABLE_LANGS = ['js', 'mjs', 'ts', 'html'];

export function readmeBlocks(text = fs.readFileSync(README, 'utf8')): ReadmeBlock[] {
  const blocks: ReadmeBlock[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)\s*(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const end = lines.indexOf('```', i + 1);
    if (end === -1) throw new Error(`README.md:${i + 1}: a code block that never ends`);
    const [, lang, info] = open as unknown as [string, string, string];
    const tag = /^(run|in-app|page)=([\w-]+)$|^(typecheck)$/.exec(info.trim());
    blocks.push({
      line: i + 1,
      lang,
      role: (tag?.[1] ?? tag?.[3]) as ReadmeBlock['role'],
      name: tag?.[2],
      code: lines.slice(i + 1, end).join('\n'),
    });
    i = end;
  }
  return blocks;
}

/** The packages a block's code imports or requires (of its `in-app` base too, when given the whole program). */
export function importsOf(code: string): string[] {
  const specifiers = [...code.matchAll(/(?:from |import |require\()'([^'.][^']*)'/g)].map((m) => m[1]!);
  const packages = specifiers
    .filter((s) => !s.startsWith('node:'))
    .map((s) =>
      s
        .split('/')
        .slice(0, s.startsWith('@') ? 2 : 1)
        .join('/'),
    );
  return [...new Set(packages)];
}

import fs from 'node:fs';
import path from 'node:path';

/** One line of the generated file: 64 bytes, so any size that is a multiple of 64 is exact. */
const LINE_BYTES = 64;

/**
 * Makes the download demo's file once: `bytes` of numbered text lines in `dir` (a temp folder by
 * default, never committed). A file already there with the right size is reused; a new one is written
 * under a temporary name and renamed, so two processes starting at once never serve a half-written file.
 * Returns the file's name inside `dir`.
 */
export function ensureDownloadFile(dir: string, bytes: number): string {
  const name = `demo-${bytes}.txt`;
  const target = path.join(dir, name);
  if (fs.statSync(target, { throwIfNoEntry: false })?.size === bytes) return name;
  fs.mkdirSync(dir, { recursive: true });
  const partial = `${target}.${process.pid}.partial`;
  const fd = fs.openSync(partial, 'w');
  try {
    const linesPerBlock = 16_384; // 1 MiB per write
    let line = 0;
    for (let written = 0; written < bytes; ) {
      const lines: string[] = [];
      for (let i = 0; i < linesPerBlock; i++) {
        const text = `line ${String(++line).padStart(9, '0')} of the express-streaming demo file`;
        lines.push(`${text.padEnd(LINE_BYTES - 1, '.')}\n`);
      }
      const block = Buffer.from(lines.join('')).subarray(0, bytes - written);
      fs.writeSync(fd, block);
      written += block.length;
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(partial, target);
  return name;
}

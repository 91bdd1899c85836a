import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'lib/index.ts', redis: 'lib/redis/index.ts' },
  format: ['esm', 'cjs'],
  // Entry points share chunks instead of each bundling its own copy of a class, so `instanceof` and
  // `#private` fields agree between `express-streaming` and its subpath entries.
  splitting: true,
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  outDir: 'dist',
});

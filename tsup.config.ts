import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: { index: 'lib/index.ts', redis: 'lib/redis/index.ts', testing: 'lib/testing/index.ts' },
    format: ['esm', 'cjs'],
    // Entry points share chunks instead of each bundling its own copy of a class, so `instanceof` and
    // `#private` fields agree between `express-streaming` and its subpath entries.
    splitting: true,
    // The browser client's types are made here too: this build's type step deletes every .d.ts in
    // dist/ as it starts, which would take the client's own if the client made them.
    dts: {
      entry: {
        index: 'lib/index.ts',
        redis: 'lib/redis/index.ts',
        testing: 'lib/testing/index.ts',
        client: 'lib/client/index.ts',
      },
    },
    sourcemap: true,
    // The browser client below builds at the same time into the same folder: not its file.
    clean: ['!client.js'],
    target: 'node20',
    platform: 'node',
    outDir: 'dist',
  },
  // The browser client `express-streaming/client`: one self-contained ESM file a page loads as it is,
  // built on its own so it never shares a chunk with the Node entry points.
  {
    entry: { client: 'lib/client/index.ts' },
    format: ['esm'],
    splitting: false,
    dts: false,
    sourcemap: false,
    clean: false,
    target: 'es2020',
    platform: 'browser',
    outDir: 'dist',
  },
]);

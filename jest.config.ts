import type { Config } from 'jest';

const config: Config = {
  testEnvironment: 'node',
  roots: ['<rootDir>/__tests__'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': [
      'ts-jest',
      {
        tsconfig: {
          module: 'commonjs',
          moduleResolution: 'node',
          target: 'ES2022',
          esModuleInterop: true,
          isolatedModules: true,
        },
        diagnostics: false,
      },
    ],
  },
  globalSetup: '<rootDir>/__tests__/helpers/global-setup.ts',
  setupFilesAfterEnv: ['<rootDir>/__tests__/helpers/setup.ts'],
  testTimeout: 20000,
  // `npm test` reports the coverage of lib/ and fails below these floors (a little under what the
  // suite reaches, so a change that leaves code untested shows). Code run only by child processes
  // (dist/, the Redis and example-app children) is not counted.
  collectCoverageFrom: ['lib/**/*.ts'],
  coverageReporters: ['text-summary'],
  coverageThreshold: { global: { statements: 90, branches: 85, functions: 92, lines: 92 } },
  detectOpenHandles: true,
  forceExit: false,
};

export default config;

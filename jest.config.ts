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
  detectOpenHandles: true,
  forceExit: false,
};

export default config;

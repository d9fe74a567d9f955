import { defineConfig } from 'vitest/config';

// Cross-package tests run against the packages' built output, in forked processes (one addon each).
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});

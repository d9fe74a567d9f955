import { defineConfig } from 'vitest/config';

// Forks, not threads: a native addon is loaded once per process, and a crash in one file must
// not take the others down.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});

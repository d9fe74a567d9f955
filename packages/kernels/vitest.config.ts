import { defineConfig } from 'vitest/config';

// Forks, not threads: a native addon is loaded once per process, and a crash in one file must
// not take the others down. The op tests run again on each lower copy of the CPU kernels
// (NAPO_CPU_ISA), so the AVX2 and baseline x86-64 paths are checked on a machine with AVX-512.
export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'kernels', include: ['test/**/*.test.ts'] } },
      ...['avx2', 'generic'].map((isa) => ({
        extends: true,
        test: { name: `kernels on ${isa}`, include: ['test/ops.test.ts', 'test/linear-logprobs.test.ts', 'test/isa.test.ts'], env: { NAPO_CPU_ISA: isa } },
      })),
    ],
  },
});

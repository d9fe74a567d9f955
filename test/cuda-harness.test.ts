/**
 * The CUDA kernels on a machine without a GPU: native/tests/napo_harness_tests compiles every
 * kernel body with g++ under a header that emulates threads, barriers, warp shuffles and shared
 * memory, and compares each with the CPU backend. Built by `npm install` with the addon.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { expect, it } from 'vitest';

const binary = fileURLToPath(new URL('../build/native/tests/napo_harness_tests', import.meta.url));

it('every CUDA kernel matches the CPU backend under the host emulation harness', () => {
  expect(existsSync(binary), `${binary} is missing: build with NAPO_BUILD_TESTS=ON (the default)`).toBe(true);
  const run = spawnSync(binary, { encoding: 'utf8', timeout: 600_000 });
  expect(run.stdout, run.stderr).toMatch(/harness: \d+ passed, 0 failed/);
  expect(run.status).toBe(0);
}, 600_000);

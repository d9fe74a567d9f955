/**
 * The garbage collector knows napo's memory: tensors nobody disposes are freed by their
 * finalizers, and V8 is told how much native memory they hold, so it collects in time. On Node 20
 * Node-API finalizers run when the event loop turns (between the awaits of a training loop), not
 * inside one synchronous stretch of code.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { expect, it } from 'vitest';

it('100,000 undisposed tokenLogprobs calls stay under 64 MiB with a flat RSS; large tensors are collected in time', () => {
  const script = fileURLToPath(new URL('./fixtures/undisposed-loop.mjs', import.meta.url));
  const child = spawnSync(process.execPath, [script], { encoding: 'utf8' });
  expect(child.status, child.stderr).toBe(0);
  const seen = JSON.parse(child.stdout) as Record<string, number>;
  expect(seen.smallPeakMiB).toBeLessThan(64);
  expect(seen.rssEndMiB! - seen.rssAfterWarmupMiB!).toBeLessThan(16);
  // 6,250 MiB in all; without the external-memory accounting V8 lets about half of it pile up.
  expect(seen.largePeakMiB).toBeLessThan(seen.largeTotalMiB! / 3);
}, 120_000);

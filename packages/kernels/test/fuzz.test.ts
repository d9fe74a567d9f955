/**
 * Bad input never takes the process down: a seeded fuzz of more than 10,000 bad calls over every
 * op (sync and async), tensor(), empty(), the Tensor methods and the settings, in a child process
 * (a crash would show as its death). Every error is a TypeError or RangeError whose message starts
 * with the op's name, and the allocator's counters end where they began.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { expect, it } from 'vitest';

interface FuzzOutcome {
  calls: number;
  succeeded: number;
  typeErrors: number;
  rangeErrors: number;
  badErrors: number;
  bad: string[];
  allocatedBytes: { baseline: number; after: number };
  allocations: { baseline: number; after: number };
}

it('10,000 random bad calls: no process death, every error names the op, counters back to baseline', () => {
  const script = fileURLToPath(new URL('./fixtures/fuzz.mjs', import.meta.url));
  const child = spawnSync(process.execPath, ['--expose-gc', script, '1', '10000'], { encoding: 'utf8' });
  expect(child.signal, child.stderr).toBeNull();
  expect(child.status, child.stderr).toBe(0);
  const outcome = JSON.parse(child.stdout) as FuzzOutcome;
  expect(outcome.bad).toEqual([]);
  expect(outcome.badErrors).toBe(0);
  expect(outcome.typeErrors + outcome.rangeErrors).toBeGreaterThanOrEqual(10_000);
  expect(outcome.typeErrors).toBeGreaterThan(1000);
  expect(outcome.rangeErrors).toBeGreaterThan(1000);
  expect(outcome.allocatedBytes.after).toBe(outcome.allocatedBytes.baseline);
  expect(outcome.allocations.after).toBe(outcome.allocations.baseline);
}, 60_000);

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { renderPage, writePage } from '../src/page.js';
import { kernelTable, trainerTable } from '../src/report.js';
import { readResults, schemaVersion, writeResult, type KernelsResult, type TrainerResult } from '../src/results.js';
import { kernelSuitePresets, runKernelSuiteOn, sampleModes } from '../src/suites/kernels.js';
import { leakCheck, runTrainerSuite, trainerSuitePresets } from '../src/suites/trainer.js';

// A smoke pass, so the suites cannot rot: tiny shapes, 2 trainer steps. No timing is asserted.
const out = mkdtempSync(join(tmpdir(), 'napo-bench-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

let kernels: KernelsResult;
let trainer: TrainerResult;

describe('the kernel suite (one tiny shape per op)', () => {
  it('measures every op, variant and dtype with its yardsticks', () => {
    kernels = runKernelSuiteOn('cpu', kernelSuitePresets.smoke);
    const names = new Set(kernels.entries.map((e) => `${e.op}|${e.variant}|${e.dtype}`));
    for (const dtype of ['float32', 'bfloat16']) {
      for (const mode of sampleModes) expect(names).toContain(`sample|${mode.variant}|${dtype}`);
      for (const variant of ['', 'entropy']) {
        expect(names).toContain(`tokenLogprobs|${variant}|${dtype}`);
        expect(names).toContain(`tokenLogprobsBackward|${variant}|${dtype}`);
      }
    }
    for (const variant of ['group/grpo', 'group/rloo', 'batch/grpo', 'batch/rloo', 'none/grpo', 'none/rloo']) expect(names).toContain(`groupAdvantages|${variant}|float32`);
    for (const lossType of ['grpo', 'bnpo', 'dr_grpo', 'dapo']) expect(names).toContain(`policyLoss|${lossType}|float32`);
    expect(kernels.bandwidth?.bytesPerSecond).toBeGreaterThan(0);
    for (const entry of kernels.entries) {
      expect(entry.timing.repetitions).toBeGreaterThanOrEqual(5);
      expect(entry.timing.minMs).toBeLessThanOrEqual(entry.timing.medianMs);
      expect(entry.timing.medianMs).toBeLessThanOrEqual(entry.timing.maxMs);
      expect(entry.bytesMoved).toBeGreaterThan(0);
      // Memory-bound ops against bandwidth; the matmul-bound ones (linearLogprobs) carry their FLOPs instead.
      if (entry.flops === undefined) expect(entry.fractionOfBandwidth).toBeGreaterThan(0);
      else expect(entry.flops).toBeGreaterThan(0);
      // Every op has the TS reference on the CPU; all but greedy sampling and the small ops an unfused composition.
      expect(entry.comparisons.some((c) => c.kind === 'reference')).toBe(true);
      for (const c of entry.comparisons) expect(Number.isFinite(c.speedup) && c.speedup > 0).toBe(true);
    }
    expect(kernels.entries.filter((e) => e.op === 'tokenLogprobsBackward').every((e) => e.comparisons.some((c) => c.kind === 'unfused'))).toBe(true);
    expect(kernelTable(kernels)).toContain('tokenLogprobsBackward entropy');
  });
});

describe('the trainer suite (2 steps, tiny model)', () => {
  it('records throughput, phases, memory and the ExPO / GRPO ratio for each algorithm', async () => {
    trainer = await runTrainerSuite({ ...trainerSuitePresets.smoke, cacheDir: join(out, 'cache') });
    expect(trainer.runs.map((r) => r.algorithm)).toEqual(['grpo', 'grpo-sft', 'expo']);
    for (const run of trainer.runs) {
      expect(run.allocatedBytesAfter).toHaveLength(2);
      expect(run.phases.map((p) => p.phase)).toEqual(['rollout', 'explain', 'score', 'logprobs', 'loss', 'backward', 'optimizer']);
      expect(run.peakAllocatedBytesPerStep).toBeGreaterThan(0);
      expect(run.stepsPerSecond).toBeGreaterThan(0);
    }
    expect(trainer.cost.expoOverGrpo).toBeGreaterThan(0);
    expect(trainerTable(trainer)).toContain('ExP-GRPO / GRPO step time');
  });
});

describe('the leak rule', () => {
  it('flags steady growth, not a flat line or a one-off step', () => {
    expect(leakCheck([100, 100, 100, 100, 100, 100], 1).growing).toBe(false);
    expect(leakCheck([100, 200, 200, 200, 200, 200, 200], 0).growing).toBe(false);
    expect(leakCheck([100, 110, 120, 130, 140, 150, 160], 1).growing).toBe(true);
  });
});

describe('results and the page', () => {
  it('writes each result as JSON in the schema and renders the page from the folder', () => {
    const paths = [writeResult(out, kernels), writeResult(out, trainer)];
    for (const path of paths) expect(JSON.parse(readFileSync(path, 'utf8')).schemaVersion).toBe(schemaVersion);
    const peer: KernelsResult = {
      ...kernels,
      source: 'pytorch',
      runtime: 'python 3.11 torch 2.5',
      entries: kernels.entries.slice(0, 2).map((e) => ({ ...e, implementation: 'torch eager', comparisons: [] })),
    };
    writeResult(out, peer);
    const { results } = readResults(out);
    expect(results).toHaveLength(3);
    const page = readFileSync(writePage(out), 'utf8');
    expect(page).toContain('<svg');
    expect(page).toContain('torch eager');
    expect(page).toContain('ExP-GRPO');
    expect(renderPage([])).toContain('napo benchmarks');
  });
});

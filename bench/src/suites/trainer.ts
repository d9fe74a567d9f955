/**
 * The trainer suite: GRPO, GRPO + expert SFT and ExP-GRPO on the same warmed-up policy, task,
 * batch and seed. Throughput (steps/s, generated and trained tokens/s, time per phase), the
 * ExP-GRPO / GRPO step-time ratio, peak allocated memory per phase, and allocatedBytes after
 * every step with a leak rule. The trainer's own per-step records are the source of every figure.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Not (yet) re-exported by @napo/trainer's index: the warm-up cache shared with `napo compare` / `napo profile`.
import {
  methodLabels,
  phases,
  presets,
  Trainer,
  warmedUpPolicy,
  type AdditionTask,
  type Algorithm,
  type StepRecord,
  type TrainConfigInput,
  type WarmupConfig,
} from '@napo/trainer';
import type { CausalLM, CharTokenizer, ModelConfigInput } from '@napo/policy';

import { resultHeader } from '../machine.js';
import type { AlgorithmRun, BenchMode, LeakCheck, PhaseSummary, TrainerResult } from '../results.js';

export interface TrainerSuiteOptions {
  mode: BenchMode;
  model: Omit<ModelConfigInput, 'vocabSize' | 'seed'>;
  warmup: Partial<WarmupConfig>;
  train: TrainConfigInput;
  algorithms: Algorithm[];
  /** Steps per algorithm; the leak check looks at all of them but the first `excludedSteps`. */
  steps: number;
  /** First steps left out of throughput and the leak rule: allocator and page-cache warm-up. */
  excludedSteps: number;
  seed: number;
  /** Warm-up checkpoints, shared with `napo compare` / `napo train` (same cache key). */
  cacheDir: string;
}

/** ExP-GRPO's step time may be at most this many times GRPO's at G = 8 (the target). */
export const expoCostTarget = 1.2;

const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const defaultCache = join(repositoryRoot, '.napo-cache');
const measuredAlgorithms: Algorithm[] = ['grpo', 'grpo-sft', 'expo'];
const quickTrain: TrainConfigInput = { ...presets.quick.train, evalEvery: 0 };

export const trainerSuitePresets: Record<BenchMode, TrainerSuiteOptions> = {
  smoke: {
    mode: 'smoke',
    model: { family: 'gpt2', maxPositions: 64, hiddenSize: 16, numLayers: 1, numHeads: 2 },
    warmup: { levels: [1], steps: 2, batchSize: 4, learningRate: 1e-3 },
    train: { promptsPerStep: 2, groupSize: 2, maxNewTokens: 8, levels: [1, 2], learningRate: 1e-4 },
    algorithms: measuredAlgorithms,
    steps: 2,
    excludedSteps: 0,
    seed: 0,
    cacheDir: defaultCache,
  },
  // A TinyGPT d64 with a short warm-up: the phases' proportions of the real thing at a fraction of the time.
  quick: {
    mode: 'quick',
    model: { family: 'gpt2', maxPositions: 128, hiddenSize: 64, numLayers: 2, numHeads: 2 },
    warmup: { levels: [1, 2], steps: 300, batchSize: 16, learningRate: 3e-3 },
    train: quickTrain,
    algorithms: measuredAlgorithms,
    steps: 40,
    excludedSteps: 2,
    seed: 0,
    cacheDir: defaultCache,
  },
  // The quick preset's own model and warm-up (the cache `napo compare` fills), 200 steps for the leak check.
  full: {
    mode: 'full',
    model: presets.quick.model,
    warmup: presets.quick.warmup,
    train: quickTrain,
    algorithms: measuredAlgorithms,
    steps: 200,
    excludedSteps: 2,
    seed: 0,
    cacheDir: defaultCache,
  },
};

const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length === 0 ? 0 : sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

/** Theil-Sen: the median of pairwise slopes, so one odd step cannot fake (or hide) a trend. */
export function theilSenSlope(values: number[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < values.length; i++) {
    for (let j = i + 1; j < values.length; j++) slopes.push(((values[j] as number) - (values[i] as number)) / (j - i));
  }
  return median(slopes);
}

/**
 * Growth of allocatedBytes after each step, warm-up steps excluded: flagged when the trend over the
 * second half is upward and the last step holds more than the first. A leak makes both true; a
 * one-off allocation early on (a cache filled once) makes only the second true.
 */
export function leakCheck(allocatedBytesAfter: number[], excludedSteps: number): LeakCheck {
  const checked = allocatedBytesAfter.slice(Math.min(excludedSteps, Math.max(0, allocatedBytesAfter.length - 1)));
  const secondHalf = checked.slice(Math.floor(checked.length / 2));
  const slope = theilSenSlope(secondHalf);
  const first = checked[0] ?? 0;
  const last = checked[checked.length - 1] ?? 0;
  return { steps: checked.length, firstBytes: first, lastBytes: last, slopeBytesPerStep: slope, growing: slope > 0 && last > first };
}

export function summariseRun(algorithm: Algorithm, records: StepRecord[], excludedSteps: number): AlgorithmRun {
  const measured = records.slice(Math.min(excludedSteps, records.length - 1));
  const seconds = sum(measured.map((r) => r.stepSeconds));
  const meanStepSeconds = seconds / measured.length;
  const phaseSummaries: PhaseSummary[] = phases.map((phase) => {
    const meanSeconds = sum(measured.map((r) => r.phases[phase].seconds)) / measured.length;
    const worst = records.reduce((a, b) => (b.phases[phase].peakAllocatedBytes > a.phases[phase].peakAllocatedBytes ? b : a));
    return {
      phase,
      meanSeconds,
      share: meanSeconds / meanStepSeconds,
      peakAllocatedBytes: worst.phases[phase].peakAllocatedBytes,
      peakByCategory: { ...worst.phases[phase].peakByCategory },
    };
  });
  const allocatedBytesAfter = records.map((r) => r.allocatedBytesAfter);
  return {
    algorithm,
    label: methodLabels[algorithm],
    measuredSteps: measured.length,
    meanStepSeconds,
    stepsPerSecond: measured.length / seconds,
    generatedTokensPerSecond: sum(measured.map((r) => r.tokensGenerated)) / seconds,
    trainedTokensPerSecond: sum(measured.map((r) => r.tokensTrained)) / seconds,
    phases: phaseSummaries,
    peakAllocatedBytesPerStep: Math.max(0, ...phaseSummaries.map((p) => p.peakAllocatedBytes)),
    allocatedBytesAfter,
    leak: leakCheck(allocatedBytesAfter, excludedSteps),
  };
}

function costOfExpo(runs: AlgorithmRun[]): TrainerResult['cost'] {
  const byAlgorithm = (name: string) => runs.find((run) => run.algorithm === name);
  const grpo = byAlgorithm('grpo');
  const expo = byAlgorithm('expo');
  const sft = byAlgorithm('grpo-sft');
  const cost: TrainerResult['cost'] = { target: expoCostTarget, expoExtraSecondsByPhase: [] };
  if (!grpo) return cost;
  if (sft) cost.sftOverGrpo = sft.meanStepSeconds / grpo.meanStepSeconds;
  if (expo) {
    cost.expoOverGrpo = expo.meanStepSeconds / grpo.meanStepSeconds;
    cost.withinTarget = cost.expoOverGrpo <= expoCostTarget;
    cost.expoExtraSecondsByPhase = expo.phases
      .map((phase, index) => ({ phase: phase.phase, seconds: phase.meanSeconds - (grpo.phases[index]?.meanSeconds ?? 0) }))
      .sort((a, b) => b.seconds - a.seconds);
  }
  return cost;
}

async function runAlgorithm(start: CausalLM, context: { tokenizer: CharTokenizer; task: AdditionTask }, algorithm: Algorithm, options: TrainerSuiteOptions, onStep: (record: StepRecord) => void): Promise<StepRecord[]> {
  const policy = await start.clone();
  const trainer = new Trainer({ ...context, policy, config: { ...options.train, algorithm, seed: options.seed, steps: options.steps, evalEvery: 0 } });
  const records: StepRecord[] = [];
  try {
    for (let step = 0; step < options.steps; step++) {
      const record = await trainer.trainStep();
      records.push(record);
      onStep(record);
    }
  } finally {
    trainer.frozenPolicy?.dispose();
    policy.dispose();
  }
  return records;
}

export interface TrainerSuiteProgress {
  onWarmup?: (step: number, total: number) => void;
  onStep?: (algorithm: Algorithm, record: StepRecord) => void;
}

/** TinyGPT runs on the CPU backend; the suite is measured there whatever --device says for kernels. */
export async function runTrainerSuite(options: TrainerSuiteOptions, progress: TrainerSuiteProgress = {}): Promise<TrainerResult> {
  const preset = { name: `bench-${options.mode}`, model: options.model, warmup: options.warmup, train: options.train, evaluation: {} };
  const { policy: start, tokenizer, task } = await warmedUpPolicy(preset, options.seed, options.cacheDir, (step, total) => progress.onWarmup?.(step.step, total));
  const warmupSteps = options.warmup.steps ?? 0;
  const runs: AlgorithmRun[] = [];
  try {
    for (const algorithm of options.algorithms) {
      const records = await runAlgorithm(start, { tokenizer, task }, algorithm, options, (record) => progress.onStep?.(algorithm, record));
      runs.push(summariseRun(algorithm, records, options.excludedSteps));
    }
  } finally {
    start.dispose();
  }
  return {
    ...resultHeader('trainer', options.mode, 'cpu'),
    config: { model: { ...options.model, vocabSize: tokenizer.vocabSize }, train: { ...options.train }, warmupSteps, steps: options.steps, excludedSteps: options.excludedSteps },
    runs,
    cost: costOfExpo(runs),
  };
}

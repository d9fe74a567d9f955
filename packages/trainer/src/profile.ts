/**
 * `napo profile`: N training steps of one algorithm (a preset's warmed-up TinyGPT, or a model
 * directory on a dataset), summarised as the per-phase table a user profiling their own run wants:
 * mean seconds, share of the step, peak allocated MiB (the allocator's counter, reset at each
 * phase's start) and where the peak's bytes were by category, against the prediction from the
 * last step's shapes (memory.ts), plus steps/s and tokens/s.
 */
import Table from 'cli-table3';
import { memoryCategories, type BytesByCategory, type DeviceName } from '@napo/kernels';
import type { CausalLM, Tokenizer } from '@napo/policy';

import type { Algorithm, TrainConfigInput } from './config.js';
import { predictStepMemory, totalBytes } from './memory.js';
import type { Preset } from './presets.js';
import { phases, type Phase, type StepRecord } from './records.js';
import type { Task } from './task.js';
import { Trainer } from './trainer.js';
import { warmedUpPolicy, type WarmupProgress } from './warmup.js';

export interface ProfileOptions {
  algorithm: Algorithm;
  steps: number;
  preset: Preset;
  seed: number;
  cacheDir: string;
  /** A model, tokenizer and task of the caller's (a model directory on a dataset); default: the preset's warmed-up TinyGPT. */
  run?: { policy: CausalLM; tokenizer: Tokenizer; task: Task };
  /** Where the preset's TinyGPT runs (a `run` brings its own); default 'cpu'. */
  device?: DeviceName;
  /** Overrides of the preset's training config. */
  train?: TrainConfigInput;
  onWarmup?: (progress: WarmupProgress, total: number) => void;
  onStep?: (record: StepRecord) => void;
}

export interface PhaseProfile {
  phase: Phase;
  meanSeconds: number;
  /** meanSeconds / mean step seconds. */
  share: number;
  /** Highest peak allocated bytes of the phase over the steps (from the second on, when there are several). */
  peakAllocatedBytes: number;
  /** Where that peak's bytes were, by category. */
  peakByCategory: BytesByCategory;
  /** The prediction from that step's shapes alone (memory.ts). */
  predictedByCategory: BytesByCategory;
}

export interface ProfileResult {
  algorithm: Algorithm;
  preset: string;
  steps: number;
  meanStepSeconds: number;
  stepsPerSecond: number;
  generatedTokensPerSecond: number;
  trainedTokensPerSecond: number;
  phases: PhaseProfile[];
  /** allocatedBytes after each step: flat when nothing leaks. */
  allocatedBytesAfter: number[];
}

const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

export function summariseSteps(
  algorithm: Algorithm,
  preset: string,
  records: StepRecord[],
  predict: (shapes: StepRecord['shapes']) => Record<Phase, BytesByCategory>,
): ProfileResult {
  const seconds = sum(records.map((r) => r.stepSeconds));
  const meanStepSeconds = seconds / Math.max(1, records.length);
  return {
    algorithm,
    preset,
    steps: records.length,
    meanStepSeconds,
    stepsPerSecond: records.length / seconds,
    generatedTokensPerSecond: sum(records.map((r) => r.tokensGenerated)) / seconds,
    trainedTokensPerSecond: sum(records.map((r) => r.tokensTrained)) / seconds,
    phases: phases.map((phase) => {
      const meanSeconds = sum(records.map((r) => r.phases[phase].seconds)) / Math.max(1, records.length);
      // Memory of the steady state: from the second step on the gradients and AdamW moments exist.
      const steady = records.length > 1 ? records.slice(1) : records;
      const worst = steady.reduce((a, b) => (b.phases[phase].peakAllocatedBytes > a.phases[phase].peakAllocatedBytes ? b : a));
      return {
        phase,
        meanSeconds,
        share: meanSeconds / meanStepSeconds,
        peakAllocatedBytes: worst.phases[phase].peakAllocatedBytes,
        peakByCategory: worst.phases[phase].peakByCategory,
        predictedByCategory: predict(worst.shapes)[phase],
      };
    }),
    allocatedBytesAfter: records.map((r) => r.allocatedBytesAfter),
  };
}

export async function runProfile(options: ProfileOptions): Promise<ProfileResult> {
  const { policy, tokenizer, task } = options.run ?? (await warmedUpPolicy(options.preset, options.seed, options.cacheDir, options.onWarmup, options.device));
  // A dataset's levels are its own; the preset's are the addition task's.
  const { levels, ...presetTrain } = options.preset.train;
  const trainer = new Trainer({
    policy,
    tokenizer,
    task,
    config: { ...presetTrain, ...(options.run ? {} : { levels }), ...options.train, algorithm: options.algorithm, seed: options.seed, steps: options.steps, evalEvery: 0 },
    evaluation: options.preset.evaluation,
  });
  const records: StepRecord[] = [];
  try {
    for (let step = 0; step < options.steps; step++) {
      const record = await trainer.trainStep();
      records.push(record);
      options.onStep?.(record);
    }
  } finally {
    trainer.frozenPolicy?.dispose();
    policy.dispose();
  }
  const frozenPolicy = trainer.config.klBeta > 0 || options.algorithm === 'expo-dpo';
  const predict = (shapes: StepRecord['shapes']) => predictStepMemory(policy.config, { algorithm: options.algorithm, shapes, frozenPolicy });
  return summariseSteps(options.algorithm, options.run ? 'model' : options.preset.name, records, predict);
}

const mebibytes = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

export function formatProfileTable(result: ProfileResult): string {
  const table = new Table({ head: ['phase', 'mean s', 'share of step', 'peak allocated MiB'], style: { head: [], border: [] } });
  for (const phase of result.phases) {
    table.push([phase.phase, phase.meanSeconds.toFixed(4), `${(100 * phase.share).toFixed(1)}%`, mebibytes(phase.peakAllocatedBytes)]);
  }
  table.push(['step', result.meanStepSeconds.toFixed(4), '100%', mebibytes(Math.max(0, ...result.phases.map((p) => p.peakAllocatedBytes)))]);
  const first = result.allocatedBytesAfter[0] ?? 0;
  const last = result.allocatedBytesAfter[result.allocatedBytesAfter.length - 1] ?? 0;
  return [
    `napo profile: ${result.algorithm}, preset ${result.preset}, ${result.steps} step${result.steps === 1 ? '' : 's'}`,
    table.toString(),
    `${result.stepsPerSecond.toFixed(3)} steps/s, ${result.generatedTokensPerSecond.toFixed(0)} generated tokens/s, ${result.trainedTokensPerSecond.toFixed(0)} trained tokens/s`,
    `allocated after step 1: ${mebibytes(first)} MiB, after step ${result.steps}: ${mebibytes(last)} MiB`,
  ].join('\n');
}

/**
 * Each phase's peak by category (MiB) as measured, against the prediction from the step's shapes:
 * the error per phase, and the categories that hold anything.
 */
export function formatMemoryTable(result: ProfileResult): string {
  const used = memoryCategories.filter((category) => result.phases.some((p) => p.peakByCategory[category] > 0 || p.predictedByCategory[category] > 0));
  const table = new Table({ head: ['phase', ...used, 'peak MiB', 'predicted MiB', 'error'], style: { head: [], border: [] } });
  for (const phase of result.phases) {
    const predicted = totalBytes(phase.predictedByCategory);
    const error = phase.peakAllocatedBytes > 0 ? (predicted - phase.peakAllocatedBytes) / phase.peakAllocatedBytes : 0;
    table.push([
      phase.phase,
      ...used.map((category) => mebibytes(phase.peakByCategory[category])),
      mebibytes(phase.peakAllocatedBytes),
      mebibytes(predicted),
      `${error >= 0 ? '+' : ''}${(100 * error).toFixed(1)}%`,
    ]);
  }
  return [`memory at each phase's peak, by category (MiB), measured on each phase's worst step, predicted from that step's shapes alone`, table.toString()].join('\n');
}

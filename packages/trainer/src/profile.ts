/**
 * `napo profile`: N training steps of one algorithm from a preset's cached warm-up, summarised as
 * the per-phase table a user profiling their own run wants: mean seconds, share of the step, peak
 * allocated MiB (the allocator's counter, reset at each phase's start), plus steps/s and tokens/s.
 */
import Table from 'cli-table3';
import { CausalLM, CharTokenizer } from '@napo/policy';

import type { Algorithm } from './config.js';
import type { Preset } from './presets.js';
import { phases, type Phase, type StepRecord } from './records.js';
import { AdditionTask } from './tasks/addition.js';
import { Trainer } from './trainer.js';
import { hasCachedWarmup, warmup, warmupCachePath, type WarmupProgress } from './warmup.js';

export interface ProfileOptions {
  algorithm: Algorithm;
  steps: number;
  preset: Preset;
  seed: number;
  cacheDir: string;
  onWarmup?: (progress: WarmupProgress, total: number) => void;
  onStep?: (record: StepRecord) => void;
}

export interface PhaseProfile {
  phase: Phase;
  meanSeconds: number;
  /** meanSeconds / mean step seconds. */
  share: number;
  /** Highest peak allocated bytes of the phase over the steps. */
  peakAllocatedBytes: number;
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

/**
 * The preset's warmed-up policy for this seed: loaded from the cache `napo compare` and `napo train`
 * write (the same key), or trained once and cached.
 */
export async function warmedUpPolicy(
  preset: Preset,
  seed: number,
  cacheDir: string,
  onProgress?: (progress: WarmupProgress, total: number) => void,
): Promise<{ policy: CausalLM; tokenizer: CharTokenizer; task: AdditionTask }> {
  const task = new AdditionTask();
  const tokenizer = new CharTokenizer(task.alphabet);
  const modelConfig = { ...preset.model, vocabSize: tokenizer.vocabSize, seed };
  const warmupConfig = { ...preset.warmup, seed };
  const policy = CausalLM.create(modelConfig);
  const cached = warmupCachePath(cacheDir, { model: modelConfig, warmup: warmupConfig, task: task.name, alphabet: task.alphabet });
  if (hasCachedWarmup(cached)) {
    await policy.load(cached);
  } else {
    await warmup(policy, tokenizer, task, warmupConfig, (progress) => onProgress?.(progress, warmupConfig.steps ?? 0));
    await policy.save(cached, { tokenizer, metadata: { 'napo.warmup': JSON.stringify(warmupConfig) } });
  }
  return { policy, tokenizer, task };
}

const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);

export function summariseSteps(algorithm: Algorithm, preset: string, records: StepRecord[]): ProfileResult {
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
      return {
        phase,
        meanSeconds,
        share: meanSeconds / meanStepSeconds,
        peakAllocatedBytes: Math.max(0, ...records.map((r) => r.phases[phase].peakAllocatedBytes)),
      };
    }),
    allocatedBytesAfter: records.map((r) => r.allocatedBytesAfter),
  };
}

export async function runProfile(options: ProfileOptions): Promise<ProfileResult> {
  const { policy, tokenizer, task } = await warmedUpPolicy(options.preset, options.seed, options.cacheDir, options.onWarmup);
  const trainer = new Trainer({
    policy,
    tokenizer,
    task,
    config: { ...options.preset.train, algorithm: options.algorithm, seed: options.seed, steps: options.steps, evalEvery: 0 },
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
  return summariseSteps(options.algorithm, options.preset.name, records);
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

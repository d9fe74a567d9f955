/**
 * `napo compare`: the paper's experiment on the built-in task. One supervised warm-up (cached by
 * config hash), then GRPO, GRPO + expert SFT, ExP-GRPO (online, offline) and ExP-DPO from the same
 * checkpoint and seed, each evaluated by level; a table like the paper's, and a report folder.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { backendInfo, cpuThreads, type DeviceName } from '@napo/kernels';
import { CharTokenizer } from '@napo/policy';

import type { Algorithm, TrainConfigInput } from './config.js';
import { evaluate, defaultEvaluationOptions, heldOutItems } from './evaluate.js';
import { RecordLog } from './log.js';
import type { Preset } from './presets.js';
import type { EvalRecord, StepRecord, TrainerRecord } from './records.js';
import { writeReport, type ComparisonReport, type MethodRun } from './report.js';
import { formatComparisonTable } from './table.js';
import { AdditionTask } from './tasks/addition.js';
import { Trainer } from './trainer.js';
import { warmedUpPolicy, type WarmupProgress } from './warmup.js';

export const methodLabels: Record<Algorithm, string> = {
  grpo: 'GRPO',
  'grpo-sft': 'GRPO+SFT',
  expo: 'ExP-GRPO',
  'expo-dpo': 'ExP-DPO',
};

/** What `napo compare` runs: the algorithms, and ExP-GRPO with explanations drawn once per prompt. */
export const compareMethods = {
  grpo: { label: 'GRPO', config: { algorithm: 'grpo' } },
  'grpo-sft': { label: 'GRPO+SFT', config: { algorithm: 'grpo-sft' } },
  expo: { label: 'ExP-GRPO', config: { algorithm: 'expo' } },
  'expo-offline': { label: 'ExP-GRPO offline', config: { algorithm: 'expo', explanations: 'offline' } },
  'expo-dpo': { label: 'ExP-DPO', config: { algorithm: 'expo-dpo' } },
} as const satisfies Record<string, { label: string; config: TrainConfigInput }>;
export type CompareMethod = keyof typeof compareMethods;
export const compareMethodNames = Object.keys(compareMethods) as CompareMethod[];

export interface CompareOptions {
  preset: Preset;
  seeds: number;
  methods: CompareMethod[];
  outDir: string;
  cacheDir: string;
  /** Where the models run; default 'cpu'. */
  device?: DeviceName;
  /** Called with every record (steps, evaluations) and warm-up progress, e.g. for a progress bar. */
  onRecord?: (label: string, record: TrainerRecord) => void;
  onWarmup?: (seed: number, progress: WarmupProgress, total: number) => void;
}

export async function runComparison(options: CompareOptions): Promise<ComparisonReport> {
  const { preset } = options;
  const task = new AdditionTask();
  const tokenizer = new CharTokenizer(task.alphabet);
  const evaluation = { ...defaultEvaluationOptions, ...preset.evaluation, maxNewTokens: preset.train.maxNewTokens ?? defaultEvaluationOptions.maxNewTokens };
  const evalItems = heldOutItems(task, evaluation.itemsPerLevel, evaluation.itemSeed);
  mkdirSync(options.outDir, { recursive: true });
  const base: EvalRecord[] = [];
  const runs: MethodRun[] = [];
  for (let seed = 0; seed < options.seeds; seed++) {
    const { policy: start } = await warmedUpPolicy(preset, seed, options.cacheDir, (progress, total) => options.onWarmup?.(seed, progress, total), options.device);
    const byLevel = await evaluate(start, tokenizer, task, evalItems, evaluation);
    base.push({ kind: 'eval', algorithm: 'base', seed, step: 0, k: evaluation.k, byLevel });
    for (const method of options.methods) {
      const policy = await start.clone();
      const { label, config } = compareMethods[method];
      const trainer = new Trainer({ policy, tokenizer, task, config: { ...preset.train, ...config, seed }, evaluation });
      const run: MethodRun = { label, seed, steps: [], evals: [] };
      const log = new RecordLog(join(options.outDir, `${method}-seed${seed}.jsonl`));
      for await (const record of trainer.run()) {
        log.append(record);
        if (record.kind === 'step') run.steps.push(record as StepRecord);
        else run.evals.push(record);
        options.onRecord?.(label, record);
      }
      runs.push(run);
      trainer.frozenPolicy?.dispose();
      policy.dispose();
    }
    start.dispose();
  }
  const info = backendInfo();
  const report: ComparisonReport = {
    title: `napo compare: ${options.methods.map((m) => compareMethods[m].label).join(' vs ')} on ${task.name} (preset ${preset.name}, ${options.seeds} seed${options.seeds > 1 ? 's' : ''})`,
    createdAt: new Date().toISOString(),
    machine: { cpuThreads: cpuThreads(), isa: info.cpu.isa, cuda: info.cuda },
    config: { preset, seeds: options.seeds, methods: options.methods, evaluation },
    base,
    runs,
    table: '',
  };
  report.table = formatComparisonTable(report);
  writeReport(options.outDir, report);
  return report;
}

#!/usr/bin/env node
/**
 * The `napo` command: train one algorithm, evaluate a checkpoint, or compare GRPO, GRPO + expert
 * SFT and ExP-GRPO from the same warm-up (what `npm start` runs with the quick preset).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

import { Command, InvalidArgumentError, Option } from 'commander';
import { CharTokenizer, TinyGPT } from '@napo/policy';

import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { algorithms, type Algorithm } from './config.js';
import { methodLabels, runComparison } from './compare.js';
import { defaultEvaluationOptions, evaluate, heldOutItems } from './evaluate.js';
import { RecordLog } from './log.js';
import { formatProfileTable, runProfile } from './profile.js';
import { presets } from './presets.js';
import { createProgress, describeRecord } from './progress.js';
import { AdditionTask } from './tasks/addition.js';
import { Trainer } from './trainer.js';
import { hasCachedWarmup, warmup, warmupCachePath } from './warmup.js';

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError('must be a positive integer');
  return parsed;
}

function nonNegativeInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return parsed;
}

const presetOption = new Option('--preset <name>', 'model, warm-up and training sizes').choices(['quick', 'full']).default('quick');
const cacheOption = new Option('--cache <dir>', 'where warm-up checkpoints are cached').default(resolve('.napo-cache'));

const program = new Command('napo').description('GRPO and ExPO post-training on napo kernels');

program
  .command('compare')
  .description('warm-up, then GRPO, GRPO + expert SFT and ExP-GRPO from the same checkpoint; a table by level and a report')
  .addOption(presetOption)
  .option('--seeds <n>', 'independent seeds (warm-up and training)', positiveInteger, 1)
  .option('--methods <list>', 'comma-separated algorithms', 'grpo,grpo-sft,expo')
  .option('--out <dir>', 'report folder', resolve('napo-report'))
  .addOption(cacheOption)
  .action(async (options: { preset: 'quick' | 'full'; seeds: number; methods: string; out: string; cache: string }) => {
    const methods = options.methods.split(',').map((name) => name.trim());
    for (const method of methods) {
      if (!(algorithms as readonly string[]).includes(method)) throw new InvalidArgumentError(`--methods: '${method}' is not one of ${algorithms.join(', ')}`);
    }
    const preset = presets[options.preset];
    const progress = createProgress();
    const started = performance.now();
    const report = await runComparison({
      preset,
      seeds: options.seeds,
      methods: methods as Algorithm[],
      outDir: options.out,
      cacheDir: options.cache,
      onWarmup: (seed, step, total) => {
        if (step.step === 1) progress.start(`warm-up s${seed}`, total);
        progress.update(`warm-up s${seed}`, step.step, `loss ${step.loss.toFixed(4)}`);
      },
      onRecord: (label, record) => {
        if (record.kind === 'step' && record.step === 1) progress.start(`${label} s${record.seed}`, preset.train.steps ?? 0);
        if (record.kind === 'step') progress.update(`${label} s${record.seed}`, record.step, describeRecord(record));
      },
    });
    progress.stop();
    console.log(`\n${report.title}\n${report.table}`);
    console.log(`report: ${join(options.out, 'index.html')} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  });

program
  .command('train')
  .description('train one algorithm from the cached warm-up of a preset')
  .addOption(new Option('--algo <name>', 'algorithm').choices([...algorithms]).default('expo'))
  .addOption(presetOption)
  .option('--seed <n>', 'seed', nonNegativeInteger, 0)
  .option('--steps <n>', 'training steps (default: the preset\'s)', positiveInteger)
  .option('--save-every <n>', 'checkpoint every N steps', nonNegativeInteger, 0)
  .option('--resume <dir>', 'continue from the latest checkpoint in this folder')
  .option('--out <dir>', 'run folder: records.jsonl and checkpoints', resolve('napo-run'))
  .addOption(cacheOption)
  .action(async (options: { algo: Algorithm; preset: 'quick' | 'full'; seed: number; steps?: number; saveEvery: number; resume?: string; out: string; cache: string }) => {
    const preset = presets[options.preset];
    const task = new AdditionTask();
    const tokenizer = new CharTokenizer(task.alphabet);
    const modelConfig = { ...preset.model, vocabSize: tokenizer.vocabSize, seed: options.seed };
    const warmupConfig = { ...preset.warmup, seed: options.seed };
    const policy = TinyGPT.create(modelConfig);
    const cached = warmupCachePath(options.cache, { model: modelConfig, warmup: warmupConfig, task: task.name, alphabet: task.alphabet });
    const progress = createProgress();
    if (hasCachedWarmup(cached)) await policy.load(cached);
    else {
      progress.start('warm-up', warmupConfig.steps ?? 0);
      await warmup(policy, tokenizer, task, warmupConfig, (step) => progress.update('warm-up', step.step, `loss ${step.loss.toFixed(4)}`));
      await policy.save(cached, { tokenizer });
    }
    const trainer = new Trainer({
      policy,
      tokenizer,
      task,
      config: { ...preset.train, algorithm: options.algo, seed: options.seed, saveEvery: options.saveEvery, ...(options.steps ? { steps: options.steps } : {}) },
      evaluation: preset.evaluation,
    });
    const checkpoints = join(options.out, 'checkpoints');
    if (options.resume) console.log(`resumed at step ${await loadCheckpoint(join(options.resume, 'checkpoints'), trainer)}`);
    const log = new RecordLog(join(options.out, 'records.jsonl'), { append: Boolean(options.resume) });
    const label = methodLabels[options.algo];
    progress.start(label, trainer.config.steps);
    for await (const record of trainer.run()) {
      log.append(record);
      if (record.kind === 'step') {
        progress.update(label, record.step, describeRecord(record));
        if (trainer.config.saveEvery > 0 && record.step % trainer.config.saveEvery === 0) await saveCheckpoint(checkpoints, trainer, tokenizer);
      } else {
        console.log(`\nstep ${record.step}: ${describeRecord(record)}`);
      }
    }
    progress.stop();
    await policy.save(join(options.out, 'final.safetensors'), { tokenizer });
    console.log(`records: ${log.path}\nweights: ${join(options.out, 'final.safetensors')}`);
  });

program
  .command('eval')
  .description('pass@1 (greedy) and pass@k by level of a checkpoint on the held-out items')
  .argument('<checkpoint>', 'a .safetensors written by napo')
  .option('--items <n>', 'items per level', positiveInteger, defaultEvaluationOptions.itemsPerLevel)
  .option('--k <n>', 'samples per item for pass@k', positiveInteger, defaultEvaluationOptions.k)
  .action(async (checkpoint: string, options: { items: number; k: number }) => {
    const { model, tokenizer } = await TinyGPT.fromCheckpoint(checkpoint);
    if (!tokenizer) throw new RangeError(`eval: ${checkpoint} holds no tokenizer`);
    const task = new AdditionTask();
    const evaluation = { ...defaultEvaluationOptions, itemsPerLevel: options.items, k: options.k };
    const scores = await evaluate(model, tokenizer, task, heldOutItems(task, options.items, evaluation.itemSeed), evaluation);
    for (const score of scores) console.log(`level ${score.level}: pass@1 ${(100 * score.pass1).toFixed(1)}%  pass@${options.k} ${(100 * score.passK).toFixed(1)}%`);
    model.dispose();
  });

program
  .command('profile')
  .description('per-phase time and peak allocated memory of N steps of one algorithm, from the preset\'s cached warm-up')
  .addOption(new Option('--algo <name>', 'algorithm').choices([...algorithms]).default('expo'))
  .addOption(presetOption)
  .option('--steps <n>', 'steps to profile', positiveInteger, 10)
  .option('--seed <n>', 'seed', nonNegativeInteger, 0)
  .option('--json <file>', 'also write the summary as JSON')
  .addOption(cacheOption)
  .action(async (options: { algo: Algorithm; preset: 'quick' | 'full'; steps: number; seed: number; json?: string; cache: string }) => {
    const progress = createProgress();
    const label = methodLabels[options.algo];
    const result = await runProfile({
      algorithm: options.algo,
      steps: options.steps,
      preset: presets[options.preset],
      seed: options.seed,
      cacheDir: options.cache,
      onWarmup: (step, total) => {
        if (step.step === 1) progress.start('warm-up', total);
        progress.update('warm-up', step.step, `loss ${step.loss.toFixed(4)}`);
      },
      onStep: (record) => {
        if (record.step === 1) progress.start(label, options.steps);
        progress.update(label, record.step, describeRecord(record));
      },
    });
    progress.stop();
    console.log(`\n${formatProfileTable(result)}`);
    if (options.json) {
      mkdirSync(dirname(resolve(options.json)), { recursive: true });
      writeFileSync(options.json, `${JSON.stringify(result, null, 2)}\n`);
      console.log(`wrote ${options.json}`);
    }
  });

program.parseAsync().catch((error: unknown) => {
  console.error(error instanceof Error ? `napo: ${error.message}` : error);
  process.exitCode = 1;
});

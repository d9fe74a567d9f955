#!/usr/bin/env node
/**
 * The `napo` command: train one algorithm (a Hugging Face model on a JSONL dataset, or the built-in
 * TinyGPT on the addition task), generate, evaluate, profile, or compare GRPO, GRPO + expert SFT
 * and ExP-GRPO from the same warm-up (what `npm start` runs with the quick preset).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

import { Command, InvalidArgumentError, Option } from 'commander';
import { memoryHistory, recordMemoryHistory, type DeviceName } from '@napo/kernels';
import { CharTokenizer, configFromHF, fromPretrained, generate, readJsonFile, resolveModelConfig, type CausalLM, type Tokenizer } from '@napo/policy';

import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { algorithms, type Algorithm, type TrainConfigInput } from './config.js';
import { compareMethodNames, methodLabels, runComparison, type CompareMethod } from './compare.js';
import { describeDiagnostics } from './diagnostics.js';
import { defaultEvaluationOptions, evaluate, heldOutItems } from './evaluate.js';
import { RecordLog } from './log.js';
import { formatMemoryTable, formatProfileTable, runProfile } from './profile.js';
import { warmedUpPolicy } from './warmup.js';
import { formatPrediction, predictStepMemory, worstCaseShapes } from './memory.js';
import { presets } from './presets.js';
import { createProgress, describeCompletions, describeRecord } from './progress.js';
import { encodePrompt } from './prompting.js';
import { DatasetTask } from './dataset.js';
import type { Task } from './task.js';
import { verifierNames, type VerifierName } from './verifiers.js';
import { AdditionTask } from './tasks/addition.js';
import { Trainer } from './trainer.js';

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

/** 'cpu' or 'cuda:N', as the kernels name devices. */
function deviceName(value: string): DeviceName {
  if (value === 'cpu' || /^cuda:\d+$/.test(value)) return value as DeviceName;
  throw new InvalidArgumentError("must be 'cpu' or 'cuda:N'");
}
const deviceOption = new Option('--device <name>', "where the model runs and trains: 'cpu' or 'cuda:N'").argParser(deviceName).default('cpu');

const program = new Command('napo').description('GRPO and ExPO post-training on napo kernels');

program
  .command('compare')
  .description('warm-up, then GRPO, GRPO + expert SFT and ExP-GRPO from the same checkpoint; a table by level and a report')
  .addOption(presetOption)
  .option('--seeds <n>', 'independent seeds (warm-up and training)', positiveInteger, 1)
  .option('--methods <list>', `comma-separated, of ${compareMethodNames.join(', ')}`, 'grpo,grpo-sft,expo')
  .option('--out <dir>', 'report folder', resolve('napo-report'))
  .addOption(deviceOption)
  .addOption(cacheOption)
  .action(async (options: { preset: 'quick' | 'full'; seeds: number; methods: string; out: string; device: DeviceName; cache: string }) => {
    const methods = options.methods.split(',').map((name) => name.trim());
    for (const method of methods) {
      if (!(compareMethodNames as readonly string[]).includes(method)) throw new InvalidArgumentError(`--methods: '${method}' is not one of ${compareMethodNames.join(', ')}`);
    }
    const preset = presets[options.preset];
    const progress = createProgress();
    const started = performance.now();
    const report = await runComparison({
      preset,
      seeds: options.seeds,
      methods: methods as CompareMethod[],
      outDir: options.out,
      cacheDir: options.cache,
      device: options.device,
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

/** The task of a run: a JSONL dataset when one is given, else the built-in addition task. */
function taskFor(options: { dataset?: string; verifier: VerifierName; evalFraction: number }): Task {
  return options.dataset
    ? DatasetTask.fromJsonl(options.dataset, { name: basename(options.dataset), verifier: options.verifier, evalFraction: options.evalFraction })
    : new AdditionTask();
}

const verifierOption = new Option('--verifier <name>', 'how a completion\'s final answer is checked').choices([...verifierNames]).default('gsm8k');
const evalFractionOption = new Option('--eval-fraction <x>', 'share of the dataset held out for evaluation').argParser(Number).default(0.1);

/** The model of a run: a Hugging Face directory, or the preset's TinyGPT warmed up on the addition task. */
async function runModel(
  options: { model?: string; preset: 'quick' | 'full'; seed: number; cache: string; device: DeviceName },
  task: Task,
  progress: ReturnType<typeof createProgress>,
): Promise<{ policy: CausalLM; tokenizer: Tokenizer }> {
  if (options.model) {
    const { model, tokenizer } = await fromPretrained(options.model, { device: options.device });
    return { policy: model, tokenizer };
  }
  if (!(task instanceof AdditionTask)) throw new InvalidArgumentError('a --dataset needs a --model (a Hugging Face model directory)');
  const { policy, tokenizer } = await warmedUpPolicy(presets[options.preset], options.seed, options.cache, (step, total) => {
    if (step.step === 1) progress.start('warm-up', total);
    progress.update('warm-up', step.step, `loss ${step.loss.toFixed(4)}`);
  }, options.device);
  return { policy, tokenizer };
}

program
  .command('train')
  .description('train one algorithm: a Hugging Face model on a JSONL dataset (--model, --dataset), or the preset\'s TinyGPT on the addition task')
  .option('--model <dir>', 'a Hugging Face model directory (config.json, *.safetensors, tokenizer.json)')
  .option('--dataset <file>', 'JSONL of {"prompt", "answer", "solution"?}')
  .addOption(verifierOption)
  .addOption(evalFractionOption)
  .addOption(new Option('--algo <name>', 'algorithm').choices([...algorithms]).default('expo'))
  .addOption(presetOption)
  .addOption(deviceOption)
  .option('--seed <n>', 'seed', nonNegativeInteger, 0)
  .option('--steps <n>', 'training steps (default: the preset\'s)', positiveInteger)
  .option('--lr <x>', 'learning rate', Number)
  .option('--group-size <n>', 'completions per prompt', positiveInteger)
  .option('--prompts-per-step <n>', 'prompts per step', positiveInteger)
  .option('--max-new-tokens <n>', 'completion length limit', positiveInteger)
  .option('--system-prompt <text>', 'a system message before each prompt')
  .option('--no-chat-template', 'feed prompts as plain text even when the tokenizer has a chat template')
  .option('--save-every <n>', 'checkpoint every N steps', nonNegativeInteger, 0)
  .option('--config <file>', 'a JSON object of trainer options (numIterations, lossType, klBeta, ...: README, "The trainer\'s options"); flags given on the command line win')
  .option('--resume <dir>', 'continue from the latest checkpoint in this folder')
  .option('--out <dir>', 'run folder: records.jsonl, checkpoints, the final model', resolve('napo-run'))
  .addOption(cacheOption)
  .action(async (options: TrainCommandOptions, command: Command) => {
    const task = taskFor(options);
    const progress = createProgress();
    const { policy, tokenizer } = await runModel(options, task, progress);
    const preset = presets[options.preset];
    const overrides = {
      ...(options.steps ? { steps: options.steps } : {}),
      ...(options.lr ? { learningRate: options.lr } : {}),
      ...(options.groupSize ? { groupSize: options.groupSize } : {}),
      ...(options.promptsPerStep ? { promptsPerStep: options.promptsPerStep } : {}),
      ...(options.maxNewTokens ? { maxNewTokens: options.maxNewTokens } : {}),
      ...(options.systemPrompt ? { systemPrompt: options.systemPrompt } : {}),
    };
    // A dataset's levels are its own; the preset's are the addition task's.
    const { levels, ...presetTrain } = preset.train;
    const flags = { algorithm: options.algo, seed: options.seed, saveEvery: options.saveEvery, chatTemplate: options.chatTemplate };
    // The file's fields win over flags left at their defaults; flags typed on the command line win over the file.
    const typed = Object.fromEntries(
      Object.entries({ algorithm: 'algo', seed: 'seed', saveEvery: 'saveEvery', chatTemplate: 'chatTemplate' }).flatMap(([field, flag]) =>
        command.getOptionValueSource(flag) === 'cli' ? [[field, flags[field as keyof typeof flags]]] : [],
      ),
    );
    const trainer = new Trainer({
      policy,
      tokenizer,
      task,
      config: { ...presetTrain, ...(options.model ? {} : { levels }), ...flags, ...(await configFile(options.config)), ...typed, ...overrides },
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
        if (record.completions) progress.log(describeCompletions(record.step, record.completions));
        if (trainer.config.saveEvery > 0 && record.step % trainer.config.saveEvery === 0) await saveCheckpoint(checkpoints, trainer, tokenizer);
      } else {
        console.log(`\nstep ${record.step}: ${describeRecord(record)}`);
      }
    }
    progress.stop();
    const final = join(options.out, 'final');
    await policy.save(final, { tokenizer });
    console.log(`records: ${log.path}\nmodel: ${final} (a Hugging Face directory)`);
  });

/** The trainer options of a --config file (validated with the rest of the config by the Trainer). */
async function configFile(path: string | undefined): Promise<TrainConfigInput> {
  return path === undefined ? {} : ((await readJsonFile(path)) as TrainConfigInput);
}

interface TrainCommandOptions {
  model?: string;
  dataset?: string;
  verifier: VerifierName;
  evalFraction: number;
  algo: Algorithm;
  preset: 'quick' | 'full';
  seed: number;
  steps?: number;
  lr?: number;
  groupSize?: number;
  promptsPerStep?: number;
  maxNewTokens?: number;
  systemPrompt?: string;
  chatTemplate: boolean;
  saveEvery: number;
  config?: string;
  resume?: string;
  out: string;
  cache: string;
  device: DeviceName;
}

program
  .command('generate')
  .description('completions of prompts from a model directory')
  .requiredOption('--model <dir>', 'a Hugging Face model directory')
  .requiredOption('--prompt <text...>', 'one or more prompts')
  .option('--max-new-tokens <n>', 'tokens to generate', positiveInteger, 128)
  .option('--temperature <x>', '0 = greedy', Number, 0.7)
  .option('--top-p <x>', 'nucleus sampling', Number, 1)
  .option('--top-k <n>', '0 = off', nonNegativeInteger, 0)
  .option('--seed <n>', 'sampling seed', nonNegativeInteger, 0)
  .option('--system-prompt <text>', 'a system message before each prompt')
  .option('--no-chat-template', 'feed prompts as plain text')
  .addOption(deviceOption)
  .action(async (options: { model: string; prompt: string[]; maxNewTokens: number; temperature: number; topP: number; topK: number; seed: number; systemPrompt?: string; chatTemplate: boolean; device: DeviceName }) => {
    const { model, tokenizer } = await fromPretrained(options.model, { device: options.device });
    const format = { chatTemplate: options.chatTemplate, systemPrompt: options.systemPrompt, chatTemplateArgs: {} };
    const prompts = options.prompt.map((text) => encodePrompt(tokenizer, text, format));
    const result = await generate(model, prompts, {
      maxNewTokens: options.maxNewTokens,
      temperature: options.temperature,
      topP: options.topP,
      topK: options.topK,
      seed: options.seed,
      tokenizer,
    });
    options.prompt.forEach((prompt, row) => {
      console.log(`--- ${prompt}\n${result.texts?.[row] ?? ''}\n[${result.lengths[row]} tokens, ${result.finishReasons[row]}]`);
    });
    model.dispose();
  });

program
  .command('eval')
  .description('pass@1 (greedy) and pass@k by level on the held-out items: of a model directory, or the preset\'s warmed-up TinyGPT')
  .option('--model <dir>', 'a Hugging Face model directory (a `napo train` output\'s final/ too)')
  .option('--dataset <file>', 'JSONL of {"prompt", "answer"}; default: the addition task')
  .addOption(verifierOption)
  .addOption(evalFractionOption)
  .addOption(presetOption)
  .option('--seed <n>', 'seed of the warm-up (without --model)', nonNegativeInteger, 0)
  .option('--items <n>', 'items per level', positiveInteger, defaultEvaluationOptions.itemsPerLevel)
  .option('--k <n>', 'samples per item for pass@k', positiveInteger, defaultEvaluationOptions.k)
  .option('--max-new-tokens <n>', 'completion length limit', positiveInteger, defaultEvaluationOptions.maxNewTokens)
  .option('--diagnostic-items <n>', 'items per level whose self-explanations are diagnosed (ExPO\'s premise; 0: none)', nonNegativeInteger, defaultEvaluationOptions.diagnosticItems)
  .option('--no-chat-template', 'feed prompts as plain text')
  .addOption(deviceOption)
  .addOption(cacheOption)
  .action(async (options: { model?: string; dataset?: string; verifier: VerifierName; evalFraction: number; preset: 'quick' | 'full'; seed: number; items: number; k: number; maxNewTokens: number; diagnosticItems: number; chatTemplate: boolean; device: DeviceName; cache: string }) => {
    const task = taskFor(options);
    const progress = createProgress();
    const { policy, tokenizer } = await runModel(options, task, progress);
    progress.stop();
    const evaluation = { ...defaultEvaluationOptions, itemsPerLevel: options.items, k: options.k, maxNewTokens: options.maxNewTokens, diagnosticItems: options.diagnosticItems };
    const format = { chatTemplate: options.chatTemplate, chatTemplateArgs: {} };
    const items = heldOutItems(task, options.items, evaluation.itemSeed);
    const scores = await evaluate(policy, tokenizer, task, items, evaluation, (text) => encodePrompt(tokenizer, text, format));
    for (const score of scores) {
      const premise = score.explanations ? `  explanations: ${describeDiagnostics(score.explanations)}` : '';
      console.log(`level ${score.level}: pass@1 ${(100 * score.pass1).toFixed(1)}%  pass@${options.k} ${(100 * score.passK).toFixed(1)}%${premise}`);
    }
    policy.dispose();
  });

program
  .command('profile')
  .description('per-phase time and peak allocated memory of N steps of one algorithm: the preset\'s warmed-up TinyGPT, or --model on --dataset')
  .addOption(new Option('--algo <name>', 'algorithm').choices([...algorithms]).default('expo'))
  .addOption(presetOption)
  .option('--model <dir>', 'a Hugging Face model directory')
  .option('--dataset <file>', 'JSONL of {"prompt", "answer"} (with --model)')
  .addOption(verifierOption)
  .addOption(evalFractionOption)
  .option('--steps <n>', 'steps to profile', positiveInteger, 10)
  .option('--seed <n>', 'seed', nonNegativeInteger, 0)
  .option('--group-size <n>', 'completions per prompt', positiveInteger)
  .option('--prompts-per-step <n>', 'prompts per step', positiveInteger)
  .option('--max-new-tokens <n>', 'completion length limit', positiveInteger)
  .option('--memory', 'also the memory of each phase by category, against the prediction from its shapes')
  .option('--history <file>', 'record every allocation and free (the last 1,000,000, with their phase) and write them as JSON')
  .option('--json <file>', 'also write the summary as JSON')
  .addOption(deviceOption)
  .addOption(cacheOption)
  .action(async (options: ProfileCommandOptions) => {
    const progress = createProgress();
    const label = methodLabels[options.algo];
    if (options.history) recordMemoryHistory(options.device, { maxEvents: 1_000_000 });
    const result = await runProfile({
      algorithm: options.algo,
      steps: options.steps,
      preset: presets[options.preset],
      seed: options.seed,
      cacheDir: options.cache,
      device: options.device,
      ...(options.model ? { run: await modelRun(options) } : {}),
      train: stepOverrides(options),
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
    if (options.memory) console.log(`\n${formatMemoryTable(result)}`);
    if (options.history) {
      const history = memoryHistory(options.device);
      recordMemoryHistory(options.device, { maxEvents: 0 });
      mkdirSync(dirname(resolve(options.history)), { recursive: true });
      writeFileSync(options.history, `${JSON.stringify(history)}\n`);
      console.log(`wrote ${options.history} (${history.events.length} events, ${history.dropped} dropped)`);
    }
    if (options.json) {
      mkdirSync(dirname(resolve(options.json)), { recursive: true });
      writeFileSync(options.json, `${JSON.stringify(result, null, 2)}\n`);
      console.log(`wrote ${options.json}`);
    }
  });

interface StepSizeOptions {
  groupSize?: number;
  promptsPerStep?: number;
  maxNewTokens?: number;
}

interface ProfileCommandOptions extends StepSizeOptions {
  algo: Algorithm;
  device: DeviceName;
  preset: 'quick' | 'full';
  model?: string;
  dataset?: string;
  verifier: VerifierName;
  evalFraction: number;
  steps: number;
  seed: number;
  memory?: boolean;
  history?: string;
  json?: string;
  cache: string;
}

function stepOverrides(options: StepSizeOptions): { groupSize?: number; promptsPerStep?: number; maxNewTokens?: number } {
  return {
    ...(options.groupSize ? { groupSize: options.groupSize } : {}),
    ...(options.promptsPerStep ? { promptsPerStep: options.promptsPerStep } : {}),
    ...(options.maxNewTokens ? { maxNewTokens: options.maxNewTokens } : {}),
  };
}

/** A model directory on a dataset, for profile and memory --measure. */
async function modelRun(options: { model?: string; dataset?: string; verifier: VerifierName; evalFraction: number; device: DeviceName }): Promise<{ policy: CausalLM; tokenizer: Tokenizer; task: Task }> {
  if (!options.dataset) throw new InvalidArgumentError('--model needs a --dataset to take steps on');
  const task = taskFor(options);
  const { model, tokenizer } = await fromPretrained(options.model as string, { device: options.device });
  return { policy: model, tokenizer, task };
}

program
  .command('memory')
  .description('predict the peak memory of each phase of a step from shapes alone (--measure: run steps and compare)')
  .option('--model <dir>', 'a Hugging Face model directory (only its config.json, unless --measure)')
  .addOption(presetOption)
  .addOption(new Option('--algo <name>', 'algorithm').choices([...algorithms]).default('expo'))
  .option('--group-size <n>', 'completions per prompt', positiveInteger)
  .option('--prompts-per-step <n>', 'prompts per step', positiveInteger)
  .option('--max-new-tokens <n>', 'completion length limit', positiveInteger)
  .option('--prompt-tokens <n>', 'the longest prompt, in tokens (prediction without --measure)', positiveInteger, 64)
  .option('--kl-beta <x>', 'a KL term: the frozen policy is scored too', Number, 0)
  .option('--unfused', 'score through [N, V] logits (forward / backward) instead of linearLogprobs (prediction only)')
  .option('--measure', 'run steps (the preset\'s TinyGPT, or --model on --dataset) and compare with the prediction from their shapes')
  .option('--dataset <file>', 'JSONL of {"prompt", "answer"} (with --model --measure)')
  .addOption(verifierOption)
  .addOption(evalFractionOption)
  .option('--steps <n>', 'steps to measure (the last is compared)', positiveInteger, 2)
  .addOption(deviceOption)
  .addOption(cacheOption)
  .action(async (options: MemoryCommandOptions) => {
    const preset = presets[options.preset];
    if (options.measure) {
      if (options.unfused) throw new InvalidArgumentError('--unfused predicts only: the trainer scores through linearLogprobs');
      const result = await runProfile({
        algorithm: options.algo,
        steps: options.steps,
        preset,
        seed: 0,
        cacheDir: options.cache,
        device: options.device,
        ...(options.model ? { run: await modelRun(options) } : {}),
        train: { ...stepOverrides(options), ...(options.klBeta > 0 ? { klBeta: options.klBeta } : {}) },
      });
      console.log(formatMemoryTable(result));
      return;
    }
    const config = options.model
      ? configFromHF(await readJsonFile(join(options.model, 'config.json')))
      : resolveModelConfig({ ...preset.model, vocabSize: new CharTokenizer(new AdditionTask().alphabet).vocabSize });
    const train = { ...preset.train, ...stepOverrides(options) };
    const shapes = worstCaseShapes({
      algorithm: options.algo,
      promptsPerStep: train.promptsPerStep ?? 8,
      groupSize: train.groupSize ?? 8,
      promptTokens: options.promptTokens,
      explainPromptTokens: options.promptTokens * 2,
      maxNewTokens: train.maxNewTokens ?? 64,
      maxPositions: config.maxPositions,
    });
    const predicted = predictStepMemory(config, { algorithm: options.algo, shapes, frozenPolicy: options.klBeta > 0 || options.algo === 'expo-dpo', unfused: Boolean(options.unfused) });
    console.log(formatPrediction(predicted, `${options.model ?? `preset ${preset.name}`}, ${options.algo}, ${shapes.rolloutRows} rollouts of ${options.promptTokens} + ${shapes.maxNewTokens} tokens, ${options.unfused ? 'unfused' : 'fused'} scoring`));
  });

interface MemoryCommandOptions extends StepSizeOptions {
  model?: string;
  device: DeviceName;
  preset: 'quick' | 'full';
  algo: Algorithm;
  promptTokens: number;
  klBeta: number;
  unfused?: boolean;
  measure?: boolean;
  dataset?: string;
  verifier: VerifierName;
  evalFraction: number;
  steps: number;
  cache: string;
}

program.parseAsync().catch((error: unknown) => {
  console.error(error instanceof Error ? `napo: ${error.message}` : error);
  process.exitCode = 1;
});

/**
 * Supervised warm-up: next-token cross-entropy on the policy's own worked solutions, so the model
 * can answer and can explain before RL. Like pretraining data, it holds plain solutions of the easy
 * levels (`levels`, in the plain and the explain format) and answer-conditioned worked solutions
 * of the hard ones (`explainLevels`, explain format only), with a plain hard solution now and then
 * (`hardPlainEvery`): the policy has computed in every column and can explain a hard sum given its
 * answer, but rarely solves one unaided — the regime ExPO is for (README, "ExPO's premise").
 * Cached on disk by a hash of everything that determines the weights, so a second run skips it.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import type { DeviceName } from '@napo/kernels';
import { CausalLM, CharTokenizer, type Policy, type Tokenizer } from '@napo/policy';
import { z } from 'zod';

import { parseConfig } from './config.js';
import { Rng } from './rng.js';
import { backpropagate, scoreBatch } from './scoring.js';
import { packSequences, type SequencePair } from './sequences.js';
import type { Preset } from './presets.js';
import type { Task, TaskItem } from './task.js';
import { AdditionTask } from './tasks/addition.js';

export const warmupConfigSchema = z
  .object({
    levels: z.array(z.number().int().min(1)).min(1).default([1, 2]),
    steps: z.number().int().min(1).default(600),
    batchSize: z.number().int().min(1).default(32),
    learningRate: z.number().gt(0).default(2e-3),
    seed: z.number().int().min(0).default(0),
    /** Levels seen only as answer-conditioned worked solutions (explain format). */
    explainLevels: z.array(z.number().int().min(1)).default([]),
    /** Explain-format examples of explainLevels per step. */
    explainExamples: z.number().int().min(0).default(8),
    /** Every Nth step, one plain example of an explainLevels level too (0: never). */
    hardPlainEvery: z.number().int().min(0).default(0),
  })
  .strict();

export type WarmupConfig = z.output<typeof warmupConfigSchema>;
export type WarmupConfigInput = z.input<typeof warmupConfigSchema>;

/** A task that can write its items' solutions in the policy's own style. */
export interface WarmupTask extends Task {
  policyReasoning(item: TaskItem): string;
}

export interface WarmupProgress {
  step: number;
  loss: number;
}

function solution(task: WarmupTask, tokenizer: Tokenizer, item: TaskItem): number[] {
  return [...tokenizer.encode(task.format(task.policyReasoning(item), item.answer)), tokenizer.eos];
}

function plainExample(task: WarmupTask, tokenizer: Tokenizer, item: TaskItem): SequencePair {
  return { prompt: tokenizer.encode(item.prompt), completion: solution(task, tokenizer, item) };
}

function explainExample(task: WarmupTask, tokenizer: Tokenizer, item: TaskItem): SequencePair {
  return { prompt: tokenizer.encode(task.explainPrompt(item.prompt, item.answer)), completion: solution(task, tokenizer, item) };
}

/** One step's examples: easy items both ways, hard items explained, and a plain hard one every hardPlainEvery steps. */
export function warmupExamples(task: WarmupTask, tokenizer: Tokenizer, config: WarmupConfig, rng: Rng, step: number): SequencePair[] {
  const easy = Array.from({ length: Math.ceil(config.batchSize / 2) }, () => task.sample(rng, rng.pick(config.levels)));
  const pairs = easy.flatMap((item) => [plainExample(task, tokenizer, item), explainExample(task, tokenizer, item)]);
  if (config.explainLevels.length === 0) return pairs;
  for (let n = 0; n < config.explainExamples; n++) pairs.push(explainExample(task, tokenizer, task.sample(rng, rng.pick(config.explainLevels))));
  if (config.hardPlainEvery > 0 && step % config.hardPlainEvery === 0) pairs.push(plainExample(task, tokenizer, task.sample(rng, rng.pick(config.explainLevels))));
  return pairs;
}

/** One supervised step; returns the token-mean negative log-likelihood. */
export async function supervisedStep(policy: Policy, pairs: readonly SequencePair[], learningRate: number): Promise<number> {
  const batch = packSequences(pairs);
  const logprobs = await scoreBatch(policy, batch, 1);
  const tokens = batch.completionMask.reduce((sum, m) => sum + m, 0);
  let loss = 0;
  const grad = new Float32Array(batch.completionMask.length);
  batch.completionMask.forEach((m, i) => {
    if (m === 0) return;
    loss -= (logprobs[i] as number) / tokens;
    grad[i] = -1 / tokens;
  });
  policy.zeroGrad();
  await backpropagate(policy, batch, grad);
  await policy.step({ lr: learningRate, weightDecay: 0 });
  return loss;
}

export async function warmup(
  policy: Policy,
  tokenizer: Tokenizer,
  task: WarmupTask,
  input: WarmupConfigInput,
  onProgress?: (progress: WarmupProgress) => void,
): Promise<void> {
  const config = parseConfig(warmupConfigSchema, input, 'warm-up config');
  const rng = new Rng(config.seed);
  for (let step = 1; step <= config.steps; step++) {
    const pairs = warmupExamples(task, tokenizer, config, rng, step);
    // Linear decay to 10%: the tail of the warm-up settles instead of bouncing.
    const learningRate = config.learningRate * (1 - (0.9 * (step - 1)) / config.steps);
    const loss = await supervisedStep(policy, pairs, learningRate);
    onProgress?.({ step, loss });
  }
}

/** Where a warm-up of this model config, task and warm-up config is cached. */
export function warmupCachePath(cacheDirectory: string, key: Record<string, unknown>): string {
  const hash = createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 16);
  mkdirSync(cacheDirectory, { recursive: true });
  return join(cacheDirectory, `warmup-${hash}`);
}

/** A complete cached warm-up: a model directory whose weights were written. */
export function hasCachedWarmup(path: string): boolean {
  return existsSync(join(path, 'config.json')) && existsSync(join(path, 'model.safetensors'));
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
  device: DeviceName = 'cpu',
): Promise<{ policy: CausalLM; tokenizer: CharTokenizer; task: AdditionTask }> {
  const task = new AdditionTask();
  const tokenizer = new CharTokenizer(task.alphabet);
  // The cache key leaves the device out: a warm-up made on one device loads on another.
  const modelConfig = { ...preset.model, vocabSize: tokenizer.vocabSize, seed };
  const warmupConfig = { ...preset.warmup, seed };
  const policy = CausalLM.create({ ...modelConfig, device });
  const cached = warmupCachePath(cacheDir, { model: modelConfig, warmup: warmupConfig, task: task.name, alphabet: task.alphabet });
  if (hasCachedWarmup(cached)) {
    await policy.load(cached);
  } else {
    await warmup(policy, tokenizer, task, warmupConfig, (progress) => onProgress?.(progress, warmupConfig.steps ?? 0));
    await policy.save(cached, { tokenizer, metadata: { 'napo.warmup': JSON.stringify(warmupConfig) } });
  }
  return { policy, tokenizer, task };
}

/**
 * Evaluation by level on fixed held-out items: greedy pass@1 and sampled pass@k (the paper's
 * k = 4 at temperature 0.7). The items come from their own seed, never from the training stream.
 */
import { generate, type GenerateOptions, type Policy, type Tokenizer } from '@napo/policy';

import { Rng } from './rng.js';
import type { LevelScore } from './records.js';
import type { Task, TaskItem } from './task.js';

export interface EvaluationOptions {
  itemsPerLevel: number;
  k: number;
  temperature: number;
  maxNewTokens: number;
  /** Seed of the held-out items (kept apart from training seeds). */
  itemSeed: number;
  /** Philox seed of the sampled attempts. */
  sampleSeed: number;
  /** Rows per generate call: the model's decoding workspace grows to the largest batch it sees. */
  batchSize: number;
}

export const defaultEvaluationOptions: EvaluationOptions = {
  itemsPerLevel: 50,
  k: 4,
  temperature: 0.7,
  maxNewTokens: 64,
  itemSeed: 1_000_003,
  sampleSeed: 17,
  batchSize: 64,
};

/** Up to itemsPerLevel items of each level: the task's own evaluation split when it has one, else drawn from `seed`. */
export function heldOutItems(task: Task, itemsPerLevel: number, seed: number): TaskItem[] {
  if (task.heldOut) {
    const split = task.heldOut();
    return task.levels.flatMap((level) => split.filter((item) => item.level === level).slice(0, itemsPerLevel));
  }
  const rng = new Rng(seed);
  return task.levels.flatMap((level) => Array.from({ length: itemsPerLevel }, () => task.sample(rng, level)));
}

export async function evaluate(
  policy: Policy,
  tokenizer: Tokenizer,
  task: Task,
  items: readonly TaskItem[],
  options: EvaluationOptions,
  encodePrompt: (text: string) => number[] = (text) => tokenizer.encode(text),
): Promise<LevelScore[]> {
  const prompts = items.map((item) => encodePrompt(item.prompt));
  const generation = { maxNewTokens: options.maxNewTokens, tokenizer };
  const greedyTexts = await generateInChunks(policy, prompts, options.batchSize, { ...generation, temperature: 0 });
  const sampledTexts = await generateInChunks(
    policy,
    prompts.flatMap((prompt) => Array.from({ length: options.k }, () => prompt)),
    options.batchSize,
    // Each chunk its own Philox seed: rows are numbered from 0 in every call.
    { ...generation, temperature: options.temperature, seed: options.sampleSeed },
  );
  return task.levels.map((level) => {
    let pass1 = 0;
    let passK = 0;
    let count = 0;
    items.forEach((item, index) => {
      if (item.level !== level) return;
      count++;
      pass1 += task.verify(greedyTexts[index] ?? '', item.answer);
      const attempts = sampledTexts.slice(index * options.k, (index + 1) * options.k);
      passK += attempts.some((text) => task.verify(text, item.answer) === 1) ? 1 : 0;
    });
    return { level, pass1: count ? pass1 / count : 0, passK: count ? passK / count : 0 };
  });
}

/** Completion texts of `prompts`, generated `batchSize` rows at a time. */
async function generateInChunks(
  policy: Policy,
  prompts: readonly number[][],
  batchSize: number,
  options: GenerateOptions & { seed?: number },
): Promise<string[]> {
  const texts: string[] = [];
  for (let begin = 0, chunk = 0; begin < prompts.length; begin += batchSize, chunk++) {
    const seed = options.seed === undefined ? undefined : options.seed + chunk;
    const result = await generate(policy, prompts.slice(begin, begin + batchSize), { ...options, ...(seed === undefined ? {} : { seed }) });
    texts.push(...(result.texts ?? []));
  }
  return texts;
}

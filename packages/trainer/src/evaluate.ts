/**
 * Evaluation by level on fixed held-out items: greedy pass@1 and sampled pass@k (the paper's
 * k = 4 at temperature 0.7), and ExPO's premise (diagnostics.ts) on the first items of each level.
 * The items come from their own seed, never from the training stream.
 */
import { generate, type GenerateOptions, type Policy, type Tokenizer } from '@napo/policy';

import { diagnoseByLevel } from './diagnostics.js';
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
  /** Items per level whose self-explanations are diagnosed (0: none). */
  diagnosticItems: number;
  /** Temperature of those self-explanations (the trainer's explainTemperature). */
  explainTemperature: number;
}

export const defaultEvaluationOptions: EvaluationOptions = {
  itemsPerLevel: 50,
  k: 4,
  temperature: 0.7,
  maxNewTokens: 64,
  itemSeed: 1_000_003,
  sampleSeed: 17,
  batchSize: 64,
  diagnosticItems: 20,
  explainTemperature: 0.7,
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
  const attemptsOf = (index: number) => sampledTexts.slice(index * options.k, (index + 1) * options.k);
  const explanations = await diagnoseLevels(policy, tokenizer, task, items, attemptsOf, options, encodePrompt);
  return task.levels.map((level) => {
    let pass1 = 0;
    let passK = 0;
    let count = 0;
    items.forEach((item, index) => {
      if (item.level !== level) return;
      count++;
      pass1 += task.verify(greedyTexts[index] ?? '', item.answer);
      passK += attemptsOf(index).some((text) => task.verify(text, item.answer) === 1) ? 1 : 0;
    });
    const diagnosed = explanations.get(level);
    return { level, pass1: count ? pass1 / count : 0, passK: count ? passK / count : 0, ...(diagnosed ? { explanations: diagnosed } : {}) };
  });
}

/**
 * Self-explanations of each level's first diagnosticItems items, sampled and diagnosed; p(a* | q)
 * from the item's pass@k attempts.
 */
async function diagnoseLevels(
  policy: Policy,
  tokenizer: Tokenizer,
  task: Task,
  items: readonly TaskItem[],
  attemptsOf: (index: number) => string[],
  options: EvaluationOptions,
  encodePrompt: (text: string) => number[],
): ReturnType<typeof diagnoseByLevel> {
  const chosenIndices = task.levels.flatMap((level) =>
    items.flatMap((item, index) => (item.level === level ? [index] : [])).slice(0, options.diagnosticItems),
  );
  const chosen = chosenIndices.map((index) => items[index] as TaskItem);
  if (chosen.length === 0) return new Map();
  const explanations = await generateInChunks(
    policy,
    chosen.map((item) => encodePrompt(task.explainPrompt(item.prompt, item.answer))),
    options.batchSize,
    // A seed of its own, apart from the pass@k attempts'.
    { maxNewTokens: options.maxNewTokens, tokenizer, temperature: options.explainTemperature, seed: options.sampleSeed + 1_000_000 },
  );
  const attempts = chosenIndices.map(attemptsOf);
  return diagnoseByLevel({ policy, tokenizer, task, items: chosen, explanations, attempts, encode: encodePrompt, batchSize: options.batchSize });
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

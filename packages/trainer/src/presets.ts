/**
 * Presets of the comparison: the same policy, task, batch and seeds for every method. `quick`
 * fits in about ten minutes on a 2-core machine; `full` is the comparison worth reporting.
 */
import type { ModelConfigInput } from '@napo/policy';

import type { TrainConfigInput } from './config.js';
import type { EvaluationOptions } from './evaluate.js';
import type { WarmupConfigInput } from './warmup.js';

export interface Preset {
  name: string;
  /** A small gpt2 (napo's TinyGPT), its vocabulary the task's characters. */
  model: Omit<ModelConfigInput, 'vocabSize' | 'seed'>;
  warmup: WarmupConfigInput;
  train: TrainConfigInput;
  evaluation: Partial<EvaluationOptions>;
}

/**
 * The warm-up of both presets: plain and explained solutions of levels 1-2, explained solutions of
 * levels 3-5 (the answer in the prompt), and one plain level 3-5 solution every fourth step - the
 * regime ExPO is for, measured before any RL (README, "ExPO's premise"): on levels 4-5 plain pass@8
 * 0-1%, self-explanations valid 40-95% and far likelier than the expert's solutions.
 */
const hardLevelsExplained = { levels: [1, 2], batchSize: 32, learningRate: 2e-3, explainLevels: [3, 4, 5], explainExamples: 16, hardPlainEvery: 4 };

export const presets: Record<'quick' | 'full', Preset> = {
  quick: {
    name: 'quick',
    model: { family: 'gpt2', maxPositions: 128, hiddenSize: 128, numLayers: 4, numHeads: 4 },
    // Half the full warm-up's steps, to fit ten minutes.
    warmup: withSteps(1000),
    train: { steps: 40, promptsPerStep: 8, groupSize: 8, levels: [1, 2, 3, 4, 5], maxNewTokens: 64, learningRate: 1e-4, evalEvery: 20 },
    evaluation: { itemsPerLevel: 50, k: 4, temperature: 0.7, diagnosticItems: 20 },
  },
  full: {
    name: 'full',
    model: { family: 'gpt2', maxPositions: 128, hiddenSize: 128, numLayers: 4, numHeads: 4 },
    warmup: withSteps(2000),
    train: { steps: 150, promptsPerStep: 8, groupSize: 8, levels: [1, 2, 3, 4, 5], maxNewTokens: 64, learningRate: 1e-4, evalEvery: 75 },
    // 200 held-out items per level: a 5-point difference on a hard level is not noise.
    evaluation: { itemsPerLevel: 200, k: 4, temperature: 0.7, diagnosticItems: 20 },
  },
};

/** The warm-up with `steps` steps (key order kept: it is part of the cache key). */
function withSteps(steps: number): WarmupConfigInput {
  const { levels, ...rest } = hardLevelsExplained;
  return { levels, steps, ...rest };
}

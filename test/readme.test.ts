/**
 * The README's examples, run as written (only file paths moved to a temporary folder), so the
 * front page cannot drift from the API.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';
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
import { CharTokenizer, TinyGPT, generate } from '@napo/policy';

const folder = mkdtempSync(join(tmpdir(), 'napo-readme-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

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

  it('trains, samples, saves and loads a TinyGPT', async () => {
    const tokenizer = CharTokenizer.fromText('hello world');
    const model = TinyGPT.create({ vocabSize: tokenizer.vocabSize, contextLength: 64, dModel: 64, nLayers: 2, nHeads: 2, seed: 1 });
    const ids = tokenizer.encode('hello world');
    const logits = await model.forward([ids]);
    const flat = logits.reshape([ids.length, model.vocabSize]);
    const targets = tensor(Int32Array.from([...ids.slice(1), tokenizer.eos]));
    const { lse } = tokenLogprobs(flat, targets);
    const grad = tokenLogprobsBackward(flat, targets, lse, tensor(new Float32Array(ids.length).fill(-1 / ids.length)));
    await model.backward(grad.reshape([1, ids.length, model.vocabSize]));
    await model.step({ lr: 1e-3 });
    model.zeroGrad();
    const { texts } = await generate(model, ['hel'], { maxNewTokens: 8, temperature: 0.7, seed: 1, tokenizer });
    expect(texts).toHaveLength(1);
    const path = join(folder, 'model.safetensors');
    await model.save(path, { tokenizer, optimizer: true });
    const { model: restored } = await TinyGPT.fromCheckpoint(path);
    const again = await restored.forward([ids]);
    const original = await model.forward([ids]);
    expect(Array.from(again.toArray())).toEqual(Array.from(original.toArray()));
    for (const m of [model, restored]) m.dispose();
  });
});

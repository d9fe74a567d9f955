/**
 * TinyGPT, the old single-class model, is now a small gpt2 config of CausalLM. What its tests
 * checked that still applies: the forward against the reference on model-set weights (tied
 * head, padded Tensor input), seeded initialisation and memory accounting, gradient
 * accumulation, clones, directory checkpoints of the wrong shape, and a short supervised run.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { memoryStats, tensor } from '@napo/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CausalLM, CharTokenizer, fromPretrained, reference, resolveModelConfig, warmupCosineSchedule } from '../src/index.js';
import { checkpointTensorsOf, randomizeParameters, rng, sameBits, temporaryDirectory, tinyGPT } from './helpers.js';

const V = tinyGPT.vocabSize;
const rows = [
  [1, 2, 3, 4, 5, 6, 7, 8],
  [3, 1, 4],
  [10, 0, 9, 2, 6],
];

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await temporaryDirectory('napo-tinygpt-'));
});
afterAll(async () => {
  await cleanup();
});

async function forwardArray(model: CausalLM, input: Parameters<CausalLM['forward']>[0], options?: Parameters<CausalLM['forward']>[1]): Promise<Float32Array> {
  const logits = await model.forward(input, options);
  const data = logits.toArray() as Float32Array;
  logits.dispose();
  return data;
}

describe('TinyGPT (a small gpt2) forward', () => {
  it('matches the float64 reference on ragged rows with weights set through setParameter (tied head)', async () => {
    const model = CausalLM.create(tinyGPT);
    expect(model.config.tieWordEmbeddings).toBe(true);
    expect(model.contextLength).toBe(8);
    expect(model.vocabSize).toBe(V);
    randomizeParameters(model, 1);
    const logits = await model.forward(rows);
    expect(logits.shape).toEqual([3, 8, V]);
    const data = logits.toArray();
    logits.dispose();
    const expected = reference.referenceForward(resolveModelConfig(tinyGPT), checkpointTensorsOf(model), rows);
    let maxError = 0;
    rows.forEach((row, b) => {
      for (let t = 0; t < 8; t++) {
        for (let v = 0; v < V; v++) {
          const got = data[(b * 8 + t) * V + v] as number;
          if (t < row.length) maxError = Math.max(maxError, Math.abs(got - expected[b][t][v]));
          else expect(got).toBe(0);
        }
      }
    });
    expect(maxError).toBeLessThanOrEqual(1e-4);
    model.dispose();
  });

  it('a padded [B, T] int32 Tensor with lengths or a mask gives the ragged batch logits', async () => {
    const model = CausalLM.create(tinyGPT);
    randomizeParameters(model, 2);
    const want = await forwardArray(model, rows);
    const padded = new Int32Array(3 * 8);
    rows.forEach((row, b) => row.forEach((id, t) => (padded[b * 8 + t] = id)));
    // Garbage past each length must be ignored, out-of-range ids included.
    padded[1 * 8 + 5] = 999;
    const lengths = rows.map((row) => row.length);
    expect(sameBits(await forwardArray(model, tensor(padded, [3, 8]), { lengths }), want)).toBe(true);
    const mask = rows.map((row) => Array.from({ length: 8 }, (_, t) => (t < row.length ? 1 : 0)));
    expect(sameBits(await forwardArray(model, tensor(padded, [3, 8]), { mask }), want)).toBe(true);
    const badMask = [[1, 0, 1, 0, 0, 0, 0, 0], mask[1], mask[2]];
    await expect(model.forward(tensor(padded, [3, 8]), { mask: badMask })).rejects.toThrow(/mask row 0 is not a prefix of ones/);
    await expect(model.forward(tensor(padded, [3, 8]), { lengths, mask })).rejects.toThrow(/lengths or mask, not both/);
    await expect(model.forward(tensor(padded, [3, 8]))).rejects.toThrow(/tokens\[1, 5\] = 999 is out of range for vocab 11/);
    model.dispose();
  });

  it('is deterministic from the seed and counts its memory', () => {
    const before = memoryStats('cpu').allocatedBytes;
    const a = CausalLM.create(tinyGPT);
    const b = CausalLM.create(tinyGPT);
    const c = CausalLM.create({ ...tinyGPT, seed: 4 });
    expect(memoryStats('cpu').allocatedBytes - before).toBeGreaterThanOrEqual(3 * a.parameterCount * 4);
    expect(a.getParameter('transformer.h.1.mlp.c_fc.weight')).toEqual(b.getParameter('transformer.h.1.mlp.c_fc.weight'));
    expect(a.getParameter('transformer.wte.weight')).not.toEqual(c.getParameter('transformer.wte.weight'));
    expect(a.getParameter('transformer.h.0.ln_1.weight').every((v) => v === 1)).toBe(true);
    expect(a.getParameter('transformer.h.0.ln_1.bias').every((v) => v === 0)).toBe(true);
    // A model about to be loaded skips the random draw.
    const blank = CausalLM.create(tinyGPT, { initialize: false });
    expect(blank.getParameter('transformer.wte.weight').every((v) => v === 0)).toBe(true);
    for (const m of [a, b, c, blank]) m.dispose();
    expect(memoryStats('cpu').allocatedBytes).toBeLessThanOrEqual(before);
  });

  it('parameters(): Hugging Face names, [out, in] shapes, Conv1D weights marked as transposed in checkpoints', () => {
    const model = CausalLM.create(tinyGPT);
    const byName = new Map(model.parameters().map((p) => [p.name, p]));
    expect(byName.get('transformer.h.0.attn.c_attn.weight')).toEqual({ name: 'transformer.h.0.attn.c_attn.weight', shape: [48, 16], checkpointTransposed: true, weightDecay: true });
    expect(byName.get('transformer.h.0.attn.c_attn.bias')?.weightDecay).toBe(false);
    expect(byName.get('transformer.wpe.weight')?.shape).toEqual([8, 16]);
    expect(byName.has('lm_head.weight')).toBe(false);
    expect(model.parameterCount).toBe(model.parameters().reduce((n, p) => n + p.shape.reduce((a, d) => a * d, 1), 0));
    model.dispose();
  });
});

describe('TinyGPT backward', () => {
  it('accumulates over backward calls until zeroGrad (each forward allows one backward)', async () => {
    const model = CausalLM.create(tinyGPT);
    const grad = tensor(new Float32Array(2 * 3 * V).fill(0.1), [2, 3, V]);
    const name = 'transformer.h.0.attn.c_attn.weight';
    (await model.forward([[1, 2, 3], [4, 5, 6]])).dispose();
    await model.backward(grad);
    const once = model.getGradient(name);
    expect(once.some((v) => v !== 0)).toBe(true);
    (await model.forward([[1, 2, 3], [4, 5, 6]])).dispose();
    await model.backward(grad);
    const twice = model.getGradient(name);
    once.forEach((v, i) => expect(twice[i]).toBeCloseTo(2 * v, 6));
    // The score path accumulates into the same gradients.
    model.zeroGrad();
    expect(model.getGradient(name).every((v) => v === 0)).toBe(true);
    const targets = Int32Array.from([2, 3, 4, 5, 6, 7]);
    const gradLogprobs = tensor(new Float32Array(6).fill(1), [2, 3]);
    for (let i = 0; i < 2; i++) {
      (await model.score([[1, 2, 3], [4, 5, 6]], targets)).logprobs.dispose();
      await model.scoreBackward(gradLogprobs);
    }
    const scored = model.getGradient(name);
    model.zeroGrad();
    (await model.score([[1, 2, 3], [4, 5, 6]], targets)).logprobs.dispose();
    await model.scoreBackward(gradLogprobs);
    model.getGradient(name).forEach((v, i) => expect(scored[i]).toBeCloseTo(2 * v, 6));
    model.dispose();
  });
});

describe('TinyGPT clones and checkpoints', () => {
  it('clone is an independent frozen copy of the weights (no gradients or optimizer state)', async () => {
    const model = CausalLM.create(tinyGPT);
    randomizeParameters(model, 4);
    (await model.forward(rows)).dispose();
    await model.backward(tensor(new Float32Array(3 * 8 * V).fill(0.01), [3, 8, V]));
    await model.step({ lr: 1e-3 });
    const want = await forwardArray(model, rows);
    const frozen = await model.clone();
    expect(frozen.config).toEqual(model.config);
    expect(frozen.optimizerSteps).toBe(0);
    expect(frozen.getGradient('transformer.wte.weight').every((v) => v === 0)).toBe(true);
    randomizeParameters(model, 5);
    expect(sameBits(await forwardArray(frozen, rows), want)).toBe(true);
    frozen.dispose();
    // The original is untouched by disposing its clone.
    expect((await forwardArray(model, rows)).length).toBe(want.length);
    model.dispose();
  });

  it('save -> fromPretrained keeps config and tokenizer; other shapes, missing weights and corrupt files are refused', async () => {
    const model = CausalLM.create(tinyGPT);
    randomizeParameters(model, 6);
    const tokenizer = new CharTokenizer('abcdefghi');
    const saved = join(dir, 'tiny');
    await model.save(saved, { tokenizer });
    expect((await readdir(saved)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const restored = await fromPretrained(saved);
    expect(restored.model.config).toEqual({ ...model.config, seed: 0 });
    expect(restored.tokenizer.decode(restored.tokenizer.encode('abc'))).toBe('abc');
    expect(sameBits(await forwardArray(restored.model, rows), await forwardArray(model, rows))).toBe(true);

    const big = CausalLM.create({ ...tinyGPT, hiddenSize: 32 });
    await big.save(join(dir, 'big'));
    await expect(model.load(join(dir, 'big'))).rejects.toThrow(/a checkpoint of another shape: hiddenSize = 32, this model has 16/);
    const empty = join(dir, 'empty');
    await mkdir(empty, { recursive: true });
    await writeFile(join(empty, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: V, n_embd: 16, n_layer: 2, n_head: 2, n_positions: 8 }));
    await expect(model.load(empty)).rejects.toThrow(/no model\.safetensors or model\.safetensors\.index\.json/);
    await writeFile(join(empty, 'model.safetensors'), Buffer.from([255, 255, 0, 0, 0, 0, 0, 0, 1, 2]));
    await expect(model.load(empty)).rejects.toThrow(/model\.safetensors: header length \d+ runs past the end of the file \(10 bytes\)/);
    for (const m of [model, big, restored.model]) m.dispose();
  });
});

describe('TinyGPT training', () => {
  it('a short supervised run lowers the loss far below the unigram entropy', async () => {
    const corpus = 'the quick brown fox jumps over the lazy dog. '.repeat(40);
    const tokenizer = CharTokenizer.fromText(corpus);
    const ids = tokenizer.encode(corpus);
    const vocab = tokenizer.vocabSize;
    // Unigram entropy: the best loss of any model that ignores context.
    const counts = new Map<number, number>();
    for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
    let unigram = 0;
    for (const c of counts.values()) unigram -= (c / ids.length) * Math.log(c / ids.length);
    const model = CausalLM.create({ family: 'gpt2', vocabSize: vocab, maxPositions: 32, hiddenSize: 32, numLayers: 2, numHeads: 2, seed: 1 });
    const B = 8;
    const T = 32;
    const steps = 120;
    const next = rng(11);
    const schedule = warmupCosineSchedule({ peakLr: 1e-2, warmupSteps: 10, totalSteps: steps, minLr: 1e-3 });
    const losses: number[] = [];
    for (let step = 0; step < steps; step++) {
      const starts = Array.from({ length: B }, () => Math.floor(next() * (ids.length - T - 1)));
      const inputs = starts.map((s) => ids.slice(s, s + T));
      const targets = starts.map((s) => ids.slice(s + 1, s + T + 1));
      const data = await forwardArray(model, inputs);
      // Mean cross-entropy and its gradient (softmax - onehot) / N.
      const grad = new Float32Array(data.length);
      let loss = 0;
      for (let row = 0; row < B * T; row++) {
        const z = data.subarray(row * vocab, (row + 1) * vocab);
        const max = z.reduce((m, v) => Math.max(m, v), -Infinity);
        let sum = 0;
        for (const v of z) sum += Math.exp(v - max);
        const target = targets[Math.floor(row / T)][row % T];
        loss += Math.log(sum) + max - (z[target] as number);
        for (let v = 0; v < vocab; v++) grad[row * vocab + v] = (Math.exp((z[v] as number) - max) / sum - (v === target ? 1 : 0)) / (B * T);
      }
      losses.push(loss / (B * T));
      model.zeroGrad();
      await model.backward(tensor(grad, [B, T, vocab]));
      await model.step({ lr: schedule(step), weightDecay: 0 });
    }
    // At init the logits are ~0 (N(0, 0.02) weights): loss ~ ln V.
    expect(Math.abs(losses[0] - Math.log(vocab))).toBeLessThan(0.1);
    const final = losses.slice(-10).reduce((a, b) => a + b, 0) / 10;
    // The text is deterministic given a few characters of context, so a model that uses its
    // context must beat the unigram entropy (~2.9 nats) by far; half of it is a safe bound.
    expect(final).toBeLessThan(0.5 * unigram);
    expect(model.optimizerSteps).toBe(steps);
    model.dispose();
    expect(() => model.zeroGrad()).toThrow(/disposed/);
  });
});

import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { memoryStats, tensor } from '@napo/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CharTokenizer, TinyGPT, reference, resolveTinyGPTConfig, warmupCosineSchedule } from '../src/index.js';
import { parameterMap, randomizeParameters, rng, tiny } from './helpers.js';

const rows = [
  [1, 2, 3, 4, 5, 6, 7, 8],
  [3, 1, 4],
  [10, 0, 9, 2, 6],
];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'napo-policy-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('TinyGPT forward', () => {
  it('matches the float64 reference on ragged rows (max abs error <= 1e-4)', async () => {
    const model = TinyGPT.create(tiny);
    randomizeParameters(model, 1);
    const logits = await model.forward(rows);
    expect(logits.shape).toEqual([3, 8, 11]);
    const data = logits.toArray();
    const expected = reference.referenceForward(resolveTinyGPTConfig(tiny), parameterMap(model), rows);
    let maxError = 0;
    rows.forEach((row, b) => {
      for (let t = 0; t < 8; t++) {
        for (let v = 0; v < 11; v++) {
          const got = data[(b * 8 + t) * 11 + v] as number;
          if (t < row.length) maxError = Math.max(maxError, Math.abs(got - ((expected[b] as Float64Array[])[t] as Float64Array)[v]!));
          else expect(got).toBe(0);
        }
      }
    });
    expect(maxError).toBeLessThanOrEqual(1e-4);
    model.dispose();
  });

  it('is deterministic from the seed and counts its memory', async () => {
    const before = memoryStats('cpu').allocatedBytes;
    const a = TinyGPT.create(tiny);
    const b = TinyGPT.create(tiny);
    const c = TinyGPT.create({ ...tiny, seed: 4 });
    expect(memoryStats('cpu').allocatedBytes - before).toBeGreaterThanOrEqual(3 * a.parameterCount * 4);
    expect(a.getParameter('h.1.mlp.c_fc.weight')).toEqual(b.getParameter('h.1.mlp.c_fc.weight'));
    expect(a.getParameter('wte.weight')).not.toEqual(c.getParameter('wte.weight'));
    expect(Array.from(a.getParameter('h.0.ln_1.weight')).every((v) => v === 1)).toBe(true);
    for (const m of [a, b, c]) m.dispose();
    expect(memoryStats('cpu').allocatedBytes).toBeLessThanOrEqual(before);
  });
});

describe('TinyGPT backward', () => {
  it('matches central finite differences for every parameter group (rel. error <= 1e-2)', async () => {
    const model = TinyGPT.create(tiny);
    randomizeParameters(model, 2);
    const next = rng(7);
    // L = sum R * logits over valid positions; R is garbage past each length (must be ignored).
    const R = new Float32Array(3 * 8 * 11).map(() => 2 * next() - 1);
    const logits = await model.forward(rows);
    await model.backward(tensor(R, [3, 8, 11]));
    logits.dispose();
    const config = resolveTinyGPTConfig(tiny);
    const params = parameterMap(model);
    const loss = (): number => {
      const out = reference.referenceForward(config, params, rows);
      let sum = 0;
      rows.forEach((row, b) => {
        for (let t = 0; t < row.length; t++)
          for (let v = 0; v < 11; v++) sum += (R[(b * 8 + t) * 11 + v] as number) * (((out[b] as Float64Array[])[t] as Float64Array)[v] as number);
      });
      return sum;
    };
    const h = 1e-5;
    let checked = 0;
    for (const { name } of model.parameters()) {
      const grad = model.getGradient(name);
      const values = params.get(name) as Float64Array;
      // The two largest entries and one random entry of each group.
      const order = Array.from(grad.keys()).sort((i, j) => Math.abs(grad[j] as number) - Math.abs(grad[i] as number));
      const picks = [order[0] as number, order[1] as number, Math.floor(next() * grad.length)];
      for (const index of picks) {
        const saved = values[index] as number;
        values[index] = saved + h;
        const up = loss();
        values[index] = saved - h;
        const down = loss();
        values[index] = saved;
        const numeric = (up - down) / (2 * h);
        const analytic = grad[index] as number;
        const rel = Math.abs(numeric - analytic) / Math.max(Math.abs(numeric), Math.abs(analytic), 1e-3);
        expect(rel, `${name}[${index}]: native ${analytic}, numeric ${numeric}`).toBeLessThanOrEqual(1e-2);
        checked++;
      }
    }
    expect(checked).toBe(3 * model.parameters().length);
    model.dispose();
  });

  it('accumulates over backward calls until zeroGrad', async () => {
    const model = TinyGPT.create(tiny);
    const grad = tensor(new Float32Array(2 * 3 * 11).fill(0.1), [2, 3, 11]);
    (await model.forward([[1, 2, 3], [4, 5, 6]])).dispose();
    await model.backward(grad);
    const once = model.getGradient('h.0.attn.c_attn.weight');
    await model.backward(grad);
    const twice = model.getGradient('h.0.attn.c_attn.weight');
    once.forEach((v, i) => expect(twice[i]).toBeCloseTo(2 * v, 6));
    model.zeroGrad();
    expect(model.getGradient('h.0.attn.c_attn.weight').every((v) => v === 0)).toBe(true);
    model.dispose();
  });
});

describe('TinyGPT decoding', () => {
  it('KV-cache decode logits equal full-forward logits (<= 1e-5), ragged and with inactive rows', async () => {
    const model = TinyGPT.create(tiny);
    randomizeParameters(model, 3);
    const prompts = [[1, 2, 3], [4, 5], [6, 7, 8, 9]];
    const fed = [[5, 6, 7], [8, 9, 10], [1, 2, 3]];
    // Row 1 is inactive at step 1: its token that step is not part of its sequence.
    const active = [[true, true, true], [true, false, true], [true, true, true]];
    const sequences = prompts.map((p, b) => [...p, ...(fed[b] as number[]).filter((_, s) => (active[b] as boolean[])[s])]);
    const full = (await model.forward(sequences)).toArray();
    const T = Math.max(...sequences.map((s) => s.length));
    const at = (b: number, t: number) => full.subarray((b * T + t) * 11, (b * T + t + 1) * 11);
    let maxError = 0;
    const compare = (logits: Float32Array, b: number, t: number) => {
      const want = at(b, t);
      for (let v = 0; v < 11; v++) maxError = Math.max(maxError, Math.abs((logits[b * 11 + v] as number) - (want[v] as number)));
    };
    const first = (await model.prefill(prompts)).toArray();
    prompts.forEach((p, b) => compare(first, b, p.length - 1));
    const positions = prompts.map((p) => p.length);
    for (let step = 0; step < 3; step++) {
      const mask = prompts.map((_, b) => (active[b] as boolean[])[step] as boolean);
      const logits = (await model.decodeStep(fed.map((f) => f[step] as number), { active: mask })).toArray();
      prompts.forEach((_, b) => {
        if (!mask[b]) {
          expect(Array.from(logits.subarray(b * 11, b * 11 + 11)).every((v) => v === 0)).toBe(true);
          return;
        }
        compare(logits, b, positions[b] as number);
        positions[b] = (positions[b] as number) + 1;
      });
    }
    positions.forEach((p, b) => expect(model.cachePosition(b)).toBe(p));
    expect(maxError).toBeLessThanOrEqual(1e-5);
    model.dispose();
  });
});

describe('TinyGPT checkpoints', () => {
  it('save -> load gives identical logits; clone is independent', async () => {
    const model = TinyGPT.create(tiny);
    randomizeParameters(model, 4);
    const tokenizer = new CharTokenizer('abcdefghi');
    const path = join(dir, 'model.safetensors');
    await model.save(path, { tokenizer });
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const want = (await model.forward(rows)).toArray();
    const other = TinyGPT.create({ ...tiny, seed: 99 });
    await other.load(path);
    expect((await other.forward(rows)).toArray()).toEqual(want);
    const restored = await TinyGPT.fromCheckpoint(path);
    expect(restored.model.config).toEqual(model.config);
    expect(restored.tokenizer?.decode(restored.tokenizer.encode('abc'))).toBe('abc');
    expect((await restored.model.forward(rows)).toArray()).toEqual(want);
    const frozen = await model.clone();
    randomizeParameters(model, 5);
    expect((await frozen.forward(rows)).toArray()).toEqual(want);
    for (const m of [model, other, restored.model, frozen]) m.dispose();
  });

  it('rejects checkpoints of another shape, missing tensors and corrupt files', async () => {
    const big = TinyGPT.create({ ...tiny, dModel: 32 });
    const path = join(dir, 'big.safetensors');
    await big.save(path);
    const model = TinyGPT.create(tiny);
    await expect(model.load(path)).rejects.toThrow(/another shape: dModel = 32, this model has 16/);
    const noMeta = join(dir, 'nometa.safetensors');
    const { encodeSafetensors } = await import('../src/safetensors.js');
    await writeFile(noMeta, encodeSafetensors(new Map([['wte.weight', { dtype: 'F32', shape: [11, 16], data: new Float32Array(176) }]])));
    await expect(model.load(noMeta)).rejects.toThrow(/is missing wpe.weight/);
    const corrupt = join(dir, 'corrupt.safetensors');
    await writeFile(corrupt, Buffer.from([255, 255, 0, 0, 0, 0, 0, 0, 1, 2]));
    await expect(model.load(corrupt)).rejects.toThrow(RangeError);
    big.dispose();
    model.dispose();
  });
});

describe('TinyGPT training', () => {
  it('a short supervised run lowers the loss far below the unigram entropy', async () => {
    const corpus = 'the quick brown fox jumps over the lazy dog. '.repeat(40);
    const tokenizer = CharTokenizer.fromText(corpus);
    const ids = tokenizer.encode(corpus);
    const V = tokenizer.vocabSize;
    // Unigram entropy: the best loss of any model that ignores context.
    const counts = new Map<number, number>();
    for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
    let unigram = 0;
    for (const c of counts.values()) unigram -= (c / ids.length) * Math.log(c / ids.length);
    const model = TinyGPT.create({ vocabSize: V, contextLength: 32, dModel: 32, nLayers: 2, nHeads: 2, seed: 1 });
    const B = 8;
    const T = 32;
    const next = rng(11);
    const schedule = warmupCosineSchedule({ peakLr: 1e-2, warmupSteps: 10, totalSteps: 150, minLr: 1e-3 });
    const losses: number[] = [];
    for (let step = 0; step < 150; step++) {
      const starts = Array.from({ length: B }, () => Math.floor(next() * (ids.length - T - 1)));
      const inputs = starts.map((s) => ids.slice(s, s + T));
      const targets = starts.map((s) => ids.slice(s + 1, s + T + 1));
      const logits = await model.forward(inputs);
      const data = logits.toArray();
      logits.dispose();
      // Mean cross-entropy and its gradient (softmax - onehot) / N.
      const grad = new Float32Array(data.length);
      let loss = 0;
      for (let row = 0; row < B * T; row++) {
        const z = data.subarray(row * V, row * V + V);
        const max = Math.max(...z);
        let sum = 0;
        for (const v of z) sum += Math.exp(v - max);
        const target = (targets[Math.floor(row / T)] as number[])[row % T] as number;
        loss += Math.log(sum) + max - (z[target] as number);
        for (let v = 0; v < V; v++) grad[row * V + v] = (Math.exp((z[v] as number) - max) / sum - (v === target ? 1 : 0)) / (B * T);
      }
      losses.push(loss / (B * T));
      model.zeroGrad();
      await model.backward(tensor(grad, [B, T, V]));
      await model.step({ lr: schedule(step), weightDecay: 0 });
    }
    // At init the logits are ~0 (N(0, 0.02) weights): loss ~ ln V.
    expect(Math.abs((losses[0] as number) - Math.log(V))).toBeLessThan(0.1);
    const final = losses.slice(-10).reduce((a, b) => a + b, 0) / 10;
    // The text is deterministic given a few characters of context, so a model that uses its
    // context must beat the unigram entropy (~2.9 nats) by far; half of it is a safe bound.
    expect(final).toBeLessThan(0.5 * unigram);
    expect(model.optimizerSteps).toBe(150);
    model.dispose();
  });
});

describe('TinyGPT bad input', () => {
  it('gives clear errors and stays usable', async () => {
    const model = TinyGPT.create(tiny);
    await expect(model.forward([[1, 11]])).rejects.toThrow(/tokens\[0, 1\] = 11 is out of range for vocab 11/);
    await expect(model.forward([[1, -1]])).rejects.toThrow(RangeError);
    await expect(model.forward([Array.from({ length: 9 }, () => 1)])).rejects.toThrow(/sequence length 9 is longer than contextLength 8/);
    await expect(model.forward([])).rejects.toThrow(/the batch is empty/);
    await expect(model.forward([[]])).rejects.toThrow(/tokens\[0\] is empty/);
    await expect(model.forward(tensor(new Int32Array([1, 2]), [1, 2]), { lengths: [3] })).rejects.toThrow(/lengths\[0\] = 3 must be in \[1, 2\]/);
    await expect(model.backward(tensor(new Float32Array(11), [1, 1, 11]))).rejects.toThrow(/call forward first/);
    await expect(model.decodeStep([1])).rejects.toThrow(/call prefill first/);
    (await model.forward([[1, 2]])).dispose();
    await expect(model.backward(tensor(new Float32Array(11), [1, 1, 11]))).rejects.toThrow(/gradLogits must be \[1, 2, 11\]/);
    (await model.prefill([[1, 2, 3, 4, 5, 6, 7]])).dispose();
    (await model.decodeStep([1])).dispose();
    await expect(model.decodeStep([1])).rejects.toThrow(/contextLength/);
    await expect(model.decodeStep([1, 2])).rejects.toThrow(/must be \[1\]/);
    const pending = model.forward([[1, 2]]);
    expect(() => model.zeroGrad()).toThrow(/busy/);
    await expect(model.forward([[1]])).rejects.toThrow(/busy/);
    (await pending).dispose();
    await expect(model.step({ lr: -1 })).rejects.toThrow(/lr = -1/);
    expect(() => TinyGPT.create({ ...tiny, nHeads: 3 })).toThrow(/dModel must be divisible by nHeads/);
    expect(() => TinyGPT.create({ ...tiny, vocabSize: 0 })).toThrow(/vocabSize = 0/);
    expect(() => TinyGPT.create({ ...tiny, device: 'cuda:0' })).toThrow(/CUDA|cuda/);
    expect((await model.forward([[1, 2]])).shape).toEqual([1, 2, 11]);
    model.dispose();
    await expect(model.forward([[1]])).rejects.toThrow(/disposed/);
  });
});

/**
 * AdamW state: its layout, optimizer.safetensors in a model directory, and exact resumes.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { tensor } from '@napo/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CausalLM, CharTokenizer, fromPretrained, readSafetensors, writeSafetensors, type SafetensorsTensor } from '../src/index.js';
import { escapeRegExp, rng, sameBits, temporaryDirectory, tinyGPT, weightsOf } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await temporaryDirectory('napo-optimizer-'));
});
afterAll(async () => {
  await cleanup();
});

const V = tinyGPT.vocabSize;
const tokenizer = new CharTokenizer('abcdefghi');

/** The batch of a step: ragged rows and next-token targets, a function of the step alone. */
function batchOf(step: number): { inputs: number[][]; targets: number[][] } {
  const next = rng(1000 + step);
  const inputs: number[][] = [];
  const targets: number[][] = [];
  for (let b = 0; b < 3; b++) {
    const length = 2 + Math.floor(next() * 6);
    const row = Array.from({ length: length + 1 }, () => Math.floor(next() * V));
    inputs.push(row.slice(0, length));
    targets.push(row.slice(1));
  }
  return { inputs, targets };
}

/** One supervised step through the scoring path: mean negative log-likelihood of the step's batch, then AdamW. */
async function trainStep(model: CausalLM, step: number): Promise<void> {
  const { inputs, targets } = batchOf(step);
  const T = Math.max(...inputs.map((row) => row.length));
  const packed = new Int32Array(inputs.length * T).fill(-1);
  targets.forEach((row, b) => row.forEach((id, t) => (packed[b * T + t] = id)));
  const count = inputs.reduce((sum, row) => sum + row.length, 0);
  (await model.score(inputs, packed)).logprobs.dispose();
  model.zeroGrad();
  await model.scoreBackward(tensor(new Float32Array(packed.length).fill(-1 / count), [inputs.length, T]));
  // Decay, clipping and a changing lr, so every part of the update is exercised.
  await model.step({ lr: 3e-2 * (1 + 0.5 * Math.sin(step)), weightDecay: 0.1, maxGradNorm: 0.5 });
}

/** Bit-exact equality of two weight sets (no tolerance). */
function expectIdentical(got: Map<string, Float32Array>, want: Map<string, Float32Array>): void {
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [name, values] of want) expect(sameBits(got.get(name) as Float32Array, values), name).toBe(true);
}

function sameWeights(a: Map<string, Float32Array>, b: Map<string, Float32Array>): boolean {
  return [...a].every(([name, values]) => sameBits(values, b.get(name) as Float32Array));
}

describe('optimizer state', () => {
  it('is zero before the first step and packed in parameter order after it', async () => {
    const model = CausalLM.create(tinyGPT);
    const fresh = model.getOptimizerState();
    expect(fresh.steps).toBe(0);
    expect(fresh.expAvg.length).toBe(model.parameterCount);
    expect(fresh.expAvgSq.length).toBe(model.parameterCount);
    expect(fresh.expAvg.every((v) => v === 0) && fresh.expAvgSq.every((v) => v === 0)).toBe(true);
    // One step without clipping from zero moments: m = (1 - beta1) g, v = (1 - beta2) g^2.
    const { inputs } = batchOf(0);
    const logits = await model.forward(inputs);
    const next = rng(5);
    const grad = new Float32Array(logits.toArray().length).map(() => next() - 0.5);
    await model.backward(tensor(grad, logits.shape));
    logits.dispose();
    const grads = new Map(model.parameters().map(({ name }) => [name, model.getGradient(name)]));
    const result = await model.step({ lr: 1e-2, beta1: 0.9, beta2: 0.95, maxGradNorm: 0 });
    expect(result).toEqual({ gradNorm: expect.any(Number), clipScale: 1, step: 1 });
    const state = model.getOptimizerState();
    expect(state.steps).toBe(1);
    let at = 0;
    let squares = 0;
    const misplaced: string[] = [];
    for (const { name } of model.parameters()) {
      const g = grads.get(name) as Float32Array;
      for (let i = 0; i < g.length; i++) {
        const gi = g[i] as number;
        squares += gi * gi;
        const m = state.expAvg[at + i] as number;
        const v = state.expAvgSq[at + i] as number;
        if (Math.abs(m - 0.1 * gi) > 1e-6 * Math.abs(gi) + 1e-12 || Math.abs(v - 0.05 * gi * gi) > 1e-6 * gi * gi + 1e-15) {
          misplaced.push(`${name}[${i}]: g ${gi}, m ${m}, v ${v}`);
        }
      }
      at += g.length;
    }
    expect(misplaced.slice(0, 5)).toEqual([]);
    expect(at).toBe(model.parameterCount);
    expect(Math.abs(result.gradNorm - Math.sqrt(squares))).toBeLessThanOrEqual(1e-5 * Math.sqrt(squares));
    model.dispose();
  });

  it('a checkpoint saved at step 3 resumes to exactly the weights of an uninterrupted run', async () => {
    const resume = join(dir, 'resume');
    const weightsOnly = join(dir, 'weights');
    const run = CausalLM.create(tinyGPT);
    for (let step = 0; step < 3; step++) await trainStep(run, step);
    await run.save(resume, { optimizer: true, tokenizer });
    await run.save(weightsOnly, { tokenizer });
    const saved = run.getOptimizerState();
    for (let step = 3; step < 5; step++) await trainStep(run, step);
    const w1 = weightsOf(run);
    expect(run.optimizerSteps).toBe(5);

    // optimizer.safetensors holds the state of step 3 in the documented layout.
    const file = await readSafetensors(join(resume, 'optimizer.safetensors'));
    expect(file.metadata['napo.optimizer_steps']).toBe('3');
    expect(file.tensors.get('exp_avg')?.shape).toEqual([run.parameterCount]);
    expect(file.tensors.get('exp_avg_sq')?.dtype).toBe('F32');
    expect(file.tensors.get('exp_avg')?.data).toEqual(saved.expAvg);
    expect(file.tensors.get('exp_avg_sq')?.data).toEqual(saved.expAvgSq);

    // A fresh model of the same config, loaded, then the same two steps.
    const resumed = CausalLM.create(tinyGPT, { initialize: false });
    await resumed.load(resume);
    expect(resumed.optimizerSteps).toBe(3);
    const restored = resumed.getOptimizerState();
    expect(restored.expAvg).toEqual(saved.expAvg);
    expect(restored.expAvgSq).toEqual(saved.expAvgSq);
    for (let step = 3; step < 5; step++) await trainStep(resumed, step);
    expect(resumed.optimizerSteps).toBe(5);
    expectIdentical(weightsOf(resumed), w1);

    // fromPretrained restores it too.
    const { model: rebuilt } = await fromPretrained(resume);
    expect(rebuilt.optimizerSteps).toBe(3);
    for (let step = 3; step < 5; step++) await trainStep(rebuilt, step);
    expectIdentical(weightsOf(rebuilt), w1);

    // Control: the same weights without the optimizer state do not reach W1.
    const cold = CausalLM.create(tinyGPT, { initialize: false });
    await cold.load(weightsOnly);
    expect(cold.optimizerSteps).toBe(0);
    for (let step = 3; step < 5; step++) await trainStep(cold, step);
    expect(sameWeights(weightsOf(cold), w1)).toBe(false);

    for (const m of [run, resumed, rebuilt, cold]) m.dispose();
  });

  it('a weights-only save has no optimizer file (and removes a stale one); loading it keeps the optimizer state', async () => {
    const model = CausalLM.create(tinyGPT);
    for (let step = 0; step < 2; step++) await trainStep(model, step);
    const plain = join(dir, 'plain');
    const full = join(dir, 'full');
    await model.save(plain, { optimizer: true });
    expect(await readdir(plain)).toContain('optimizer.safetensors');
    await model.save(plain, { metadata: { note: 'x' } });
    expect(await readdir(plain)).not.toContain('optimizer.safetensors');
    await model.save(full, { optimizer: true });
    const weights = await readSafetensors(join(plain, 'model.safetensors'));
    expect(weights.metadata).toEqual({ note: 'x', format: 'pt' });
    // Two F32 moments the size of the weights, plus a little header.
    const size = (await stat(join(full, 'optimizer.safetensors'))).size;
    expect(size).toBeGreaterThanOrEqual(2 * 4 * model.parameterCount);
    expect(size).toBeLessThan(2 * 4 * model.parameterCount + 256);

    const other = CausalLM.create({ ...tinyGPT, seed: 9 });
    await trainStep(other, 7);
    const before = other.getOptimizerState();
    await other.load(plain);
    expect(other.optimizerSteps).toBe(1);
    expect(other.getOptimizerState()).toEqual(before);
    expectIdentical(weightsOf(other), weightsOf(model));
    model.dispose();
    other.dispose();
  });

  it('refuses incomplete or malformed optimizer files, naming the file', async () => {
    const model = CausalLM.create(tinyGPT);
    for (let step = 0; step < 2; step++) await trainStep(model, step);
    const source = join(dir, 'source');
    await model.save(source, { optimizer: true });
    const state = await readSafetensors(join(source, 'optimizer.safetensors'));
    const variant = async (name: string, edit: (tensors: Map<string, SafetensorsTensor>, metadata: Record<string, string>) => void) => {
      const tensors = new Map(state.tensors);
      const metadata = { ...state.metadata };
      edit(tensors, metadata);
      const path = join(dir, name);
      await model.save(path, { tokenizer });
      await writeSafetensors(join(path, 'optimizer.safetensors'), tensors, metadata);
      return path;
    };
    const target = CausalLM.create({ ...tinyGPT, seed: 5 });
    const file = (name: string) => new RegExp(`${escapeRegExp(join(dir, name, 'optimizer.safetensors'))}: `);

    const onlyAvg = await variant('only-avg', (t) => t.delete('exp_avg_sq'));
    await expect(target.load(onlyAvg)).rejects.toThrow(file('only-avg'));
    await expect(target.load(onlyAvg)).rejects.toThrow(/expected F32 tensors exp_avg and exp_avg_sq and a napo\.optimizer_steps step count/);
    const onlySq = await variant('only-sq', (t) => t.delete('exp_avg'));
    await expect(target.load(onlySq)).rejects.toThrow(file('only-sq'));
    await expect(fromPretrained(onlySq)).rejects.toThrow(file('only-sq'));
    const noSteps = await variant('no-steps', (_, m) => delete m['napo.optimizer_steps']);
    await expect(target.load(noSteps)).rejects.toThrow(file('no-steps'));
    const badSteps = await variant('bad-steps', (_, m) => (m['napo.optimizer_steps'] = '-2'));
    await expect(target.load(badSteps)).rejects.toThrow(file('bad-steps'));

    const total = model.parameterCount;
    const short = await variant('short', (t) => t.set('exp_avg', { dtype: 'F32', shape: [total - 1], data: new Float32Array(total - 1) }));
    await expect(target.load(short)).rejects.toThrow(file('short'));
    await expect(target.load(short)).rejects.toThrow(new RegExp(`expAvg has ${total - 1} values, the model's parameter total is ${total}`));
    const negative = await variant('negative', (t) => {
      const data = Float32Array.from(state.tensors.get('exp_avg_sq')?.data as Float32Array);
      data[5] = -1;
      t.set('exp_avg_sq', { dtype: 'F32', shape: [total], data });
    });
    await expect(target.load(negative)).rejects.toThrow(file('negative'));
    await expect(target.load(negative)).rejects.toThrow(/expAvgSq\[5\] = -1 must be finite and >= 0 \(transformer\.wte\.weight\[5\]\)/);

    // The optimizer state was left as it was by every refused load.
    expect(target.optimizerSteps).toBe(0);
    expect(target.getOptimizerState().expAvgSq.every((v) => v === 0)).toBe(true);
    model.dispose();
    target.dispose();
  });

  it('setOptimizerState checks lengths, values and steps', () => {
    const model = CausalLM.create(tinyGPT);
    const total = model.parameterCount;
    const zeros = () => new Float32Array(total);
    expect(() => model.setOptimizerState({ expAvg: new Float32Array(3), expAvgSq: zeros(), steps: 1 })).toThrow(
      new RegExp(`expAvg has 3 values, the model's parameter total is ${total}`),
    );
    const nan = zeros();
    nan[total - 1] = Number.NaN;
    expect(() => model.setOptimizerState({ expAvg: nan, expAvgSq: zeros(), steps: 1 })).toThrow(
      new RegExp(`expAvg\\[${total - 1}\\] = nan is not finite \\(transformer\\.ln_f\\.bias\\[15\\]\\)`),
    );
    const inf = zeros();
    inf[0] = Number.POSITIVE_INFINITY;
    expect(() => model.setOptimizerState({ expAvg: zeros(), expAvgSq: inf, steps: 1 })).toThrow(/expAvgSq\[0\] = inf must be finite and >= 0/);
    expect(() => model.setOptimizerState({ expAvg: zeros(), expAvgSq: zeros(), steps: -1 })).toThrow(/steps = -1/);
    expect(() => model.setOptimizerState({ expAvg: zeros(), expAvgSq: zeros(), steps: 1.5 })).toThrow(/steps = 1\.5 must be an integer/);
    expect(() => model.setOptimizerState(null as unknown as Parameters<CausalLM['setOptimizerState']>[0])).toThrow(/state must be an object/);
    expect(model.optimizerSteps).toBe(0);
    const m = zeros().fill(0.25);
    model.setOptimizerState({ expAvg: m, expAvgSq: zeros().fill(4), steps: 12 });
    expect(model.optimizerSteps).toBe(12);
    const state = model.getOptimizerState();
    expect(state.expAvg).toEqual(m);
    expect(state.expAvgSq.every((v) => v === 4)).toBe(true);
    model.dispose();
    expect(() => model.getOptimizerState()).toThrow(/disposed/);
  });
});

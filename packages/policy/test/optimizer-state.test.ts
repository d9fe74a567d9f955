import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { tensor } from '@napo/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { TinyGPT, readSafetensors, writeSafetensors, type SafetensorsTensor } from '../src/index.js';
import { rng, tiny } from './helpers.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'napo-optimizer-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const V = tiny.vocabSize;

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

/** One supervised step: mean cross-entropy gradient of the step's batch, then AdamW. */
async function trainStep(model: TinyGPT, step: number): Promise<void> {
  const { inputs, targets } = batchOf(step);
  const logits = await model.forward(inputs);
  const [B, T] = logits.shape as [number, number, number];
  const data = logits.toArray();
  logits.dispose();
  const count = inputs.reduce((sum, row) => sum + row.length, 0);
  const grad = new Float32Array(data.length);
  inputs.forEach((row, b) => {
    for (let t = 0; t < row.length; t++) {
      const at = (b * T + t) * V;
      const z = data.subarray(at, at + V);
      const max = Math.max(...z);
      let sum = 0;
      for (const v of z) sum += Math.exp(v - max);
      const target = (targets[b] as number[])[t] as number;
      for (let v = 0; v < V; v++) grad[at + v] = (Math.exp((z[v] as number) - max) / sum - (v === target ? 1 : 0)) / count;
    }
  });
  model.zeroGrad();
  await model.backward(tensor(grad, [B, T, V]));
  // Decay, clipping and a changing lr, so every part of the update is exercised.
  await model.step({ lr: 3e-2 * (1 + 0.5 * Math.sin(step)), weightDecay: 0.1, maxGradNorm: 0.5 });
}

function weightsOf(model: TinyGPT): Map<string, Float32Array> {
  return new Map(model.parameters().map(({ name }) => [name, model.getParameter(name)]));
}

/** Bit-exact equality of two weight sets (no tolerance). */
function expectIdentical(got: Map<string, Float32Array>, want: Map<string, Float32Array>): void {
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [name, values] of want) {
    const other = got.get(name) as Float32Array;
    expect(Buffer.from(other.buffer, other.byteOffset, other.byteLength).equals(Buffer.from(values.buffer, values.byteOffset, values.byteLength)), name).toBe(true);
  }
}

function sameWeights(a: Map<string, Float32Array>, b: Map<string, Float32Array>): boolean {
  return [...a].every(([name, values]) => Buffer.from(values.buffer).equals(Buffer.from((b.get(name) as Float32Array).buffer)));
}

describe('TinyGPT optimizer state', () => {
  it('is zero before the first step and packed in parameter order after it', async () => {
    const model = TinyGPT.create(tiny);
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
    await model.step({ lr: 1e-2, beta1: 0.9, beta2: 0.95, maxGradNorm: 0 });
    const state = model.getOptimizerState();
    expect(state.steps).toBe(1);
    let at = 0;
    for (const { name } of model.parameters()) {
      const g = grads.get(name) as Float32Array;
      for (let i = 0; i < g.length; i++) {
        const gi = g[i] as number;
        expect(Math.abs((state.expAvg[at + i] as number) - 0.1 * gi)).toBeLessThanOrEqual(1e-6 * Math.abs(gi) + 1e-12);
        expect(Math.abs((state.expAvgSq[at + i] as number) - 0.05 * gi * gi)).toBeLessThanOrEqual(1e-6 * gi * gi + 1e-15);
      }
      at += g.length;
    }
    expect(at).toBe(model.parameterCount);
    model.dispose();
  });

  it('a checkpoint saved at step 3 resumes to exactly the weights of an uninterrupted run', async () => {
    const path = join(dir, 'resume.safetensors');
    const weightsOnly = join(dir, 'weights.safetensors');
    const run = TinyGPT.create(tiny);
    for (let step = 0; step < 3; step++) await trainStep(run, step);
    await run.save(path, { optimizer: true });
    await run.save(weightsOnly);
    const saved = run.getOptimizerState();
    for (let step = 3; step < 5; step++) await trainStep(run, step);
    const w1 = weightsOf(run);
    expect(run.optimizerSteps).toBe(5);

    // The checkpoint holds the state of step 3 in the documented layout.
    const file = await readSafetensors(path);
    expect(file.metadata['napo.optimizer_steps']).toBe('3');
    expect(file.tensors.get('optimizer.exp_avg')?.shape).toEqual([run.parameterCount]);
    expect(file.tensors.get('optimizer.exp_avg_sq')?.dtype).toBe('F32');
    expect(file.tensors.get('optimizer.exp_avg')?.data).toEqual(saved.expAvg);

    // A fresh model of the same config, loaded, then the same two steps.
    const resumed = TinyGPT.create(tiny);
    await resumed.load(path);
    expect(resumed.optimizerSteps).toBe(3);
    const restored = resumed.getOptimizerState();
    expect(restored.expAvg).toEqual(saved.expAvg);
    expect(restored.expAvgSq).toEqual(saved.expAvgSq);
    for (let step = 3; step < 5; step++) await trainStep(resumed, step);
    expect(resumed.optimizerSteps).toBe(5);
    expectIdentical(weightsOf(resumed), w1);

    // fromCheckpoint restores it too.
    const { model: rebuilt } = await TinyGPT.fromCheckpoint(path);
    expect(rebuilt.optimizerSteps).toBe(3);
    for (let step = 3; step < 5; step++) await trainStep(rebuilt, step);
    expectIdentical(weightsOf(rebuilt), w1);

    // Control: the same weights without the optimizer state do not reach W1.
    const cold = TinyGPT.create(tiny);
    await cold.load(weightsOnly);
    expect(cold.optimizerSteps).toBe(0);
    for (let step = 3; step < 5; step++) await trainStep(cold, step);
    expect(sameWeights(weightsOf(cold), w1)).toBe(false);

    for (const m of [run, resumed, rebuilt, cold]) m.dispose();
  });

  it('a weights-only checkpoint has no optimizer tensors, and loading it keeps the optimizer state', async () => {
    const model = TinyGPT.create(tiny);
    for (let step = 0; step < 2; step++) await trainStep(model, step);
    const plain = join(dir, 'plain.safetensors');
    const full = join(dir, 'full.safetensors');
    await model.save(plain, { metadata: { 'napo.optimizer_steps': '7', note: 'x' } });
    await model.save(full, { optimizer: true });
    const file = await readSafetensors(plain);
    expect([...file.tensors.keys()].filter((name) => name.startsWith('optimizer.'))).toEqual([]);
    expect(file.metadata['napo.optimizer_steps']).toBeUndefined();
    expect(file.metadata.note).toBe('x');
    // Two F32 moments the size of the weights, plus a little header.
    const growth = (await stat(full)).size - (await stat(plain)).size;
    expect(growth).toBeGreaterThanOrEqual(2 * 4 * model.parameterCount);
    expect(growth).toBeLessThan(2 * 4 * model.parameterCount + 256);

    const other = TinyGPT.create({ ...tiny, seed: 9 });
    await trainStep(other, 7);
    const before = other.getOptimizerState();
    await other.load(plain);
    expect(other.optimizerSteps).toBe(1);
    expect(other.getOptimizerState()).toEqual(before);
    expectIdentical(weightsOf(other), weightsOf(model));
    await expect(model.save(plain, { optimizer: 'yes' as unknown as boolean })).rejects.toThrow(/optimizer = yes must be a boolean/);
    model.dispose();
    other.dispose();
  });

  it('refuses incomplete or malformed optimizer state and leaves the model unchanged', async () => {
    const model = TinyGPT.create(tiny);
    for (let step = 0; step < 2; step++) await trainStep(model, step);
    const full = join(dir, 'source.safetensors');
    await model.save(full, { optimizer: true });
    const source = await readSafetensors(full);
    const variant = async (name: string, edit: (tensors: Map<string, SafetensorsTensor>, metadata: Record<string, string>) => void) => {
      const tensors = new Map(source.tensors);
      const metadata = { ...source.metadata };
      edit(tensors, metadata);
      const path = join(dir, name);
      await writeSafetensors(path, tensors, metadata);
      return path;
    };
    const target = TinyGPT.create({ ...tiny, seed: 5 });
    const weights = weightsOf(target);

    const onlyAvg = await variant('only-avg.safetensors', (t) => t.delete('optimizer.exp_avg_sq'));
    await expect(target.load(onlyAvg)).rejects.toThrow(/has optimizer\.exp_avg but not optimizer\.exp_avg_sq; optimizer state needs both tensors/);
    const onlySq = await variant('only-sq.safetensors', (t) => t.delete('optimizer.exp_avg'));
    await expect(target.load(onlySq)).rejects.toThrow(/has optimizer\.exp_avg_sq but not optimizer\.exp_avg;/);
    await expect(TinyGPT.fromCheckpoint(onlySq)).rejects.toThrow(/optimizer state needs both tensors/);

    const total = model.parameterCount;
    const short = await variant('short.safetensors', (t) => t.set('optimizer.exp_avg', { dtype: 'F32', shape: [total - 1], data: new Float32Array(total - 1) }));
    await expect(target.load(short)).rejects.toThrow(new RegExp(`optimizer\\.exp_avg has shape \\[${total - 1}\\], this model's optimizer state is \\[${total}\\]`));
    const noSteps = await variant('no-steps.safetensors', (_, m) => delete m['napo.optimizer_steps']);
    await expect(target.load(noSteps)).rejects.toThrow(/napo\.optimizer_steps metadata is missing/);
    const badSteps = await variant('bad-steps.safetensors', (_, m) => (m['napo.optimizer_steps'] = '-2'));
    await expect(target.load(badSteps)).rejects.toThrow(/napo\.optimizer_steps metadata is "-2"/);
    const negative = await variant('negative.safetensors', (t) => {
      const data = Float32Array.from(source.tensors.get('optimizer.exp_avg_sq')?.data as Float32Array);
      data[5] = -1;
      t.set('optimizer.exp_avg_sq', { dtype: 'F32', shape: [total], data });
    });
    await expect(target.load(negative)).rejects.toThrow(/TinyGPT\.setOptimizerState: expAvgSq\[5\] = -1 must be finite and >= 0 \(wte\.weight\[5\]\)/);
    const extra = await variant('extra.safetensors', (t) => t.set('optimizer.step', { dtype: 'F32', shape: [1], data: new Float32Array(1) }));
    await expect(target.load(extra)).rejects.toThrow(/unexpected tensors: optimizer\.step/);

    // Nothing was applied by any failed load.
    expectIdentical(weightsOf(target), weights);
    expect(target.optimizerSteps).toBe(0);
    expect(target.getOptimizerState().expAvgSq.every((v) => v === 0)).toBe(true);
    model.dispose();
    target.dispose();
  });

  it('setOptimizerState checks lengths, values and steps', () => {
    const model = TinyGPT.create(tiny);
    const total = model.parameterCount;
    const zeros = () => new Float32Array(total);
    expect(() => model.setOptimizerState({ expAvg: new Float32Array(3), expAvgSq: zeros(), steps: 1 })).toThrow(
      new RegExp(`expAvg has 3 values, the model's parameter total is ${total}`),
    );
    const nan = zeros();
    nan[total - 1] = Number.NaN;
    expect(() => model.setOptimizerState({ expAvg: nan, expAvgSq: zeros(), steps: 1 })).toThrow(
      new RegExp(`expAvg\\[${total - 1}\\] = nan is not finite \\(ln_f\\.bias\\[15\\]\\)`),
    );
    const inf = zeros();
    inf[0] = Number.POSITIVE_INFINITY;
    expect(() => model.setOptimizerState({ expAvg: zeros(), expAvgSq: inf, steps: 1 })).toThrow(/expAvgSq\[0\] = inf must be finite and >= 0/);
    expect(() => model.setOptimizerState({ expAvg: zeros(), expAvgSq: zeros(), steps: -1 })).toThrow(/steps = -1.* must be an integer in \[0,/);
    expect(() => model.setOptimizerState({ expAvg: zeros(), expAvgSq: zeros(), steps: 1.5 })).toThrow(/steps/);
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

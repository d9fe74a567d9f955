/**
 * The CUDA backend against the CPU backend through the addon, for machines with a GPU (skipped
 * elsewhere; without one, native/tests' host emulation harness runs the same kernels in CI).
 */
import { describe, expect, it } from 'vitest';

import { devices, groupAdvantages, policyLoss, sample, tensor, tokenLogprobs, tokenLogprobsBackward, type Tensor } from '../src/index.js';
import { maxAbsDifference, randomLogits, randomTokens, toBf16 } from './helpers.js';

const hasCuda = devices().includes('cuda:0');

function onBoth<T extends Tensor>(make: (device: 'cpu' | 'cuda:0') => T): [T, T] {
  return [make('cpu'), make('cuda:0')];
}

describe.skipIf(!hasCuda)('CUDA against CPU', () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    it(`tokenLogprobs (+ entropy) and its backward, ${dtype}, odd V`, () => {
      const rows = 37;
      const vocab = 50_257;
      const values = randomLogits(rows, vocab, 6, 5);
      const data = dtype === 'float32' ? values : toBf16(values);
      const [cpuLogits, gpuLogits] = onBoth((device) => tensor(data, [rows, vocab], { dtype, device }));
      const ids = randomTokens(rows, vocab, 6);
      const [cpuTokens, gpuTokens] = onBoth((device) => tensor(ids, [rows], { device }));
      const cpu = tokenLogprobs(cpuLogits, cpuTokens, { entropy: true, temperature: 0.8 });
      const gpu = tokenLogprobs(gpuLogits, gpuTokens, { entropy: true, temperature: 0.8 });
      expect(maxAbsDifference(gpu.logprobs.toArray(), cpu.logprobs.toArray())).toBeLessThan(1e-4);
      expect(maxAbsDifference(gpu.entropy!.toArray(), cpu.entropy!.toArray())).toBeLessThan(1e-4);
      const grad = Float32Array.from({ length: rows }, (_, r) => (r % 3) - 1);
      const cpuGrad = tokenLogprobsBackward(cpuLogits, cpuTokens, cpu.lse, tensor(grad), { temperature: 0.8 });
      const gpuGrad = tokenLogprobsBackward(gpuLogits, gpuTokens, gpu.lse, tensor(grad, [rows], { device: 'cuda:0' }), { temperature: 0.8 });
      const tolerance = dtype === 'float32' ? 1e-6 : 1e-2;
      expect(maxAbsDifference(gpuGrad.toArray(), cpuGrad.toArray())).toBeLessThan(tolerance);
    });
  }

  it('sample: the same tokens as the CPU for the same seed and offset (>= 99.9% of rows)', () => {
    const rows = 2048;
    const vocab = 32_000;
    const [cpuLogits, gpuLogits] = onBoth((device) => tensor(randomLogits(rows, vocab, 5, 8), [rows, vocab], { device }));
    for (const options of [{ temperature: 0 }, { topK: 50, topP: 0.9, seed: 3 }, { minP: 0.1, seed: 4, offset: 9 }]) {
      const cpu = sample(cpuLogits, options).tokens.toArray();
      const gpu = sample(gpuLogits, options).tokens.toArray();
      const same = cpu.filter((token, r) => token === gpu[r]).length;
      expect(same / rows).toBeGreaterThanOrEqual(0.999);
    }
  });

  it('groupAdvantages and policyLoss', () => {
    const rewards = Float32Array.from({ length: 64 }, (_, i) => (i * 7) % 5);
    const [cpuRewards, gpuRewards] = onBoth((device) => tensor(rewards, [64], { device }));
    const cpuAdvantages = groupAdvantages(cpuRewards, { groupSize: 8 });
    const gpuAdvantages = groupAdvantages(gpuRewards, { groupSize: 8 });
    expect(maxAbsDifference(gpuAdvantages.toArray(), cpuAdvantages.toArray())).toBeLessThan(1e-5);
    const logprobs = Float32Array.from({ length: 64 * 16 }, (_, i) => -1 - ((i * 13) % 7) / 10);
    const old = Float32Array.from(logprobs, (lp, i) => lp + ((i % 5) - 2) / 10);
    const mask = Float32Array.from(logprobs, (_, i) => (i % 16 < 12 ? 1 : 0));
    for (const lossType of ['grpo', 'bnpo', 'dr_grpo', 'dapo'] as const) {
      const run = (device: 'cpu' | 'cuda:0', advantages: Tensor<'float32'>) =>
        policyLoss(
          {
            logprobs: tensor(logprobs, [64, 16], { device }),
            oldLogprobs: tensor(old, [64, 16], { device }),
            advantages,
            mask: tensor(mask, [64, 16], { device }),
          },
          { lossType },
        );
      const cpu = run('cpu', cpuAdvantages);
      const gpu = run('cuda:0', gpuAdvantages);
      expect(gpu.loss).toBeCloseTo(cpu.loss, 5);
      expect(maxAbsDifference(gpu.gradLogprobs.toArray(), cpu.gradLogprobs.toArray())).toBeLessThan(1e-6);
    }
  });
});

import { afterAll, describe, expect, it } from 'vitest';

import {
  cpuThreads,
  groupAdvantages,
  maskedRowSum,
  maskedRowSumAsync,
  maskedRowSumBackward,
  policyLoss,
  repetitionPenalty,
  repetitionPenaltyAsync,
  reference,
  sample,
  setCpuThreads,
  tensor,
  tokenLogprobs,
  tokenLogprobsBackward,
  type HostTensor,
  type LossType,
  type PolicyLossOptions,
  type SampleOptions,
} from '../src/index.js';
import {
  chiSquare,
  chiSquareCritical,
  maxAbsDifference,
  randomLogits,
  randomTokens,
  seededRandom,
  toBf16,
} from './helpers.js';

const initialThreads = cpuThreads();
afterAll(() => setCpuThreads(initialThreads));

type LogitsDtype = 'float32' | 'bfloat16';

function logitsTensor(values: Float32Array, rows: number, vocab: number, dtype: LogitsDtype) {
  const data = dtype === 'float32' ? values : toBf16(values);
  return tensor(data, [rows, vocab], { dtype });
}

function hostLogits(values: Float32Array, rows: number, vocab: number, dtype: LogitsDtype): HostTensor<LogitsDtype> {
  return dtype === 'float32'
    ? { dtype, shape: [rows, vocab], data: values }
    : { dtype, shape: [rows, vocab], data: toBf16(values) };
}

/** Shapes that stress the row loop: one row, one column, odd V, V not a multiple of the vector width. */
const shapes: ReadonlyArray<readonly [number, number]> = [
  [1, 1],
  [1, 7],
  [3, 33],
  [5, 1000],
  [4, 2049],
  [17, 4099],
  [2, 151_936],
];

describe('tokenLogprobs (native) against the reference', () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    for (const [rows, vocab] of shapes) {
      it(`${dtype} [${rows}, ${vocab}] with entropy, T = 0.7`, () => {
        const values = randomLogits(rows, vocab, 8, rows * 31 + vocab);
        const tokens = randomTokens(rows, vocab, vocab);
        const native = tokenLogprobs(logitsTensor(values, rows, vocab, dtype), tensor(tokens), {
          temperature: 0.7,
          entropy: true,
        });
        const expected = reference.tokenLogprobs(hostLogits(values, rows, vocab, dtype), tokens, {
          temperature: 0.7,
          entropy: true,
        });
        expect(maxAbsDifference(native.logprobs.toArray(), expected.logprobs)).toBeLessThan(2e-4);
        expect(maxAbsDifference(native.lse.toArray(), expected.lse)).toBeLessThan(2e-4);
        expect(maxAbsDifference(native.entropy!.toArray(), expected.entropy!)).toBeLessThan(2e-4);
      });
    }
  }

  it('handles -Infinity logits (masked vocabulary) and huge logits', () => {
    const vocab = 3001;
    const values = randomLogits(3, vocab, 5, 7);
    for (let i = 0; i < vocab; i += 3) values[i] = -Infinity;
    values[vocab + 5] = 1e30;
    values[2 * vocab + 10] = -1e30;
    const tokens = Int32Array.of(1, 5, 0);
    const native = tokenLogprobs(tensor(values, [3, vocab]), tensor(tokens), { entropy: true });
    const expected = reference.tokenLogprobs(hostLogits(values, 3, vocab, 'float32'), tokens, { entropy: true });
    const logprobs = native.logprobs.toArray();
    expect(logprobs[1]).toBe(0);
    expect(maxAbsDifference(logprobs, expected.logprobs)).toBeLessThan(1e-4);
    expect(maxAbsDifference(native.entropy!.toArray(), expected.entropy!)).toBeLessThan(1e-4);
    expect(Array.from(native.entropy!.toArray()).every(Number.isFinite)).toBe(true);
  });

  it('gives -Infinity for a token whose logit is -Infinity, and never a positive log-prob', () => {
    const values = Float32Array.of(-Infinity, 0, 1, 2);
    const result = tokenLogprobs(tensor(values, [1, 4]), tensor(Int32Array.of(0))).logprobs.toArray();
    expect(result[0]).toBe(-Infinity);
    const many = tokenLogprobs(tensor(randomLogits(64, 500, 30, 3), [64, 500]), tensor(randomTokens(64, 500, 4)));
    expect(Array.from(many.logprobs.toArray()).every((lp) => lp <= 0)).toBe(true);
  });
});

describe('tokenLogprobsBackward (native)', () => {
  for (const dtype of ['float32', 'bfloat16'] as const) {
    for (const [rows, vocab] of shapes.slice(0, 6)) {
      it(`${dtype} [${rows}, ${vocab}] matches the reference, with and without the entropy term`, () => {
        const values = randomLogits(rows, vocab, 4, vocab * 7 + rows);
        const tokens = randomTokens(rows, vocab, vocab + 1);
        const random = seededRandom(rows + vocab);
        const gradLp = Float32Array.from({ length: rows }, () => random() * 2 - 1);
        const gradEnt = Float32Array.from({ length: rows }, () => random() * 2 - 1);
        const logits = logitsTensor(values, rows, vocab, dtype);
        const forward = tokenLogprobs(logits, tensor(tokens), { temperature: 1.3, entropy: true });
        const host = hostLogits(values, rows, vocab, dtype);
        const expected = reference.tokenLogprobsBackward(host, tokens, forward.lse.toArray(), gradLp, gradEnt, {
          temperature: 1.3,
        });
        const tolerance = dtype === 'float32' ? 1e-5 : 1e-2;
        const withSavedEntropy = tokenLogprobsBackward(logits, tensor(tokens), forward.lse, tensor(gradLp), {
          gradEntropy: tensor(gradEnt),
          entropy: forward.entropy!,
          temperature: 1.3,
        });
        const recomputed = tokenLogprobsBackward(logits, tensor(tokens), forward.lse, tensor(gradLp), {
          gradEntropy: tensor(gradEnt),
          temperature: 1.3,
        });
        const widen = (t: { toArray(): Float32Array | Uint16Array | Int32Array }) =>
          dtype === 'float32'
            ? (t.toArray() as Float32Array)
            : Float64Array.from(t.toArray() as Uint16Array, reference.bf16ToFloat32);
        expect(maxAbsDifference(widen(withSavedEntropy), expected)).toBeLessThan(tolerance);
        expect(maxAbsDifference(widen(recomputed), expected)).toBeLessThan(tolerance);
        const noEntropy = reference.tokenLogprobsBackward(host, tokens, forward.lse.toArray(), gradLp, undefined, {
          temperature: 1.3,
        });
        const inPlaceLogits = logitsTensor(values, rows, vocab, dtype);
        const inPlace = tokenLogprobsBackward(inPlaceLogits, tensor(tokens), forward.lse, tensor(gradLp), {
          temperature: 1.3,
          inPlace: true,
        });
        expect(inPlace).toBe(inPlaceLogits);
        expect(maxAbsDifference(widen(inPlace), noEntropy)).toBeLessThan(tolerance);
      });
    }
  }

  it('agrees with central finite differences of the native forward', () => {
    const rows = 3;
    const vocab = 11;
    const values = randomLogits(rows, vocab, 2, 99);
    const tokens = randomTokens(rows, vocab, 98);
    const gradLp = Float32Array.of(0.7, -1.2, 0.4);
    const gradEnt = Float32Array.of(-0.3, 0.5, 1.1);
    const objective = (logits: Float32Array): number => {
      const out = tokenLogprobs(tensor(logits, [rows, vocab]), tensor(tokens), { temperature: 0.9, entropy: true });
      const lp = out.logprobs.toArray();
      const ent = out.entropy!.toArray();
      let total = 0;
      for (let r = 0; r < rows; r++) total += gradLp[r]! * lp[r]! + gradEnt[r]! * ent[r]!;
      return total;
    };
    const forward = tokenLogprobs(tensor(values, [rows, vocab]), tensor(tokens), { temperature: 0.9, entropy: true });
    const analytic = tokenLogprobsBackward(tensor(values, [rows, vocab]), tensor(tokens), forward.lse, tensor(gradLp), {
      gradEntropy: tensor(gradEnt),
      temperature: 0.9,
    }).toArray() as Float32Array;
    const step = 1e-2;
    for (let i = 0; i < rows * vocab; i++) {
      const plus = values.slice();
      const minus = values.slice();
      plus[i] = plus[i]! + step;
      minus[i] = minus[i]! - step;
      const numeric = (objective(plus) - objective(minus)) / (2 * step);
      expect(Math.abs(numeric - analytic[i]!)).toBeLessThan(2e-3 + 2e-2 * Math.abs(numeric));
    }
  });
});

const samplingModes: ReadonlyArray<[string, SampleOptions]> = [
  ['temperature', { temperature: 0.8 }],
  ['top-k', { topK: 5 }],
  ['top-p', { topP: 0.7 }],
  ['min-p', { minP: 0.2 }],
  ['top-k + top-p', { topK: 6, topP: 0.8, temperature: 1.2 }],
  ['top-k + top-p + min-p', { topK: 8, topP: 0.9, minP: 0.05, temperature: 0.7 }],
  ['top-p + min-p', { topP: 0.95, minP: 0.1 }],
];

describe('sample (native)', () => {
  const vocab = 24;
  const row = randomLogits(1, vocab, 2.5, 1234);
  row[3] = row[7]!; // a tie, so the tie rules are exercised
  const draws = 40_000;
  const repeated = new Float32Array(draws * vocab);
  for (let r = 0; r < draws; r++) repeated.set(row, r * vocab);
  const batch = tensor(repeated, [draws, vocab]);

  for (const [name, options] of samplingModes) {
    it(`${name}: the token frequencies fit the exact filtered softmax (chi-square)`, () => {
      const tokens = sample(batch, { ...options, seed: 42 }).tokens.toArray();
      const counts = new Array<number>(vocab).fill(0);
      for (const token of tokens) counts[token]!++;
      const probabilities = reference.filteredDistribution(row, options);
      const { statistic, degrees } = chiSquare(counts, probabilities, draws);
      expect(statistic).toBeLessThan(chiSquareCritical(degrees));
    });
  }

  for (const dtype of ['float32', 'bfloat16'] as const) {
    for (const [name, options] of samplingModes) {
      it(`${name}, ${dtype}: the same tokens and log-probs as the reference for the same seed`, () => {
        const rows = 64;
        const width = 3001;
        const values = randomLogits(rows, width, 6, width + name.length);
        const native = sample(logitsTensor(values, rows, width, dtype), { ...options, seed: 7n, offset: 3 });
        const expected = reference.sample(hostLogits(values, rows, width, dtype), { ...options, seed: 7n, offset: 3 });
        const tokens = native.tokens.toArray();
        let same = 0;
        for (let r = 0; r < rows; r++) if (tokens[r] === expected.tokens[r]) same++;
        // Rows may differ only where a draw lands within float rounding of a bucket edge.
        expect(same).toBeGreaterThanOrEqual(rows - 1);
        const logprobs = native.logprobs.toArray();
        for (let r = 0; r < rows; r++) {
          if (tokens[r] !== expected.tokens[r]) continue;
          expect(Math.abs(logprobs[r]! - expected.logprobs[r]!)).toBeLessThan(1e-4);
        }
      });
    }
  }

  it('is greedy at temperature 0, lowest index first among ties, with the T = 1 log-prob', () => {
    const values = Float32Array.of(0, 3, 1, 3, -2, 0, 0, 5, 5, 1);
    const result = sample(tensor(values, [2, 5]), { temperature: 0 });
    expect(Array.from(result.tokens.toArray())).toEqual([1, 2]);
    const expected = reference.tokenLogprobs({ dtype: 'float32', shape: [2, 5], data: values }, Int32Array.of(1, 2));
    expect(maxAbsDifference(result.logprobs.toArray(), expected.logprobs)).toBeLessThan(1e-6);
  });

  it('takes per-row parameters', () => {
    const values = randomLogits(3, 50, 3, 5);
    const options: SampleOptions = { temperature: [0, 1, 0.5], topK: [0, 1, 3], topP: [1, 1, 0.5], seed: 9 };
    const native = sample(tensor(values, [3, 50]), options).tokens.toArray();
    const expected = reference.sample({ dtype: 'float32', shape: [3, 50], data: values }, options).tokens;
    expect(Array.from(native)).toEqual(Array.from(expected));
  });

  it('is deterministic per (seed, offset) whatever the thread count; another offset draws anew', () => {
    const rows = 257;
    const width = 20_000;
    const logits = tensor(randomLogits(rows, width, 3, 77), [rows, width]);
    const options: SampleOptions = { topK: 50, topP: 0.9, temperature: 1.1, seed: 123 };
    setCpuThreads(1);
    const single = sample(logits, options).tokens.toArray();
    setCpuThreads(2);
    const double = sample(logits, options).tokens.toArray();
    const again = sample(logits, options).tokens.toArray();
    const shifted = sample(logits, { ...options, offset: 1 }).tokens.toArray();
    setCpuThreads(initialThreads);
    expect(Array.from(double)).toEqual(Array.from(single));
    expect(Array.from(again)).toEqual(Array.from(single));
    const changed = single.filter((token, r) => token !== shifted[r]).length;
    expect(changed).toBeGreaterThan(rows / 2);
  });

  it('never samples a token outside top-k on a full vocabulary (V = 151,936, bf16)', () => {
    const rows = 4;
    const width = 151_936;
    const values = randomLogits(rows, width, 10, 2024);
    const logits = logitsTensor(values, rows, width, 'bfloat16');
    for (let offset = 0; offset < 5; offset++) {
      const tokens = sample(logits, { topK: 50, topP: 0.9, seed: 1, offset }).tokens.toArray();
      for (let r = 0; r < rows; r++) {
        const rowValues = Float64Array.from(toBf16(values.subarray(r * width, (r + 1) * width)), reference.bf16ToFloat32);
        const allowed = reference.filteredDistribution(rowValues, { topK: 50, topP: 0.9 });
        expect(allowed[tokens[r]!]).toBeGreaterThan(0);
      }
    }
  });
});

describe('groupAdvantages (native) against the reference', () => {
  const random = seededRandom(11);
  const rewards = Float32Array.from({ length: 24 }, () => Math.round(random() * 4) / 4);
  for (const scale of ['group', 'batch', 'none'] as const) {
    for (const estimator of ['grpo', 'rloo'] as const) {
      it(`scale ${scale}, estimator ${estimator}, equal and ragged groups`, () => {
        for (const grouping of [{ groupSize: 8 }, { groupOffsets: [0, 1, 5, 12, 24] }]) {
          const options = { ...grouping, scale, estimator };
          const native = groupAdvantages(tensor(rewards), options).toArray();
          const expected = reference.groupAdvantages(rewards, options);
          expect(maxAbsDifference(native, expected)).toBeLessThan(1e-5);
        }
      });
    }
  }

  it('gives 0 to a group of one and to a group whose rewards are all equal', () => {
    const native = groupAdvantages(tensor(Float32Array.of(1, 0.5, 0.5, 0.5)), { groupOffsets: [0, 1, 4] }).toArray();
    expect(Array.from(native)).toEqual([0, 0, 0, 0]);
  });
});

describe('policyLoss (native) against the reference', () => {
  const sequences = 5;
  const steps = 9;
  const random = seededRandom(5);
  const around = (center: number, spread: number) =>
    Float32Array.from({ length: sequences * steps }, () => center + (random() * 2 - 1) * spread);
  const logprobs = around(-1.5, 1);
  const oldLogprobs = Float32Array.from(logprobs, (lp) => lp + (random() * 2 - 1) * 0.4);
  const refLogprobs = Float32Array.from(logprobs, (lp) => lp + (random() * 2 - 1) * 0.3);
  // Some entropies tied, as near-deterministic tokens' are.
  const entropy = Float32Array.from({ length: sequences * steps }, (_, i) => (i % 4 === 0 ? 0.25 : random() * 3));
  const advantages = Float32Array.from({ length: sequences }, () => random() * 2 - 1);
  const mask = Float32Array.from({ length: sequences * steps }, (_, i) => (i % steps < 3 + (Math.floor(i / steps) % 5) ? 1 : 0));
  const matrix = (data: Float32Array): HostTensor<'float32'> => ({ dtype: 'float32', shape: [sequences, steps], data });
  // Native tensors of the inputs, at the log-probs given.
  const nativeInputs = (values: Float32Array) => ({
    logprobs: tensor(values, [sequences, steps]),
    oldLogprobs: tensor(oldLogprobs, [sequences, steps]),
    refLogprobs: tensor(refLogprobs, [sequences, steps]),
    entropy: tensor(entropy, [sequences, steps]),
    advantages: tensor(advantages),
    mask: tensor(mask, [sequences, steps]),
  });

  const variants: [string, PolicyLossOptions][] = [
    ['', {}],
    [', GSPO', { importanceSamplingLevel: 'sequence' }],
    [', delta', { delta: 1.3 }],
    [', top 20% entropy and a bonus', { topEntropyQuantile: 0.2, entropyCoef: 0.01 }],
    [', GSPO, top 60% entropy and a penalty', { importanceSamplingLevel: 'sequence', topEntropyQuantile: 0.6, entropyCoef: -0.05 }],
    [', bias-corrected KL, off-policy mask at 0', { useBiasCorrectionKl: true, offPolicyMaskThreshold: 0 }],
    [', GSPO, bias-corrected KL, off-policy mask at 0.05', { importanceSamplingLevel: 'sequence', useBiasCorrectionKl: true, offPolicyMaskThreshold: 0.05 }],
  ];
  for (const lossType of ['grpo', 'bnpo', 'dr_grpo', 'dapo', 'cispo', 'sapo', 'luspo', 'vespo'] as const satisfies readonly LossType[]) {
    // luspo is defined at sequence level only, and has no per-token surrogate to mask by entropy;
    // vespo weighs sequences itself, at token level only.
    const forLuspo = ([l, v]: [string, PolicyLossOptions]): [string, PolicyLossOptions] => [l, { ...v, importanceSamplingLevel: 'sequence', topEntropyQuantile: 1 }];
    const forVespo = ([l, v]: [string, PolicyLossOptions]): [string, PolicyLossOptions] => [l.replace('GSPO, ', ''), { ...v, importanceSamplingLevel: 'token' }];
    const own = lossType === 'luspo' ? variants.map(forLuspo) : lossType === 'vespo' ? variants.filter(([l]) => l !== ', GSPO').map(forVespo) : variants;
    for (const [label, variant] of own) {
      it(`${lossType}${label}: loss, gradient and stats match, with a KL term`, () => {
        const options = { lossType, beta: 0.04, epsLow: 0.2, epsHigh: lossType === 'cispo' ? 1.25 : 0.28, maxCompletionLength: 12, ...variant };
        const native = policyLoss(nativeInputs(logprobs), options);
        const expected = reference.policyLoss(
          { logprobs: matrix(logprobs), oldLogprobs: matrix(oldLogprobs), refLogprobs: matrix(refLogprobs), entropy: matrix(entropy), advantages, mask: matrix(mask) },
          options,
        );
        expect(native.loss).toBeCloseTo(expected.loss, 5);
        expect(maxAbsDifference(native.gradLogprobs.toArray(), expected.gradLogprobs)).toBeLessThan(1e-6);
        expect(maxAbsDifference(native.gradEntropy!.toArray(), expected.gradEntropy!)).toBeLessThan(1e-7);
        const statKeys = ['clipLowFraction', 'clipHighFraction', 'clipFraction', 'meanKl', 'meanRatio', 'tokenCount', 'keptFraction', 'entropyThreshold', 'meanEntropy', 'offPolicyFraction', 'clipLowMin', 'clipHighMax', 'entropyBonus', 'vespoPhiMean'] as const;
        for (const key of statKeys) {
          expect(native.stats[key]).toBeCloseTo(expected.stats[key], 5);
        }
      });
    }
  }

  for (const lossType of ['grpo', 'bnpo', 'dr_grpo', 'dapo'] as const satisfies readonly LossType[]) {
    it(`${lossType}: the gradient agrees with central finite differences`, () => {
      const options = { lossType, beta: 0.1, maxCompletionLength: 12 };
      const lossAt = (values: Float32Array) =>
        policyLoss(nativeInputs(values), options).loss;
      const gradient = policyLoss(nativeInputs(logprobs), options).gradLogprobs.toArray();
      const step = 1e-3;
      for (let i = 0; i < sequences * steps; i++) {
        const ratio = Math.exp(logprobs[i]! - oldLogprobs[i]!);
        // The clip's kinks are not differentiable; skip tokens within a step of one.
        if (Math.abs(ratio - 0.8) < 0.01 || Math.abs(ratio - 1.2) < 0.01) continue;
        const plus = logprobs.slice();
        const minus = logprobs.slice();
        plus[i] = plus[i]! + step;
        minus[i] = minus[i]! - step;
        const numeric = (lossAt(plus) - lossAt(minus)) / (2 * step);
        expect(Math.abs(numeric - gradient[i]!)).toBeLessThan(5e-4);
      }
    });
  }
});

describe('policyLoss masks and input rules', () => {
  const sequences = 3;
  const steps = 4;
  const random = seededRandom(9);
  const logprobs = Float32Array.from({ length: 12 }, () => -1 - random());
  const oldLogprobs = Float32Array.from(logprobs, (lp) => lp + (random() - 0.5) * 0.6);
  const advantages = Float32Array.of(0.5, -1, 2);
  const bits = [1, 1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0];
  const native = (mask: ReturnType<typeof tensor>, values = logprobs, adv = advantages) =>
    policyLoss({
      logprobs: tensor(values, [sequences, steps]),
      oldLogprobs: tensor(oldLogprobs, [sequences, steps]),
      advantages: tensor(adv),
      mask: mask as never,
    });

  it('takes float32, int32, uint8 and bool masks and gives the same loss and gradient', () => {
    const masks = [
      tensor(Float32Array.from(bits), [sequences, steps]),
      tensor(Int32Array.from(bits), [sequences, steps]),
      tensor(Uint8Array.from(bits), [sequences, steps]),
      tensor(bits.map((bit) => bit === 1), [sequences, steps]),
    ];
    expect(masks.map((mask) => mask.dtype)).toEqual(['float32', 'int32', 'uint8', 'bool']);
    const expected = reference.policyLoss({
      logprobs: { dtype: 'float32', shape: [sequences, steps], data: logprobs },
      oldLogprobs: { dtype: 'float32', shape: [sequences, steps], data: oldLogprobs },
      advantages,
      mask: { dtype: 'uint8', shape: [sequences, steps], data: Uint8Array.from(bits) },
    });
    for (const mask of masks) {
      const result = native(mask);
      expect(result.loss).toBeCloseTo(expected.loss, 6);
      expect(maxAbsDifference(result.gradLogprobs.toArray(), expected.gradLogprobs)).toBeLessThan(1e-7);
      expect(result.stats.tokenCount).toBe(6);
    }
  });

  it('rejects masks that are not 0/1 and non-finite inputs where the mask is 1, with the reference\'s message', () => {
    const cases: [string, () => unknown, () => unknown][] = [];
    for (const bad of [0.5, 2, -1]) {
      const values = Float32Array.from(bits);
      values[5] = bad;
      cases.push([
        `mask ${bad}`,
        () => native(tensor(values, [sequences, steps])),
        () => reference.policyLoss({
          logprobs: { dtype: 'float32', shape: [sequences, steps], data: logprobs },
          oldLogprobs: { dtype: 'float32', shape: [sequences, steps], data: oldLogprobs },
          advantages,
          mask: { dtype: 'float32', shape: [sequences, steps], data: values },
        }),
      ]);
    }
    const poisoned = logprobs.slice();
    poisoned[4] = Number.NaN; // mask 1 there
    poisoned[2] = Number.NaN; // mask 0 there: padding may hold anything
    const uint8 = tensor(Uint8Array.from(bits), [sequences, steps]);
    const host = { dtype: 'uint8', shape: [sequences, steps], data: Uint8Array.from(bits) } as const;
    cases.push([
      'NaN logprob',
      () => native(uint8, poisoned),
      () => reference.policyLoss({
        logprobs: { dtype: 'float32', shape: [sequences, steps], data: poisoned },
        oldLogprobs: { dtype: 'float32', shape: [sequences, steps], data: oldLogprobs },
        advantages,
        mask: host,
      }),
    ]);
    const infinite = Float32Array.of(0.5, Number.POSITIVE_INFINITY, 2);
    cases.push([
      'Infinity advantage',
      () => native(uint8, logprobs, infinite),
      () => reference.policyLoss({
        logprobs: { dtype: 'float32', shape: [sequences, steps], data: logprobs },
        oldLogprobs: { dtype: 'float32', shape: [sequences, steps], data: oldLogprobs },
        advantages: infinite,
        mask: host,
      }),
    ]);
    for (const [name, run, runReference] of cases) {
      const message = (action: () => unknown) => {
        try {
          action();
        } catch (error) {
          expect(error, name).toBeInstanceOf(RangeError);
          return (error as Error).message;
        }
        throw new Error(`${name}: no error`);
      };
      expect(message(run), name).toBe(message(runReference));
    }
  });
});

describe('tokenLogprobsBackward input rules', () => {
  const rows = 3;
  const vocab = 50;
  const values = randomLogits(rows, vocab, 2, 31);
  const ids = randomTokens(rows, vocab, 32);

  it('rejects non-finite lse, gradients and NaN logits with the reference\'s message, in place or not', () => {
    const message = (action: () => unknown) => {
      try {
        action();
      } catch (error) {
        expect(error).toBeInstanceOf(RangeError);
        return (error as Error).message;
      }
      throw new Error('no error');
    };
    const lse = reference.tokenLogprobs({ dtype: 'float32', shape: [rows, vocab], data: values }, ids).lse;
    const gradients = Float32Array.of(1, -0.5, 0.25);
    const variants: [string, Float32Array, Float32Array, Float32Array][] = [];
    const badLse = lse.slice();
    badLse[1] = Number.NaN;
    variants.push(['lse', values, badLse, gradients]);
    const badGrad = gradients.slice();
    badGrad[2] = Number.NEGATIVE_INFINITY;
    variants.push(['gradLogprobs', values, lse, badGrad]);
    const badLogits = values.slice();
    badLogits[vocab + 7] = Number.NaN;
    variants.push(['logits', badLogits, lse, gradients]);
    for (const [name, logits, lseValues, grad] of variants) {
      const expected = message(() =>
        reference.tokenLogprobsBackward({ dtype: 'float32', shape: [rows, vocab], data: logits }, ids, lseValues, grad),
      );
      expect(expected, name).toMatch(new RegExp(`^tokenLogprobsBackward: ${name}\\[`));
      for (const inPlace of [false, true]) {
        const got = message(() =>
          tokenLogprobsBackward(tensor(logits, [rows, vocab]), tensor(ids), tensor(lseValues), tensor(grad), { inPlace }),
        );
        expect(got, `${name} inPlace=${inPlace}`).toBe(expected);
      }
    }
  });
});

describe('maskedRowSum (native) against the reference', () => {
  const random = seededRandom(17);
  for (const [rows, width] of [
    [1, 1],
    [4, 9],
    [6, 300],
    [2, 4099],
  ] as const) {
    for (const dtype of ['float32', 'int32', 'uint8', 'bool'] as const) {
      it(`[${rows}, ${width}] with a ${dtype} mask: sums and the gradient`, async () => {
        // Ragged rows (one may be empty), padding holding -Infinity and NaN, values of mixed scale.
        const lengths = Array.from({ length: rows }, (_, r) => (r === 1 ? 0 : Math.floor(random() * (width + 1))));
        const maskValues = Array.from({ length: rows * width }, (_, i) => (i % width < lengths[Math.floor(i / width)]! ? 1 : 0));
        const values = Float32Array.from(maskValues, (m, i) => (m === 0 ? (i % 2 ? -Infinity : Number.NaN) : (random() * 2 - 1) * 10 ** Math.floor(random() * 4)));
        const maskData = dtype === 'float32' ? Float32Array.from(maskValues) : dtype === 'int32' ? Int32Array.from(maskValues) : Uint8Array.from(maskValues);
        const mask = tensor(maskData, [rows, width], { dtype });
        const sums = maskedRowSum(tensor(values, [rows, width]), mask).toArray();
        const expected = reference.maskedRowSum({ dtype: 'float32', shape: [rows, width], data: values }, { dtype, shape: [rows, width], data: maskData });
        expect(maxAbsDifference(sums, expected)).toBeLessThanOrEqual(1e-6 * Math.max(1, ...Array.from(expected, Math.abs)));
        expect(Array.from((await maskedRowSumAsync(tensor(values, [rows, width]), mask)).toArray())).toEqual(Array.from(sums));
        const gradSums = Float32Array.from({ length: rows }, () => random() * 2 - 1);
        const grad = maskedRowSumBackward(mask, tensor(gradSums)).toArray();
        expect(Array.from(grad)).toEqual(Array.from(reference.maskedRowSumBackward({ dtype, shape: [rows, width], data: maskData }, gradSums)));
      });
    }
  }

  it('the backward is the gradient of sum_r gradSums[r] * sums[r] (finite differences)', () => {
    const rows = 3;
    const width = 5;
    const values = Float32Array.from({ length: rows * width }, () => random() * 2 - 1);
    const mask = tensor(Float32Array.from({ length: rows * width }, (_, i) => (i % 3 === 0 ? 0 : 1)), [rows, width]);
    const gradSums = Float32Array.of(0.5, -2, 1.25);
    const objective = (at: Float32Array) => maskedRowSum(tensor(at, [rows, width]), mask).toArray().reduce((sum, s, r) => sum + gradSums[r]! * s, 0);
    const grad = maskedRowSumBackward(mask, tensor(gradSums)).toArray();
    for (let i = 0; i < rows * width; i++) {
      const up = values.slice();
      const down = values.slice();
      up[i] = up[i]! + 1e-2;
      down[i] = down[i]! - 1e-2;
      expect((objective(up) - objective(down)) / (up[i]! - down[i]!)).toBeCloseTo(grad[i]!, 3);
    }
  });

  it('refuses bad input by name, as the reference does', () => {
    const values = tensor(Float32Array.of(1, Number.NaN, 3, 4), [2, 2]);
    const mask = tensor(Float32Array.of(1, 1, 1, 0), [2, 2]);
    expect(() => maskedRowSum(values, mask)).toThrow(/maskedRowSum: values\[0, 1\] is NaN/);
    expect(() => reference.maskedRowSum(values.toHost(), mask.toHost())).toThrow(/maskedRowSum: values\[0, 1\] is NaN/);
    expect(() => maskedRowSum(values, tensor(Float32Array.of(1, 0.5, 1, 0), [2, 2]))).toThrow(/maskedRowSum: mask\[0, 1\] = 0.5 must be 0 or 1/);
    expect(() => maskedRowSum(values, tensor(Float32Array.of(1, 0), [1, 2]))).toThrow(/mask has shape \[1, 2\], expected \[2, 2\]/);
    expect(() => maskedRowSumBackward(mask, tensor(Float32Array.of(1)))).toThrow(/gradSums has shape \[1\], expected \[2\]/);
    expect(() => maskedRowSumBackward(mask, tensor(Float32Array.of(1, Number.POSITIVE_INFINITY)))).toThrow(/maskedRowSumBackward: gradSums\[1\] is Infinity/);
    expect(() => reference.maskedRowSumBackward(mask.toHost(), Float32Array.of(1, Number.POSITIVE_INFINITY))).toThrow(/gradSums\[1\]/);
  });
});

describe('repetitionPenalty (native) against the reference', () => {
  const random = seededRandom(23);
  for (const dtype of ['float32', 'bfloat16'] as const) {
    for (const [rows, vocab, length] of [
      [1, 1, 1],
      [3, 50, 7],
      [4, 32000, 40],
    ] as const) {
      it(`[${rows}, ${vocab}] ${dtype}, histories of ${length}: bit for bit, repeats penalised once`, async () => {
        const values = randomLogits(rows, vocab, 8, rows * vocab + length);
        const data = dtype === 'bfloat16' ? Uint16Array.from(values, (v) => reference.float32ToBf16(v)) : values;
        const history = Int32Array.from({ length: rows * length }, (_, i) => (i % 5 === 4 ? -1 : Math.floor(random() * vocab)));
        if (history.length > 2) history[2] = history[1] as number;
        const logits = tensor(data, [rows, vocab], { dtype });
        const historyTensor = tensor(history, [rows, length]);
        for (const penalty of [1.2, 0.8]) {
          const native = repetitionPenalty(logits, historyTensor, penalty).toArray();
          const expected = reference.repetitionPenalty({ dtype, shape: [rows, vocab], data } as reference.LogitsTensor, { dtype: 'int32', shape: [rows, length], data: history }, penalty);
          expect(Array.from(native)).toEqual(Array.from(expected.data));
          expect(Array.from((await repetitionPenaltyAsync(logits, historyTensor, penalty)).toArray())).toEqual(Array.from(native));
        }
      });
    }
  }

  it('by hand: a positive logit divided, a negative one multiplied, a repeat once, -1 skipped', () => {
    const logits = tensor(Float32Array.of(2, -1, 0.5, 3), [1, 4]);
    const out = repetitionPenalty(logits, tensor(Int32Array.of(0, 1, 0, -1), [1, 4]), 2).toArray();
    expect(Array.from(out)).toEqual([1, -2, 0.5, 3]);
    expect(() => repetitionPenalty(logits, tensor(Int32Array.of(4), [1, 1]), 2)).toThrow('repetitionPenalty: history[0, 0] = 4 is out of range for vocab 4 (-1: none)');
    expect(() => repetitionPenalty(logits, tensor(Int32Array.of(0), [1, 1]), 0)).toThrow(/penalty = 0 must be > 0 and finite/);
    expect(() => repetitionPenalty(logits, tensor(Int32Array.of(0, 1), [2, 1]), 2)).toThrow(/history must have shape \[1, L\] with L >= 1, got \[2, 1\]/);
  });
});

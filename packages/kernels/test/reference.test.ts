import { describe, it, expect } from 'vitest';
import type { HostTensor, LossType, PolicyLossOptions } from '../src/types.js';
import {
  bf16ToFloat32,
  filteredDistribution,
  float32ToBf16,
  groupAdvantages,
  philox4x32,
  philoxUniform,
  policyLoss,
  sample,
  tokenLogprobs,
  tokenLogprobsBackward,
  toUint64,
  type PolicyLossInputs,
} from '../src/reference/index.js';

// ---- helpers --------------------------------------------------------------------------------

/** Deterministic test data (mulberry32), so a failure reproduces. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

function randomRows(rows: number, vocab: number, spread: number, seed: number): number[][] {
  const random = seededRandom(seed);
  return Array.from({ length: rows }, () =>
    Array.from({ length: vocab }, () => Math.fround((random() * 2 - 1) * spread)),
  );
}

function float32Matrix(rows: readonly (readonly number[])[]): HostTensor<'float32'> {
  const columns = rows[0]?.length ?? 0;
  return { dtype: 'float32', shape: [rows.length, columns], data: Float32Array.from(rows.flat()) };
}

function bf16Matrix(rows: readonly (readonly number[])[]): HostTensor<'bfloat16'> {
  const columns = rows[0]?.length ?? 0;
  return {
    dtype: 'bfloat16',
    shape: [rows.length, columns],
    data: Uint16Array.from(rows.flat(), float32ToBf16),
  };
}

function repeatRow(row: readonly number[], times: number): number[][] {
  return Array.from({ length: times }, () => [...row]);
}

function expectError(
  action: () => unknown,
  errorClass: typeof RangeError | typeof TypeError,
  message: string,
): void {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(errorClass);
  expect((caught as Error).message).toBe(message);
}

function expectAllClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  for (let index = 0; index < expected.length; index++) {
    const want = expected[index] as number;
    const got = actual[index] as number;
    if (Math.abs(got - want) > tolerance * Math.max(1, Math.abs(want))) {
      throw new Error(`index ${index}: got ${got}, expected ${want} (tolerance ${tolerance})`);
    }
  }
}

function naiveLogSumExp(values: readonly number[]): number {
  const max = Math.max(...values);
  return max + Math.log(values.reduce((sum, value) => sum + Math.exp(value - max), 0));
}

/** Entropy as -sum p log p, skipping p = 0. */
function naiveEntropy(scaled: readonly number[]): number {
  const lse = naiveLogSumExp(scaled);
  let entropy = 0;
  for (const value of scaled) {
    const logProbability = value - lse;
    const probability = Math.exp(logProbability);
    if (probability > 0) entropy -= probability * logProbability;
  }
  return entropy;
}

function softmax(values: readonly number[]): number[] {
  const lse = naiveLogSumExp(values);
  return values.map((value) => Math.exp(value - lse));
}

// ---- Philox ---------------------------------------------------------------------------------

describe('philox4x32', () => {
  it('matches the Random123 known-answer vectors', () => {
    expect(philox4x32([0, 0, 0, 0], [0, 0])).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    expect(philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff])).toEqual([
      0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd,
    ]);
    expect(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])).toEqual([
      0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1,
    ]);
  });

  it('agrees with a BigInt implementation on random counters and keys', () => {
    const random = seededRandom(7);
    const word = (): number => Math.floor(random() * 4294967296);
    for (let trial = 0; trial < 200; trial++) {
      const counter: [number, number, number, number] = [word(), word(), word(), word()];
      const key: [number, number] = [word(), word()];
      expect(philox4x32(counter, key)).toEqual(bigIntPhilox(counter, key));
    }
  });

  it('philoxUniform uses key = seed, counter = (offset, row, 0) and 24 bits of word 0', () => {
    const seed = (5n << 32n) | 0x1234n;
    const offset = (9n << 32n) | 77n;
    const [word] = philox4x32([77, 9, 3, 0], [0x1234, 5]);
    expect(philoxUniform(seed, offset, 3)).toBe((word >>> 8) / 2 ** 24);
    expect(philoxUniform(0n, 0n, 0)).toBe((0x6627e8d5 >>> 8) / 2 ** 24);
    for (let row = 0; row < 100; row++) {
      const u = philoxUniform(123n, 456n, row);
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
    }
  });

  it('toUint64 normalises numbers and bigints and rejects what is not a uint64', () => {
    expect(toUint64(42, 'x')).toBe(42n);
    expect(toUint64(2n ** 64n - 1n, 'x')).toBe(2n ** 64n - 1n);
    expectError(() => toUint64(-1, 'sample: seed'), RangeError, 'sample: seed = -1 must be an integer in [0, 2^64)');
    expectError(() => toUint64(1.5, 'sample: offset'), RangeError, 'sample: offset = 1.5 must be an integer in [0, 2^64)');
    expectError(() => toUint64(2n ** 64n, 'x'), RangeError, 'x = 18446744073709551616 must be an integer in [0, 2^64)');
    expectError(() => sample(float32Matrix([[0, 1]]), { seed: -3n }), RangeError, 'sample: seed = -3 must be an integer in [0, 2^64)');
  });
});

/** Philox4x32-10 with exact BigInt products, as an independent check of the 16-bit split. */
function bigIntPhilox(
  counter: readonly [number, number, number, number],
  key: readonly [number, number],
): [number, number, number, number] {
  const mask = 0xffffffffn;
  let [c0, c1, c2, c3] = counter.map(BigInt) as [bigint, bigint, bigint, bigint];
  let [k0, k1] = key.map(BigInt) as [bigint, bigint];
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + 0x9e3779b9n) & mask;
      k1 = (k1 + 0xbb67ae85n) & mask;
    }
    const product0 = 0xd2511f53n * c0;
    const product1 = 0xcd9e8d57n * c2;
    [c0, c1, c2, c3] = [(product1 >> 32n) ^ c1 ^ k0, product1 & mask, (product0 >> 32n) ^ c3 ^ k1, product0 & mask];
  }
  return [Number(c0), Number(c1), Number(c2), Number(c3)];
}

// ---- bfloat16 -------------------------------------------------------------------------------

describe('bfloat16', () => {
  it('round-trips every bit pattern; NaN stays NaN', () => {
    const mismatches: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = bf16ToFloat32(bits);
      const roundTripped = float32ToBf16(value);
      const survives = Number.isNaN(value) ? Number.isNaN(bf16ToFloat32(roundTripped)) : roundTripped === bits;
      if (!survives) mismatches.push(bits);
    }
    expect(mismatches).toEqual([]);
  });

  it('widens exactly and rounds to nearest even', () => {
    expect(bf16ToFloat32(0x3f80)).toBe(1);
    expect(bf16ToFloat32(0xc000)).toBe(-2);
    expect(bf16ToFloat32(0xff80)).toBe(-Infinity);
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: the even neighbour (1) wins.
    expect(float32ToBf16(1 + 2 ** -8)).toBe(0x3f80);
    // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
    expect(float32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(float32ToBf16(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(float32ToBf16(Infinity)).toBe(0x7f80);
    expect(float32ToBf16(3.4028234663852886e38)).toBe(0x7f80);
    expect(Number.isNaN(bf16ToFloat32(float32ToBf16(NaN)))).toBe(true);
  });
});

// ---- sample ---------------------------------------------------------------------------------

describe('sample', () => {
  it('greedy picks the lowest index among ties and reports the T = 1 logprob', () => {
    const row = [1, 5, 5, 2];
    for (const logits of [float32Matrix([row]), bf16Matrix([row])]) {
      const { tokens, logprobs } = sample(logits, { temperature: 0 });
      expect(Array.from(tokens)).toEqual([1]);
      expect(logprobs[0]).toBeCloseTo(5 - naiveLogSumExp(row), 6);
    }
  });

  it('top-k keeps every token tied with the k-th', () => {
    const row = [3, 1, 3, 3, 0];
    expectAllClose(filteredDistribution(row, { topK: 2 }), [1 / 3, 0, 1 / 3, 1 / 3, 0], 1e-12);
    const { tokens } = sample(float32Matrix(repeatRow(row, 300)), { topK: 2, seed: 11 });
    const seen = new Set(tokens);
    expect(seen).toEqual(new Set([0, 2, 3]));
  });

  it('top-p keeps the token whose mass crosses topP, and whole tie groups', () => {
    const row = [0.5, 0.3, 0.2].map(Math.log);
    expectAllClose(filteredDistribution(row, { topP: 0.6 }), [0.625, 0.375, 0], 1e-9);
    expectAllClose(filteredDistribution(row, { topP: 0.49 }), [1, 0, 0], 1e-12);
    expectAllClose(filteredDistribution(row, { topP: 1 }), [0.5, 0.3, 0.2], 1e-9);
    const tied = [0.4, 0.2, 0.2, 0.1, 0.1].map(Math.log);
    expectAllClose(filteredDistribution(tied, { topP: 0.5 }), [0.5, 0.25, 0.25, 0, 0], 1e-9);
  });

  it('top-p measures mass over the top-k survivors', () => {
    const row = [0.4, 0.3, 0.2, 0.1].map(Math.log);
    expectAllClose(filteredDistribution(row, { topP: 0.5 }), [4 / 7, 3 / 7, 0, 0], 1e-9);
    expectAllClose(filteredDistribution(row, { topK: 2, topP: 0.5 }), [1, 0, 0, 0], 1e-12);
  });

  it('min-p keeps p >= minP * max p', () => {
    const row = [0.5, 0.3, 0.15, 0.05].map(Math.log);
    expectAllClose(filteredDistribution(row, { minP: 0.25 }), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0], 1e-9);
    expectAllClose(filteredDistribution(row, { minP: 1 }), [1, 0, 0, 0], 1e-12);
  });

  it('temperature scales before filtering; filters combine', () => {
    const row = [2, 1, 0, -1, -3];
    expectAllClose(filteredDistribution(row, { temperature: 2 }), softmax(row.map((x) => x / 2)), 1e-9);
    // z = [1, .5, 0, -.5, -1.5]; top-k 4 drops the last; top-p 0.8 crosses at e^-1; min-p 0.5
    // then drops e^-1.
    const both = 1 + Math.exp(-0.5);
    expectAllClose(
      filteredDistribution(row, { temperature: 2, topK: 4, topP: 0.8, minP: 0.5 }),
      [1 / both, Math.exp(-0.5) / both, 0, 0, 0],
      1e-9,
    );
    const three = 1 + Math.exp(-0.5) + Math.exp(-1);
    expectAllClose(
      filteredDistribution(row, { temperature: 2, topK: 4, topP: 0.8 }),
      [1 / three, Math.exp(-0.5) / three, Math.exp(-1) / three, 0, 0],
      1e-9,
    );
    expectAllClose(filteredDistribution(row, { temperature: 0 }), [1, 0, 0, 0, 0], 0);
  });

  it('takes per-row parameters; each filter alone can force the argmax', () => {
    const [row] = randomRows(1, 50, 4, 3) as [number[]];
    const argmax = row.indexOf(Math.max(...row));
    const { tokens, logprobs } = sample(float32Matrix(repeatRow(row, 4)), {
      temperature: [0, 1, 1, 0.5],
      topK: Int32Array.from([0, 1, 0, 0]),
      topP: [1, 1, 1, 1e-6],
      minP: Float32Array.from([0, 0, 1, 0]),
      seed: 99n,
    });
    expect(Array.from(tokens)).toEqual([argmax, argmax, argmax, argmax]);
    const lse = naiveLogSumExp(row);
    const scaled = row.map((x) => x / Math.fround(0.5));
    expectAllClose(
      logprobs,
      [row[argmax]! - lse, row[argmax]! - lse, row[argmax]! - lse, scaled[argmax]! - naiveLogSumExp(scaled)],
      1e-6,
    );
  });

  it('reports the logprob under the unfiltered, temperature-scaled row', () => {
    const row = [0.5, 0.3, 0.2].map(Math.log);
    const { tokens, logprobs } = sample(float32Matrix(repeatRow(row, 20)), { topP: 0.6, temperature: 0.7, seed: 5 });
    const scaled = row.map((x) => Math.fround(x) / Math.fround(0.7));
    const lse = naiveLogSumExp(scaled);
    tokens.forEach((token, index) => expect(logprobs[index]).toBeCloseTo(scaled[token]! - lse, 6));
  });

  it('draws by inverse CDF in index order with the Philox uniform of (seed, offset, row)', () => {
    const vocab = 256;
    const rows = 64;
    const { tokens } = sample(float32Matrix(repeatRow(new Array<number>(vocab).fill(0), rows)), {
      seed: 2n ** 40n + 3n,
      offset: 17,
    });
    // Equal weights: the running sum passes u * V at token floor(u * V).
    tokens.forEach((token, row) => {
      expect(token).toBe(Math.floor(philoxUniform(2n ** 40n + 3n, 17n, row) * vocab));
    });
  });

  it('puts a draw that lands exactly on a running sum in the next bucket, never on weight 0', () => {
    // Offsets found by search: with seed 0 and row 0 they give u = 0.5 and u = 0 exactly.
    expect(philoxUniform(0n, 9297664n, 0)).toBe(0.5);
    expect(philoxUniform(0n, 14883995n, 0)).toBe(0);
    // u = 0.5 on two equal weights: target = 1 = the running sum after token 0, not above it.
    expect(Array.from(sample(float32Matrix([[0, 0]]), { offset: 9297664 }).tokens)).toEqual([1]);
    // u = 0: a kept token of weight 0 (a -Infinity logit) never exceeds the target.
    expect(Array.from(sample(float32Matrix([[-Infinity, 0, 0]]), { offset: 14883995 }).tokens)).toEqual([1]);
    expect(Array.from(sample(float32Matrix([[0, 0]]), { offset: 14883995 }).tokens)).toEqual([0]);
  });

  it('samples bfloat16 logits as their widened float32 values', () => {
    const rows = randomRows(8, 40, 3, 21);
    const widened = rows.map((row) => row.map((x) => bf16ToFloat32(float32ToBf16(x))));
    const options = { temperature: 0.9, topK: 20, topP: 0.95, seed: 4, offset: 2 };
    const fromBf16 = sample(bf16Matrix(rows), options);
    const fromFloat32 = sample(float32Matrix(widened), options);
    expect(fromBf16.tokens).toEqual(fromFloat32.tokens);
    expect(fromBf16.logprobs).toEqual(fromFloat32.logprobs);
  });

  it('is deterministic in (seed, offset) and changes with the offset', () => {
    const logits = float32Matrix(repeatRow(new Array<number>(32).fill(0), 64));
    const first = sample(logits, { seed: 1234, offset: 5 });
    const again = sample(logits, { seed: 1234n, offset: 5n });
    const nextStep = sample(logits, { seed: 1234, offset: 6 });
    const otherSeed = sample(logits, { seed: 1235, offset: 5 });
    expect(again.tokens).toEqual(first.tokens);
    expect(nextStep.tokens).not.toEqual(first.tokens);
    expect(otherSeed.tokens).not.toEqual(first.tokens);
    // Rows are independent draws too, not one draw repeated.
    expect(new Set(first.tokens).size).toBeGreaterThan(10);
  });

  it('matches filteredDistribution in frequency (chi-square)', () => {
    const [row] = randomRows(1, 12, 2.5, 8) as [number[]];
    const filter = { temperature: 0.8, topK: 8, topP: 0.9, minP: 0.02 };
    const probabilities = filteredDistribution(row, filter);
    const draws = 20000;
    const { tokens } = sample(float32Matrix(repeatRow(row, draws)), { ...filter, seed: 31337n, offset: 1n });
    const counts = new Array<number>(row.length).fill(0);
    for (const token of tokens) counts[token]! += 1;
    let chiSquare = 0;
    let kept = 0;
    probabilities.forEach((probability, token) => {
      if (probability === 0) {
        expect(counts[token]).toBe(0);
        return;
      }
      kept += 1;
      const expected = draws * probability;
      chiSquare += (counts[token]! - expected) ** 2 / expected;
    });
    expect(kept).toBeGreaterThanOrEqual(3);
    expect(kept).toBeLessThan(row.length);
    const degreesOfFreedom = kept - 1;
    // Far beyond the 99.99th percentile; a wrong sampler misses by orders of magnitude.
    expect(chiSquare).toBeLessThan(degreesOfFreedom + 10 * Math.sqrt(2 * degreesOfFreedom) + 10);
  });
});

describe('filteredDistribution', () => {
  it('sums to 1 on random rows and parameters', () => {
    const random = seededRandom(17);
    for (const [index, row] of randomRows(20, 300, 6, 5).entries()) {
      const options = {
        temperature: 0.2 + random() * 1.5,
        topK: index % 3 === 0 ? 0 : 1 + Math.floor(random() * 300),
        topP: index % 4 === 0 ? 1 : 0.05 + random() * 0.95,
        minP: index % 5 === 0 ? 0 : random() * 0.5,
      };
      const probabilities = filteredDistribution(row, options);
      expect(probabilities.reduce((sum, p) => sum + p, 0)).toBeCloseTo(1, 12);
      expect(probabilities[row.indexOf(Math.max(...row))]).toBeGreaterThan(0);
    }
  });

  it('handles a full-size vocabulary (V = 151936)', () => {
    const [row] = randomRows(1, 151936, 10, 13) as [number[]];
    row[7] = -Infinity;
    const probabilities = filteredDistribution(Float32Array.from(row), { temperature: 0.7, topK: 50, topP: 0.9, minP: 0.01 });
    expect(probabilities.reduce((sum, p) => sum + p, 0)).toBeCloseTo(1, 12);
    expect(probabilities.filter((p) => p > 0).length).toBeLessThanOrEqual(50);
    expect(probabilities[7]).toBe(0);
  });

  it('ignores -Infinity logits', () => {
    const probabilities = filteredDistribution([0, -Infinity, Math.log(3)], { topK: 2 });
    expectAllClose(probabilities, [0.25, 0, 0.75], 1e-12);
  });
});

// ---- tokenLogprobs --------------------------------------------------------------------------

describe('tokenLogprobs', () => {
  it('matches a naive log-softmax and entropy on random rows', () => {
    const rows = randomRows(6, 100, 8, 1);
    const tokens = Int32Array.from([0, 99, 50, 3, 17, 42]);
    for (const temperature of [1, 0.7, 2.5]) {
      const result = tokenLogprobs(float32Matrix(rows), tokens, { temperature, entropy: true });
      const scaledRows = rows.map((row) => row.map((x) => x / Math.fround(temperature)));
      expectAllClose(result.logprobs, scaledRows.map((z, n) => z[tokens[n]!]! - naiveLogSumExp(z)), 1e-6);
      expectAllClose(result.lse, scaledRows.map(naiveLogSumExp), 1e-6);
      expectAllClose(result.entropy!, scaledRows.map(naiveEntropy), 1e-6);
    }
  });

  it('leaves out entropy unless asked, and takes int32 tensors and bfloat16 logits', () => {
    const rows = randomRows(3, 20, 4, 2);
    const tokens: HostTensor<'int32'> = { dtype: 'int32', shape: [3], data: Int32Array.from([1, 2, 3]) };
    const result = tokenLogprobs(bf16Matrix(rows), tokens);
    expect(result.entropy).toBeUndefined();
    const widened = rows.map((row) => row.map((x) => bf16ToFloat32(float32ToBf16(x))));
    expectAllClose(result.logprobs, widened.map((z, n) => z[n + 1]! - naiveLogSumExp(z)), 1e-6);
  });

  it('allows -Infinity logits without NaN', () => {
    const row = [0, -Infinity, 1, -Infinity];
    const result = tokenLogprobs(float32Matrix([row, row]), Int32Array.from([2, 1]), { entropy: true });
    const finite = [0, 1];
    expect(result.logprobs[0]).toBeCloseTo(1 - naiveLogSumExp(finite), 6);
    expect(result.logprobs[1]).toBe(-Infinity);
    expect(result.entropy![0]).toBeCloseTo(naiveEntropy(finite), 6);
    expect(result.lse[1]).toBeCloseTo(naiveLogSumExp(finite), 6);
  });

  it('stays finite with huge logits', () => {
    const result = tokenLogprobs(
      float32Matrix([
        [1e30, 1e30, 0],
        [-1e30, 0, 0],
      ]),
      Int32Array.from([2, 1]),
      { entropy: true },
    );
    expect(result.lse[0]! / Math.fround(1e30)).toBeCloseTo(1, 6);
    expect(result.logprobs[0]! / Math.fround(1e30)).toBeCloseTo(-1, 6);
    expect(result.entropy![0]).toBeCloseTo(Math.LN2, 6);
    expect(result.logprobs[1]).toBeCloseTo(-Math.LN2, 6);
    expect(result.entropy![1]).toBeCloseTo(Math.LN2, 6);
    for (const value of [...result.logprobs, ...result.lse, ...result.entropy!]) expect(Number.isNaN(value)).toBe(false);
  });
});

/** `sum_n gLp[n] * logprob[n] + gEnt[n] * entropy[n]`, all in float64, for finite differences. */
function logprobObjective(
  logits: Float64Array,
  vocab: number,
  tokens: Int32Array,
  gradLogprobs: Float32Array,
  gradEntropy: Float32Array,
  temperature: number,
): number {
  let total = 0;
  for (let row = 0; row < tokens.length; row++) {
    const scaled = Array.from(logits.subarray(row * vocab, (row + 1) * vocab), (x) => x / temperature);
    total += gradLogprobs[row]! * (scaled[tokens[row]!]! - naiveLogSumExp(scaled));
    total += gradEntropy[row]! * naiveEntropy(scaled);
  }
  return total;
}

describe('tokenLogprobsBackward', () => {
  it('matches central finite differences of the logprob + entropy objective', () => {
    const rows = 3;
    const vocab = 12;
    const matrix = randomRows(rows, vocab, 3, 4);
    const tokens = Int32Array.from([4, 0, 11]);
    const gradLogprobs = Float32Array.from([1, -0.5, 2]);
    const gradEntropy = Float32Array.from([0.3, 1, -0.7]);
    for (const temperature of [1, 0.6]) {
      const logits = float32Matrix(matrix);
      const { lse } = tokenLogprobs(logits, tokens, { temperature });
      const analytic = tokenLogprobsBackward(logits, tokens, lse, gradLogprobs, gradEntropy, { temperature });
      const point = Float64Array.from(logits.data);
      const step = 1e-5;
      const numeric = Array.from(point, (_, index) => {
        const original = point[index]!;
        point[index] = original + step;
        const up = logprobObjective(point, vocab, tokens, gradLogprobs, gradEntropy, Math.fround(temperature));
        point[index] = original - step;
        const down = logprobObjective(point, vocab, tokens, gradLogprobs, gradEntropy, Math.fround(temperature));
        point[index] = original;
        return (up - down) / (2 * step);
      });
      expectAllClose(analytic, numeric, 2e-5);
    }
  });

  it('gives 0 at -Infinity logits, never NaN, and treats a missing gradEntropy as 0', () => {
    const rows = [
      [0, -Infinity, 1, 2],
      [-Infinity, 3, -Infinity, 0],
    ];
    const logits = float32Matrix(rows);
    const tokens = Int32Array.from([2, 3]);
    const { lse } = tokenLogprobs(logits, tokens);
    const gradLogprobs = Float32Array.from([1, 1]);
    const withEntropy = tokenLogprobsBackward(logits, tokens, lse, gradLogprobs, Float32Array.from([1, -2]));
    expect(Array.from(withEntropy).some(Number.isNaN)).toBe(false);
    expect([withEntropy[1], withEntropy[4], withEntropy[6]]).toEqual([0, 0, 0]);
    const withoutEntropy = tokenLogprobsBackward(logits, tokens, lse, gradLogprobs);
    const zeroEntropy = tokenLogprobsBackward(logits, tokens, lse, gradLogprobs, new Float32Array(2));
    expect(withoutEntropy).toEqual(zeroEntropy);
    // Each row's logprob gradient sums to 0 (one-hot minus a distribution).
    expect(withoutEntropy.slice(0, 4).reduce((sum, g) => sum + g, 0)).toBeCloseTo(0, 6);
  });
});

// ---- groupAdvantages ------------------------------------------------------------------------

describe('groupAdvantages', () => {
  const eps = Math.fround(1e-4);

  it('grpo with group, batch and no scaling', () => {
    const rewards = [1, 2, 3, 4];
    const centered = [-0.5, 0.5, -0.5, 0.5];
    const groupStd = Math.SQRT1_2;
    const batchStd = Math.sqrt(5 / 3);
    expectAllClose(groupAdvantages(rewards, { groupSize: 2 }), centered.map((a) => a / (groupStd + eps)), 1e-6);
    expectAllClose(
      groupAdvantages(Float32Array.from(rewards), { groupSize: 2, scale: 'batch' }),
      centered.map((a) => a / (batchStd + eps)),
      1e-6,
    );
    expectAllClose(groupAdvantages(rewards, { groupSize: 2, scale: 'none' }), centered, 1e-7);
    expectAllClose(groupAdvantages(rewards, { groupSize: 4, scale: 'group', eps: 0.5 }), [-1.5, -0.5, 0.5, 1.5].map((a) => a / (batchStd + 0.5)), 1e-6);
  });

  it('rloo subtracts the mean of the other members', () => {
    const rewards = [1, 2, 6];
    const leaveOneOut = [1 - 4, 2 - 3.5, 6 - 1.5];
    expectAllClose(groupAdvantages(rewards, { groupSize: 3, estimator: 'rloo', scale: 'none' }), leaveOneOut, 1e-7);
    expectAllClose(
      groupAdvantages(rewards, { groupSize: 3, estimator: 'rloo' }),
      leaveOneOut.map((a) => a / (Math.sqrt(7) + eps)),
      1e-6,
    );
  });

  it('gives a group of one 0, and handles ragged groups', () => {
    const rewards = [5, 1, 3, 2, 2, 8, 7];
    const groupOffsets = [0, 1, 3, 6, 7];
    // Groups: [5] | [1, 3] | [2, 2, 8] | [7].
    expectAllClose(
      groupAdvantages(rewards, { groupOffsets }),
      [0, -1 / (Math.SQRT2 + eps), 1 / (Math.SQRT2 + eps), -2 / (Math.sqrt(12) + eps), -2 / (Math.sqrt(12) + eps), 4 / (Math.sqrt(12) + eps), 0],
      1e-6,
    );
    expectAllClose(
      groupAdvantages(rewards, { groupOffsets: Int32Array.from(groupOffsets), estimator: 'rloo', scale: 'none' }),
      [0, -2, 2, -3, -3, 6, 0],
      1e-7,
    );
    const batchStd = Math.sqrt(
      rewards.reduce((sum, r) => sum + (r - 4) ** 2, 0) / (rewards.length - 1),
    );
    expectAllClose(
      groupAdvantages(rewards, { groupOffsets, scale: 'batch' }),
      [0, -1, 1, -2, -2, 4, 0].map((a) => a / (batchStd + eps)),
      1e-6,
    );
    expectAllClose(groupAdvantages([3], { groupSize: 1 }), [0], 0);
  });

  it('gives 0, not NaN, for a constant group even with eps = 0', () => {
    expectAllClose(groupAdvantages([2, 2, 2, 1, 3, 5], { groupSize: 3, eps: 0 }), [0, 0, 0, -1, 0, 1], 1e-6);
  });
});

// ---- policyLoss -----------------------------------------------------------------------------

/** d f / d point[i] by central differences of 1e-3 (the step as float32 stores it). */
function centralDifferences(point: Float32Array, f: (values: Float32Array) => number): number[] {
  return Array.from(point, (_, index) => {
    const original = point[index]!;
    point[index] = original + 1e-3;
    const upValue = point[index]!;
    const up = f(point);
    point[index] = original - 1e-3;
    const downValue = point[index]!;
    const down = f(point);
    point[index] = original;
    return (up - down) / (upValue - downValue);
  });
}

describe('policyLoss', () => {
  // rho = [[e^.1, e^.3 (clipped high), e^-.5 (masked out)], [1, e^-.5 (clipped low), e^.7]].
  const logprobs = [
    [-1.0, -0.2, -2.0],
    [-0.3, -1.5, -0.8],
  ];
  const oldLogprobs = [
    [-1.1, -0.5, -1.5],
    [-0.3, -1.0, -1.5],
  ];
  const refLogprobs = [
    [-1.0, -0.4, -2.0],
    [-0.2, -1.5, -1.0],
  ];
  const mask = [
    [1, 1, 0],
    [1, 1, 1],
  ];
  const advantages = Float32Array.from([1, -0.5]);
  const inputs = (withRef: boolean): PolicyLossInputs => ({
    logprobs: float32Matrix(logprobs),
    oldLogprobs: float32Matrix(oldLogprobs),
    ...(withRef ? { refLogprobs: float32Matrix(refLogprobs) } : {}),
    advantages,
    mask: float32Matrix(mask),
  });
  const high = 1 + Math.fround(0.2);
  const low = 1 - Math.fround(0.2);
  // Per-token losses worked out by hand: A = 1 takes min(rho, clip) = rho, then the clip 1.2;
  // A = -0.5 takes -0.5, the clip 0.8 * -0.5, then the unclipped e^.7 * -0.5.
  const tokenLoss = [
    [-Math.exp(0.1), -high, 0],
    [0.5, -low * -0.5, 0.5 * Math.exp(0.7)],
  ];
  const tokenGrad = [
    [-Math.exp(0.1), 0, 0],
    [0.5, 0, 0.5 * Math.exp(0.7)],
  ];
  const sum0 = tokenLoss[0]![0]! + tokenLoss[0]![1]!;
  const sum1 = tokenLoss[1]![0]! + tokenLoss[1]![1]! + tokenLoss[1]![2]!;

  it('aggregates each loss type as specified', () => {
    const cases: [PolicyLossOptions, number, number[]][] = [
      [{}, (sum0 / 2 + sum1 / 3) / 2, [1 / 4, 1 / 6]],
      [{ lossType: 'grpo' }, (sum0 / 2 + sum1 / 3) / 2, [1 / 4, 1 / 6]],
      [{ lossType: 'bnpo' }, (sum0 + sum1) / 5, [1 / 5, 1 / 5]],
      [{ lossType: 'dr_grpo' }, (sum0 + sum1) / 6, [1 / 6, 1 / 6]],
      [{ lossType: 'dr_grpo', maxCompletionLength: 10 }, (sum0 + sum1) / 20, [1 / 20, 1 / 20]],
      [{ lossType: 'dapo' }, (sum0 + sum1) / 5, [1 / 5, 1 / 5]],
      [{ lossType: 'dapo', numItemsInBatch: 8 }, (sum0 + sum1) / 8, [1 / 8, 1 / 8]],
    ];
    for (const [options, expectedLoss, weights] of cases) {
      const result = policyLoss(inputs(false), options);
      expect(result.loss).toBeCloseTo(expectedLoss, 6);
      const expectedGrad = tokenGrad.flatMap((row, s) => row.map((g, t) => weights[s]! * mask[s]![t]! * g));
      expectAllClose(result.gradLogprobs, expectedGrad, 1e-6);
    }
  });

  it('reports clip, ratio and KL statistics over masked tokens', () => {
    const { stats } = policyLoss(inputs(false));
    expect(stats.tokenCount).toBe(5);
    expect(stats.clipLowFraction).toBeCloseTo(1 / 5, 12);
    expect(stats.clipHighFraction).toBeCloseTo(1 / 5, 12);
    expect(stats.clipFraction).toBeCloseTo(2 / 5, 12);
    expect(stats.meanRatio).toBeCloseTo((Math.exp(0.1) + Math.exp(0.3) + 1 + Math.exp(-0.5) + Math.exp(0.7)) / 5, 6);
    expect(stats.meanKl).toBe(0);
    const epsilonHigh = policyLoss(inputs(false), { epsHigh: 0.5 }).stats;
    expect(epsilonHigh.clipHighFraction).toBe(0);
    // TRL's extremes over the per-sequence fractions: high 1/2 and 0, low 0 and 1/3.
    expect(stats.clipHighMax).toBeCloseTo(1 / 2, 12);
    expect(stats.clipLowMin).toBe(0);
    // At sequence level the clip is per sequence, and so are the fractions: sequence 0's weight
    // e^0.2 > 1.2 with A = 1 (clipped high); sequence 1's e^(0.2 / 3) is within the range.
    const gspo = policyLoss(inputs(false), { importanceSamplingLevel: 'sequence' }).stats;
    expect([gspo.clipHighFraction, gspo.clipLowFraction, gspo.clipHighMax, gspo.clipLowMin]).toEqual([1 / 2, 0, 1, 0]);
    // No entropy bonus, nothing subtracted.
    expect(stats.entropyBonus).toBe(0);
  });

  it('adds beta * k3 KL to the reference policy', () => {
    const k3 = (d: number): number => Math.exp(d) - d - 1;
    // ref - lp over the masked tokens: 0, -0.2 | 0.1, 0, -0.2.
    const kl = [
      [0, k3(-0.2), 0],
      [k3(0.1), 0, k3(-0.2)],
    ];
    const beta = 0.1;
    const result = policyLoss(inputs(true), { beta, lossType: 'bnpo' });
    const klSum = kl[0]![0]! + kl[0]![1]! + kl[1]![0]! + kl[1]![1]! + kl[1]![2]!;
    expect(result.loss).toBeCloseTo((sum0 + sum1 + Math.fround(beta) * klSum) / 5, 6);
    expect(result.stats.meanKl).toBeCloseTo(klSum / 5, 6);
    // Without beta the KL is still reported but not in the loss.
    const noBeta = policyLoss(inputs(true), { lossType: 'bnpo' });
    expect(noBeta.loss).toBeCloseTo((sum0 + sum1) / 5, 6);
    expect(noBeta.stats.meanKl).toBeCloseTo(klSum / 5, 6);
  });

  it('has the gradient of its loss (finite differences), for every loss type', () => {
    const lossTypes: LossType[] = ['grpo', 'bnpo', 'dr_grpo', 'dapo'];
    for (const lossType of lossTypes) {
      const options: PolicyLossOptions = { lossType, beta: 0.05, epsLow: 0.2, epsHigh: 0.28 };
      const base = inputs(true);
      const { gradLogprobs } = policyLoss(base, options);
      const numeric = centralDifferences(Float32Array.from(base.logprobs.data), (values) =>
        policyLoss({ ...base, logprobs: { dtype: 'float32', shape: [2, 3], data: values } }, options).loss,
      );
      expectAllClose(gradLogprobs, numeric, 1e-5);
    }
  });

  it('two-sided clipping caps the unclipped ratio at delta', () => {
    // Only [1, 2] (A = -0.5, rho = e^.7 > delta = 1.5) changes: its loss is 0.5 * 1.5 and it has no gradient.
    const delta = 1.5;
    const result = policyLoss(inputs(false), { lossType: 'bnpo', delta });
    expect(result.loss).toBeCloseTo((sum0 + sum1 - 0.5 * Math.exp(0.7) + 0.5 * delta) / 5, 6);
    expectAllClose(result.gradLogprobs, [-Math.exp(0.1) / 5, 0, 0, 0.5 / 5, 0, 0], 1e-6);
    // A cap above every ratio changes nothing.
    expect(policyLoss(inputs(false), { lossType: 'bnpo', delta: 3 }).loss).toBe(policyLoss(inputs(false), { lossType: 'bnpo' }).loss);
  });

  it('GSPO: one importance weight per sequence, exp of its mean masked log-ratio', () => {
    // Sequence 0: (0.1 + 0.3) / 2 = 0.2; sequence 1: (0 - 0.5 + 0.7) / 3 = 0.2 / 3.
    const c0 = Math.exp(0.2);
    const c1 = Math.exp(0.2 / 3);
    const result = policyLoss(inputs(false), { importanceSamplingLevel: 'sequence' });
    // A = 1: c0 = 1.22 > 1.2, so the clip wins (no gradient) on both tokens of sequence 0;
    // A = -0.5: -min(-0.5 c1, -0.5 clip(c1)) = 0.5 c1 with c1 inside the range, gradient 0.5 c1.
    expect(result.loss).toBeCloseTo((-high + 0.5 * c1) / 2, 6);
    expectAllClose(result.gradLogprobs, [0, 0, 0, (0.5 * c1) / 6, (0.5 * c1) / 6, (0.5 * c1) / 6], 1e-6);
    expect(result.stats.meanRatio).toBeCloseTo((2 * c0 + 3 * c1) / 5, 6);
    // The clip is per sequence: one of the two sequences (TRL counts sequences here, not tokens).
    expect(result.stats.clipHighFraction).toBeCloseTo(1 / 2, 12);
  });

  it('luspo: GSPO weights, each sequence\'s loss times its length, over S; sequence level only', () => {
    const c1 = Math.exp(0.2 / 3);
    const result = policyLoss(inputs(false), { lossType: 'luspo', importanceSamplingLevel: 'sequence' });
    // Sequence 0: the clip wins (-1.2 on each of 2 tokens); sequence 1: 0.5 c1 on each of 3.
    expect(result.loss).toBeCloseTo((2 * -high + 3 * 0.5 * c1) / 2, 6);
    expectAllClose(result.gradLogprobs, [0, 0, 0, (0.5 * c1) / 2, (0.5 * c1) / 2, (0.5 * c1) / 2], 1e-6);
    expect(() => policyLoss(inputs(false), { lossType: 'luspo' })).toThrow('policyLoss: lossType luspo needs importanceSamplingLevel sequence');
  });

  it('cispo: the capped weight, detached, times A * logprob, aggregated as dapo', () => {
    const cap = 1.3;
    const rho = [
      [Math.exp(0.1), Math.exp(0.3), 0],
      [1, Math.exp(-0.5), Math.exp(0.7)],
    ];
    const weight = (s: number, t: number): number => Math.min(rho[s]![t]!, Math.fround(cap)) * advantages[s]!;
    const positions: [number, number][] = [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2]];
    const result = policyLoss(inputs(false), { lossType: 'cispo', epsHigh: cap });
    const loss = positions.reduce((sum, [s, t]) => sum - weight(s, t) * logprobs[s]![t]!, 0) / 5;
    expect(result.loss).toBeCloseTo(loss, 6);
    expectAllClose(result.gradLogprobs, [-weight(0, 0) / 5, -weight(0, 1) / 5, 0, -weight(1, 0) / 5, -weight(1, 1) / 5, -weight(1, 2) / 5], 1e-6);
    // Clipped: A > 0 and rho > cap: none at 1.3 (e^.3 = 1.35 is, at cap 1.3: [0, 1]).
    expect(result.stats.clipHighFraction).toBeCloseTo(1 / 5, 12);
    expect(result.stats.clipLowFraction).toBe(0);
  });

  it('sapo: the sigmoid gate by the sign of A, aggregated as grpo', () => {
    const [pos, neg] = [Math.fround(1), Math.fround(1.05)];
    const gate = (c: number, tau: number): number => 1 / (1 + Math.exp(-tau * (c - 1)));
    const term = (c: number, a: number): [number, number] => {
      const tau = a > 0 ? pos : neg;
      const g = gate(c, tau);
      return [-(4 / tau) * g * a, -4 * g * (1 - g) * a * c];
    };
    const row0 = [Math.exp(0.1), Math.exp(0.3)].map((c) => term(c, 1));
    const row1 = [1, Math.exp(-0.5), Math.exp(0.7)].map((c) => term(c, -0.5));
    const result = policyLoss(inputs(false), { lossType: 'sapo' });
    const mean = (terms: [number, number][]): number => terms.reduce((sum, [l]) => sum + l, 0) / terms.length;
    expect(result.loss).toBeCloseTo((mean(row0) + mean(row1)) / 2, 6);
    expectAllClose(result.gradLogprobs, [...row0.map(([, g]) => g / 4), 0, ...row1.map(([, g]) => g / 6)], 1e-6);
    // At rho = 1 the gate has slope 1: the same gradient as the unclipped surrogate.
    expect(result.gradLogprobs[3]).toBeCloseTo(0.5 / 6, 6);
    expect(result.stats.clipFraction).toBe(0);
  });

  it('has the gradient of its loss for every new loss type, level and delta (finite differences)', () => {
    const variants: PolicyLossOptions[] = [
      { lossType: 'grpo', importanceSamplingLevel: 'sequence', beta: 0.05 },
      { lossType: 'dapo', importanceSamplingLevel: 'sequence', epsHigh: 0.28 },
      { lossType: 'bnpo', delta: 1.5, beta: 0.05 },
      { lossType: 'cispo', epsHigh: 1.3, beta: 0.05 },
      { lossType: 'cispo', epsHigh: 5, importanceSamplingLevel: 'sequence' },
      { lossType: 'sapo', beta: 0.05 },
      { lossType: 'sapo', importanceSamplingLevel: 'sequence', sapoTemperaturePos: 0.5, sapoTemperatureNeg: 2 },
      { lossType: 'luspo', importanceSamplingLevel: 'sequence', beta: 0.05, delta: 1.1 },
      { lossType: 'vespo', beta: 0.05 },
      { lossType: 'vespo', vespoKPos: 0.5, vespoLambdaNeg: 0.25, numItemsInBatch: 7 },
    ];
    for (const options of variants) {
      const base = inputs(true);
      const { gradLogprobs } = policyLoss(base, options);
      const point = Float32Array.from(base.logprobs.data);
      // cispo's weight is detached: its gradient is the slope in lp with the weight held, i.e. with
      // oldLogprobs moved by the same step (every log-ratio, and so every weight, stays put).
      const detached = options.lossType === 'cispo' || options.lossType === 'vespo';
      const lossAt = (values: Float32Array, index: number): number => {
        const old = Float32Array.from(base.oldLogprobs.data);
        if (detached) old[index] = old[index]! + (values[index]! - point0[index]!);
        return policyLoss(
          { ...base, logprobs: { dtype: 'float32', shape: [2, 3], data: values }, oldLogprobs: { dtype: 'float32', shape: [2, 3], data: old } },
          options,
        ).loss;
      };
      const point0 = Float32Array.from(point);
      // With the weight held the loss is linear in lp, so a wide step costs nothing and keeps the
      // float32 rounding of the moved old log-probs (the weight's own wobble) out of the slope.
      const step = detached ? 1e-2 : 1e-3;
      const numeric = Array.from(point, (_, index) => {
        const original = point[index]!;
        point[index] = original + step;
        const upValue = point[index]!;
        const up = lossAt(point, index);
        point[index] = original - step;
        const downValue = point[index]!;
        const down = lossAt(point, index);
        point[index] = original;
        return (up - down) / (upValue - downValue);
      });
      expectAllClose(gradLogprobs, numeric, 1e-5);
    }
  });

  it("vespo: each sequence's gamma weight of its summed log-ratios, detached, times A * lp; dapo's aggregation", () => {
    // Sequence 0 (A = 1): log w = 0.1 + 0.3, k = 2, lambda = 3; sequence 1 (A = -0.5): log w = 0 - 0.5 + 0.7, k = 3, lambda = 2.
    const phi0 = Math.exp(3 + 2 * 0.4 - 3 * Math.exp(0.4));
    const phi1 = Math.exp(2 + 3 * 0.2 - 2 * Math.exp(0.2));
    const result = policyLoss(inputs(false), { lossType: 'vespo' });
    const lp = [-1.0, -0.2, -0.3, -1.5, -0.8];
    expect(result.loss).toBeCloseTo((-phi0 * (lp[0]! + lp[1]!) + 0.5 * phi1 * (lp[2]! + lp[3]! + lp[4]!)) / 5, 5);
    expectAllClose(result.gradLogprobs, [-phi0 / 5, -phi0 / 5, 0, (0.5 * phi1) / 5, (0.5 * phi1) / 5, (0.5 * phi1) / 5], 1e-6);
    expect(result.stats.vespoPhiMean).toBeCloseTo((phi0 + phi1) / 2, 6);
    expect(result.stats.clipFraction).toBe(0);
    // phi(1) = 1: with old = lp every weight is 1 and the loss is REINFORCE's.
    const onPolicy = policyLoss({ ...inputs(false), oldLogprobs: inputs(false).logprobs }, { lossType: 'vespo' });
    expect(onPolicy.stats.vespoPhiMean).toBeCloseTo(1, 6);
    expect(() => policyLoss(inputs(false), { lossType: 'vespo', importanceSamplingLevel: 'sequence' })).toThrow(/vespo weighs whole sequences itself/);
    expect(() => policyLoss(inputs(false), { lossType: 'vespo', vespoLambdaPos: 0 })).toThrow('policyLoss: vespoLambdaPos = 0 must be > 0 and finite');
  });

  it('refuses a bad delta, sapo temperature or importance level', () => {
    const base = inputs(false);
    expect(() => policyLoss(base, { delta: 0.9 })).toThrow('policyLoss: delta = 0.9 must be > 1 and finite (0: off)');
    expect(() => policyLoss(base, { lossType: 'sapo', sapoTemperatureNeg: 0 })).toThrow(/sapoTemperatureNeg/);
    const level: string = 'chunk';
    expect(() => policyLoss(base, { importanceSamplingLevel: level as 'token' })).toThrow(/importanceSamplingLevel 'chunk' is not one of token, sequence/);
  });

  it('ignores non-finite values at masked-out positions', () => {
    const base = inputs(false);
    const data = Float32Array.from(base.logprobs.data);
    data[2] = -Infinity;
    const result = policyLoss({ ...base, logprobs: { dtype: 'float32', shape: [2, 3], data } });
    expect(result.loss).toBeCloseTo(policyLoss(base).loss, 12);
    expect(result.gradLogprobs[2]).toBe(0);
  });

  it('accepts advantages as a [S] tensor', () => {
    const base = inputs(false);
    const asTensor = policyLoss({ ...base, advantages: { dtype: 'float32', shape: [2], data: advantages } });
    expect(asTensor.loss).toBe(policyLoss(base).loss);
  });

  // Entropies of the masked tokens: [0, 0] 3, [0, 1] 0.5 | [1, 0] 1, [1, 1] 0.2, [1, 2] 2 (sorted
  // 0.2 0.5 1 2 3; [0, 2] is padding). topEntropyQuantile 0.4: the 0.6 quantile at rank 2.4,
  // 1 + 0.4 * (2 - 1) = 1.4, keeps [0, 0] and [1, 2].
  const entropy = [
    [3.0, 0.5, 9.0],
    [1.0, 0.2, 2.0],
  ];
  const withEntropy = (withRef: boolean): PolicyLossInputs => ({ ...inputs(withRef), entropy: float32Matrix(entropy) });

  it('topEntropyQuantile: only the high-entropy tokens keep their surrogate; the normaliser and the KL keep all', () => {
    const bnpo = policyLoss(withEntropy(false), { lossType: 'bnpo', topEntropyQuantile: 0.4 });
    expect(bnpo.stats.entropyThreshold).toBeCloseTo(1.4, 6);
    expect(bnpo.stats.keptFraction).toBeCloseTo(2 / 5, 12);
    expect(bnpo.stats.meanEntropy).toBeCloseTo((3 + 2) / 2, 6);
    expect(bnpo.loss).toBeCloseTo((tokenLoss[0]![0]! + tokenLoss[1]![2]!) / 5, 6);
    expectAllClose(bnpo.gradLogprobs, [tokenGrad[0]![0]! / 5, 0, 0, 0, 0, tokenGrad[1]![2]! / 5], 1e-6);
    // grpo still divides each sequence by all its tokens.
    const grpo = policyLoss(withEntropy(false), { topEntropyQuantile: 0.4 });
    expect(grpo.loss).toBeCloseTo(tokenLoss[0]![0]! / 4 + tokenLoss[1]![2]! / 6, 6);
    // The KL term stays on every masked token.
    const k3 = (d: number): number => Math.exp(d) - d - 1;
    const klSum = k3(-0.2) + k3(0.1) + k3(-0.2);
    const beta = 0.1;
    const withKl = policyLoss(withEntropy(true), { lossType: 'bnpo', topEntropyQuantile: 0.4, beta });
    expect(withKl.loss).toBeCloseTo((tokenLoss[0]![0]! + tokenLoss[1]![2]! + Math.fround(beta) * klSum) / 5, 6);
    expect(withKl.gradLogprobs[4]).toBeCloseTo((Math.fround(beta) * (1 - Math.exp(0))) / 5, 6);
    expect(withKl.gradLogprobs[1]).toBeCloseTo((Math.fround(beta) * (1 - Math.exp(-0.2))) / 5, 6);
    // 0 keeps only the highest; 1 (the default) keeps all and reports no threshold.
    const highest = policyLoss(withEntropy(false), { lossType: 'bnpo', topEntropyQuantile: 0 });
    expect(highest.stats.entropyThreshold).toBe(3);
    expect(highest.loss).toBeCloseTo(tokenLoss[0]![0]! / 5, 6);
    const all = policyLoss(withEntropy(false), { lossType: 'bnpo', topEntropyQuantile: 1 });
    expect(all.loss).toBe(policyLoss(inputs(false), { lossType: 'bnpo' }).loss);
    expect(all.stats.entropyThreshold).toBe(0);
    expect(all.stats.keptFraction).toBe(1);
  });

  it('entropyCoef: minus the mean entropy of the kept tokens (dapo, cispo: over their normaliser), with its gradient', () => {
    const coef = 0.1;
    const plain = policyLoss(withEntropy(false), { lossType: 'bnpo' });
    const meanEntropy = (3 + 0.5 + 1 + 0.2 + 2) / 5;
    const bonus = policyLoss(withEntropy(false), { lossType: 'bnpo', entropyCoef: coef });
    expect(bonus.loss).toBeCloseTo(plain.loss - Math.fround(coef) * meanEntropy, 6);
    expect(bonus.stats.entropyBonus).toBeCloseTo(Math.fround(coef) * meanEntropy, 6);
    expect(bonus.stats.meanEntropy).toBeCloseTo(meanEntropy, 6);
    expectAllClose(bonus.gradLogprobs, plain.gradLogprobs, 0);
    const each = -Math.fround(coef) / 5;
    expectAllClose(bonus.gradEntropy!, [each, each, 0, each, each, each], 1e-7);
    // With the quantile: the two kept tokens, over 2 (bnpo) or over dapo's 5 tokens.
    const kept = policyLoss(withEntropy(false), { lossType: 'bnpo', entropyCoef: coef, topEntropyQuantile: 0.4 });
    expect(kept.loss).toBeCloseTo((tokenLoss[0]![0]! + tokenLoss[1]![2]!) / 5 - (Math.fround(coef) * (3 + 2)) / 2, 6);
    expectAllClose(kept.gradEntropy!, [-Math.fround(coef) / 2, 0, 0, 0, 0, -Math.fround(coef) / 2], 1e-7);
    const dapo = policyLoss(withEntropy(false), { lossType: 'dapo', entropyCoef: coef, topEntropyQuantile: 0.4 });
    expect(dapo.loss).toBeCloseTo((tokenLoss[0]![0]! + tokenLoss[1]![2]!) / 5 - (Math.fround(coef) * (3 + 2)) / 5, 6);
    expectAllClose(dapo.gradEntropy!, [-Math.fround(coef) / 5, 0, 0, 0, 0, -Math.fround(coef) / 5], 1e-7);
    // No bonus: the entropy gradient is 0, and none is returned without entropy.
    expectAllClose(policyLoss(withEntropy(false)).gradEntropy!, [0, 0, 0, 0, 0, 0], 0);
    expect(policyLoss(inputs(false)).gradEntropy).toBeUndefined();
  });

  it('has the gradients of its loss with the entropy options (finite differences in logprobs and entropy)', () => {
    const variants: PolicyLossOptions[] = [
      { lossType: 'grpo', topEntropyQuantile: 0.4, entropyCoef: 0.1, beta: 0.05 },
      { lossType: 'dapo', topEntropyQuantile: 0.4, entropyCoef: -0.2 },
      { lossType: 'sapo', topEntropyQuantile: 0.7, entropyCoef: 0.05 },
      { lossType: 'bnpo', epsHigh: 0.28, importanceSamplingLevel: 'sequence', topEntropyQuantile: 0.4, entropyCoef: 0.1, beta: 0.05 },
      { lossType: 'dr_grpo', epsHigh: 0.28, importanceSamplingLevel: 'sequence', topEntropyQuantile: 0 },
      { lossType: 'luspo', importanceSamplingLevel: 'sequence', entropyCoef: 0.3 },
    ];
    for (const options of variants) {
      const base = withEntropy(true);
      const { gradLogprobs, gradEntropy } = policyLoss(base, options);
      const matrix = (values: Float32Array) => ({ dtype: 'float32' as const, shape: [2, 3], data: values });
      const byLogprobs = centralDifferences(Float32Array.from(base.logprobs.data), (values) => policyLoss({ ...base, logprobs: matrix(values) }, options).loss);
      expectAllClose(gradLogprobs, byLogprobs, 1e-5);
      // No entropy lies within a step of the threshold, so the kept tokens stay the same.
      const byEntropy = centralDifferences(Float32Array.from(base.entropy!.data), (values) => policyLoss({ ...base, entropy: matrix(values) }, options).loss);
      expectAllClose(gradEntropy!, byEntropy.map((g, i) => (base.mask.data[i] === 0 ? 0 : g)), 1e-5);
    }
  });

  it("useBiasCorrectionKl: each token's k3 times its importance weight", () => {
    const k3 = (d: number): number => Math.exp(d) - d - 1;
    // ref - lp and lp - old over the masked tokens: [0, -0.2 | 0.1, 0, -0.2] and [0.1, 0.3 | 0, -0.5, 0.7].
    const corrected = k3(0) * Math.exp(0.1) + k3(-0.2) * Math.exp(0.3) + k3(0.1) * 1 + k3(0) * Math.exp(-0.5) + k3(-0.2) * Math.exp(0.7);
    const beta = 0.1;
    const result = policyLoss(inputs(true), { beta, lossType: 'bnpo', useBiasCorrectionKl: true });
    expect(result.loss).toBeCloseTo((sum0 + sum1 + Math.fround(beta) * corrected) / 5, 6);
    expect(result.stats.meanKl).toBeCloseTo(corrected / 5, 6);
    // Token [1, 0]: ratio 1 (unclipped, A = -0.5), k3(0.1) and d(k3 c)/dlp = c (1 - e^0.1) + k3(0.1) c with c = 1.
    expect(result.gradLogprobs[3]).toBeCloseTo((0.5 + Math.fround(beta) * (1 - Math.exp(0.1) + k3(0.1))) / 5, 6);
  });

  it('offPolicyMaskThreshold: a sequence with A < 0 whose mean of old - lp exceeds it trains no surrogate, its KL stays', () => {
    // Sequence 1 (A = -0.5): mean of old - lp = -(0 - 0.5 + 0.7) / 3 = -0.2 / 3, within any threshold >= 0.
    expect(policyLoss(inputs(false), { lossType: 'bnpo', offPolicyMaskThreshold: 0 }).stats.offPolicyFraction).toBe(0);
    // Move sequence 1's old log-probs up by 0.3: its mean of old - lp is 0.3 - 0.2 / 3 > 0.2, so it is dropped.
    const base = inputs(true);
    const old = Float32Array.from(base.oldLogprobs.data, (v, i) => (i >= 3 ? v + 0.3 : v));
    const moved = { ...base, oldLogprobs: { dtype: 'float32' as const, shape: [2, 3], data: old } };
    const beta = 0.1;
    const kept = policyLoss(moved, { lossType: 'bnpo', beta });
    const masked = policyLoss(moved, { lossType: 'bnpo', beta, offPolicyMaskThreshold: 0.2 });
    expect(masked.stats.offPolicyFraction).toBe(0.5);
    const k3 = (d: number): number => Math.exp(d) - d - 1;
    const klRow1 = Math.fround(beta) * (k3(0.1) + k3(0) + k3(-0.2));
    expect(masked.loss).toBeCloseTo((sum0 + Math.fround(beta) * k3(-0.2)) / 5 + klRow1 / 5, 6);
    // Row 0 (A > 0) is untouched; row 1 keeps only its KL gradient.
    expectAllClose(masked.gradLogprobs.subarray(0, 3), kept.gradLogprobs.subarray(0, 3), 0);
    expect(masked.gradLogprobs[3]).toBeCloseTo((Math.fround(beta) * (1 - Math.exp(0.1))) / 5, 6);
    // A threshold above the drift keeps it.
    expect(policyLoss(moved, { lossType: 'bnpo', beta, offPolicyMaskThreshold: 0.3 }).loss).toBeCloseTo(kept.loss, 12);
    expect(() => policyLoss(moved, { offPolicyMaskThreshold: -1 })).toThrow('policyLoss: offPolicyMaskThreshold = -1 must be >= 0 and finite');
  });

  it('has the gradient of its loss with the bias-corrected KL and the off-policy mask (finite differences)', () => {
    const variants: PolicyLossOptions[] = [
      { lossType: 'grpo', beta: 0.2, useBiasCorrectionKl: true },
      { lossType: 'dapo', beta: 0.2, useBiasCorrectionKl: true, offPolicyMaskThreshold: 0 },
      { lossType: 'bnpo', epsHigh: 0.28, beta: 0.2, importanceSamplingLevel: 'sequence', useBiasCorrectionKl: true },
      { lossType: 'sapo', beta: 0.2, importanceSamplingLevel: 'sequence', useBiasCorrectionKl: true, offPolicyMaskThreshold: 0.01 },
      { lossType: 'luspo', beta: 0.2, importanceSamplingLevel: 'sequence', useBiasCorrectionKl: true },
    ];
    for (const options of variants) {
      const base = inputs(true);
      const { gradLogprobs } = policyLoss(base, options);
      const numeric = centralDifferences(Float32Array.from(base.logprobs.data), (values) => policyLoss({ ...base, logprobs: { dtype: 'float32', shape: [2, 3], data: values } }, options).loss);
      expectAllClose(gradLogprobs, numeric, 1e-5);
    }
  });

  it('refuses entropy options it cannot apply', () => {
    const base = withEntropy(false);
    expect(() => policyLoss(base, { topEntropyQuantile: 1.5 })).toThrow('policyLoss: topEntropyQuantile = 1.5 must be in [0, 1]');
    expect(() => policyLoss(base, { entropyCoef: Number.NaN })).toThrow(/entropyCoef = NaN must be finite/);
    expect(() => policyLoss(inputs(false), { entropyCoef: 0.1 })).toThrow(/need entropy/);
    expect(() => policyLoss(base, { lossType: 'luspo', importanceSamplingLevel: 'sequence', topEntropyQuantile: 0.5 })).toThrow(/luspo/);
    const nan = Float32Array.from(base.entropy!.data);
    nan[4] = Number.NaN;
    expect(() => policyLoss({ ...base, entropy: { dtype: 'float32', shape: [2, 3], data: nan } })).toThrow(/entropy\[1, 1\]/);
  });
});

// ---- errors ---------------------------------------------------------------------------------

describe('argument errors', () => {
  const fourRows = (): HostTensor<'float32'> => float32Matrix(repeatRow(new Array<number>(18).fill(0), 4));

  it('tokenLogprobs', () => {
    const bigVocab: HostTensor<'float32'> = { dtype: 'float32', shape: [18, 32000], data: new Float32Array(18 * 32000) };
    const tokens = new Int32Array(18);
    tokens[17] = 50000;
    expectError(() => tokenLogprobs(bigVocab, tokens), RangeError, 'tokenLogprobs: tokens[17] = 50000 is out of range for vocab 32000');
    tokens[17] = -1;
    expectError(() => tokenLogprobs(bigVocab, tokens), RangeError, 'tokenLogprobs: tokens[17] = -1 is out of range for vocab 32000');
    const int32Logits = { dtype: 'int32', shape: [2, 2], data: new Int32Array(4) } as unknown as HostTensor<'float32'>;
    expectError(() => tokenLogprobs(int32Logits, new Int32Array(2)), TypeError, 'tokenLogprobs: logits must be float32 or bfloat16, got int32');
    const rankOne: HostTensor<'float32'> = { dtype: 'float32', shape: [3], data: new Float32Array(3) };
    expectError(() => tokenLogprobs(rankOne, new Int32Array(3)), RangeError, 'tokenLogprobs: logits must have rank 2, got shape [3]');
    expectError(() => tokenLogprobs(fourRows(), new Int32Array(5)), RangeError, 'tokenLogprobs: tokens has 5 entries for 4 rows');
    const floatTokens = Float32Array.from([0, 0, 0, 0]) as unknown as Int32Array;
    expectError(() => tokenLogprobs(fourRows(), floatTokens), TypeError, 'tokenLogprobs: tokens must be int32, got Float32Array');
    const floatTensorTokens = { dtype: 'float32', shape: [4], data: new Float32Array(4) } as unknown as HostTensor<'int32'>;
    expectError(() => tokenLogprobs(fourRows(), floatTensorTokens), TypeError, 'tokenLogprobs: tokens must be int32, got float32');
    expectError(() => tokenLogprobs(fourRows(), new Int32Array(4), { temperature: 0 }), RangeError, 'tokenLogprobs: temperature = 0 must be > 0');
    const nanLogits = fourRows();
    nanLogits.data[2 * 18 + 5] = NaN;
    expectError(() => tokenLogprobs(nanLogits, new Int32Array(4)), RangeError, 'tokenLogprobs: logits[2, 5] is NaN');
    const short: HostTensor<'float32'> = { dtype: 'float32', shape: [2, 3], data: new Float32Array(5) };
    expectError(() => tokenLogprobs(short, new Int32Array(2)), RangeError, 'tokenLogprobs: logits has 5 values for shape [2, 3]');
    expectError(
      () => tokenLogprobsBackward(fourRows(), new Int32Array(4), new Float32Array(3), new Float32Array(4)),
      RangeError,
      'tokenLogprobsBackward: lse has 3 entries for 4 rows',
    );
  });

  it('sample: logits values', () => {
    const nan = fourRows();
    nan.data[3 * 18 + 17] = NaN;
    expectError(() => sample(nan), RangeError, 'sample: logits[3, 17] is NaN');
    const infinite = fourRows();
    infinite.data[3 * 18 + 17] = Infinity;
    expectError(() => sample(infinite), RangeError, 'sample: logits[3, 17] is Infinity');
    const masked = fourRows();
    masked.data.fill(-Infinity, 3 * 18, 4 * 18);
    expectError(() => sample(masked), RangeError, 'sample: logits row 3 has no finite value');
    expectError(() => sample(masked, { temperature: 0 }), RangeError, 'sample: logits row 3 has no finite value');
    expectError(() => filteredDistribution([0, NaN]), RangeError, 'filteredDistribution: logits[0, 1] is NaN');
  });

  it('sample: parameters', () => {
    const logits = fourRows();
    expectError(() => sample(logits, { temperature: [1, 1, -1, 1] }), RangeError, 'sample: temperature[2] = -1 must be >= 0');
    expectError(() => sample(logits, { temperature: Infinity }), RangeError, 'sample: temperature[0] = Infinity must be finite');
    expectError(() => sample(logits, { topP: 1.5 }), RangeError, 'sample: topP[0] = 1.5 must be in (0, 1]');
    expectError(() => sample(logits, { topP: 0 }), RangeError, 'sample: topP[0] = 0 must be in (0, 1]');
    expectError(() => sample(logits, { topK: -1 }), RangeError, 'sample: topK[0] = -1 must be >= 0');
    expectError(() => sample(logits, { topK: 1.5 }), RangeError, 'sample: topK[0] = 1.5 must be an integer');
    expectError(() => sample(logits, { minP: [0, 2, 0, 0] }), RangeError, 'sample: minP[1] = 2 must be in [0, 1]');
    expectError(() => sample(logits, { temperature: [1, 1, 1] }), RangeError, 'sample: temperature has 3 values for 4 rows (give 1 or 4)');
    expectError(() => filteredDistribution([0, 1], { topP: 2 }), RangeError, 'filteredDistribution: topP[0] = 2 must be in (0, 1]');
  });

  it('groupAdvantages', () => {
    const rewards = [1, 2, 3, 4, 5, 6, 7, 8];
    expectError(() => groupAdvantages(rewards, { groupSize: 3 }), RangeError, 'groupAdvantages: groupSize 3 does not divide 8 rewards');
    const offsetsMessage = 'groupAdvantages: groupOffsets must start at 0 and end at 8, strictly increasing';
    for (const groupOffsets of [[0, 4, 4, 8], [1, 8], [0, 7], [0, 5, 3, 8], []]) {
      expectError(() => groupAdvantages(rewards, { groupOffsets }), RangeError, offsetsMessage);
    }
    expectError(() => groupAdvantages(rewards, {}), RangeError, 'groupAdvantages: give exactly one of groupSize and groupOffsets');
    expectError(
      () => groupAdvantages(rewards, { groupSize: 4, groupOffsets: [0, 4, 8] }),
      RangeError,
      'groupAdvantages: give exactly one of groupSize and groupOffsets',
    );
    expectError(() => groupAdvantages([1, NaN], { groupSize: 2 }), RangeError, 'groupAdvantages: rewards[1] is NaN');
    expectError(() => groupAdvantages([1, -Infinity], { groupSize: 2 }), RangeError, 'groupAdvantages: rewards[1] is -Infinity');
    expectError(() => groupAdvantages(rewards, { groupSize: 0 }), RangeError, 'groupAdvantages: groupSize 0 must be an integer >= 1');
    expectError(() => groupAdvantages(rewards, { groupSize: 2, eps: -1 }), RangeError, 'groupAdvantages: eps = -1 must be >= 0');
  });

  it('policyLoss', () => {
    const matrix = (rows: number, columns: number): HostTensor<'float32'> => ({
      dtype: 'float32',
      shape: [rows, columns],
      data: new Float32Array(rows * columns),
    });
    const valid = (): PolicyLossInputs => ({
      logprobs: matrix(2, 4),
      oldLogprobs: matrix(2, 4),
      advantages: new Float32Array(2),
      mask: matrix(2, 4),
    });
    expectError(
      () => policyLoss({ ...valid(), oldLogprobs: matrix(2, 3) }),
      RangeError,
      'policyLoss: oldLogprobs has shape [2, 3], expected [2, 4]',
    );
    expectError(() => policyLoss(valid(), { epsLow: -1 }), RangeError, 'policyLoss: epsLow = -1 must be >= 0');
    const unknownLossType: string = 'foo';
    expectError(
      () => policyLoss(valid(), { lossType: unknownLossType as LossType }),
      RangeError,
      "policyLoss: lossType 'foo' is not one of grpo, bnpo, dr_grpo, dapo, cispo, sapo, luspo, vespo",
    );
    expectError(() => policyLoss({ ...valid(), advantages: new Float32Array(3) }), RangeError, 'policyLoss: advantages has 3 entries for 2 sequences');
    const int16Mask = { dtype: 'int16', shape: [2, 4], data: new Int16Array(8) } as unknown as HostTensor<'float32'>;
    expectError(() => policyLoss({ ...valid(), mask: int16Mask }), TypeError, 'policyLoss: mask must be float32, int32, uint8 or bool, got int16');
    const halfMask = valid();
    halfMask.mask.data[6] = 0.5;
    expectError(() => policyLoss(halfMask), RangeError, 'policyLoss: mask[1, 2] = 0.5 must be 0 or 1');
    const rankOne: HostTensor<'float32'> = { dtype: 'float32', shape: [8], data: new Float32Array(8) };
    expectError(() => policyLoss({ ...valid(), logprobs: rankOne }), RangeError, 'policyLoss: logprobs must have rank 2, got shape [8]');
    const nanInputs = valid();
    nanInputs.mask.data[5] = 1;
    nanInputs.oldLogprobs.data[5] = NaN;
    expectError(() => policyLoss(nanInputs), RangeError, 'policyLoss: oldLogprobs[1, 1] is NaN');
    expectError(() => policyLoss(valid(), { maxCompletionLength: 0 }), RangeError, 'policyLoss: maxCompletionLength = 0 must be > 0');
  });
});

/**
 * linearLogprobs against its reference (odd shapes, chunkings, temperature, bfloat16), its
 * gradients against finite differences, its memory (never [N, V]) and its bad input.
 */
import { describe, expect, it } from 'vitest';

import {
  linearLogprobs,
  linearLogprobsAsync,
  linearLogprobsBackward,
  memoryStats,
  reference,
  resetPeakMemoryStats,
  tensor,
  tokenLogprobs,
  type Tensor,
} from '../src/index.js';
import { maxAbsDifference, seededRandom, toBf16 } from './helpers.js';

function randomMatrix(rows: number, columns: number, scale: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: rows * columns }, () => (random() * 2 - 1) * scale);
}

type Dtype = 'float32' | 'bfloat16';

function inputs(rows: number, width: number, vocab: number, dtype: Dtype, seed: number) {
  const hiddenValues = randomMatrix(rows, width, 1, seed);
  const weightValues = randomMatrix(vocab, width, 0.5, seed + 1);
  const random = seededRandom(seed + 2);
  const ids = Int32Array.from({ length: rows }, () => Math.floor(random() * vocab));
  const stored = (values: Float32Array) => (dtype === 'float32' ? values : toBf16(values));
  return {
    hidden: tensor(stored(hiddenValues), [rows, width], { dtype }),
    weight: tensor(stored(weightValues), [vocab, width], { dtype }),
    tokens: tensor(ids),
    host: {
      hidden: { dtype, shape: [rows, width], data: stored(hiddenValues) } as never,
      weight: { dtype, shape: [vocab, width], data: stored(weightValues) } as never,
      ids,
    },
  };
}

describe('linearLogprobs (native) against the reference', () => {
  const shapes: [number, number, number, number | undefined][] = [
    [1, 1, 1, undefined],
    [1, 7, 33, 5],
    [3, 5, 1000, 64],
    [17, 33, 4099, undefined],
    [4, 16, 5003, 1024],
  ];
  for (const dtype of ['float32', 'bfloat16'] as const) {
    for (const [rows, width, vocab, chunkSize] of shapes) {
      it(`${dtype} [${rows}, ${width}] x [${vocab}, ${width}], chunk ${chunkSize ?? 'auto'}: log-probs, entropy and both gradients`, async () => {
        const data = inputs(rows, width, vocab, dtype, rows * 31 + vocab);
        const options = { temperature: 0.8, entropy: true, ...(chunkSize ? { chunkSize } : {}) };
        const native = linearLogprobs(data.hidden, data.weight, data.tokens, options);
        const expected = reference.linearLogprobs(data.host.hidden, data.host.weight, data.host.ids, options);
        expect(maxAbsDifference(native.logprobs.toArray(), expected.logprobs)).toBeLessThan(1e-4);
        expect(maxAbsDifference(native.entropy!.toArray(), expected.entropy!)).toBeLessThan(1e-4);
        const asyncResult = await linearLogprobsAsync(data.hidden, data.weight, data.tokens, options);
        expect(Array.from(asyncResult.logprobs.toArray())).toEqual(Array.from(native.logprobs.toArray()));

        const random = seededRandom(vocab);
        const gradLogprobs = Float32Array.from({ length: rows }, () => random() * 2 - 1);
        const gradEntropy = Float32Array.from({ length: rows }, () => random() - 0.5);
        const grads = linearLogprobsBackward(data.hidden, data.weight, data.tokens, native.lse, tensor(gradLogprobs), {
          temperature: 0.8,
          entropy: native.entropy,
          gradEntropy: tensor(gradEntropy),
          ...(chunkSize ? { chunkSize } : {}),
        });
        const expectedGrads = reference.linearLogprobsBackward(
          data.host.hidden,
          data.host.weight,
          data.host.ids,
          native.lse.toArray(),
          gradLogprobs,
          gradEntropy,
          { temperature: 0.8 },
        );
        expect(maxAbsDifference(grads.gradHidden.toArray(), expectedGrads.gradHidden)).toBeLessThan(2e-4);
        expect(maxAbsDifference(grads.gradWeight.toArray(), expectedGrads.gradWeight)).toBeLessThan(2e-4);
      });
    }
  }

  it('equals the unfused composition: logits = hidden weight^T, then tokenLogprobs', () => {
    const data = inputs(6, 24, 3001, 'float32', 5);
    const hidden = data.hidden.toArray();
    const weight = data.weight.toArray();
    const logits = new Float32Array(6 * 3001);
    for (let r = 0; r < 6; r++) {
      for (let v = 0; v < 3001; v++) {
        let dot = 0;
        for (let h = 0; h < 24; h++) dot += hidden[r * 24 + h]! * weight[v * 24 + h]!;
        logits[r * 3001 + v] = dot;
      }
    }
    const unfused = tokenLogprobs(tensor(logits, [6, 3001]), data.tokens, { entropy: true });
    const fused = linearLogprobs(data.hidden, data.weight, data.tokens, { entropy: true, chunkSize: 256 });
    expect(maxAbsDifference(fused.logprobs.toArray(), unfused.logprobs.toArray())).toBeLessThan(1e-4);
    expect(maxAbsDifference(fused.entropy!.toArray(), unfused.entropy!.toArray())).toBeLessThan(1e-4);
  });

  it("accumulates into given gradients (an LM head's), and recomputes the entropy when it is not given", () => {
    const data = inputs(3, 8, 500, 'float32', 9);
    const { lse, entropy } = linearLogprobs(data.hidden, data.weight, data.tokens, { entropy: true });
    const g = tensor(Float32Array.of(1, -0.5, 0.25));
    const ge = tensor(Float32Array.of(0.3, 0.1, -0.2));
    const fresh = linearLogprobsBackward(data.hidden, data.weight, data.tokens, lse, g, { gradEntropy: ge, entropy });
    const recomputed = linearLogprobsBackward(data.hidden, data.weight, data.tokens, lse, g, { gradEntropy: ge });
    expect(maxAbsDifference(recomputed.gradWeight.toArray(), fresh.gradWeight.toArray())).toBeLessThan(1e-6);
    const gradHidden = tensor(new Float32Array(24).fill(1), [3, 8]);
    const gradWeight = tensor(new Float32Array(500 * 8).fill(2), [500, 8]);
    const added = linearLogprobsBackward(data.hidden, data.weight, data.tokens, lse, g, {
      gradEntropy: ge,
      entropy,
      gradHidden,
      gradWeight,
    });
    expect(added.gradHidden).toBe(gradHidden);
    expect(added.gradWeight).toBe(gradWeight);
    const expectedHidden = Float32Array.from(fresh.gradHidden.toArray(), (value) => value + 1);
    expect(maxAbsDifference(gradHidden.toArray(), expectedHidden)).toBeLessThan(1e-6);
    const expectedWeight = Float32Array.from(fresh.gradWeight.toArray(), (value) => value + 2);
    expect(maxAbsDifference(gradWeight.toArray(), expectedWeight)).toBeLessThan(1e-6);
  });

  it('both gradients agree with central finite differences of the native forward', () => {
    const rows = 3;
    const width = 4;
    const vocab = 37;
    const hiddenValues = randomMatrix(rows, width, 1, 70);
    const weightValues = randomMatrix(vocab, width, 1, 71);
    const ids = tensor(Int32Array.of(3, 36, 0));
    const gradLogprobs = Float32Array.of(0.7, -1.1, 0.4);
    const gradEntropy = Float32Array.of(-0.3, 0.5, 0.2);
    const objective = (hidden: Float32Array, weight: Float32Array) => {
      const out = linearLogprobs(tensor(hidden, [rows, width]), tensor(weight, [vocab, width]), ids, { temperature: 0.9, entropy: true, chunkSize: 10 });
      const lp = out.logprobs.toArray();
      const ent = out.entropy!.toArray();
      let total = 0;
      for (let r = 0; r < rows; r++) total += gradLogprobs[r]! * lp[r]! + gradEntropy[r]! * ent[r]!;
      return total;
    };
    const forward = linearLogprobs(tensor(hiddenValues, [rows, width]), tensor(weightValues, [vocab, width]), ids, { temperature: 0.9, entropy: true });
    const grads = linearLogprobsBackward(tensor(hiddenValues, [rows, width]), tensor(weightValues, [vocab, width]), ids, forward.lse, tensor(gradLogprobs), {
      temperature: 0.9,
      entropy: forward.entropy,
      gradEntropy: tensor(gradEntropy),
      chunkSize: 7,
    });
    const step = 1e-2;
    const check = (values: Float32Array, analytic: Float32Array, isHidden: boolean) => {
      for (let i = 0; i < values.length; i += isHidden ? 1 : 5) {
        const plus = values.slice();
        const minus = values.slice();
        plus[i] = plus[i]! + step;
        minus[i] = minus[i]! - step;
        const numeric = isHidden
          ? (objective(plus, weightValues) - objective(minus, weightValues)) / (2 * step)
          : (objective(hiddenValues, plus) - objective(hiddenValues, minus)) / (2 * step);
        expect(Math.abs(numeric - analytic[i]!), `${isHidden ? 'hidden' : 'weight'}[${i}]`).toBeLessThan(2e-3);
      }
    };
    check(hiddenValues, grads.gradHidden.toArray(), true);
    check(weightValues, grads.gradWeight.toArray(), false);
  });

  it("never holds [N, V]: the allocator's peak during a call stays under N x V x 4 / 8 bytes", () => {
    const rows = 64;
    const vocab = 151_936;
    const width = 8;
    const data = inputs(rows, width, vocab, 'bfloat16', 3);
    const forward = linearLogprobs(data.hidden, data.weight, data.tokens, { entropy: true });
    const g = tensor(new Float32Array(rows).fill(1));
    const bound = (rows * vocab * 4) / 8;
    const gradients: Tensor[] = [
      tensor(new Float32Array(rows * width), [rows, width]),
      tensor(new Float32Array(vocab * width), [vocab, width]),
    ];
    for (const call of [
      () => linearLogprobs(data.hidden, data.weight, data.tokens, { entropy: true }),
      () => linearLogprobsBackward(data.hidden, data.weight, data.tokens, forward.lse, g, {
        gradHidden: gradients[0] as Tensor<'float32'>,
        gradWeight: gradients[1] as Tensor<'float32'>,
      }),
    ]) {
      const before = memoryStats('cpu').allocatedBytes;
      resetPeakMemoryStats('cpu');
      call();
      expect(memoryStats('cpu').peakAllocatedBytes - before).toBeLessThan(bound);
    }
  });

  it('rejects bad input with errors that name the op and the value', () => {
    const data = inputs(2, 3, 10, 'float32', 11);
    expect(() => linearLogprobs(data.hidden, tensor(new Float32Array(20), [10, 2]), data.tokens)).toThrow(
      /linearLogprobs: weight has shape \[10, 2\], expected \[V, 3\]/,
    );
    expect(() => linearLogprobs(data.hidden, data.weight, tensor(Int32Array.of(0, 10)))).toThrow(
      /linearLogprobs: tokens\[1\] = 10 is out of range for vocab 10/,
    );
    expect(() => linearLogprobs(data.hidden, tensor(toBf16(new Float32Array(30)), [10, 3], { dtype: 'bfloat16' }), data.tokens)).toThrow(
      TypeError,
    );
    const poisoned = data.hidden.toArray();
    poisoned[4] = Number.NaN;
    expect(() => linearLogprobs(tensor(poisoned, [2, 3]), data.weight, data.tokens)).toThrow(/linearLogprobs: hidden\[1, 1\] is NaN/);
    expect(() => linearLogprobs(data.hidden, data.weight, data.tokens, { chunkSize: 0 })).toThrow(RangeError);
    expect(() => linearLogprobs(data.hidden, data.weight, data.tokens, { temperature: 0 })).toThrow(/temperature = 0/);
    const { lse } = linearLogprobs(data.hidden, data.weight, data.tokens);
    expect(() =>
      linearLogprobsBackward(data.hidden, data.weight, data.tokens, lse, tensor(Float32Array.of(1, Number.NaN))),
    ).toThrow(/linearLogprobsBackward: gradLogprobs\[1\] is NaN/);
    expect(() =>
      linearLogprobsBackward(data.hidden, data.weight, data.tokens, lse, tensor(Float32Array.of(1, 1)), {
        gradHidden: tensor(new Float32Array(6), [2, 3]),
      }),
    ).toThrow(/give both gradHidden and gradWeight/);
  });
});

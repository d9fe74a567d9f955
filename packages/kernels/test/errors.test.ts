import { describe, expect, it } from 'vitest';

import {
  groupAdvantages,
  memoryStats,
  policyLoss,
  sample,
  tensor,
  tokenLogprobs,
  tokenLogprobsBackward,
  type Tensor,
} from '../src/index.js';

/** Inputs made inside a rejected call; disposed before the counters are compared. */
const inputs: Tensor[] = [];
const input: typeof tensor = (...args) => {
  const made = tensor(...args);
  inputs.push(made);
  return made;
};

/**
 * Runs `action`, expects `errorClass` with a message matching `pattern`, and the allocator's
 * counters as they were: a failed call leaves no output behind.
 */
function expectRejected(action: () => unknown, errorClass: typeof TypeError | typeof RangeError, pattern: RegExp): void {
  const before = memoryStats('cpu');
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  for (const made of inputs.splice(0)) made.dispose();
  expect(caught).toBeInstanceOf(errorClass);
  expect((caught as Error).message).toMatch(pattern);
  const after = memoryStats('cpu');
  expect(after.allocatedBytes).toBe(before.allocatedBytes);
  expect(after.allocations).toBe(before.allocations);
}

describe('bad input gives a clear error, never a crash', () => {
  const logits = tensor(new Float32Array(4 * 10).fill(0.5), [4, 10]);
  const tokens = tensor(Int32Array.of(1, 2, 3, 4));

  it('tokenLogprobs: wrong dtype, rank, lengths, out-of-range token, temperature', () => {
    expectRejected(() => tokenLogprobs(tokens, tokens), TypeError, /tokenLogprobs: logits must be float32 or bfloat16, got int32/);
    expectRejected(() => tokenLogprobs(logits, input(Float32Array.of(1, 2, 3, 4))), TypeError, /tokens must be int32, got float32/);
    expectRejected(() => tokenLogprobs(input(new Float32Array(3)), input(Int32Array.of(0))), RangeError, /logits must have rank 2, got shape \[3\]/);
    expectRejected(() => tokenLogprobs(logits, input(Int32Array.of(1, 2))), RangeError, /tokens has shape \[2\], expected \[4\]/);
    expectRejected(() => tokenLogprobs(logits, input(Int32Array.of(1, 2, 10, 4))), RangeError, /tokenLogprobs: tokens\[2\] = 10 is out of range for vocab 10/);
    expectRejected(() => tokenLogprobs(logits, input(Int32Array.of(1, -1, 0, 4))), RangeError, /tokens\[1\] = -1 is out of range/);
    expectRejected(() => tokenLogprobs(logits, tokens, { temperature: 0 }), RangeError, /temperature = 0 must be > 0/);
  });

  it('NaN and +Inf logits are reported with their index; a row of -Inf has no finite value', () => {
    const values = new Float32Array(4 * 10).fill(0.5);
    values[2 * 10 + 7] = Number.NaN;
    expectRejected(() => tokenLogprobs(input(values, [4, 10]), tokens), RangeError, /tokenLogprobs: logits\[2, 7\] is NaN/);
    expectRejected(() => sample(input(values, [4, 10])), RangeError, /sample: logits\[2, 7\] is NaN/);
    values[2 * 10 + 7] = 0;
    values[3 * 10 + 1] = Infinity;
    expectRejected(() => sample(input(values, [4, 10])), RangeError, /sample: logits\[3, 1\] is Infinity/);
    values[3 * 10 + 1] = 0;
    values.fill(-Infinity, 10, 20);
    expectRejected(() => sample(input(values, [4, 10]), { temperature: 0 }), RangeError, /sample: logits row 1 has no finite value/);
    expectRejected(() => tokenLogprobs(input(values, [4, 10]), tokens), RangeError, /logits row 1 has no finite value/);
  });

  it('sample: every parameter is range-checked, by row', () => {
    expectRejected(() => sample(logits, { temperature: -1 }), RangeError, /sample: temperature\[0\] = -1 must be >= 0/);
    expectRejected(() => sample(logits, { temperature: [1, 1, -0.5, 1] }), RangeError, /temperature\[2\] = -0.5/);
    expectRejected(() => sample(logits, { topP: 1.5 }), RangeError, /sample: topP\[0\] = 1.5 must be in \(0, 1\]/);
    expectRejected(() => sample(logits, { topP: 0 }), RangeError, /topP\[0\] = 0 must be in \(0, 1\]/);
    expectRejected(() => sample(logits, { topK: -1 }), RangeError, /sample: topK\[0\] = -1 must be >= 0/);
    expectRejected(() => sample(logits, { topK: 2.5 }), RangeError, /topK\[0\] = 2.5 must be an integer/);
    expectRejected(() => sample(logits, { minP: 2 }), RangeError, /sample: minP\[0\] = 2 must be in \[0, 1\]/);
    expectRejected(() => sample(logits, { temperature: [1, 1, 1] }), RangeError, /temperature has 3 values for 4 rows \(give 1 or 4\)/);
    expectRejected(() => sample(logits, { seed: -1 }), RangeError, /seed/);
  });

  it('tokenLogprobsBackward: shapes and dtypes of the saved tensors', () => {
    const forward = tokenLogprobs(logits, tokens);
    const grad = tensor(new Float32Array(4).fill(1));
    expectRejected(() => tokenLogprobsBackward(logits, tokens, input(new Float32Array(3)), grad), RangeError, /lse has shape \[3\], expected \[4\]/);
    expectRejected(() => tokenLogprobsBackward(logits, tokens, forward.lse, tokens as unknown as Tensor<'float32'>), TypeError, /gradLogprobs must be float32, got int32/);
  });

  it('groupAdvantages: group size, offsets, rewards and enums', () => {
    const rewards = tensor(new Float32Array(8).fill(1));
    expectRejected(() => groupAdvantages(rewards, { groupSize: 3 }), RangeError, /groupAdvantages: groupSize 3 does not divide 8 rewards/);
    expectRejected(() => groupAdvantages(rewards, { groupOffsets: [0, 4, 4, 8] }), RangeError, /groupOffsets must start at 0 and end at 8, strictly increasing/);
    expectRejected(() => groupAdvantages(rewards, {}), RangeError, /give exactly one of groupSize and groupOffsets/);
    expectRejected(() => groupAdvantages(input(Float32Array.of(1, Number.NaN)), { groupSize: 2 }), RangeError, /rewards\[1\] = nan is not finite/i);
    expectRejected(() => groupAdvantages(rewards, { groupSize: 4, scale: 'x' as 'group' }), RangeError, /scale 'x' is not one of group, batch, none/);
  });

  it('policyLoss: shapes, parameters and loss type', () => {
    const lp = tensor(new Float32Array(6), [2, 3]);
    const inputs = { logprobs: lp, oldLogprobs: lp, advantages: tensor(Float32Array.of(1, -1)), mask: tensor(new Float32Array(6).fill(1), [2, 3]) };
    expectRejected(() => policyLoss({ ...inputs, oldLogprobs: input(new Float32Array(8), [2, 4]) }), RangeError, /policyLoss: oldLogprobs has shape \[2, 4\], expected \[2, 3\]/);
    expectRejected(() => policyLoss(inputs, { epsLow: -1 }), RangeError, /policyLoss: epsLow = -1 must be in \[0, 1\)/);
    expectRejected(() => policyLoss(inputs, { lossType: 'foo' as 'grpo' }), RangeError, /lossType 'foo' is not one of grpo, bnpo, dr_grpo, dapo/);
    expectRejected(() => policyLoss(inputs, { beta: 0.1 }), RangeError, /beta = 0.1 needs refLogprobs/);
    expectRejected(() => policyLoss({ ...inputs, advantages: input(Float32Array.of(1, 2, 3)) }), RangeError, /advantages has shape \[3\], expected \[2\]/);
  });

  it('policyLoss: the entropy options', () => {
    const lp = tensor(new Float32Array(6), [2, 3]);
    const inputs = { logprobs: lp, oldLogprobs: lp, advantages: tensor(Float32Array.of(1, -1)), mask: tensor(new Float32Array(6).fill(1), [2, 3]) };
    const entropy = tensor(Float32Array.of(1, 2, 3, 4, 5, Number.NaN), [2, 3]);
    expectRejected(() => policyLoss(inputs, { topEntropyQuantile: 0.2 }), RangeError, /policyLoss: entropyQuantile = 0.8 and entropyCoef = 0 need entropy/);
    expectRejected(() => policyLoss(inputs, { entropyCoef: 0.01 }), RangeError, /entropyCoef = 0.01 need entropy/);
    expectRejected(() => policyLoss({ ...inputs, entropy }, { topEntropyQuantile: -0.5 }), RangeError, /topEntropyQuantile = -0.5 must be in \[0, 1\]/);
    expectRejected(() => policyLoss({ ...inputs, entropy }, { entropyCoef: Number.POSITIVE_INFINITY }), RangeError, /entropyCoef = inf must be finite/);
    expectRejected(
      () => policyLoss({ ...inputs, entropy }, { lossType: 'luspo', importanceSamplingLevel: 'sequence', topEntropyQuantile: 0.5 }),
      RangeError,
      /lossType luspo has no per-token surrogate for entropyQuantile to mask/,
    );
    expectRejected(() => policyLoss({ ...inputs, entropy }), RangeError, /policyLoss: entropy\[1, 2\] is NaN/);
    expectRejected(() => policyLoss({ ...inputs, entropy: input(new Float32Array(4), [2, 2]) }), RangeError, /entropy has shape \[2, 2\], expected \[2, 3\]/);
    expectRejected(() => policyLoss(inputs, { offPolicyMaskThreshold: -0.1 }), RangeError, /policyLoss: offPolicyMaskThreshold = -0.1 must be >= 0 and finite/);
    expectRejected(() => policyLoss(inputs, { useBiasCorrectionKl: 1 as unknown as boolean }), TypeError, /policyLoss: useBiasCorrectionKl must be a boolean/);
  });

  it('a disposed tensor is refused by name, and the process carries on', () => {
    const gone = tensor(new Float32Array(10), [1, 10]);
    gone.dispose();
    expectRejected(() => tokenLogprobs(gone, input(Int32Array.of(0))), TypeError, /tokenLogprobs: logits was disposed/);
    expect(() => gone.toArray()).toThrow(/disposed/);
    expect(tokenLogprobs(logits, tokens).logprobs.toArray()).toHaveLength(4);
  });

  it('tensor(): shape and data must agree', () => {
    expect(() => tensor(new Float32Array(5), [2, 3])).toThrow(RangeError);
    expect(() => tensor([1.5], [1], { dtype: 'int32' })).toThrow(/data\[0\] = 1.5 is not an int32/);
  });
});

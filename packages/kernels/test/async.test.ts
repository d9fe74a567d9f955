/**
 * The async forms: the same results as the sync ones, run off the JS thread (the event loop keeps
 * turning), bad arguments as rejections, and inputs that stay valid while a call is in flight.
 */
import { describe, expect, it } from 'vitest';

import {
  groupAdvantages,
  groupAdvantagesAsync,
  memoryStats,
  policyLoss,
  policyLossAsync,
  sample,
  sampleAsync,
  tensor,
  tokenLogprobs,
  tokenLogprobsAsync,
  tokenLogprobsBackward,
  tokenLogprobsBackwardAsync,
} from '../src/index.js';
import { randomLogits, randomTokens } from './helpers.js';

describe('async ops', () => {
  const rows = 6;
  const vocab = 3001;
  const logits = tensor(randomLogits(rows, vocab, 3, 41), [rows, vocab]);
  const tokens = tensor(randomTokens(rows, vocab, 42));

  it('give what the sync forms give', async () => {
    const options = { temperature: 0.8, topK: 40, topP: 0.9, seed: 7, offset: 3 };
    expect(Array.from((await sampleAsync(logits, options)).tokens.toArray())).toEqual(
      Array.from(sample(logits, options).tokens.toArray()),
    );
    const sync = tokenLogprobs(logits, tokens, { entropy: true });
    const async = await tokenLogprobsAsync(logits, tokens, { entropy: true });
    expect(Array.from(async.logprobs.toArray())).toEqual(Array.from(sync.logprobs.toArray()));
    expect(Array.from(async.entropy!.toArray())).toEqual(Array.from(sync.entropy!.toArray()));
    const grad = tensor(new Float32Array(rows).fill(0.5));
    const backward = await tokenLogprobsBackwardAsync(logits, tokens, sync.lse, grad, { entropy: sync.entropy, gradEntropy: grad });
    expect(Array.from(backward.toArray())).toEqual(
      Array.from(tokenLogprobsBackward(logits, tokens, sync.lse, grad, { entropy: sync.entropy, gradEntropy: grad }).toArray()),
    );
    const rewards = tensor([1, 0, 1, 1, 0, 0]);
    expect(Array.from((await groupAdvantagesAsync(rewards, { groupSize: 3 })).toArray())).toEqual(
      Array.from(groupAdvantages(rewards, { groupSize: 3 }).toArray()),
    );
    const lp = tensor(new Float32Array(12).fill(-1), [3, 4]);
    const inputs = { logprobs: lp, oldLogprobs: lp, advantages: tensor([1, -1, 0.5]), mask: tensor(new Uint8Array(12).fill(1), [3, 4]) };
    const loss = await policyLossAsync(inputs, { lossType: 'dapo' });
    expect(loss.loss).toBe(policyLoss(inputs, { lossType: 'dapo' }).loss);
  });

  it('keep the event loop turning: a 1 ms interval fires while a [256, 151936] op runs', async () => {
    const big = tensor(new Float32Array(256 * 151_936), [256, 151_936]);
    const ids = tensor(randomTokens(256, 151_936, 44));
    let ticks = 0;
    const interval = setInterval(() => ticks++, 1);
    const result = await tokenLogprobsAsync(big, ids);
    clearInterval(interval);
    // The sync form would hold the thread for the whole call: no tick at all.
    expect(ticks).toBeGreaterThan(2);
    expect(result.logprobs.shape).toEqual([256]);
    big.dispose();
  });

  it('reject bad arguments instead of throwing, and leave no output behind', async () => {
    const before = memoryStats('cpu').allocatedBytes;
    const call = tokenLogprobsAsync(logits, tensor(Int32Array.of(0, 1)));
    expect(call).toBeInstanceOf(Promise);
    await expect(call).rejects.toThrow(RangeError);
    await expect(sampleAsync(null as never)).rejects.toThrow(/sample: logits must be a Tensor, got null/);
    const poisoned = tensor(Float32Array.of(0, Number.NaN, 1, 2), [2, 2]);
    await expect(tokenLogprobsAsync(poisoned, tensor(Int32Array.of(0, 0)))).rejects.toThrow(/tokenLogprobs: logits\[0, 1\] is NaN/);
    poisoned.dispose();
    expect(memoryStats('cpu').allocatedBytes).toBeLessThanOrEqual(before + 1024);
  });

  it('hold their inputs: disposing one while the call runs does not change the result', async () => {
    const mine = tensor(randomLogits(rows, vocab, 3, 41), [rows, vocab]);
    const pending = tokenLogprobsAsync(mine, tokens);
    mine.dispose();
    const expected = tokenLogprobs(logits, tokens).logprobs.toArray();
    expect(Array.from((await pending).logprobs.toArray())).toEqual(Array.from(expected));
  });
});

// Run inside a fresh project that installed napo's tarballs (scripts/pack-check.sh): the README's
// ops example, the async and zero-copy forms, a TinyGPT step and (unless --no-trainer) the
// trainer's import, as a user of the packages would write them. Prints one JSON line of what it saw; exits non-zero on any
// failure.
import assert from 'node:assert/strict';

import {
  backendInfo,
  groupAdvantages,
  memoryStats,
  policyLossAsync,
  resetPeakMemoryStats,
  sample,
  tensor,
  tokenLogprobs,
  tokenLogprobsAsync,
  tokenLogprobsBackward,
} from '@napo/kernels';

const withTrainer = process.argv[2] !== '--no-trainer';

// The README's ops example.
const logits = tensor(new Float32Array(4 * 32000), [4, 32000]);
const { tokens } = sample(logits, { temperature: 0.7, topK: 50, topP: 0.9, seed: 1, offset: 0 });
const lp = tokenLogprobs(logits, tokens, { entropy: true });
tokenLogprobsBackward(logits, tokens, lp.lse, tensor(new Float32Array(4).fill(1)), { inPlace: true });
const advantages = groupAdvantages(tensor([1, 0, 0, 1, 1, 1, 0, 1]), { groupSize: 4 });
assert.deepEqual(Array.from(advantages.toArray(), Math.sign), [1, -1, -1, 1, 1, 1, -1, 1]);
resetPeakMemoryStats('cpu');

// Async and zero-copy: the buffer is the tensor's, and the async result equals the sync one.
const buffer = new Float32Array(8 * 1000).map((_, i) => Math.sin(i));
const wrapped = tensor(buffer, [8, 1000], { copy: false });
const ids = tensor(new Int32Array(8).fill(3));
const sync = tokenLogprobs(wrapped, ids).logprobs.toArray();
const async = (await tokenLogprobsAsync(wrapped, ids)).logprobs.toArray();
assert.deepEqual(Array.from(async), Array.from(sync));
buffer[3] = 100; // row 0 now puts all its mass on token 3: the tensor sees the caller's write
assert.ok(tokenLogprobs(wrapped, ids).logprobs.toArray()[0] > -1e-3);
const mask = tensor(new Uint8Array([1, 1, 0, 1, 1, 0]), [2, 3]);
const lps = tensor(new Float32Array(6).fill(-1), [2, 3]);
const loss = await policyLossAsync({ logprobs: lps, oldLogprobs: lps, advantages: tensor([1, -1]), mask });
assert.equal(loss.stats.tokenCount, 4);

const seen = { isa: backendInfo().cpu.isa, cuda: backendInfo().cuda.compiled, peakBytes: memoryStats('cpu').peakAllocatedBytes };

{
  // A TinyGPT step, as the README writes it.
  const { TinyGPT, CharTokenizer } = await import('@napo/policy');
  const tokenizer = CharTokenizer.fromText('hello world');
  const model = TinyGPT.create({ vocabSize: tokenizer.vocabSize, contextLength: 64, dModel: 64, nLayers: 2, nHeads: 2, seed: 1 });
  const text = tokenizer.encode('hello world');
  const out = await model.forward([text]);
  const flat = out.reshape([text.length, model.vocabSize]);
  const targets = tensor(Int32Array.from([...text.slice(1), tokenizer.eos]));
  const { lse } = tokenLogprobs(flat, targets);
  const grad = tokenLogprobsBackward(flat, targets, lse, tensor(new Float32Array(text.length).fill(-1 / text.length)));
  await model.backward(grad.reshape([1, text.length, model.vocabSize]));
  const step = await model.step({ lr: 1e-3 });
  assert.ok(step.gradNorm > 0);
  model.dispose();
  seen.tinyGptStep = true;
}
if (withTrainer) {
  const trainer = await import('@napo/trainer');
  assert.equal(typeof trainer.Trainer, 'function');
  seen.trainer = true;
}

console.log(JSON.stringify(seen));

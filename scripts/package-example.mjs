// Run inside a fresh project that installed napo's tarballs (scripts/pack-check.sh): the README's
// ops example, the async and zero-copy forms, a model step and (unless --no-trainer) the
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
  // A model step, as the README writes it: a small random gpt2 (napo's TinyGPT shape), scored on
  // its own text through the fused path, one AdamW step.
  const { CausalLM, CharTokenizer } = await import('@napo/policy');
  const tokenizer = CharTokenizer.fromText('hello world');
  const model = CausalLM.create({ family: 'gpt2', vocabSize: tokenizer.vocabSize, maxPositions: 64, hiddenSize: 64, numLayers: 2, numHeads: 2, seed: 1 });
  const text = Array.from(tokenizer.encode('hello world'));
  const targets = Int32Array.from([...text.slice(1), tokenizer.eos]);
  const { logprobs } = await model.score([text], targets);
  assert.ok(logprobs.toArray().every((v) => v < 0));
  await model.scoreBackward(tensor(new Float32Array(text.length).fill(-1 / text.length), [1, text.length]));
  const step = await model.step({ lr: 1e-3 });
  assert.ok(step.gradNorm > 0);
  model.dispose();
  seen.modelStep = true;
}
if (withTrainer) {
  const trainer = await import('@napo/trainer');
  assert.equal(typeof trainer.Trainer, 'function');
  seen.trainer = true;
}

console.log(JSON.stringify(seen));

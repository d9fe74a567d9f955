/**
 * Scoring a packed batch under a policy: one training forward, then per-token log-probs of the
 * targets with napo's fused op (one pass per row, no [N, V] softmax), and the way back: d loss /
 * d log-probs -> d loss / d logits (in place, over the logits buffer) -> the policy's backward.
 */
import { tensor, tokenLogprobs, tokenLogprobsBackward, type Tensor } from '@napo/kernels';
import type { Policy } from '@napo/policy';

import type { PackedBatch } from './sequences.js';

export interface ScoredBatch {
  batch: PackedBatch;
  /** [rows * width, V]: the forward's logits, kept for the backward. */
  logits: Tensor<'float32'>;
  targets: Tensor<'int32'>;
  lse: Tensor<'float32'>;
  /** [rows * width]: log p(target) at the scoring temperature (meaningful where the mask is 1). */
  logprobs: Float32Array;
  temperature: number;
}

/** The training forward of a packed batch: logits [rows * width, V], activations kept for backward. */
export async function forwardBatch(policy: Policy, batch: PackedBatch): Promise<Tensor<'float32'>> {
  const logits = await policy.forward(batch.sequences);
  const flat = logits.reshape([batch.rows * batch.width, policy.vocabSize]);
  logits.dispose();
  return flat;
}

/** Per-token log-probs of the targets from the forward's logits, with what the backward needs. */
export function batchLogprobs(batch: PackedBatch, logits: Tensor<'float32'>, temperature: number): ScoredBatch {
  const targets = tensor<'int32'>(batch.targets, [batch.targets.length]);
  const result = tokenLogprobs(logits, targets, { temperature });
  const logprobs = result.logprobs.toArray();
  result.logprobs.dispose();
  return { batch, logits, targets, lse: result.lse, logprobs, temperature };
}

export async function scoreBatch(policy: Policy, batch: PackedBatch, temperature: number): Promise<ScoredBatch> {
  return batchLogprobs(batch, await forwardBatch(policy, batch), temperature);
}

/** Log-probs of a batch under a model that is not trained (the frozen reference). */
export async function referenceLogprobs(reference: Policy, batch: PackedBatch, temperature: number): Promise<Float32Array> {
  const scored = await scoreBatch(reference, batch, temperature);
  releaseScores(scored);
  return scored.logprobs;
}

/** Backpropagates d loss / d log-probs [rows * width] through the scored batch into the policy's gradients. */
export async function backpropagate(policy: Policy, scored: ScoredBatch, gradLogprobs: Float32Array): Promise<void> {
  const grad = tensor<'float32'>(gradLogprobs, [gradLogprobs.length]);
  const gradLogits = tokenLogprobsBackward(scored.logits, scored.targets, scored.lse, grad, {
    temperature: scored.temperature,
    inPlace: true,
  });
  grad.dispose();
  const shaped = gradLogits.reshape([scored.batch.rows, scored.batch.width, policy.vocabSize]);
  try {
    await policy.backward(shaped);
  } finally {
    shaped.dispose();
    releaseScores(scored);
  }
}

export function releaseScores(scored: ScoredBatch): void {
  for (const t of [scored.logits, scored.targets, scored.lse]) if (!t.disposed) t.dispose();
}

/**
 * Scoring a packed batch under a policy through its fused path (`Policy.score`: hidden states ->
 * `linearLogprobs` over the LM head in vocabulary chunks, so no `[N, V]` logits exist): log-probs
 * of the completion tokens only (prompt positions are not scored at all), and the way back.
 */
import { tensor, type Tensor } from '@napo/kernels';
import type { Policy } from '@napo/policy';

import type { PackedBatch } from './sequences.js';

/** [rows * width]: the next token where the mask is 1, -1 (not scored) elsewhere. */
export function scoredTargets(batch: PackedBatch): Int32Array {
  return batch.targets.map((target, i) => (batch.completionMask[i] === 1 ? target : -1));
}

/**
 * [rows * width]: log p(target) at the temperature where the mask is 1, 0 elsewhere. Keeps what
 * the backward needs unless `keepActivations` is false (a frozen policy: no backward follows).
 */
export async function scoreBatch(policy: Policy, batch: PackedBatch, temperature: number, keepActivations = true): Promise<Float32Array> {
  const scores = await policy.score(batch.sequences, scoredTargets(batch), { temperature, keepActivations });
  const logprobs = scores.logprobs.toArray();
  scores.logprobs.dispose();
  return logprobs;
}

/** scoreBatch's log-probs left on the policy's device: [rows, width], 0 where the mask is 0 (the caller disposes them). */
export async function scoreOnDevice(policy: Policy, batch: PackedBatch, temperature: number, keepActivations = true): Promise<Tensor<'float32'>> {
  return (await policy.score(batch.sequences, scoredTargets(batch), { temperature, keepActivations })).logprobs;
}

/** scoreOnDevice keeping the activations, with each position's entropy too (both [rows, width] on the device). */
export async function scoreWithEntropyOnDevice(policy: Policy, batch: PackedBatch, temperature: number): Promise<{ logprobs: Tensor<'float32'>; entropy: Tensor<'float32'> }> {
  const scores = await policy.score(batch.sequences, scoredTargets(batch), { temperature, entropy: true });
  if (!scores.entropy) {
    scores.logprobs.dispose();
    throw new Error(`scoreWithEntropyOnDevice: the policy (${policy.constructor.name}) returned no entropy`);
  }
  return { logprobs: scores.logprobs, entropy: scores.entropy };
}

/**
 * Backpropagates d loss / d log-probs [rows * width] (and d loss / d entropy, for an entropy
 * bonus) of the policy's last scoreBatch into its gradients; each goes to the policy's device
 * (one float per position).
 */
export async function backpropagate(policy: Policy, batch: PackedBatch, gradLogprobs: Float32Array, gradEntropy?: Float32Array): Promise<void> {
  const onDevice = (values: Float32Array) => tensor<'float32'>(values, [batch.rows, batch.width], { device: policy.device });
  const grad = onDevice(gradLogprobs);
  const gradOfEntropy = gradEntropy && onDevice(gradEntropy);
  try {
    await policy.scoreBackward(grad, gradOfEntropy);
  } finally {
    grad.dispose();
    gradOfEntropy?.dispose();
  }
}

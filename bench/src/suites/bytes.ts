/**
 * Bytes moved per op: the compulsory traffic of one call (every input read once, every output
 * written once), the figure GB/s divides. A kernel that reads its logits twice still gets credit
 * for one read, so GB/s near the measured bandwidth means one pass; well below means more passes
 * or compute-bound work. Defined here and nowhere else.
 */
const float32Bytes = 4;
const int32Bytes = 4;

export type LogitsDType = 'float32' | 'bfloat16';

export function elementBytes(dtype: LogitsDType): number {
  return dtype === 'float32' ? 4 : 2;
}

/** sample: logits [N, V] read; tokens (int32) and logprobs (float32) [N] written. */
export function sampleBytes(rows: number, vocab: number, dtype: LogitsDType): number {
  return rows * vocab * elementBytes(dtype) + rows * (int32Bytes + float32Bytes);
}

/** repetitionPenalty: logits [N, V] read and written (the copy), history [N, L] read. */
export function repetitionPenaltyBytes(rows: number, vocab: number, dtype: LogitsDType, length: number): number {
  return 2 * rows * vocab * elementBytes(dtype) + rows * length * int32Bytes;
}

/** tokenLogprobs: logits [N, V] and tokens [N] read; logprobs, lse (and entropy) [N] written. */
export function tokenLogprobsBytes(rows: number, vocab: number, dtype: LogitsDType, entropy: boolean): number {
  return rows * vocab * elementBytes(dtype) + rows * (int32Bytes + (entropy ? 3 : 2) * float32Bytes);
}

/**
 * tokenLogprobsBackward (out of place): logits [N, V] read, gradLogits [N, V] written in the
 * logits' dtype; tokens, lse, gradLogprobs (and entropy, gradEntropy) [N] read.
 */
export function tokenLogprobsBackwardBytes(rows: number, vocab: number, dtype: LogitsDType, entropy: boolean): number {
  return 2 * rows * vocab * elementBytes(dtype) + rows * (int32Bytes + (entropy ? 4 : 2) * float32Bytes);
}

/** groupAdvantages: rewards [S] read, advantages [S] written (the offsets are negligible). */
export function groupAdvantagesBytes(samples: number): number {
  return 2 * samples * float32Bytes;
}

/**
 * maskedRowSum: values and mask [S, T] read, sums [S] written; its backward: mask [S, T] and
 * gradSums [S] read, gradValues [S, T] written. The same count either way.
 */
export function maskedRowSumBytes(sequences: number, length: number): number {
  return 2 * sequences * length * float32Bytes + sequences * float32Bytes;
}

/**
 * policyLoss with a reference: logprobs, oldLogprobs, refLogprobs, mask [S, T] read, advantages [S]
 * read, gradLogprobs [S, T] written.
 */
export function policyLossBytes(sequences: number, length: number): number {
  return 5 * sequences * length * float32Bytes + sequences * float32Bytes;
}

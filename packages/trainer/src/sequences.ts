/**
 * Prompt + completion token sequences packed into one padded batch, with the next-token targets
 * and the mask of positions whose target is a completion token (the only ones a loss counts).
 */
export interface SequencePair {
  prompt: readonly number[];
  /** Completion tokens, EOS included when the completion ended with it. */
  completion: readonly number[];
}

export interface PackedBatch {
  rows: number;
  /** T: the longest sequence. */
  width: number;
  /** prompt ++ completion, per row. */
  sequences: number[][];
  /** [rows * width]: the token each position predicts (0 where there is none). */
  targets: Int32Array;
  /** [rows * width]: 1 where the target is a completion token. */
  completionMask: Float32Array;
  /** Completion tokens per row. */
  completionLengths: number[];
}

export function packSequences(pairs: readonly SequencePair[]): PackedBatch {
  if (pairs.length === 0) throw new RangeError('packSequences: no sequences');
  const sequences = pairs.map((pair) => [...pair.prompt, ...pair.completion]);
  const width = Math.max(...sequences.map((sequence) => sequence.length));
  const targets = new Int32Array(pairs.length * width);
  const completionMask = new Float32Array(pairs.length * width);
  pairs.forEach((pair, row) => {
    if (pair.prompt.length === 0) throw new RangeError(`packSequences: pairs[${row}] has an empty prompt`);
    const sequence = sequences[row] as number[];
    // Position t predicts token t + 1: the completion starts at the prompt's last position.
    for (let t = 0; t + 1 < sequence.length; t++) {
      targets[row * width + t] = sequence[t + 1] as number;
      completionMask[row * width + t] = t + 1 >= pair.prompt.length ? 1 : 0;
    }
  });
  return {
    rows: pairs.length,
    width,
    sequences,
    targets,
    completionMask,
    completionLengths: pairs.map((pair) => pair.completion.length),
  };
}

/** The mask's rows [begin, end) as their own [rows, width] array. */
export function maskRows(batch: PackedBatch, begin: number, end: number): Float32Array {
  return batch.completionMask.subarray(begin * batch.width, end * batch.width);
}

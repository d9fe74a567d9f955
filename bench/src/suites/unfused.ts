/**
 * Unfused compositions that have no native probe: the eager algorithm, written as tight TS loops
 * over typed arrays. TS is slower than C++ per element, so a speed-up over these overstates the
 * fusion's gain somewhat; each result names which baseline it used (README, "baselines").
 */
import { reference } from '@napo/kernels';

import type { LogitsDType } from './bytes.js';

export interface HostLogits {
  dtype: LogitsDType;
  rows: number;
  vocab: number;
  data: Float32Array | Uint16Array;
}

function widenInto(logits: HostLogits, row: number, out: Float32Array): void {
  const start = row * logits.vocab;
  if (logits.dtype === 'float32') {
    out.set((logits.data as Float32Array).subarray(start, start + logits.vocab));
    return;
  }
  const bits = logits.data as Uint16Array;
  for (let i = 0; i < logits.vocab; i++) out[i] = reference.bf16ToFloat32(bits[start + i] as number);
}

/**
 * The eager backward of log-probs (and entropy): materialise softmax [N, V] (one buffer, the way
 * `torch.softmax` does), then a second pass builds d logits = g_lp (one-hot - p) - g_ent p (z - E[z]).
 */
export function unfusedTokenLogprobsBackward(
  logits: HostLogits,
  tokens: Int32Array,
  gradLogprobs: Float32Array,
  gradEntropy?: Float32Array,
): Float32Array {
  const { rows, vocab } = logits;
  const probabilities = new Float32Array(rows * vocab);
  const expectations = new Float32Array(rows);
  const row = new Float32Array(vocab);
  for (let r = 0; r < rows; r++) {
    widenInto(logits, r, row);
    let max = -Infinity;
    for (let i = 0; i < vocab; i++) max = Math.max(max, row[i] as number);
    let sum = 0;
    const base = r * vocab;
    for (let i = 0; i < vocab; i++) {
      const e = Math.exp((row[i] as number) - max);
      probabilities[base + i] = e;
      sum += e;
    }
    let expectation = 0;
    for (let i = 0; i < vocab; i++) {
      const p = (probabilities[base + i] as number) / sum;
      probabilities[base + i] = p;
      expectation += p * (row[i] as number);
    }
    expectations[r] = expectation;
  }
  const gradLogits = new Float32Array(rows * vocab);
  for (let r = 0; r < rows; r++) {
    widenInto(logits, r, row);
    const base = r * vocab;
    const gLp = gradLogprobs[r] as number;
    const gEnt = gradEntropy ? (gradEntropy[r] as number) : 0;
    const expectation = expectations[r] as number;
    for (let i = 0; i < vocab; i++) {
      const p = probabilities[base + i] as number;
      gradLogits[base + i] = -gLp * p - gEnt * p * ((row[i] as number) - expectation);
    }
    gradLogits[base + (tokens[r] as number)] += gLp;
  }
  return gradLogits;
}

/**
 * Reference token logprobs, entropy and their backward (docs/ops.md, "tokenLogprobs"), in float64.
 */
import type { TokenLogprobsOptions } from '../types.js';
import { widenRow, type LogitsTensor } from './bf16.js';
import {
  checkFiniteEntry,
  checkFloat32Vector,
  checkLogitsRow,
  checkLogitsTensor,
  checkPositive,
  checkTokens,
  type TokensInput,
} from './validate.js';

/** Softmax statistics of one temperature-scaled row. */
export interface RowStatistics {
  readonly logSumExp: number;
  /** `lse - sum_i p_i z_i`. */
  readonly entropy: number;
}

// The C ABI carries the temperature as float32; dividing by the same value keeps z identical.
export function resolveTemperature(op: string, temperature: number | undefined): number {
  const given = temperature ?? 1;
  checkPositive(op, 'temperature', given);
  return Math.fround(given);
}

/**
 * One pass with a running max `m`: `S = sum e_i` and `W = sum e_i (z_i - m)`, rescaled whenever
 * the max rises, so entropy = log S - W / S. This is the recurrence the native kernels use.
 */
export function rowStatistics(logits: Float64Array, temperature: number): RowStatistics {
  let max = -Infinity;
  let sum = 0;
  let shiftedWeightedSum = 0;
  for (const logit of logits) {
    // e_i = 0: contributes nothing, and skipping it avoids 0 * -Infinity.
    if (logit === -Infinity) continue;
    const scaled = logit / temperature;
    if (scaled > max) {
      // Before the first finite value S = W = 0 and m = -Infinity; the rescale would be NaN.
      if (sum > 0) {
        const shift = max - scaled;
        const rescale = Math.exp(shift);
        shiftedWeightedSum = rescale * (shiftedWeightedSum + sum * shift);
        sum *= rescale;
      }
      max = scaled;
    }
    const weight = Math.exp(scaled - max);
    if (weight === 0) continue;
    sum += weight;
    shiftedWeightedSum += weight * (scaled - max);
  }
  const logSum = Math.log(sum);
  return { logSumExp: max + logSum, entropy: logSum - shiftedWeightedSum / sum };
}

/**
 * Log-probability of each row's token under `softmax(logits / T)`, the row's log-sum-exp (kept
 * for the backward) and, optionally, the row's entropy.
 *
 * @param logits `[N, V]` float32 or bfloat16; -Infinity entries are allowed
 * @param tokens `[N]` int32 token ids
 * @throws TypeError when logits are not float32/bfloat16 or tokens not int32
 * @throws RangeError on bad shapes, out-of-range tokens, temperature <= 0, NaN or +Infinity
 *   logits, or an all -Infinity row
 */
export function tokenLogprobs(
  logits: LogitsTensor,
  tokens: TokensInput,
  options: TokenLogprobsOptions = {},
): { logprobs: Float32Array; lse: Float32Array; entropy?: Float32Array } {
  const op = 'tokenLogprobs';
  const { rows, columns: vocab } = checkLogitsTensor(op, logits);
  const ids = checkTokens(op, tokens, rows, vocab);
  const temperature = resolveTemperature(op, options.temperature);
  const logprobs = new Float32Array(rows);
  const lse = new Float32Array(rows);
  const entropy = options.entropy === true ? new Float32Array(rows) : undefined;
  const rowLogits = new Float64Array(vocab);
  for (let row = 0; row < rows; row++) {
    widenRow(logits, row, vocab, rowLogits);
    checkLogitsRow(op, row, rowLogits);
    const statistics = rowStatistics(rowLogits, temperature);
    const tokenLogit = rowLogits[ids[row] as number] as number;
    logprobs[row] = tokenLogit / temperature - statistics.logSumExp;
    lse[row] = statistics.logSumExp;
    if (entropy !== undefined) entropy[row] = statistics.entropy;
  }
  return entropy === undefined ? { logprobs, lse } : { logprobs, lse, entropy };
}

/** `sum_j p_j z_j` with `p_j = exp(z_j - lse)`, the same p the gradient uses. */
export function expectedScaledLogit(logits: Float64Array, temperature: number, logSumExp: number): number {
  let expectation = 0;
  for (const logit of logits) {
    const scaled = logit / temperature;
    const probability = Math.exp(scaled - logSumExp);
    if (probability > 0) expectation += probability * scaled;
  }
  return expectation;
}

/**
 * Gradient of `sum_n gradLogprobs[n] * logprobs[n] + gradEntropy[n] * entropy[n]` with respect to
 * the logits: `dz_i = g_lp ([i = token] - p_i) - g_ent p_i (z_i - sum_j p_j z_j)`,
 * `dlogits = dz / T`, with `p_i = exp(z_i - lse)` from the forward's float32 `lse`.
 *
 * @returns `[N * V]` float32, row-major
 * @throws TypeError / RangeError as `tokenLogprobs`, and on wrong lengths of lse or the gradients
 */
export function tokenLogprobsBackward(
  logits: LogitsTensor,
  tokens: TokensInput,
  lse: Float32Array,
  gradLogprobs: Float32Array,
  gradEntropy?: Float32Array,
  options: { temperature?: number } = {},
): Float32Array {
  const op = 'tokenLogprobsBackward';
  const { rows, columns: vocab } = checkLogitsTensor(op, logits);
  const ids = checkTokens(op, tokens, rows, vocab);
  checkFloat32Vector(op, 'lse', lse, rows, 'rows');
  checkFloat32Vector(op, 'gradLogprobs', gradLogprobs, rows, 'rows');
  if (gradEntropy !== undefined) checkFloat32Vector(op, 'gradEntropy', gradEntropy, rows, 'rows');
  // In the order the native backends check them.
  for (let row = 0; row < rows; row++) checkFiniteEntry(op, `lse[${row}]`, lse[row] as number);
  for (let row = 0; row < rows; row++) checkFiniteEntry(op, `gradLogprobs[${row}]`, gradLogprobs[row] as number);
  for (let row = 0; gradEntropy !== undefined && row < rows; row++) {
    checkFiniteEntry(op, `gradEntropy[${row}]`, gradEntropy[row] as number);
  }
  const temperature = resolveTemperature(op, options.temperature);
  const gradLogits = new Float32Array(rows * vocab);
  const rowLogits = new Float64Array(vocab);
  for (let row = 0; row < rows; row++) {
    widenRow(logits, row, vocab, rowLogits);
    checkLogitsRow(op, row, rowLogits);
    const logSumExp = lse[row] as number;
    const gradLogprob = gradLogprobs[row] as number;
    const gradRowEntropy = gradEntropy === undefined ? 0 : (gradEntropy[row] as number);
    const expectation =
      gradRowEntropy === 0 ? 0 : expectedScaledLogit(rowLogits, temperature, logSumExp);
    const token = ids[row] as number;
    const rowStart = row * vocab;
    for (let column = 0; column < vocab; column++) {
      const scaled = (rowLogits[column] as number) / temperature;
      const probability = Math.exp(scaled - logSumExp);
      let gradScaled = gradLogprob * ((column === token ? 1 : 0) - probability);
      // p = 0 (a -Infinity logit) contributes nothing; computing it would give 0 * -Infinity.
      if (probability > 0 && gradRowEntropy !== 0) {
        gradScaled -= gradRowEntropy * probability * (scaled - expectation);
      }
      gradLogits[rowStart + column] = gradScaled / temperature;
    }
  }
  return gradLogits;
}

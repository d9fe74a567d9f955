/**
 * Reference sampler (docs/ops.md, "sample"): greedy, temperature, top-k, top-p, min-p and an
 * inverse-CDF draw driven by Philox, in float64. Native samplers are tested against it token for
 * token, and their frequencies against `filteredDistribution`.
 */
import type { SampleOptions } from '../types.js';
import { widenRow, type LogitsTensor } from './bf16.js';
import { philoxUniformFromWords, splitUint64, toUint64, type Uint64Words } from './philox.js';
import {
  checkLogitsRow,
  checkLogitsTensor,
  checkMinP,
  checkNonNegative,
  checkTopK,
  checkTopP,
  resolvePerRow,
} from './validate.js';

/** The filter of one row, as `filteredDistribution` takes it. Defaults as in `SampleOptions`. */
export interface RowFilterOptions {
  /** 0 = greedy. Default 1. */
  temperature?: number;
  /** 0 = off. Default 0. */
  topK?: number;
  /** 1 = off. Default 1. */
  topP?: number;
  /** 0 = off. Default 0. */
  minP?: number;
}

/** One row's validated parameters. */
interface RowFilter {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
}

/** A temperature-scaled row after filtering: `weights[i] = e_i = exp(z_i - max z)` for every i. */
interface FilteredRow {
  readonly weights: Float64Array;
  readonly kept: Uint8Array;
  /** `sum_{i in K} e_i`, summed in index order like the draw's running sum. */
  readonly keptMass: number;
  /** `lse(z)` of the unfiltered row, for the reported logprob. */
  readonly logSumExp: number;
}

/** Per-row parameters, validated and resolved to one value per row. */
interface ResolvedFilters {
  readonly temperature: Float64Array;
  readonly topK: Float64Array;
  readonly topP: Float64Array;
  readonly minP: Float64Array;
}

// The C ABI carries temperature, topP and minP as float32; rounding them the same way keeps the
// reference's thresholds, and so its tokens, identical to the native ones.
function resolveFilters(op: string, options: RowFilterOptions | SampleOptions, rows: number): ResolvedFilters {
  const temperature = resolvePerRow(op, 'temperature', options.temperature, rows, 1, checkNonNegative);
  const topK = resolvePerRow(op, 'topK', options.topK, rows, 0, checkTopK);
  const topP = resolvePerRow(op, 'topP', options.topP, rows, 1, checkTopP);
  const minP = resolvePerRow(op, 'minP', options.minP, rows, 0, checkMinP);
  return {
    temperature: temperature.map(Math.fround),
    topK,
    topP: topP.map(Math.fround),
    minP: minP.map(Math.fround),
  };
}

function filterOfRow(filters: ResolvedFilters, row: number): RowFilter {
  return {
    temperature: filters.temperature[row] as number,
    topK: filters.topK[row] as number,
    topP: filters.topP[row] as number,
    minP: filters.minP[row] as number,
  };
}

/** Index of the largest value; the lowest index wins ties (greedy decoding's rule). */
function argmax(values: Float64Array): number {
  let best = 0;
  for (let index = 1; index < values.length; index++) {
    if ((values[index] as number) > (values[best] as number)) best = index;
  }
  return best;
}

function maxOf(values: Float64Array): number {
  let max = -Infinity;
  for (const value of values) if (value > max) max = value;
  return max;
}

/** `log sum exp(values)`, stable; the row has a finite value (validated). */
function logSumExp(values: Float64Array): number {
  const max = maxOf(values);
  let sum = 0;
  for (const value of values) sum += Math.exp(value - max);
  return max + Math.log(sum);
}

/** The k-th largest value counted with multiplicity; sorting a copy keeps this O(V log V). */
function kthLargest(values: Float64Array, k: number): number {
  const ascending = Float64Array.from(values).sort();
  return ascending[ascending.length - k] as number;
}

/**
 * The top-p threshold `t_p` over the kept weights: walking them from the largest down, the first
 * value at which the mass of everything `>= t` reaches `topP * P`. Tied weights enter together,
 * since keeping `e_i >= t_p` keeps all of them.
 */
function topPThreshold(weights: Float64Array, kept: Uint8Array, topP: number): number {
  const keptWeights: number[] = [];
  for (let index = 0; index < weights.length; index++) {
    if (kept[index] === 1) keptWeights.push(weights[index] as number);
  }
  const ascending = Float64Array.from(keptWeights).sort();
  // P summed in the same order as the walk, so the walk's last step reaches P exactly and a
  // threshold always exists.
  let mass = 0;
  for (let index = ascending.length - 1; index >= 0; index--) mass += ascending[index] as number;
  const target = topP * mass;
  let cumulative = 0;
  let index = ascending.length - 1;
  while (index >= 0) {
    const value = ascending[index] as number;
    while (index >= 0 && ascending[index] === value) {
      cumulative += value;
      index--;
    }
    if (cumulative >= target) return value;
  }
  return ascending[0] as number;
}

function dropBelow(values: Float64Array, threshold: number, kept: Uint8Array): void {
  for (let index = 0; index < values.length; index++) {
    if ((values[index] as number) < threshold) kept[index] = 0;
  }
}

/** Applies temperature, top-k, top-p and min-p, in that order, to one widened logits row. */
function filterRow(logits: Float64Array, filter: RowFilter): FilteredRow {
  const vocab = logits.length;
  const scaled = logits.map((logit) => logit / filter.temperature);
  const maxScaled = maxOf(scaled);
  const weights = scaled.map((value) => Math.exp(value - maxScaled));
  const kept = new Uint8Array(vocab).fill(1);
  if (filter.topK > 0 && filter.topK < vocab) {
    dropBelow(scaled, kthLargest(scaled, filter.topK), kept);
  }
  if (filter.topP < 1) dropBelow(weights, topPThreshold(weights, kept, filter.topP), kept);
  // max e = 1, so e_i >= minP is p_i >= minP * max p.
  if (filter.minP > 0) dropBelow(weights, filter.minP, kept);
  let totalMass = 0;
  let keptMass = 0;
  for (let index = 0; index < vocab; index++) {
    const weight = weights[index] as number;
    totalMass += weight;
    if (kept[index] === 1) keptMass += weight;
  }
  return { weights, kept, keptMass, logSumExp: maxScaled + Math.log(totalMass) };
}

/**
 * The inverse-CDF draw: the first kept token, in index order, whose running mass exceeds
 * `u * keptMass`; the last kept token if rounding leaves none.
 */
function drawToken(row: FilteredRow, uniform: number): number {
  const target = uniform * row.keptMass;
  let cumulative = 0;
  let lastKept = -1;
  for (let index = 0; index < row.weights.length; index++) {
    if (row.kept[index] !== 1) continue;
    cumulative += row.weights[index] as number;
    lastKept = index;
    if (cumulative > target) return index;
  }
  return lastKept;
}

/** A greedy row: argmax, and its logprob under the model's own (T = 1) distribution. */
function greedyRow(logits: Float64Array): { token: number; logprob: number } {
  const token = argmax(logits);
  return { token, logprob: (logits[token] as number) - logSumExp(logits) };
}

/**
 * Samples one token per row of `logits [B, V]`.
 *
 * Per row: temperature 0 is greedy; otherwise `z = logits / T` is filtered by top-k (ties at the
 * k-th kept), top-p (over the top-k survivors, the crossing token kept) and min-p, and a token is
 * drawn by inverse CDF in index order with the Philox uniform of `(seed, offset, row)`. The
 * returned logprob is `z[token] - lse(z)` over the unfiltered, temperature-scaled row.
 *
 * @throws TypeError when logits are not float32 or bfloat16
 * @throws RangeError on a bad shape or parameter, a NaN or +Infinity logit, or an all -Infinity row
 */
export function sample(
  logits: LogitsTensor,
  options: SampleOptions = {},
): { tokens: Int32Array; logprobs: Float32Array } {
  const op = 'sample';
  const { rows, columns: vocab } = checkLogitsTensor(op, logits);
  const filters = resolveFilters(op, options, rows);
  const seed: Uint64Words = splitUint64(toUint64(options.seed ?? 0, `${op}: seed`));
  const offset: Uint64Words = splitUint64(toUint64(options.offset ?? 0, `${op}: offset`));
  const tokens = new Int32Array(rows);
  const logprobs = new Float32Array(rows);
  const rowLogits = new Float64Array(vocab);
  for (let row = 0; row < rows; row++) {
    widenRow(logits, row, vocab, rowLogits);
    checkLogitsRow(op, row, rowLogits);
    const filter = filterOfRow(filters, row);
    if (filter.temperature === 0) {
      const greedy = greedyRow(rowLogits);
      tokens[row] = greedy.token;
      logprobs[row] = greedy.logprob;
      continue;
    }
    const filtered = filterRow(rowLogits, filter);
    const token = drawToken(filtered, philoxUniformFromWords(seed, offset, row));
    tokens[row] = token;
    logprobs[row] = (rowLogits[token] as number) / filter.temperature - filtered.logSumExp;
  }
  return { tokens, logprobs };
}

/**
 * The exact distribution `sample` draws one row from: `p_i = e_i / sum_{j in K} e_j` on the kept
 * set `K`, 0 elsewhere (one-hot on the argmax when temperature is 0). For chi-square tests of
 * native samplers.
 *
 * @param logits one row of logits
 * @throws RangeError on a bad parameter, a NaN or +Infinity logit, or an all -Infinity row
 */
export function filteredDistribution(
  logits: readonly number[] | Float64Array | Float32Array,
  options: RowFilterOptions = {},
): Float64Array {
  const op = 'filteredDistribution';
  const rowLogits = Float64Array.from(logits);
  checkLogitsRow(op, 0, rowLogits);
  const filter = filterOfRow(resolveFilters(op, options, 1), 0);
  const probabilities = new Float64Array(rowLogits.length);
  if (filter.temperature === 0) {
    probabilities[argmax(rowLogits)] = 1;
    return probabilities;
  }
  const filtered = filterRow(rowLogits, filter);
  for (let index = 0; index < rowLogits.length; index++) {
    if (filtered.kept[index] === 1) probabilities[index] = (filtered.weights[index] as number) / filtered.keptMass;
  }
  return probabilities;
}

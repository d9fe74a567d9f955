/**
 * Reference group-relative advantages (docs/ops.md, "groupAdvantages"): GRPO and RLOO baselines
 * over consecutive groups, scaled by the group's or the batch's std, in float64.
 */
import type { AdvantageEstimator, AdvantageScale, GroupAdvantagesOptions } from '../types.js';
import { checkChoice, checkFiniteEntry, checkNonNegative, opRangeError } from './validate.js';

const OP = 'groupAdvantages';
const SCALES: readonly AdvantageScale[] = ['group', 'batch', 'none'];
const ESTIMATORS: readonly AdvantageEstimator[] = ['grpo', 'rloo'];

function mean(values: ArrayLike<number>, start: number, end: number): number {
  let sum = 0;
  for (let index = start; index < end; index++) sum += values[index] as number;
  return sum / (end - start);
}

/** Unbiased (Bessel) std of `values[start, end)`; one value (or none) has std 0 by definition. */
function unbiasedStd(values: ArrayLike<number>, start: number, end: number): number {
  const count = end - start;
  if (count < 2) return 0;
  const center = mean(values, start, end);
  let squares = 0;
  for (let index = start; index < end; index++) {
    const deviation = (values[index] as number) - center;
    squares += deviation * deviation;
  }
  return Math.sqrt(squares / (count - 1));
}

function offsetsFromGroupSize(groupSize: number, sampleCount: number): number[] {
  if (!Number.isInteger(groupSize) || groupSize < 1) {
    throw opRangeError(OP, `groupSize ${groupSize} must be an integer >= 1`);
  }
  if (sampleCount % groupSize !== 0) {
    throw opRangeError(OP, `groupSize ${groupSize} does not divide ${sampleCount} rewards`);
  }
  const offsets: number[] = [];
  for (let offset = 0; offset <= sampleCount; offset += groupSize) offsets.push(offset);
  return offsets;
}

function checkGroupOffsets(groupOffsets: ArrayLike<number>, sampleCount: number): number[] {
  const offsets = Array.from(groupOffsets);
  const strictlyIncreasing = offsets.every(
    (offset, index) => Number.isInteger(offset) && (index === 0 || offset > (offsets[index - 1] as number)),
  );
  if (offsets[0] !== 0 || offsets[offsets.length - 1] !== sampleCount || !strictlyIncreasing) {
    throw opRangeError(
      OP,
      `groupOffsets must start at 0 and end at ${sampleCount}, strictly increasing`,
    );
  }
  return offsets;
}

/** Group boundaries `[0, ..., S]` from whichever of groupSize / groupOffsets was given. */
function resolveGroupOffsets(options: GroupAdvantagesOptions, sampleCount: number): number[] {
  const hasSize = options.groupSize !== undefined;
  const hasOffsets = options.groupOffsets !== undefined;
  if (hasSize === hasOffsets) throw opRangeError(OP, 'give exactly one of groupSize and groupOffsets');
  if (options.groupOffsets !== undefined) return checkGroupOffsets(options.groupOffsets, sampleCount);
  return offsetsFromGroupSize(options.groupSize as number, sampleCount);
}

/** `r_i - baseline` for one group: the group mean (grpo) or the mean of the others (rloo). */
function centeredRewards(
  rewards: ArrayLike<number>,
  start: number,
  end: number,
  estimator: AdvantageEstimator,
  out: Float64Array,
): void {
  const count = end - start;
  // A lone sample has no baseline to compare against (and rloo's "others" would be empty).
  if (count === 1) {
    out[start] = 0;
    return;
  }
  const sum = mean(rewards, start, end) * count;
  for (let index = start; index < end; index++) {
    const reward = rewards[index] as number;
    const baseline = estimator === 'grpo' ? sum / count : (sum - reward) / (count - 1);
    out[index] = reward - baseline;
  }
}

/**
 * Group-relative advantages of `rewards [S]`. Groups are consecutive runs given by exactly one of
 * `groupSize` or `groupOffsets`. `grpo`: `r_i - mean_g`; `rloo`: `r_i - mean of the others`; then
 * divided by `std + eps` with the unbiased std of the group (`scale: 'group'`) or of the whole
 * batch (`'batch'`), or not divided (`'none'`). A group of one sample gets 0.
 *
 * @throws RangeError on a non-finite reward, bad groups, or a bad option
 */
export function groupAdvantages(
  rewards: Float32Array | readonly number[],
  options: GroupAdvantagesOptions,
): Float32Array {
  const sampleCount = rewards.length;
  for (let index = 0; index < sampleCount; index++) {
    checkFiniteEntry(OP, `rewards[${index}]`, rewards[index] as number);
  }
  const offsets = resolveGroupOffsets(options, sampleCount);
  const scale = checkChoice(OP, 'scale', options.scale ?? 'group', SCALES);
  const estimator = checkChoice(OP, 'estimator', options.estimator ?? 'grpo', ESTIMATORS);
  const eps = options.eps ?? 1e-4;
  checkNonNegative(OP, 'eps', eps);
  // The C ABI carries eps as float32.
  const roundedEps = Math.fround(eps);
  const batchStd = unbiasedStd(rewards, 0, sampleCount);
  const advantages = new Float64Array(sampleCount);
  for (let group = 0; group + 1 < offsets.length; group++) {
    const start = offsets[group] as number;
    const end = offsets[group + 1] as number;
    centeredRewards(rewards, start, end, estimator, advantages);
    if (scale === 'none') continue;
    const divisor = (scale === 'group' ? unbiasedStd(rewards, start, end) : batchStd) + roundedEps;
    // Only eps = 0 with a zero std gets here with divisor 0, and then every centered reward is
    // already 0 (or the group is a lone sample): 0 is the answer, not 0 / 0.
    if (divisor === 0) continue;
    for (let index = start; index < end; index++) {
      advantages[index] = (advantages[index] as number) / divisor;
    }
  }
  return Float32Array.from(advantages);
}

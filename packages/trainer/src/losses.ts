/**
 * One mini-batch's loss on the policy's device: GRPO's surrogate (the policyLoss op) over the
 * rollout rows, the ExPO / SFT or DPO term over the auxiliary rows through maskedRowSum, and the
 * gradient d loss / d log-probs assembled there in `rows()` views. What comes to the host is per
 * row or per batch: row sums, the op's loss and stats; no [rows, width] array leaves the device.
 */
import {
  empty,
  maskedRowSum,
  maskedRowSumBackward,
  policyLoss,
  tensor,
  type Tensor,
} from '@napo/kernels';

import type { TrainConfig } from './config.js';
import type { PackedBatch } from './sequences.js';

/** A mini-batch scored on the policy's device, all [rows, width]: rollout rows first, then auxiliary rows. */
export interface DeviceScores {
  logprobs: Tensor<'float32'>;
  entropy: Tensor<'float32'>;
  /** The sampling policy's log-probs (the first pass's own, or scored before any update). */
  old: Tensor<'float32'>;
  /** The frozen policy's, for the KL or DPO. */
  ref: Tensor<'float32'> | undefined;
  /** The batch's completion mask. */
  mask: Tensor<'float32'>;
}

export interface LossParts {
  loss: number;
  auxiliaryLoss: number;
  /** d loss / d log-probs [rows, width] on the device (the caller disposes it). */
  gradLogprobs: Tensor<'float32'>;
  /** d loss / d entropy [rows, width], when an entropy bonus applies this step. */
  gradEntropy?: Tensor<'float32'>;
  meanKl: number;
  clipLowFraction: number;
  clipHighFraction: number;
  /** TRL's extremes of the per-rollout clip fractions. */
  clipLowMin: number;
  clipHighMax: number;
  /** The policy loss before the entropy bonus (TRL's policy_loss). */
  policyLoss: number;
  /** vespo: the mean gamma weight over the rollouts (0 otherwise). */
  vespoPhiMean: number;
  /** Of the rollout tokens, the share the entropy quantile trained (1 without it). */
  keptFraction: number;
  /** Of the rollouts, those the off-policy mask left out (0 without it). */
  offPolicyFraction: number;
  /** Mean entropy of the tokens the policy loss trained (what the adaptive bonus steers), when it was given the entropy. */
  trainedEntropy?: number;
  /** Mean entropy over the rollout rows' completion tokens (TRL's entropy metric). */
  rolloutEntropy: number;
}

export type LossSettings = Pick<
  TrainConfig,
  | 'algorithm'
  | 'lossType'
  | 'epsLow'
  | 'epsHigh'
  | 'klBeta'
  | 'maxNewTokens'
  | 'importanceSamplingLevel'
  | 'delta'
  | 'sapoTemperaturePos'
  | 'sapoTemperatureNeg'
  | 'vespoKPos'
  | 'vespoLambdaPos'
  | 'vespoKNeg'
  | 'vespoLambdaNeg'
  | 'topEntropyQuantile'
  | 'useBiasCorrectionKl'
  | 'offPolicyMaskThreshold'
  | 'betaExpo'
  | 'dpoBeta'
> & {
  /** The entropy goes into policyLoss (the quantile or the bonus is on). */
  withEntropy: boolean;
  /** The entropy bonus's coefficient this optimizer step (0: none). */
  entropyCoef: number;
  /** dapo's and cispo's normaliser (the optimizer step's rollout tokens over its micro-batches); default the batch's own. */
  numItemsInBatch?: number;
};

/** Tensors made while computing a loss, disposed together. */
class Scratch {
  private readonly made: Tensor[] = [];

  keep<T extends Tensor>(t: T): T {
    this.made.push(t);
    return t;
  }

  dispose(): void {
    this.made.forEach((t) => t.dispose());
  }
}

/** The loss of one mini-batch whose first `advantages.length` rows are rollouts. */
export function miniBatchLoss(batch: PackedBatch, scores: DeviceScores, advantages: Float32Array, settings: LossSettings): LossParts {
  const rollouts = advantages.length;
  const scratch = new Scratch();
  try {
    const rolloutPart = rolloutLoss(batch, scores, advantages, settings, scratch);
    const auxiliaryPart = batch.rows > rollouts ? auxiliaryLoss(batch, scores, rollouts, settings, scratch) : undefined;
    const device = scores.logprobs.device;
    const gradParts = [rolloutPart?.grad, auxiliaryPart?.grad].filter((t): t is Tensor<'float32'> => t !== undefined);
    const gradLogprobs = stackRows(gradParts, batch, device);
    const gradEntropy = rolloutPart?.gradEntropy && stackRows([rolloutPart.gradEntropy, ...(auxiliaryPart ? [zerosLike(auxiliaryPart.mask, scratch)] : [])], batch, device);
    // stackRows hands back its only part itself: that one must outlive the scratch.
    const kept = new Set<Tensor>([gradLogprobs, ...(gradEntropy ? [gradEntropy] : [])]);
    for (const part of [...gradParts, rolloutPart?.gradEntropy]) if (part && !kept.has(part)) part.dispose();
    return {
      loss: (rolloutPart?.loss ?? 0) + (auxiliaryPart?.loss ?? 0),
      auxiliaryLoss: auxiliaryPart?.loss ?? 0,
      gradLogprobs,
      ...(gradEntropy ? { gradEntropy } : {}),
      meanKl: rolloutPart?.meanKl ?? 0,
      clipLowFraction: rolloutPart?.clipLowFraction ?? 0,
      clipHighFraction: rolloutPart?.clipHighFraction ?? 0,
      clipLowMin: rolloutPart?.clipLowMin ?? 0,
      clipHighMax: rolloutPart?.clipHighMax ?? 0,
      policyLoss: rolloutPart?.policyLoss ?? 0,
      vespoPhiMean: rolloutPart?.vespoPhiMean ?? 0,
      keptFraction: rolloutPart?.keptFraction ?? 1,
      offPolicyFraction: rolloutPart?.offPolicyFraction ?? 0,
      ...(rolloutPart?.trainedEntropy === undefined ? {} : { trainedEntropy: rolloutPart.trainedEntropy }),
      rolloutEntropy: rollouts > 0 ? maskedMean(scores.entropy.rows(0, rollouts), scores.mask.rows(0, rollouts), batch, 0, scratch) : 0,
    };
  } finally {
    scratch.dispose();
  }
}

interface RolloutPart {
  offPolicyFraction: number;
  vespoPhiMean: number;
  clipLowMin: number;
  clipHighMax: number;
  policyLoss: number;
  loss: number;
  grad: Tensor<'float32'>;
  gradEntropy?: Tensor<'float32'>;
  meanKl: number;
  clipLowFraction: number;
  clipHighFraction: number;
  keptFraction: number;
  trainedEntropy?: number;
}

/** GRPO's surrogate (and k3 KL, entropy mask and bonus) over the rollout rows; expo-dpo trains them not at all. */
function rolloutLoss(batch: PackedBatch, scores: DeviceScores, advantages: Float32Array, settings: LossSettings, scratch: Scratch): RolloutPart | undefined {
  const rollouts = advantages.length;
  if (rollouts === 0) return undefined;
  const rows = <T extends Tensor>(t: T): T => scratch.keep(t.rows(0, rollouts) as T);
  const mask = rows(scores.mask);
  if (settings.algorithm === 'expo-dpo') return { loss: 0, grad: zerosLike(mask, undefined), meanKl: 0, clipLowFraction: 0, clipHighFraction: 0, clipLowMin: 0, clipHighMax: 0, policyLoss: 0, vespoPhiMean: 0, keptFraction: 1, offPolicyFraction: 0 };
  const result = policyLoss(
    {
      logprobs: rows(scores.logprobs),
      oldLogprobs: rows(scores.old),
      ...(scores.ref && settings.klBeta > 0 ? { refLogprobs: rows(scores.ref) } : {}),
      ...(settings.withEntropy ? { entropy: rows(scores.entropy) } : {}),
      advantages: scratch.keep(tensor<'float32'>(advantages, [rollouts], { device: scores.logprobs.device })),
      mask,
    },
    {
      lossType: settings.lossType,
      epsLow: settings.epsLow,
      epsHigh: settings.epsHigh,
      beta: settings.klBeta,
      maxCompletionLength: settings.maxNewTokens,
      ...(settings.numItemsInBatch === undefined ? {} : { numItemsInBatch: settings.numItemsInBatch }),
      importanceSamplingLevel: settings.importanceSamplingLevel,
      ...(settings.delta === undefined ? {} : { delta: settings.delta }),
      sapoTemperaturePos: settings.sapoTemperaturePos,
      sapoTemperatureNeg: settings.sapoTemperatureNeg,
      vespoKPos: settings.vespoKPos,
      vespoLambdaPos: settings.vespoLambdaPos,
      vespoKNeg: settings.vespoKNeg,
      vespoLambdaNeg: settings.vespoLambdaNeg,
      topEntropyQuantile: settings.topEntropyQuantile,
      entropyCoef: settings.entropyCoef,
      useBiasCorrectionKl: settings.useBiasCorrectionKl,
      ...(settings.offPolicyMaskThreshold === undefined ? {} : { offPolicyMaskThreshold: settings.offPolicyMaskThreshold }),
    },
  );
  const useGradEntropy = result.gradEntropy !== undefined && settings.entropyCoef !== 0;
  if (result.gradEntropy && !useGradEntropy) result.gradEntropy.dispose();
  return {
    loss: result.loss,
    grad: result.gradLogprobs,
    ...(useGradEntropy ? { gradEntropy: result.gradEntropy } : {}),
    meanKl: result.stats.meanKl,
    clipLowFraction: result.stats.clipLowFraction,
    clipHighFraction: result.stats.clipHighFraction,
    clipLowMin: result.stats.clipLowMin,
    clipHighMax: result.stats.clipHighMax,
    policyLoss: result.loss + result.stats.entropyBonus,
    vespoPhiMean: result.stats.vespoPhiMean,
    keptFraction: result.stats.keptFraction,
    offPolicyFraction: result.stats.offPolicyFraction,
    ...(settings.withEntropy ? { trainedEntropy: result.stats.meanEntropy } : {}),
  };
}

interface AuxiliaryPart {
  loss: number;
  grad: Tensor<'float32'>;
  mask: Tensor<'float32'>;
}

/**
 * ExPO / SFT: -betaExpo * the token mean of log pi over the auxiliary rows; ExP-DPO:
 * -log sigmoid(beta * (margin of log-ratios)) over (chosen, rejected) row pairs, mean over pairs.
 * Both from the rows' masked sums, their gradient through maskedRowSumBackward.
 */
function auxiliaryLoss(batch: PackedBatch, scores: DeviceScores, first: number, settings: LossSettings, scratch: Scratch): AuxiliaryPart {
  const mask = scratch.keep(scores.mask.rows(first, batch.rows));
  const rowSums = (values: Tensor<'float32'>) => readAndDispose(maskedRowSum(scratch.keep(values.rows(first, batch.rows)), mask));
  const gradRows = (gradSums: Float32Array) => maskedRowSumBackward(mask, scratch.keep(tensor<'float32'>(gradSums, [gradSums.length], { device: mask.device })));
  if (settings.algorithm === 'expo-dpo') {
    const refSums = rowSums(scores.ref as Tensor<'float32'>);
    const logRatios = Array.from(rowSums(scores.logprobs), (sum, i) => sum - (refSums[i] as number));
    const pairs = logRatios.length / 2;
    const gradSums = new Float32Array(logRatios.length);
    let loss = 0;
    for (let pair = 0; pair < pairs; pair++) {
      const margin = settings.dpoBeta * ((logRatios[2 * pair] as number) - (logRatios[2 * pair + 1] as number));
      loss += softplus(-margin) / pairs;
      // d/d margin of softplus(-margin) = -sigmoid(-margin).
      const slope = (-settings.dpoBeta * sigmoid(-margin)) / pairs;
      gradSums[2 * pair] = slope;
      gradSums[2 * pair + 1] = -slope;
    }
    return { loss, grad: gradRows(gradSums), mask };
  }
  const tokens = maskCount(batch, first, batch.rows);
  const weight = tokens === 0 ? 0 : settings.betaExpo / tokens;
  const sums = rowSums(scores.logprobs);
  return { loss: -weight * sums.reduce((total, sum) => total + sum, 0), grad: gradRows(new Float32Array(sums.length).fill(-weight)), mask };
}

/** The parts' rows one after another in one [rows, width] tensor (the only part itself when there is one). */
function stackRows(parts: Tensor<'float32'>[], batch: PackedBatch, device: Tensor['device']): Tensor<'float32'> {
  if (parts.length === 1) return parts[0] as Tensor<'float32'>;
  const stacked = empty<'float32'>([batch.rows, batch.width], { device });
  let row = 0;
  for (const part of parts) {
    const view = stacked.rows(row, row + (part.shape[0] as number));
    view.copyFrom(part);
    view.dispose();
    row += part.shape[0] as number;
  }
  return stacked;
}

/** Zeros shaped like a mask, made on its device. */
function zerosLike(mask: Tensor<'float32'>, scratch: Scratch | undefined): Tensor<'float32'> {
  const zeros = tensor<'float32'>(new Float32Array(mask.shape[0] as number), [mask.shape[0] as number], { device: mask.device });
  try {
    const made = maskedRowSumBackward(mask, zeros);
    return scratch ? scratch.keep(made) : made;
  } finally {
    zeros.dispose();
  }
}

/** The mean of `values` over the mask's ones in rows [first, first + values.shape[0]) of the batch. */
function maskedMean(values: Tensor<'float32'>, mask: Tensor<'float32'>, batch: PackedBatch, first: number, scratch: Scratch): number {
  scratch.keep(values);
  scratch.keep(mask);
  const count = maskCount(batch, first, first + (values.shape[0] as number));
  return count === 0 ? 0 : readAndDispose(maskedRowSum(values, mask)).reduce((total, sum) => total + sum, 0) / count;
}

/** Completion tokens in rows [begin, end) of the batch (from the host's own mask). */
function maskCount(batch: PackedBatch, begin: number, end: number): number {
  return batch.completionMask.subarray(begin * batch.width, end * batch.width).reduce((n, m) => n + m, 0);
}

function readAndDispose(t: Tensor<'float32'>): Float32Array {
  try {
    return t.toArray();
  } finally {
    t.dispose();
  }
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

function softplus(x: number): number {
  return x > 30 ? x : Math.log1p(Math.exp(x));
}

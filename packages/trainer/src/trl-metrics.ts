/**
 * A step's figures under TRL's GRPOTrainer metric names (`completions/mean_length`, `reward_std`,
 * `frac_reward_zero_std`, `clip_ratio/low_mean`, ...), written into every step record beside napo's
 * own, so plots made for a TRL run read a napo run. Definitions follow TRL's: lengths count EOS,
 * standard deviations are unbiased (torch's default), a group's std is zero when its rewards all agree.
 */
import type { LossType } from '@napo/kernels';

import type { StepRecord, TrlStepMetrics } from './records.js';

/** What the optimizer steps of a step measured, averaged over them (napo's record fields). */
export interface Optimisation extends Pick<StepRecord, 'loss' | 'auxiliaryLoss' | 'meanKl' | 'clipLowFraction' | 'clipHighFraction' | 'gradNorm'> {
  /** Optimizer steps taken: numIterations x mini-batches (0 when the step had nothing to train). */
  optimizerSteps: number;
  /** Backward passes: the optimizer steps' micro-batches. */
  microBatches: number;
  /** Mean entropy over the rollouts' trained completion tokens. */
  entropy: number;
  /** Of the rollout tokens, the share the entropy quantile trained (1 without it). */
  keptFraction: number;
  /** Of the rollouts, those the off-policy mask left out (0 without it). */
  offPolicyFraction: number;
  /** TRL's extremes of the per-rollout clip fractions, averaged over the micro-batches as TRL logs them. */
  clipLowMin: number;
  clipHighMax: number;
  /** The policy loss before the entropy bonus (TRL's policy_loss). */
  policyLoss: number;
  /** vespo: the mean gamma weight over the rollouts (TRL's vespo/phi_seq_mean). */
  vespoPhiMean: number;
  /** Completion tokens with a loss, over the mini-batches. */
  tokensTrained: number;
  /** The largest mini-batch scored: its rows, padded width and trained tokens. */
  largest: { rows: number; width: number; tokens: number };
}

export function idleOptimisation(): Optimisation {
  return {
    optimizerSteps: 0,
    microBatches: 0,
    loss: 0,
    auxiliaryLoss: 0,
    meanKl: 0,
    clipLowFraction: 0,
    clipHighFraction: 0,
    gradNorm: 0,
    entropy: 0,
    keptFraction: 0,
    offPolicyFraction: 0,
    clipLowMin: 0,
    clipHighMax: 0,
    policyLoss: 0,
    vespoPhiMean: 0,
    tokensTrained: 0,
    largest: { rows: 0, width: 0, tokens: 0 },
  };
}

export interface RewardGroup {
  /** Unbiased standard deviation of the group's rewards. */
  std: number;
  /** Every reward of the group is the same: its advantages are all 0. */
  zeroStd: boolean;
}

/** Each prompt's group of `groupSize` consecutive rewards. */
export function rewardGroups(rewards: readonly number[], groupSize: number): RewardGroup[] {
  return Array.from({ length: rewards.length / groupSize }, (_, g) => {
    const group = rewards.slice(g * groupSize, (g + 1) * groupSize);
    return { std: unbiasedStd(group), zeroStd: group.every((reward) => reward === group[0]) };
  });
}

export interface TrlMetricsInput {
  rollouts: { lengths: readonly number[]; truncated: readonly boolean[]; rewards: readonly number[]; rewardsByFunction: Record<string, readonly number[]> };
  groups: readonly RewardGroup[];
  training: Optimisation;
  learningRate: number;
  /** Prompt and completion tokens of every rollout so far. */
  numTokens: number;
  rewardNames: readonly string[];
  /** The KL coefficient: TRL logs `kl` only when it is not 0. */
  beta: number;
  /** Which clip figures TRL logs: clip_ratio/* for the clipped types, cispo_clip_ratio for cispo, none for sapo. */
  lossType: LossType;
  /** The entropy bonus's coefficient after the step, when the bonus is on (TRL's entropy_coef). */
  entropyCoef?: number;
}

export function trlMetrics(input: TrlMetricsInput): TrlStepMetrics {
  const { rollouts, groups, training } = input;
  const terminated = rollouts.lengths.filter((_, row) => !rollouts.truncated[row]);
  const perFunction = Object.fromEntries(
    input.rewardNames.flatMap((name) => {
      const values = (rollouts.rewardsByFunction[name] ?? []).filter((value) => !Number.isNaN(value));
      return [
        [`rewards/${name}/mean`, mean(values)],
        [`rewards/${name}/std`, unbiasedStd(values)],
      ];
    }),
  );
  return {
    'completions/mean_length': mean(rollouts.lengths),
    'completions/min_length': Math.min(...rollouts.lengths),
    'completions/max_length': Math.max(...rollouts.lengths),
    'completions/clipped_ratio': rollouts.truncated.filter(Boolean).length / rollouts.truncated.length,
    'completions/mean_terminated_length': mean(terminated),
    'completions/min_terminated_length': terminated.length === 0 ? 0 : Math.min(...terminated),
    'completions/max_terminated_length': terminated.length === 0 ? 0 : Math.max(...terminated),
    reward_std: mean(groups.map((group) => group.std)),
    frac_reward_zero_std: groups.filter((group) => group.zeroStd).length / groups.length,
    ...(input.beta !== 0 ? { kl: training.meanKl } : {}),
    entropy: training.entropy,
    ...clipMetrics(input.lossType, training),
    ...(input.entropyCoef === undefined ? {} : { entropy_coef: input.entropyCoef, policy_loss: training.policyLoss }),
    num_tokens: input.numTokens,
    grad_norm: training.gradNorm,
    learning_rate: input.learningRate,
    ...perFunction,
  };
}

function clipMetrics(lossType: LossType, training: Optimisation): Partial<TrlStepMetrics> {
  if (lossType === 'sapo') return {};
  if (lossType === 'vespo') return { 'vespo/phi_seq_mean': training.vespoPhiMean };
  if (lossType === 'cispo') return { cispo_clip_ratio: training.clipHighFraction };
  return {
    'clip_ratio/low_mean': training.clipLowFraction,
    'clip_ratio/high_mean': training.clipHighFraction,
    'clip_ratio/region_mean': training.clipLowFraction + training.clipHighFraction,
    'clip_ratio/low_min': training.clipLowMin,
    'clip_ratio/high_max': training.clipHighMax,
  };
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((sum, value) => sum + value, 0) / values.length;
}

/** sqrt(sum (x - mean)^2 / (n - 1)); 0 for fewer than two values (torch gives NaN; a record keeps numbers). */
function unbiasedStd(values: readonly number[]): number {
  if (values.length < 2) return 0;
  const m = mean(values);
  return Math.sqrt(values.reduce((sum, value) => sum + (value - m) ** 2, 0) / (values.length - 1));
}

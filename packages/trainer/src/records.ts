/** What a trainer records per step and per evaluation, as emitted to listeners and written as JSON lines. */
import type { BytesByCategory } from '@napo/kernels';

import type { Algorithm } from './config.js';
import type { ExplanationDiagnostics } from './diagnostics.js';

/**
 * The phases a step's time and peak memory are measured over: sampling the rollouts, making the
 * auxiliary sequences (self-explanations), the training forward, per-token log-probs (and the
 * frozen policy's), the losses and their gradient w.r.t. log-probs, the backward, AdamW.
 */
export const phases = ['rollout', 'explain', 'score', 'logprobs', 'loss', 'backward', 'optimizer'] as const;
export type Phase = (typeof phases)[number];

export interface PhaseFigures {
  seconds: number;
  /** Peak bytes allocated during the phase (the allocator's counter, reset at its start). */
  peakAllocatedBytes: number;
  /** Where the peak's bytes were, by category (they add up to peakAllocatedBytes). */
  peakByCategory: BytesByCategory;
  /** The driver's free and total device memory at the phase's end (CUDA only; torch.cuda.mem_get_info). */
  deviceFreeBytes?: number;
  deviceTotalBytes?: number;
}

/** The shapes a step ran at: what a memory prediction of the step needs (memory.ts). */
export interface StepShapes {
  /** Rollout rows (prompts x group size) and their longest prompt. */
  rolloutRows: number;
  rolloutPromptTokens: number;
  /** Rows generated in the explain phase (0 when the algorithm generates none) and their longest prompt. */
  explainRows: number;
  explainPromptTokens: number;
  maxNewTokens: number;
  /** The scored batch (the largest mini-batch with stepsPerGeneration > 1): rows, padded width, positions with a target. */
  scoredRows: number;
  scoredWidth: number;
  scoredTokens: number;
}

/**
 * TRL GRPOTrainer's metric names (trl-metrics.ts computes them). `loss` and `reward` are napo's own
 * fields, under the same names; `rewards/<function>/mean|std` come with reward functions.
 */
export interface TrlStepMetrics {
  'completions/mean_length': number;
  'completions/min_length': number;
  'completions/max_length': number;
  /** Fraction of rollouts that hit maxNewTokens. */
  'completions/clipped_ratio': number;
  'completions/mean_terminated_length': number;
  'completions/min_terminated_length': number;
  'completions/max_terminated_length': number;
  /** Mean over groups of each group's reward std. */
  reward_std: number;
  frac_reward_zero_std: number;
  /** Mean k3 KL to the frozen policy, only when klBeta is not 0. */
  kl?: number;
  /** Mean entropy of the trained rollout tokens. */
  entropy: number;
  /** Clipped loss types (grpo, bnpo, dr_grpo, dapo) only, as TRL logs them. */
  'clip_ratio/low_mean'?: number;
  'clip_ratio/high_mean'?: number;
  'clip_ratio/region_mean'?: number;
  /** TRL's extremes of the per-rollout clip fractions (the lowest clip-low, the highest clip-high). */
  'clip_ratio/low_min'?: number;
  'clip_ratio/high_max'?: number;
  /** cispo only: tokens with A > 0 whose weight the cap clipped. */
  cispo_clip_ratio?: number;
  /** vespo only: the mean gamma weight over the rollouts. */
  'vespo/phi_seq_mean'?: number;
  /** The entropy bonus's coefficient after the step, and the policy loss before the bonus, only when the bonus is on. */
  entropy_coef?: number;
  policy_loss?: number;
  /** Prompt and completion tokens of every rollout so far. */
  num_tokens: number;
  grad_norm: number;
  learning_rate: number;
  [rewardFunctionMetric: `rewards/${string}/${'mean' | 'std'}`]: number;
}

/** One rollout as logCompletions records it (TRL's completions table). */
export interface LoggedCompletion {
  prompt: string;
  completion: string;
  reward: number;
  /** Each reward function's value (NaN where it does not apply); empty without reward functions. */
  rewards: Record<string, number>;
}

export interface StepRecord extends TrlStepMetrics {
  kind: 'step';
  algorithm: Algorithm;
  seed: number;
  step: number;
  /** Mean reward of the rollouts. */
  reward: number;
  /** Mean of each reward function over the rollouts it applied to (empty without reward functions). */
  rewardsByName: Record<string, number>;
  /** Fraction of correct rollouts (the task's verifier), by level (levels drawn this step only). */
  accuracyByLevel: Record<string, number>;
  /** Prompts whose completions were all wrong: where GRPO has no signal. */
  allWrongPrompts: number;
  /** The step's rollouts, with logCompletions (the first numCompletionsToPrint). */
  completions?: LoggedCompletion[];
  /** ExPO's premise on the all-wrong prompts (diagnostics.ts); absent when the config turns diagnostics off. */
  explanations?: ExplanationDiagnostics;
  /** Seconds the diagnostics took (not part of stepSeconds). */
  diagnosticSeconds: number;
  /** Self-explanations left out by explanationFilter this step. */
  explanationsDropped: number;
  /** Rollout groups left out of the batch because their rewards all agree (dropZeroStdGroups). */
  zeroStdGroupsDropped: number;
  /** Trained rollouts left out of the loss because they hit maxNewTokens (maskTruncatedCompletions). */
  truncatedMasked: number;
  /** AdamW steps this step took: numIterations, or 0 when nothing was left to train. */
  optimizerSteps: number;
  /** Backward passes: optimizerSteps x the micro-batches of each (gradientAccumulationSteps). */
  microBatches: number;
  loss: number;
  /** The ExPO / SFT / DPO term's value this step (0 for GRPO). */
  auxiliaryLoss: number;
  meanKl: number;
  clipLowFraction: number;
  clipHighFraction: number;
  /** Of the rollout tokens, the share the policy loss trained (topEntropyQuantile < 1 only). */
  entropyKeptFraction?: number;
  /** Of the rollouts, those the off-policy mask left out of the surrogate (offPolicyMaskThreshold only). */
  offPolicyMaskedFraction?: number;
  /** The entropy bonus's coefficient after the step (entropyCoef or useAdaptiveEntropy only). */
  entropyCoef?: number;
  gradNorm: number;
  learningRate: number;
  tokensGenerated: number;
  tokensTrained: number;
  stepSeconds: number;
  phases: Record<Phase, PhaseFigures>;
  /** The step's peak allocated memory in GiB (TRL / verl's perf/max_memory_allocated_gb). */
  'perf/max_memory_allocated_gb': number;
  /** allocatedBytes after the step: flat over steps when nothing leaks. */
  allocatedBytesAfter: number;
  shapes: StepShapes;
}

export interface LevelScore {
  level: number;
  /** Greedy decoding, one attempt. */
  pass1: number;
  /** At least one of k samples at the evaluation temperature is right. */
  passK: number;
  /** ExPO's premise on the level's first diagnosticItems items (diagnostics.ts). */
  explanations?: ExplanationDiagnostics;
}

export interface EvalRecord {
  kind: 'eval';
  algorithm: Algorithm | 'base';
  seed: number;
  step: number;
  k: number;
  byLevel: LevelScore[];
}

export type TrainerRecord = StepRecord | EvalRecord;

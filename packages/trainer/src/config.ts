/**
 * Trainer configuration: typed, with defaults, validated by zod with messages that name the field
 * (`groupSize must be >= 2`).
 */
import { z } from 'zod';

export const algorithms = ['grpo', 'expo', 'grpo-sft', 'expo-dpo'] as const;
export type Algorithm = (typeof algorithms)[number];

const positiveInteger = z.number().int().min(1);

export const trainConfigSchema = z.object({
  /** grpo | expo (ExP-GRPO) | grpo-sft (GRPO + SFT on expert reasoning) | expo-dpo. */
  algorithm: z.enum(algorithms).default('expo'),
  seed: z.number().int().min(0).default(0),
  steps: positiveInteger.default(100),
  /** Distinct prompts per step; each gets groupSize completions. */
  promptsPerStep: positiveInteger.default(8),
  groupSize: z.number().int().min(2).default(8),
  /** Levels the training prompts are drawn from, uniformly. Default: every level of the task. */
  levels: z.array(z.number().int().min(1)).min(1).optional(),
  maxNewTokens: positiveInteger.default(64),
  /** Rollout sampling temperature (log-probs are scored at the same temperature). */
  temperature: z.number().gt(0).default(1),
  topK: z.number().int().min(0).default(0),
  topP: z.number().gt(0).max(1).default(1),
  /** TRL's min_p: tokens below minP times the most likely token's probability are not sampled. 0 = off. */
  minP: z.number().min(0).max(1).default(0),
  /** TRL's repetition_penalty (Hugging Face's): the rollouts' logits of tokens already in the prompt or completion penalised. 1 = off. */
  repetitionPenalty: z.number().gt(0).default(1),
  learningRate: z.number().gt(0).default(3e-4),
  schedule: z.enum(['constant', 'cosine']).default('constant'),
  warmupSteps: z.number().int().min(0).default(0),
  weightDecay: z.number().min(0).default(0),
  maxGradNorm: z.number().gt(0).default(1),
  /** TRL's loss_type: the clipped surrogate's aggregations (luspo: sequence level only), CISPO (epsHigh caps the weight; TRL recommends 5) or SAPO. */
  lossType: z.enum(['grpo', 'bnpo', 'dr_grpo', 'dapo', 'cispo', 'sapo', 'luspo', 'vespo']).default('grpo'),
  epsLow: z.number().min(0).lt(1).default(0.2),
  epsHigh: z.number().min(0).default(0.2),
  /** TRL's importance_sampling_level: 'sequence' is GSPO. */
  importanceSamplingLevel: z.enum(['token', 'sequence']).default('token'),
  /** Two-sided clipping (TRL's delta, INTELLECT-2): the unclipped ratio capped at delta, > 1 + epsHigh. Default off. */
  delta: z.number().gt(1).optional(),
  sapoTemperaturePos: z.number().gt(0).default(1),
  sapoTemperatureNeg: z.number().gt(0).default(1.05),
  /** vespo's gamma weight phi(w) = e^lambda w^k e^(-lambda w): its k and lambda where A >= 0 and where A < 0 (TRL's). */
  vespoKPos: z.number().min(0).default(2),
  vespoLambdaPos: z.number().gt(0).default(3),
  vespoKNeg: z.number().min(0).default(3),
  vespoLambdaNeg: z.number().gt(0).default(2),
  scaleRewards: z.enum(['group', 'batch', 'none']).default('group'),
  /**
   * TRL's multi_objective_aggregation: sum the weighted reward functions, then normalise
   * (sum_then_normalize, scaleRewards and estimator apply), or normalise each function within its
   * group, sum, then scale over the batch (normalize_then_sum, GDPO).
   */
  multiObjectiveAggregation: z.enum(['sum_then_normalize', 'normalize_then_sum']).default('sum_then_normalize'),
  estimator: z.enum(['grpo', 'rloo']).default('grpo'),
  /** Weight of the k3 KL to a frozen copy of the starting policy; 0 = no frozen policy. */
  klBeta: z.number().min(0).default(0),
  /**
   * Optimisation passes over each step's rollouts (TRL's num_iterations, the paper's mu). The first
   * pass's log-probs are the sampling policy's (its weights have not moved yet): every later pass
   * uses them as oldLogprobs, so the ratio and the clip fractions mean something from pass 2 on.
   */
  numIterations: positiveInteger.default(1),
  /**
   * Optimizer steps per generation round (TRL's steps_per_generation): the step's prompts are split
   * into this many mini-batches of consecutive prompts, one AdamW step each, per pass.
   */
  stepsPerGeneration: positiveInteger.default(1),
  /**
   * Micro-batches per optimizer step (TRL's gradient_accumulation_steps): each mini-batch's prompts
   * are split into this many, scored and backpropagated one at a time (activations for one
   * micro-batch at a time), their gradients summed and scaled by 1 / count before AdamW.
   */
  gradientAccumulationSteps: positiveInteger.default(1),
  /** Truncated completions (no EOS within maxNewTokens) are left out of the policy loss (TRL's mask_truncated_completions). */
  maskTruncatedCompletions: z.boolean().default(false),
  /**
   * Groups whose rewards all agree (zero advantage: no GRPO signal) are left out of the batch
   * before scoring, as DAPO's dynamic sampling filters them (without drawing more).
   */
  dropZeroStdGroups: z.boolean().default(false),
  /**
   * TRL's sync_ref_model (TR-DPO): every refModelSyncSteps optimizer steps the frozen policy moves
   * towards the trained one, frozen = alpha * policy + (1 - alpha) * frozen with alpha
   * refModelMixupAlpha. Needs a frozen policy (klBeta > 0 or expo-dpo).
   */
  syncRefModel: z.boolean().default(false),
  refModelMixupAlpha: z.number().gt(0).max(1).default(0.6),
  refModelSyncSteps: positiveInteger.default(512),
  /** TRL's use_bias_correction_kl (DeepSeek-V3.2): the k3 KL times the importance weight. */
  useBiasCorrectionKl: z.boolean().default(false),
  /**
   * TRL's off_policy_mask_threshold (DeepSeek-V3.2): rollouts with a negative advantage whose mean
   * of old - current log-probs exceeds it train no surrogate (their KL stays). Default off.
   */
  offPolicyMaskThreshold: z.number().min(0).optional(),
  /**
   * TRL's top_entropy_quantile (Beyond the 80/20 Rule): the policy loss trains only the rollout
   * tokens whose entropy is in this top fraction of the mini-batch's (the normaliser and the KL
   * keep every token). 1 keeps all; the paper's 0.2.
   */
  topEntropyQuantile: z.number().min(0).max(1).default(1),
  /**
   * TRL's entropy_coef: loss -= entropyCoef * the mean entropy of the trained rollout tokens, its
   * gradient through the score's entropy. With useAdaptiveEntropy, the starting coefficient.
   */
  entropyCoef: z.number().default(0),
  /**
   * TRL's use_adaptive_entropy (Skywork-OR1): after each optimizer step the coefficient moves by
   * entropyCoefDelta, up when that step's entropy was at or below entropyTarget, down otherwise,
   * within [entropyCoefMin, entropyCoefMax]; it is applied only while the last step's entropy is
   * at or below the target.
   */
  useAdaptiveEntropy: z.boolean().default(false),
  entropyCoefMin: z.number().min(0).default(0),
  entropyCoefMax: z.number().min(0).default(1),
  entropyCoefDelta: z.number().min(0).default(0.005),
  /** Nats per token, over the same tokens as the loss (TRL's default 0.2 acts only near collapse). */
  entropyTarget: z.number().min(0).default(0.2),
  /** ExPO / SFT term: loss -= betaExpo * token-mean log pi(reasoning, answer | prompt). The paper's best: 0.04. */
  betaExpo: z.number().min(0).default(0.04),
  /** Self-explanations sampled every step (online) or once per prompt and kept (offline). */
  explanations: z.enum(['online', 'offline']).default('online'),
  /** Temperature of the self-explanation draw. */
  explainTemperature: z.number().gt(0).default(0.7),
  /**
   * Which self-explanations ExPO trains on: every one ('none'), or only those whose own final
   * answer is the one they were given ('consistent': an explanation that argues for another
   * answer cannot raise p(a* | q, c~), the paper's second property).
   */
  explanationFilter: z.enum(['none', 'consistent']).default('none'),
  /**
   * Measure ExPO's premise every step on the prompts whose rollouts were all wrong (diagnostics.ts);
   * algorithms that make no self-explanations sample them for it, outside the step's phases.
   */
  diagnostics: z.boolean().default(true),
  /** ExP-DPO's beta. */
  dpoBeta: z.number().gt(0).default(0.1),
  /** TRL's log_completions: each step record carries its rollouts (prompt, completion, rewards), and `napo train` prints them. */
  logCompletions: z.boolean().default(false),
  /** TRL's num_completions_to_print: how many of them (default all). */
  numCompletionsToPrint: positiveInteger.optional(),
  /** Evaluate on the held-out items every N steps (0 = at the end only). */
  evalEvery: z.number().int().min(0).default(0),
  /** Write a checkpoint every N steps (0 = never). */
  saveEvery: z.number().int().min(0).default(0),
  /** Prompts through the tokenizer's chat template when it has one (a user message + the generation prompt). */
  chatTemplate: z.boolean().default(true),
  /** A system message before each prompt (chat template only). */
  systemPrompt: z.string().optional(),
  /** Extra chat-template variables, e.g. { enable_thinking: false } for Qwen3. */
  chatTemplateArgs: z.record(z.string(), z.unknown()).default({}),
});

export type TrainConfig = z.output<typeof trainConfigSchema>;
export type TrainConfigInput = z.input<typeof trainConfigSchema>;

/** One readable message per problem, naming the field. */
export function describeIssue(issue: z.core.$ZodIssue): string {
  const field = issue.path.length > 0 ? issue.path.join('.') : 'config';
  switch (issue.code) {
    case 'too_small':
      if (issue.origin === 'array') return `${field} must have at least ${String(issue.minimum)} ${Number(issue.minimum) === 1 ? 'entry' : 'entries'}`;
      return `${field} must be ${issue.inclusive ? '>=' : '>'} ${String(issue.minimum)}`;
    case 'too_big':
      return `${field} must be ${issue.inclusive ? '<=' : '<'} ${String(issue.maximum)}`;
    case 'invalid_value':
      return `${field} must be one of ${issue.values.map(String).join(', ')}`;
    case 'invalid_type':
      return `${field} must be ${issue.expected === 'int' ? 'an integer' : `a ${issue.expected}`}`;
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
    default:
      return `${field}: ${issue.message}`;
  }
}

/** Validates a schema's input and fills in defaults; throws a RangeError listing every problem. */
export function parseConfig<Schema extends z.ZodType>(schema: Schema, input: unknown, what: string): z.output<Schema> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new RangeError(`${what}: ${result.error.issues.map(describeIssue).join('; ')}`);
}

export function trainConfig(input: TrainConfigInput = {}): TrainConfig {
  const config = parseConfig(trainConfigSchema.strict(), input, 'train config');
  if (config.lossType === 'luspo' && config.importanceSamplingLevel !== 'sequence') {
    throw new RangeError("train config: lossType luspo needs importanceSamplingLevel 'sequence' (GSPO's weights)");
  }
  if (config.lossType === 'vespo' && config.importanceSamplingLevel !== 'token') {
    throw new RangeError("train config: lossType vespo weighs whole sequences itself; importanceSamplingLevel must be 'token'");
  }
  if (config.lossType === 'luspo' && config.topEntropyQuantile < 1) {
    throw new RangeError('train config: topEntropyQuantile needs a per-token loss; luspo has one loss per sequence');
  }
  const entropyOptions = config.topEntropyQuantile < 1 || config.entropyCoef !== 0 || config.useAdaptiveEntropy;
  if (config.algorithm === 'expo-dpo' && entropyOptions) {
    throw new RangeError('train config: topEntropyQuantile, entropyCoef and useAdaptiveEntropy act on the policy-gradient loss, which expo-dpo does not have');
  }
  if (config.multiObjectiveAggregation === 'normalize_then_sum' && (config.scaleRewards !== 'group' || config.estimator !== 'grpo')) {
    throw new RangeError('train config: multiObjectiveAggregation normalize_then_sum normalises each reward itself; scaleRewards and estimator do not apply');
  }
  if (config.syncRefModel && !(config.klBeta > 0 || config.algorithm === 'expo-dpo')) {
    throw new RangeError('train config: syncRefModel needs a frozen policy (klBeta > 0 or algorithm expo-dpo)');
  }
  if (config.entropyCoefMin > config.entropyCoefMax) {
    throw new RangeError(`train config: entropyCoefMin = ${config.entropyCoefMin} must be <= entropyCoefMax = ${config.entropyCoefMax}`);
  }
  return config;
}

/**
 * The RL ops on napo tensors (CPU or CUDA, by where the tensors live). Options are normalised here
 * (defaults, per-row arrays, enum names); every value is validated natively before any output
 * is written. Semantics: docs/ops.md.
 */
import { addon, type NativeTensorHandle } from './native.js';
import { toUint64 } from './reference/philox.js';
import { checkChoice } from './reference/validate.js';
import { Tensor } from './tensor.js';
import type {
  AdvantageEstimator,
  AdvantageScale,
  GroupAdvantagesOptions,
  LossType,
  PerRow,
  PolicyLossOptions,
  PolicyLossStats,
  SampleOptions,
  TokenLogprobsOptions,
} from './types.js';

export interface SampleResult {
  /** int32 [B]. */
  tokens: Tensor<'int32'>;
  /** float32 [B]: log p(token) under the temperature-scaled, unfiltered distribution. */
  logprobs: Tensor<'float32'>;
}

export interface TokenLogprobsResult {
  /** float32 [N]: z[token] - logsumexp(z), z = logits / T. */
  logprobs: Tensor<'float32'>;
  /** float32 [N]: logsumexp(z), kept for the backward. */
  lse: Tensor<'float32'>;
  /** float32 [N], when asked for. */
  entropy?: Tensor<'float32'>;
}

export interface TokenLogprobsBackwardOptions {
  /** d loss / d entropy [N]; omitted = 0. */
  gradEntropy?: Tensor<'float32'>;
  /** The forward's entropy [N]; saves a pass over the logits when gradEntropy is given. */
  entropy?: Tensor<'float32'>;
  /** The forward's temperature. Default 1. */
  temperature?: number;
  /** Write the gradient over the logits (saves [N, V] of memory); the logits are lost. */
  inPlace?: boolean;
}

export interface PolicyLossInputs {
  /** float32 [S, T]: log-probs under the policy being trained. */
  logprobs: Tensor<'float32'>;
  /** float32 [S, T]: log-probs at sampling time. */
  oldLogprobs: Tensor<'float32'>;
  /** float32 [S, T]: log-probs under the frozen reference (for the KL term). */
  refLogprobs?: Tensor<'float32'>;
  /** float32 [S]. */
  advantages: Tensor<'float32'>;
  /** float32 [S, T]: 1 for completion tokens, 0 for padding. */
  mask: Tensor<'float32'>;
}

export interface PolicyLossResult {
  loss: number;
  /** float32 [S, T]: d loss / d logprobs. */
  gradLogprobs: Tensor<'float32'>;
  stats: PolicyLossStats;
}

const scales: readonly AdvantageScale[] = ['group', 'batch', 'none'];
const estimators: readonly AdvantageEstimator[] = ['grpo', 'rloo'];
const lossTypes: readonly LossType[] = ['grpo', 'bnpo', 'dr_grpo', 'dapo'];

function floatsPerRow(value: PerRow | undefined, fallback: number): Float32Array {
  if (value === undefined) return Float32Array.of(fallback);
  return typeof value === 'number' ? Float32Array.of(value) : Float32Array.from(value);
}

function integersPerRow(op: string, name: string, value: PerRow | undefined, fallback: number): Int32Array {
  const given = value === undefined ? [fallback] : typeof value === 'number' ? [value] : Array.from(value);
  for (const [index, entry] of given.entries()) {
    if (!Number.isInteger(entry) || entry < -(2 ** 31) || entry >= 2 ** 31) {
      throw new RangeError(`${op}: ${name}[${index}] = ${entry} must be an integer`);
    }
  }
  return Int32Array.from(given);
}

function wrap<T extends 'float32' | 'int32' | 'bfloat16'>(handle: NativeTensorHandle): Tensor<T> {
  return Tensor.fromHandle<T>(handle);
}

/**
 * Draws one token per row of `logits` [B, V] (float32 or bfloat16): temperature, top-k, top-p,
 * min-p, then an inverse-CDF draw keyed by (seed, offset, row): the same call gives the same
 * tokens on every thread count and device. Temperature 0 is greedy.
 * @throws RangeError on NaN/+Inf logits, a row with no finite logit, or a bad parameter.
 */
export function sample(logits: Tensor, options: SampleOptions = {}): SampleResult {
  const result = addon().sample(logits.handle, {
    temperature: floatsPerRow(options.temperature, 1),
    topK: integersPerRow('sample', 'topK', options.topK, 0),
    topP: floatsPerRow(options.topP, 1),
    minP: floatsPerRow(options.minP, 0),
    seed: toUint64(options.seed ?? 0, 'sample: seed'),
    offset: toUint64(options.offset ?? 0, 'sample: offset'),
  });
  return { tokens: wrap(result.tokens), logprobs: wrap(result.logprobs) };
}

/**
 * log p(tokens[n] | row n) for logits [N, V], in one pass over each row (online max and sum),
 * with the entropy of each row when asked. Never materialises [N, V] probabilities.
 */
export function tokenLogprobs(
  logits: Tensor,
  tokens: Tensor<'int32'>,
  options: TokenLogprobsOptions = {},
): TokenLogprobsResult {
  const result = addon().tokenLogprobs(logits.handle, tokens.handle, options.temperature ?? 1, options.entropy ?? false);
  return {
    logprobs: wrap(result.logprobs),
    lse: wrap(result.lse),
    ...(result.entropy ? { entropy: wrap<'float32'>(result.entropy) } : {}),
  };
}

/**
 * d/dlogits of sum(gradLogprobs * logprobs + gradEntropy * entropy): [N, V] in the logits' dtype.
 */
export function tokenLogprobsBackward(
  logits: Tensor,
  tokens: Tensor<'int32'>,
  lse: Tensor<'float32'>,
  gradLogprobs: Tensor<'float32'>,
  options: TokenLogprobsBackwardOptions = {},
): Tensor {
  const handle = addon().tokenLogprobsBackward(
    logits.handle,
    tokens.handle,
    lse.handle,
    options.entropy?.handle ?? null,
    gradLogprobs.handle,
    options.gradEntropy?.handle ?? null,
    options.temperature ?? 1,
    options.inPlace ?? false,
  );
  return options.inPlace ? logits : wrap(handle);
}

/** Group boundaries from either form of the options, checked for what the native side cannot see. */
function groupOffsets(count: number, options: GroupAdvantagesOptions): Int32Array {
  const op = 'groupAdvantages';
  if ((options.groupSize === undefined) === (options.groupOffsets === undefined)) {
    throw new RangeError(`${op}: give exactly one of groupSize and groupOffsets`);
  }
  if (options.groupOffsets !== undefined) return integersPerRow(op, 'groupOffsets', options.groupOffsets, 0);
  const size = options.groupSize as number;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`${op}: groupSize ${size} must be an integer >= 1`);
  if (count % size !== 0) throw new RangeError(`${op}: groupSize ${size} does not divide ${count} rewards`);
  return Int32Array.from({ length: count / size + 1 }, (_, group) => group * size);
}

/**
 * Group-normalised advantages of rewards [S] (TRL's conventions): (r - group mean) / (std + eps),
 * std unbiased, of the group or the batch, or not divided ('none', Dr. GRPO); 'rloo' uses the
 * mean of the other samples. A group of one gets 0.
 */
export function groupAdvantages(rewards: Tensor<'float32'>, options: GroupAdvantagesOptions): Tensor<'float32'> {
  const op = 'groupAdvantages';
  const offsets = groupOffsets(rewards.shape[0] ?? 0, options);
  const scale = scales.indexOf(checkChoice(op, 'scale', options.scale ?? 'group', scales));
  const estimator = estimators.indexOf(checkChoice(op, 'estimator', options.estimator ?? 'grpo', estimators));
  return wrap(addon().groupAdvantages(rewards.handle, offsets, scale, estimator, options.eps ?? 1e-4));
}

/**
 * The clipped policy-gradient loss with an optional k3 KL, and its gradient with respect to
 * `logprobs`, in one pass; aggregated as TRL's loss types.
 */
export function policyLoss(inputs: PolicyLossInputs, options: PolicyLossOptions = {}): PolicyLossResult {
  const op = 'policyLoss';
  const lossType = lossTypes.indexOf(checkChoice(op, 'lossType', options.lossType ?? 'grpo', lossTypes));
  for (const [name, value] of [
    ['maxCompletionLength', options.maxCompletionLength],
    ['numItemsInBatch', options.numItemsInBatch],
  ] as const) {
    if (value !== undefined && !(value > 0)) throw new RangeError(`${op}: ${name} = ${value} must be > 0`);
  }
  const result = addon().policyLoss(
    inputs.logprobs.handle,
    inputs.oldLogprobs.handle,
    inputs.refLogprobs?.handle ?? null,
    inputs.advantages.handle,
    inputs.mask.handle,
    {
      epsLow: options.epsLow ?? 0.2,
      epsHigh: options.epsHigh ?? 0.2,
      beta: options.beta ?? 0,
      lossType,
      maxCompletionLength: options.maxCompletionLength ?? 0,
      numItemsInBatch: options.numItemsInBatch ?? 0,
    },
  );
  return { loss: result.loss, gradLogprobs: wrap(result.gradLogprobs), stats: result.stats };
}

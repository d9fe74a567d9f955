/**
 * The RL ops on napo tensors (CPU or CUDA, by where the tensors live), each in a sync form and an
 * async one (`xxxAsync`) that runs off the JS thread and returns a Promise. Options are normalised
 * here (defaults, per-row arrays, enum names, types); every value is validated natively before any
 * output is written. Semantics: docs/ops.md.
 */
import { addon, type NativeOps, type NativeTensorHandle } from './native.js';
import { toUint64 } from './reference/philox.js';
import { checkChoice } from './reference/validate.js';
import { checkTensorArgument, Tensor } from './tensor.js';
import type {
  AdvantageEstimator,
  AdvantageScale,
  GroupAdvantagesOptions,
  ImportanceSamplingLevel,
  LinearLogprobsOptions,
  LossType,
  MaskDType,
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

export interface LinearLogprobsBackwardOptions {
  /** The forward's temperature. Default 1. */
  temperature?: number;
  /** The forward's chunk size (any value gives the same result). */
  chunkSize?: number;
  /** d loss / d entropy [N]; omitted = 0. */
  gradEntropy?: Tensor<'float32'>;
  /** The forward's entropy [N]; without it, gradEntropy costs one more pass over the vocabulary. */
  entropy?: Tensor<'float32'>;
  /**
   * Accumulate into these (float32 [N, H] and [V, H], both or neither), as a model's LM-head
   * gradient needs; they are returned. Default: new tensors.
   */
  gradHidden?: Tensor<'float32'>;
  gradWeight?: Tensor<'float32'>;
}

export interface LinearLogprobsGradients {
  /** float32 [N, H]. */
  gradHidden: Tensor<'float32'>;
  /** float32 [V, H]. */
  gradWeight: Tensor<'float32'>;
}

export interface PolicyLossInputs {
  /** float32 [S, T]: log-probs under the policy being trained. */
  logprobs: Tensor<'float32'>;
  /** float32 [S, T]: log-probs at sampling time. */
  oldLogprobs: Tensor<'float32'>;
  /** float32 [S, T]: log-probs under the frozen reference (for the KL term). */
  refLogprobs?: Tensor<'float32'>;
  /** float32 [S, T]: each position's entropy (for topEntropyQuantile, entropyCoef, meanEntropy). */
  entropy?: Tensor<'float32'>;
  /** float32 [S]. */
  advantages: Tensor<'float32'>;
  /** [S, T] of 1 for completion tokens, 0 for padding: float32, int32, uint8 or bool. */
  mask: Tensor<MaskDType>;
}

export interface PolicyLossResult {
  loss: number;
  /** float32 [S, T]: d loss / d logprobs. */
  gradLogprobs: Tensor<'float32'>;
  /** float32 [S, T]: d loss / d entropy, when `entropy` was given (for `scoreBackward`). */
  gradEntropy?: Tensor<'float32'>;
  stats: PolicyLossStats;
}

const scales: readonly AdvantageScale[] = ['group', 'batch', 'none'];
const estimators: readonly AdvantageEstimator[] = ['grpo', 'rloo'];
const lossTypes: readonly LossType[] = ['grpo', 'bnpo', 'dr_grpo', 'dapo', 'cispo', 'sapo', 'luspo', 'vespo'];
const importanceLevels: readonly ImportanceSamplingLevel[] = ['token', 'sequence'];

/** One of `allowed`, by name; a value that is not a string at all is a TypeError. */
function choiceOption<Choice extends string>(
  op: string,
  name: string,
  value: unknown,
  allowed: readonly Choice[],
  fallback: Choice,
): Choice {
  if (value === undefined) return fallback;
  if (typeof value !== 'string') throw new TypeError(`${op}: ${name} must be one of ${allowed.join(', ')}, got ${typeof value}`);
  return checkChoice(op, name, value, allowed);
}

function checkOptions(op: string, options: unknown): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`${op}: options must be an object`);
  }
}

function perRowValues(op: string, name: string, value: PerRow | undefined, fallback: number): number[] {
  if (value === undefined) return [fallback];
  if (typeof value === 'number') return [value];
  if (!Array.isArray(value) && !(value instanceof Float32Array) && !(value instanceof Int32Array)) {
    throw new TypeError(`${op}: ${name} must be a number or an array of numbers, one per row`);
  }
  return Array.from(value as ArrayLike<unknown>, (entry, index) => {
    if (typeof entry !== 'number') throw new TypeError(`${op}: ${name}[${index}] must be a number`);
    return entry;
  });
}

function floatsPerRow(op: string, name: string, value: PerRow | undefined, fallback: number): Float32Array {
  return Float32Array.from(perRowValues(op, name, value, fallback));
}

function integersPerRow(op: string, name: string, value: PerRow | undefined, fallback: number): Int32Array {
  const given = perRowValues(op, name, value, fallback);
  for (const [index, entry] of given.entries()) {
    if (!Number.isInteger(entry) || entry < -(2 ** 31) || entry >= 2 ** 31) {
      throw new RangeError(`${op}: ${name}[${index}] = ${entry} must be an integer`);
    }
  }
  return Int32Array.from(given);
}

function numberOption(op: string, name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw new TypeError(`${op}: ${name} must be a number, got ${typeof value}`);
  return value;
}

function booleanOption(op: string, name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new TypeError(`${op}: ${name} must be a boolean, got ${typeof value}`);
  return value;
}

function handleOf(op: string, name: string, value: unknown): NativeTensorHandle {
  return checkTensorArgument(op, name, value).handle;
}

function optionalHandle(op: string, name: string, value: unknown): NativeTensorHandle | null {
  return value === undefined ? null : handleOf(op, name, value);
}

function wrap<T extends 'float32' | 'int32' | 'bfloat16'>(handle: NativeTensorHandle): Tensor<T> {
  return Tensor.fromHandle<T>(handle);
}

type NativeResult<K extends keyof NativeOps> = ReturnType<NativeOps[K]>;

function sampleArgs(logits: Tensor, options: SampleOptions): Parameters<NativeOps['sample']> {
  const op = 'sample';
  checkOptions(op, options);
  return [
    handleOf(op, 'logits', logits),
    {
      temperature: floatsPerRow(op, 'temperature', options.temperature, 1),
      topK: integersPerRow(op, 'topK', options.topK, 0),
      topP: floatsPerRow(op, 'topP', options.topP, 1),
      minP: floatsPerRow(op, 'minP', options.minP, 0),
      seed: toUint64(options.seed ?? 0, 'sample: seed'),
      offset: toUint64(options.offset ?? 0, 'sample: offset'),
    },
  ];
}

function sampleResult(result: NativeResult<'sample'>): SampleResult {
  return { tokens: wrap(result.tokens), logprobs: wrap(result.logprobs) };
}

/**
 * Draws one token per row of `logits` [B, V] (float32 or bfloat16): temperature, top-k, top-p,
 * min-p, then an inverse-CDF draw keyed by (seed, offset, row): the same call gives the same
 * tokens on every thread count and device. Temperature 0 is greedy.
 * @throws RangeError on NaN/+Inf logits, a row with no finite logit, or a bad parameter.
 */
export function sample(logits: Tensor, options: SampleOptions = {}): SampleResult {
  return sampleResult(addon().sample(...sampleArgs(logits, options)));
}

/** sample() off the JS thread. */
export async function sampleAsync(logits: Tensor, options: SampleOptions = {}): Promise<SampleResult> {
  return sampleResult(await addon().sampleAsync(...sampleArgs(logits, options)));
}

function tokenLogprobsArgs(
  logits: Tensor,
  tokens: Tensor<'int32'>,
  options: TokenLogprobsOptions,
): Parameters<NativeOps['tokenLogprobs']> {
  const op = 'tokenLogprobs';
  checkOptions(op, options);
  return [
    handleOf(op, 'logits', logits),
    handleOf(op, 'tokens', tokens),
    numberOption(op, 'temperature', options.temperature, 1),
    booleanOption(op, 'entropy', options.entropy, false),
  ];
}

function tokenLogprobsResult(result: NativeResult<'tokenLogprobs'>): TokenLogprobsResult {
  return {
    logprobs: wrap(result.logprobs),
    lse: wrap(result.lse),
    ...(result.entropy ? { entropy: wrap<'float32'>(result.entropy) } : {}),
  };
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
  return tokenLogprobsResult(addon().tokenLogprobs(...tokenLogprobsArgs(logits, tokens, options)));
}

/** tokenLogprobs() off the JS thread. */
export async function tokenLogprobsAsync(
  logits: Tensor,
  tokens: Tensor<'int32'>,
  options: TokenLogprobsOptions = {},
): Promise<TokenLogprobsResult> {
  return tokenLogprobsResult(await addon().tokenLogprobsAsync(...tokenLogprobsArgs(logits, tokens, options)));
}

function backwardArgs(
  logits: Tensor,
  tokens: Tensor<'int32'>,
  lse: Tensor<'float32'>,
  gradLogprobs: Tensor<'float32'>,
  options: TokenLogprobsBackwardOptions,
): Parameters<NativeOps['tokenLogprobsBackward']> {
  const op = 'tokenLogprobsBackward';
  checkOptions(op, options);
  return [
    handleOf(op, 'logits', logits),
    handleOf(op, 'tokens', tokens),
    handleOf(op, 'lse', lse),
    optionalHandle(op, 'entropy', options.entropy),
    handleOf(op, 'gradLogprobs', gradLogprobs),
    optionalHandle(op, 'gradEntropy', options.gradEntropy),
    numberOption(op, 'temperature', options.temperature, 1),
    booleanOption(op, 'inPlace', options.inPlace, false),
  ];
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
  const handle = addon().tokenLogprobsBackward(...backwardArgs(logits, tokens, lse, gradLogprobs, options));
  return options.inPlace ? logits : wrap(handle);
}

/** tokenLogprobsBackward() off the JS thread. */
export async function tokenLogprobsBackwardAsync(
  logits: Tensor,
  tokens: Tensor<'int32'>,
  lse: Tensor<'float32'>,
  gradLogprobs: Tensor<'float32'>,
  options: TokenLogprobsBackwardOptions = {},
): Promise<Tensor> {
  const handle = await addon().tokenLogprobsBackwardAsync(...backwardArgs(logits, tokens, lse, gradLogprobs, options));
  return options.inPlace ? logits : wrap(handle);
}

/** Group boundaries from either form of the options, checked for what the native side cannot see. */
function groupOffsets(count: number, options: GroupAdvantagesOptions): Int32Array {
  const op = 'groupAdvantages';
  if ((options.groupSize === undefined) === (options.groupOffsets === undefined)) {
    throw new RangeError(`${op}: give exactly one of groupSize and groupOffsets`);
  }
  if (options.groupOffsets !== undefined) return integersPerRow(op, 'groupOffsets', options.groupOffsets, 0);
  const size = numberOption(op, 'groupSize', options.groupSize, 1);
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`${op}: groupSize ${size} must be an integer >= 1`);
  if (count % size !== 0) throw new RangeError(`${op}: groupSize ${size} does not divide ${count} rewards`);
  return Int32Array.from({ length: count / size + 1 }, (_, group) => group * size);
}

function advantagesArgs(
  rewards: Tensor<'float32'>,
  options: GroupAdvantagesOptions,
): Parameters<NativeOps['groupAdvantages']> {
  const op = 'groupAdvantages';
  const handle = handleOf(op, 'rewards', rewards);
  checkOptions(op, options);
  const offsets = groupOffsets(rewards.shape[0] ?? 0, options);
  const scale = scales.indexOf(choiceOption(op, 'scale', options.scale, scales, 'group'));
  const estimator = estimators.indexOf(choiceOption(op, 'estimator', options.estimator, estimators, 'grpo'));
  return [handle, offsets, scale, estimator, numberOption(op, 'eps', options.eps, 1e-4)];
}

/**
 * Group-normalised advantages of rewards [S] (TRL's conventions): (r - group mean) / (std + eps),
 * std unbiased, of the group or the batch, or not divided ('none', Dr. GRPO); 'rloo' uses the
 * mean of the other samples. A group of one gets 0.
 */
export function groupAdvantages(rewards: Tensor<'float32'>, options: GroupAdvantagesOptions): Tensor<'float32'> {
  return wrap(addon().groupAdvantages(...advantagesArgs(rewards, options)));
}

/** groupAdvantages() off the JS thread. */
export async function groupAdvantagesAsync(
  rewards: Tensor<'float32'>,
  options: GroupAdvantagesOptions,
): Promise<Tensor<'float32'>> {
  return wrap(await addon().groupAdvantagesAsync(...advantagesArgs(rewards, options)));
}

function policyLossArgs(inputs: PolicyLossInputs, options: PolicyLossOptions): Parameters<NativeOps['policyLoss']> {
  const op = 'policyLoss';
  checkOptions(op, inputs);
  checkOptions(op, options);
  const lossType = lossTypes.indexOf(choiceOption(op, 'lossType', options.lossType, lossTypes, 'grpo'));
  const normaliser = (name: string, value: unknown): number => {
    const given = numberOption(op, name, value, 0);
    if (value !== undefined && !(given > 0)) throw new RangeError(`${op}: ${name} = ${given} must be > 0`);
    return given;
  };
  return [
    handleOf(op, 'logprobs', inputs.logprobs),
    handleOf(op, 'oldLogprobs', inputs.oldLogprobs),
    optionalHandle(op, 'refLogprobs', inputs.refLogprobs),
    optionalHandle(op, 'entropy', inputs.entropy),
    handleOf(op, 'advantages', inputs.advantages),
    handleOf(op, 'mask', inputs.mask),
    {
      epsLow: numberOption(op, 'epsLow', options.epsLow, 0.2),
      epsHigh: numberOption(op, 'epsHigh', options.epsHigh, 0.2),
      beta: numberOption(op, 'beta', options.beta, 0),
      lossType,
      maxCompletionLength: normaliser('maxCompletionLength', options.maxCompletionLength),
      numItemsInBatch: normaliser('numItemsInBatch', options.numItemsInBatch),
      importanceSamplingLevel: importanceLevels.indexOf(choiceOption(op, 'importanceSamplingLevel', options.importanceSamplingLevel, importanceLevels, 'token')),
      // 0 is the ABI's "off"; a given value is checked there (> 1).
      delta: numberOption(op, 'delta', options.delta, 0),
      sapoTemperaturePos: numberOption(op, 'sapoTemperaturePos', options.sapoTemperaturePos, 1),
      sapoTemperatureNeg: numberOption(op, 'sapoTemperatureNeg', options.sapoTemperatureNeg, 1.05),
      entropyQuantile: 1 - topEntropyQuantile(op, options.topEntropyQuantile),
      entropyCoef: numberOption(op, 'entropyCoef', options.entropyCoef, 0),
      biasCorrectionKl: booleanOption(op, 'useBiasCorrectionKl', options.useBiasCorrectionKl, false),
      offPolicyMask: options.offPolicyMaskThreshold !== undefined,
      offPolicyThreshold: numberOption(op, 'offPolicyMaskThreshold', options.offPolicyMaskThreshold, 0),
      vespoKPos: numberOption(op, 'vespoKPos', options.vespoKPos, 2),
      vespoLambdaPos: numberOption(op, 'vespoLambdaPos', options.vespoLambdaPos, 3),
      vespoKNeg: numberOption(op, 'vespoKNeg', options.vespoKNeg, 3),
      vespoLambdaNeg: numberOption(op, 'vespoLambdaNeg', options.vespoLambdaNeg, 2),
    },
  ];
}

/** TRL's top_entropy_quantile, checked by its own name (the ABI takes 1 minus it). */
function topEntropyQuantile(op: string, value: unknown): number {
  const quantile = numberOption(op, 'topEntropyQuantile', value, 1);
  if (!(quantile >= 0 && quantile <= 1)) throw new RangeError(`${op}: topEntropyQuantile = ${quantile} must be in [0, 1]`);
  return quantile;
}

function policyLossResult(result: NativeResult<'policyLoss'>): PolicyLossResult {
  return {
    loss: result.loss,
    gradLogprobs: wrap(result.gradLogprobs),
    ...(result.gradEntropy ? { gradEntropy: wrap(result.gradEntropy) } : {}),
    stats: result.stats,
  };
}

/**
 * The clipped policy-gradient loss with an optional k3 KL, and its gradient with respect to
 * `logprobs`, in one pass; aggregated as TRL's loss types.
 */
export function policyLoss(inputs: PolicyLossInputs, options: PolicyLossOptions = {}): PolicyLossResult {
  return policyLossResult(addon().policyLoss(...policyLossArgs(inputs, options)));
}

/** policyLoss() off the JS thread. */
export async function policyLossAsync(inputs: PolicyLossInputs, options: PolicyLossOptions = {}): Promise<PolicyLossResult> {
  return policyLossResult(await addon().policyLossAsync(...policyLossArgs(inputs, options)));
}

/**
 * Hugging Face's repetition penalty: `logits` [B, V] (float32 or bfloat16) with the logit z of
 * every token in the row's `history` (int32 [B, L], -1 where there is none) made `z * penalty`
 * when z < 0 and `z / penalty` otherwise, once however often it occurs; a new tensor of the
 * logits' dtype. `penalty` > 1 discourages repeats.
 */
export function repetitionPenalty<D extends 'float32' | 'bfloat16'>(logits: Tensor<D>, history: Tensor<'int32'>, penalty: number): Tensor<D> {
  const op = 'repetitionPenalty';
  return Tensor.fromHandle<D>(addon().repetitionPenalty(handleOf(op, 'logits', logits), handleOf(op, 'history', history), numberOption(op, 'penalty', penalty, 1)));
}

/** repetitionPenalty() off the JS thread. */
export async function repetitionPenaltyAsync<D extends 'float32' | 'bfloat16'>(logits: Tensor<D>, history: Tensor<'int32'>, penalty: number): Promise<Tensor<D>> {
  const op = 'repetitionPenalty';
  return Tensor.fromHandle<D>(await addon().repetitionPenaltyAsync(handleOf(op, 'logits', logits), handleOf(op, 'history', history), numberOption(op, 'penalty', penalty, 1)));
}

/**
 * Each row's sum over the positions where the mask is 1 (accumulated in double): a sequence's
 * log-prob from its token log-probs, DPO's sums. Padding may hold anything, even -Infinity.
 * `values` float32 [R, W], `mask` [R, W] (float32, int32, uint8 or bool) -> float32 [R].
 */
export function maskedRowSum(values: Tensor<'float32'>, mask: Tensor<MaskDType>): Tensor<'float32'> {
  return wrap(addon().maskedRowSum(handleOf('maskedRowSum', 'values', values), handleOf('maskedRowSum', 'mask', mask)));
}

/** maskedRowSum() off the JS thread. */
export async function maskedRowSumAsync(values: Tensor<'float32'>, mask: Tensor<MaskDType>): Promise<Tensor<'float32'>> {
  return wrap(await addon().maskedRowSumAsync(handleOf('maskedRowSum', 'values', values), handleOf('maskedRowSum', 'mask', mask)));
}

/** maskedRowSum's gradient: `mask * gradSums[row]`, float32 [R, W]. */
export function maskedRowSumBackward(mask: Tensor<MaskDType>, gradSums: Tensor<'float32'>): Tensor<'float32'> {
  const op = 'maskedRowSumBackward';
  return wrap(addon().maskedRowSumBackward(handleOf(op, 'mask', mask), handleOf(op, 'gradSums', gradSums)));
}

/** maskedRowSumBackward() off the JS thread. */
export async function maskedRowSumBackwardAsync(mask: Tensor<MaskDType>, gradSums: Tensor<'float32'>): Promise<Tensor<'float32'>> {
  const op = 'maskedRowSumBackward';
  return wrap(await addon().maskedRowSumBackwardAsync(handleOf(op, 'mask', mask), handleOf(op, 'gradSums', gradSums)));
}

function linearOptions(op: string, options: LinearLogprobsOptions | LinearLogprobsBackwardOptions) {
  const chunkSize = numberOption(op, 'chunkSize', options.chunkSize, 0);
  if (options.chunkSize !== undefined && !(Number.isInteger(chunkSize) && chunkSize >= 1)) {
    throw new RangeError(`${op}: chunkSize = ${chunkSize} must be an integer >= 1`);
  }
  return { temperature: numberOption(op, 'temperature', options.temperature, 1), chunkSize };
}

function linearLogprobsArgs(
  hidden: Tensor,
  weight: Tensor,
  tokens: Tensor<'int32'>,
  options: LinearLogprobsOptions,
): Parameters<NativeOps['linearLogprobs']> {
  const op = 'linearLogprobs';
  checkOptions(op, options);
  return [
    handleOf(op, 'hidden', hidden),
    handleOf(op, 'weight', weight),
    handleOf(op, 'tokens', tokens),
    linearOptions(op, options),
    booleanOption(op, 'entropy', options.entropy, false),
  ];
}

/**
 * log p(tokens[n]) under softmax(hidden[n] weight^T / T), straight from the hidden states [N, H]
 * and the LM head weight [V, H] (nn.Linear's layout), float32 or bfloat16: the vocabulary is
 * walked in chunks with an online max / sum, so the [N, V] logits never exist.
 */
export function linearLogprobs(
  hidden: Tensor,
  weight: Tensor,
  tokens: Tensor<'int32'>,
  options: LinearLogprobsOptions = {},
): TokenLogprobsResult {
  return tokenLogprobsResult(addon().linearLogprobs(...linearLogprobsArgs(hidden, weight, tokens, options)));
}

/** linearLogprobs() off the JS thread. */
export async function linearLogprobsAsync(
  hidden: Tensor,
  weight: Tensor,
  tokens: Tensor<'int32'>,
  options: LinearLogprobsOptions = {},
): Promise<TokenLogprobsResult> {
  return tokenLogprobsResult(await addon().linearLogprobsAsync(...linearLogprobsArgs(hidden, weight, tokens, options)));
}

function linearBackwardArgs(
  hidden: Tensor,
  weight: Tensor,
  tokens: Tensor<'int32'>,
  lse: Tensor<'float32'>,
  gradLogprobs: Tensor<'float32'>,
  options: LinearLogprobsBackwardOptions,
): Parameters<NativeOps['linearLogprobsBackward']> {
  const op = 'linearLogprobsBackward';
  checkOptions(op, options);
  return [
    handleOf(op, 'hidden', hidden),
    handleOf(op, 'weight', weight),
    handleOf(op, 'tokens', tokens),
    handleOf(op, 'lse', lse),
    optionalHandle(op, 'entropy', options.entropy),
    handleOf(op, 'gradLogprobs', gradLogprobs),
    optionalHandle(op, 'gradEntropy', options.gradEntropy),
    linearOptions(op, options),
    optionalHandle(op, 'gradHidden', options.gradHidden),
    optionalHandle(op, 'gradWeight', options.gradWeight),
  ];
}

function linearGradients(
  result: NativeResult<'linearLogprobsBackward'>,
  options: LinearLogprobsBackwardOptions,
): LinearLogprobsGradients {
  return {
    gradHidden: options.gradHidden ?? wrap(result.gradHidden),
    gradWeight: options.gradWeight ?? wrap(result.gradWeight),
  };
}

/**
 * The gradients of sum(gradLogprobs * logprobs + gradEntropy * entropy) with respect to hidden
 * and weight, recomputing each chunk's logits (nothing of [N, V] is kept between the calls).
 */
export function linearLogprobsBackward(
  hidden: Tensor,
  weight: Tensor,
  tokens: Tensor<'int32'>,
  lse: Tensor<'float32'>,
  gradLogprobs: Tensor<'float32'>,
  options: LinearLogprobsBackwardOptions = {},
): LinearLogprobsGradients {
  const result = addon().linearLogprobsBackward(...linearBackwardArgs(hidden, weight, tokens, lse, gradLogprobs, options));
  return linearGradients(result, options);
}

/** linearLogprobsBackward() off the JS thread. */
export async function linearLogprobsBackwardAsync(
  hidden: Tensor,
  weight: Tensor,
  tokens: Tensor<'int32'>,
  lse: Tensor<'float32'>,
  gradLogprobs: Tensor<'float32'>,
  options: LinearLogprobsBackwardOptions = {},
): Promise<LinearLogprobsGradients> {
  const result = await addon().linearLogprobsBackwardAsync(
    ...linearBackwardArgs(hidden, weight, tokens, lse, gradLogprobs, options),
  );
  return linearGradients(result, options);
}

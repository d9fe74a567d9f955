/**
 * Reference policy-gradient loss (docs/ops.md, "policyLoss"): PPO-style clipping with asymmetric
 * ranges and an optional two-sided cap, CISPO's capped weight or SAPO's gate, at token or sequence
 * (GSPO) importance level, masked to the high-entropy tokens when asked, an optional k3 KL penalty
 * and entropy bonus, TRL's aggregations, its gradients with respect to the logprobs and the
 * entropies, and clip statistics, in float64.
 */
import type { HostTensor, ImportanceSamplingLevel, LossType, MaskDType, PolicyLossOptions, PolicyLossStats } from '../types.js';
import {
  checkChoice,
  checkFiniteEntry,
  checkFloat32Tensor,
  checkMatrixShape,
  checkNonNegative,
  checkPositive,
  opRangeError,
  checkMaskTensor,
} from './validate.js';

const OP = 'policyLoss';
const LOSS_TYPES: readonly LossType[] = ['grpo', 'bnpo', 'dr_grpo', 'dapo', 'cispo', 'sapo', 'luspo', 'vespo'];
const IMPORTANCE_LEVELS: readonly ImportanceSamplingLevel[] = ['token', 'sequence'];

/** The inputs of `policyLoss`: `[S, T]` float32 tensors, and one advantage per sequence. */
export interface PolicyLossInputs {
  /** Current policy's logprobs of the sampled tokens (the differentiated input). */
  logprobs: HostTensor<'float32'>;
  /** The sampling policy's logprobs. */
  oldLogprobs: HostTensor<'float32'>;
  /** The reference policy's logprobs, for the KL penalty. */
  refLogprobs?: HostTensor<'float32'>;
  /** Each position's entropy, for topEntropyQuantile and entropyCoef. */
  entropy?: HostTensor<'float32'>;
  /** `[S]`: one advantage per sequence. */
  advantages: Float32Array | HostTensor<'float32'>;
  /** `[S, T]`: 1 for completion tokens, 0 for padding (float32, int32, uint8 or bool). */
  mask: HostTensor<MaskDType>;
}

export interface PolicyLossResult {
  loss: number;
  /** `d loss / d logprobs`, `[S * T]` row-major. */
  gradLogprobs: Float32Array;
  /** `d loss / d entropy`, `[S * T]`, when `entropy` was given. */
  gradEntropy?: Float32Array;
  stats: PolicyLossStats;
}

interface ResolvedOptions {
  readonly epsLow: number;
  readonly epsHigh: number;
  readonly beta: number;
  readonly lossType: LossType;
  readonly maxCompletionLength: number | undefined;
  readonly numItemsInBatch: number | undefined;
  readonly importanceSamplingLevel: ImportanceSamplingLevel;
  /** 0: off. */
  readonly delta: number;
  readonly sapoTemperaturePos: number;
  readonly sapoTemperatureNeg: number;
  /** 1 - topEntropyQuantile as the ABI's float32; 0: every token kept. */
  readonly entropyQuantile: number;
  readonly entropyCoef: number;
  readonly biasCorrectionKl: boolean;
  /** undefined: no off-policy mask. */
  readonly offPolicyThreshold: number | undefined;
  readonly vespo: { readonly kPos: number; readonly lambdaPos: number; readonly kNeg: number; readonly lambdaNeg: number };
}

interface CheckedInputs {
  readonly sequences: number;
  readonly length: number;
  readonly logprobs: Float32Array;
  readonly oldLogprobs: Float32Array;
  readonly refLogprobs: Float32Array | undefined;
  readonly entropy: Float32Array | undefined;
  readonly advantages: Float32Array;
  readonly mask: ArrayLike<number>;
}

/** Which masked tokens keep their surrogate, and the batch's counts the aggregation needs. */
interface EntropySelection {
  readonly kept: Uint8Array;
  readonly threshold: number;
  readonly keptTotal: number;
}

/** What one token contributes before aggregation. */
interface TokenTerms {
  readonly loss: number;
  readonly gradient: number;
  readonly ratio: number;
  readonly kl: number;
  readonly clippedLow: boolean;
  readonly clippedHigh: boolean;
}

function resolveOptions(options: PolicyLossOptions): ResolvedOptions {
  const epsLow = options.epsLow ?? 0.2;
  const epsHigh = options.epsHigh ?? 0.2;
  const beta = options.beta ?? 0;
  checkNonNegative(OP, 'epsLow', epsLow);
  checkNonNegative(OP, 'epsHigh', epsHigh);
  checkNonNegative(OP, 'beta', beta);
  const lossType = checkChoice(OP, 'lossType', options.lossType ?? 'grpo', LOSS_TYPES);
  const { maxCompletionLength, numItemsInBatch } = options;
  if (maxCompletionLength !== undefined) checkPositive(OP, 'maxCompletionLength', maxCompletionLength);
  if (numItemsInBatch !== undefined) checkPositive(OP, 'numItemsInBatch', numItemsInBatch);
  const importanceSamplingLevel = checkChoice(OP, 'importanceSamplingLevel', options.importanceSamplingLevel ?? 'token', IMPORTANCE_LEVELS);
  if (lossType === 'luspo' && importanceSamplingLevel !== 'sequence') throw opRangeError(OP, 'lossType luspo needs importanceSamplingLevel sequence');
  const delta = options.delta ?? 0;
  if (!(delta === 0 || (delta > 1 && Number.isFinite(delta)))) throw opRangeError(OP, `delta = ${delta} must be > 1 and finite (0: off)`);
  const sapoTemperaturePos = options.sapoTemperaturePos ?? 1;
  const sapoTemperatureNeg = options.sapoTemperatureNeg ?? 1.05;
  if (lossType === 'sapo') {
    checkPositive(OP, 'sapoTemperaturePos', sapoTemperaturePos);
    checkPositive(OP, 'sapoTemperatureNeg', sapoTemperatureNeg);
  }
  const topEntropyQuantile = options.topEntropyQuantile ?? 1;
  if (!(topEntropyQuantile >= 0 && topEntropyQuantile <= 1)) throw opRangeError(OP, `topEntropyQuantile = ${topEntropyQuantile} must be in [0, 1]`);
  const entropyCoef = options.entropyCoef ?? 0;
  if (!Number.isFinite(entropyCoef)) throw opRangeError(OP, `entropyCoef = ${entropyCoef} must be finite`);
  if (topEntropyQuantile < 1 && lossType === 'luspo') throw opRangeError(OP, 'lossType luspo has no per-token surrogate for entropyQuantile to mask');
  if (lossType === 'vespo' && importanceSamplingLevel !== 'token') {
    throw opRangeError(OP, 'lossType vespo weighs whole sequences itself; importanceSamplingLevel must be token');
  }
  const vespo = { kPos: options.vespoKPos ?? 2, lambdaPos: options.vespoLambdaPos ?? 3, kNeg: options.vespoKNeg ?? 3, lambdaNeg: options.vespoLambdaNeg ?? 2 };
  if (lossType === 'vespo') {
    for (const [name, value] of [['vespoKPos', vespo.kPos], ['vespoKNeg', vespo.kNeg]] as const) {
      if (!(value >= 0 && Number.isFinite(value))) throw opRangeError(OP, `${name} = ${value} must be >= 0 and finite`);
    }
    for (const [name, value] of [['vespoLambdaPos', vespo.lambdaPos], ['vespoLambdaNeg', vespo.lambdaNeg]] as const) {
      if (!(value > 0 && Number.isFinite(value))) throw opRangeError(OP, `${name} = ${value} must be > 0 and finite`);
    }
  }
  const offPolicyThreshold = options.offPolicyMaskThreshold;
  if (offPolicyThreshold !== undefined && !(offPolicyThreshold >= 0 && Number.isFinite(offPolicyThreshold))) {
    throw opRangeError(OP, `offPolicyMaskThreshold = ${offPolicyThreshold} must be >= 0 and finite`);
  }
  // The C ABI carries the clip ranges, beta, delta and the temperatures as float32.
  return {
    epsLow: Math.fround(epsLow),
    epsHigh: Math.fround(epsHigh),
    beta: Math.fround(beta),
    lossType,
    maxCompletionLength,
    numItemsInBatch,
    importanceSamplingLevel,
    delta: Math.fround(delta),
    sapoTemperaturePos: Math.fround(sapoTemperaturePos),
    sapoTemperatureNeg: Math.fround(sapoTemperatureNeg),
    entropyQuantile: Math.fround(1 - topEntropyQuantile),
    entropyCoef: Math.fround(entropyCoef),
    biasCorrectionKl: options.useBiasCorrectionKl ?? false,
    offPolicyThreshold: offPolicyThreshold === undefined ? undefined : Math.fround(offPolicyThreshold),
    vespo: { kPos: Math.fround(vespo.kPos), lambdaPos: Math.fround(vespo.lambdaPos), kNeg: Math.fround(vespo.kNeg), lambdaNeg: Math.fround(vespo.lambdaNeg) },
  };
}

function checkAdvantages(advantages: Float32Array | HostTensor<'float32'>, sequences: number): Float32Array {
  if (advantages instanceof Float32Array) {
    if (advantages.length !== sequences) {
      throw opRangeError(OP, `advantages has ${advantages.length} entries for ${sequences} sequences`);
    }
    return advantages;
  }
  return checkFloat32Tensor(OP, 'advantages', advantages, [sequences]);
}

function checkInputs(inputs: PolicyLossInputs): CheckedInputs {
  const logprobs = checkFloat32Tensor(OP, 'logprobs', inputs.logprobs);
  const { rows: sequences, columns: length } = checkMatrixShape(
    OP,
    'logprobs',
    inputs.logprobs.shape,
    logprobs.length,
  );
  const shape = [sequences, length];
  const oldLogprobs = checkFloat32Tensor(OP, 'oldLogprobs', inputs.oldLogprobs, shape);
  const refLogprobs =
    inputs.refLogprobs === undefined
      ? undefined
      : checkFloat32Tensor(OP, 'refLogprobs', inputs.refLogprobs, shape);
  const entropy = inputs.entropy === undefined ? undefined : checkFloat32Tensor(OP, 'entropy', inputs.entropy, shape);
  const mask = checkMaskTensor(OP, inputs.mask, shape);
  const advantages = checkAdvantages(inputs.advantages, sequences);
  return { sequences, length, logprobs, oldLogprobs, refLogprobs, entropy, advantages, mask };
}

/**
 * The inputs' rules, in the order the native backends check them: a mask of 0s and 1s, finite
 * advantages, then finite log-probs where the mask is 1. Padding positions routinely hold garbage
 * (e.g. -Infinity logprobs), and they never reach the loss.
 */
function checkValues(inputs: CheckedInputs): void {
  const { sequences, length, mask } = inputs;
  const label = (index: number): string => `[${Math.floor(index / length)}, ${index % length}]`;
  for (let index = 0; index < sequences * length; index++) {
    const value = mask[index] as number;
    if (value !== 0 && value !== 1) throw opRangeError(OP, `mask${label(index)} = ${value} must be 0 or 1`);
  }
  for (let sequence = 0; sequence < sequences; sequence++) {
    checkFiniteEntry(OP, `advantages[${sequence}]`, inputs.advantages[sequence] as number);
  }
  const masked: [string, Float32Array | undefined][] = [
    ['logprobs', inputs.logprobs],
    ['oldLogprobs', inputs.oldLogprobs],
    ['refLogprobs', inputs.refLogprobs],
    ['entropy', inputs.entropy],
  ];
  for (const [name, values] of masked) {
    for (let index = 0; values !== undefined && index < sequences * length; index++) {
      if (mask[index] !== 0) checkFiniteEntry(OP, `${name}${label(index)}`, values[index] as number);
    }
  }
}

function clip(value: number, low: number, high: number): number {
  return Math.min(Math.max(value, low), high);
}

/** A token's surrogate at importance weight `coef`: its loss and d loss / d coef (the clipped types and sapo). */
function surrogate(coef: number, advantage: number, options: ResolvedOptions): { loss: number; dCoef: number } {
  if (options.lossType === 'sapo') {
    const tau = advantage > 0 ? options.sapoTemperaturePos : options.sapoTemperatureNeg;
    const gate = 1 / (1 + Math.exp(-tau * (coef - 1)));
    return { loss: -(4 / tau) * gate * advantage, dCoef: -4 * gate * (1 - gate) * advantage };
  }
  const capped = options.delta > 0 && coef > options.delta;
  const unclipped = (capped ? options.delta : coef) * advantage;
  const clipped = clip(coef, 1 - options.epsLow, 1 + options.epsHigh) * advantage;
  // Pessimistic bound: the unclipped term (and its gradient, unless capped) wins ties.
  return { loss: -Math.min(unclipped, clipped), dCoef: unclipped <= clipped && !capped ? -advantage : 0 };
}

/** Where a token's importance weight comes from, and whether its surrogate counts. */
interface TokenWeight {
  readonly coef: number;
  /** vespo's gamma weight of the token's sequence (0 for the other types). */
  readonly phi: number;
  /** Its own ratio (undefined) or its sequence's: the share of the sequence's tokens that keep their surrogate. */
  readonly keptShare: number | undefined;
  readonly kept: boolean;
  /** The sequence's masked k3 sum over its length: what its weight's dependence adds to the bias-corrected KL's gradient. */
  readonly sequenceKlShare: number;
}

/**
 * The per-token loss, its derivative in the logprob, and what the stats need. `coef` is the
 * token's importance weight: its own ratio, or its sequence's (GSPO), whose derivative in each of
 * the sequence's logprobs is coef / length while its kept tokens carry the same loss, so each
 * token's gradient is dCoef * coef * kept / length (dCoef * coef when all are kept). A token the
 * entropy quantile drops keeps only its KL.
 */
function tokenTerms(logprob: number, weight: TokenWeight, refLogprob: number | undefined, advantage: number, options: ResolvedOptions): TokenTerms {
  const { coef, keptShare, kept, sequenceKlShare } = weight;
  let loss: number;
  let gradient: number;
  let clippedLow = false;
  let clippedHigh: boolean;
  if (options.lossType === 'vespo') {
    // The sequence's gamma weight is a constant: REINFORCE's gradient scaled by it.
    loss = kept ? -weight.phi * advantage * logprob : 0;
    gradient = kept ? -weight.phi * advantage : 0;
    clippedHigh = false;
  } else if (options.lossType === 'cispo') {
    // The capped weight is a constant: REINFORCE's gradient scaled by it.
    const cappedCoef = Math.min(coef, options.epsHigh);
    loss = kept ? -cappedCoef * advantage * logprob : 0;
    gradient = kept ? -cappedCoef * advantage : 0;
    clippedHigh = advantage > 0 && coef > options.epsHigh;
  } else {
    const term = surrogate(coef, advantage, options);
    loss = kept ? term.loss : 0;
    gradient = keptShare === undefined ? (kept ? term.dCoef * coef : 0) : term.dCoef * coef * keptShare;
    const clipped = options.lossType !== 'sapo';
    clippedLow = clipped && advantage < 0 && coef < 1 - options.epsLow;
    clippedHigh = clipped && advantage > 0 && coef > 1 + options.epsHigh;
  }
  let kl = 0;
  if (refLogprob !== undefined) {
    const logRatioToRef = refLogprob - logprob;
    const k3 = Math.exp(logRatioToRef) - logRatioToRef - 1;
    let klGradient = 1 - Math.exp(logRatioToRef);
    kl = k3;
    if (options.biasCorrectionKl) {
      // d (k3 c) / d lp = c dk3/dlp + k3 dc/dlp: dc/dlp = c per token, c / len for each token of a sequence.
      kl = k3 * coef;
      klGradient = coef * klGradient + coef * (options.importanceSamplingLevel === 'token' ? k3 : sequenceKlShare);
    }
    if (options.beta !== 0) {
      loss += options.beta * kl;
      gradient += options.beta * klGradient;
    }
  }
  return { loss, gradient, ratio: coef, kl, clippedLow, clippedHigh };
}

/** A sequence's masked mean log-ratio: GSPO's log weight, minus the off-policy mask's KL. */
function meanLogRatio(inputs: CheckedInputs, sequence: number): number {
  let sum = 0;
  let tokens = 0;
  for (let position = 0; position < inputs.length; position++) {
    const index = sequence * inputs.length + position;
    if (inputs.mask[index] === 0) continue;
    sum += (inputs.logprobs[index] as number) - (inputs.oldLogprobs[index] as number);
    tokens++;
  }
  return sum / Math.max(1, tokens);
}

/**
 * VESPO's gamma weight of a sequence (TRL's get_gamma_weights): w from the sum of its masked
 * log-ratios, each clamped to [-20, 20], log w clamped to [log 1e-8, 20];
 * phi = exp(lambda + k log w - lambda w) with k, lambda by the sign of A; 0 when not finite.
 */
function vespoWeight(inputs: CheckedInputs, sequence: number, advantage: number, options: ResolvedOptions): number {
  let sum = 0;
  for (let position = 0; position < inputs.length; position++) {
    const index = sequence * inputs.length + position;
    if (inputs.mask[index] === 0) continue;
    sum += clip(Math.fround((inputs.logprobs[index] as number) - (inputs.oldLogprobs[index] as number)), -20, 20);
  }
  const logW = clip(sum, Math.log(1e-8), 20);
  const positive = advantage >= 0;
  const k = positive ? options.vespo.kPos : options.vespo.kNeg;
  const lambda = Math.max(positive ? options.vespo.lambdaPos : options.vespo.lambdaNeg, 1e-4);
  const phi = Math.exp(lambda + k * logW - lambda * Math.exp(logW));
  return phi < 3.4e38 ? Math.fround(phi) : 0;
}

/** A sequence's masked k3 KL sum over its masked length (0 without refLogprobs). */
function sequenceKlShare(inputs: CheckedInputs, sequence: number): number {
  let sum = 0;
  let tokens = 0;
  for (let position = 0; position < inputs.length; position++) {
    const index = sequence * inputs.length + position;
    if (inputs.mask[index] === 0 || inputs.refLogprobs === undefined) continue;
    const d = (inputs.refLogprobs[index] as number) - (inputs.logprobs[index] as number);
    sum += Math.exp(d) - d - 1;
    tokens++;
  }
  return sum / Math.max(1, tokens);
}

/**
 * The masked tokens at or above the entropy quantile (torch.quantile's linear interpolation over
 * the masked entropies, rounded to float32 as the native backends carry it), all when off.
 */
function entropySelection(inputs: CheckedInputs, options: ResolvedOptions): EntropySelection {
  const { mask, entropy } = inputs;
  const kept = new Uint8Array(mask.length);
  const masked: number[] = [];
  for (let index = 0; index < mask.length; index++) if (mask[index] !== 0) masked.push(entropy?.[index] ?? 0);
  let threshold = 0;
  if (options.entropyQuantile > 0 && masked.length > 0) {
    masked.sort((a, b) => a - b);
    const position = options.entropyQuantile * (masked.length - 1);
    const lower = Math.floor(position);
    const low = masked[lower] as number;
    const high = masked[Math.min(lower + 1, masked.length - 1)] as number;
    threshold = Math.fround(low + (position - lower) * (high - low));
  }
  let keptTotal = 0;
  for (let index = 0; index < mask.length; index++) {
    const keep = mask[index] !== 0 && (options.entropyQuantile <= 0 || (entropy?.[index] as number) >= threshold);
    kept[index] = keep ? 1 : 0;
    keptTotal += kept[index] as number;
  }
  return { kept, threshold, keptTotal };
}

/** Sum of the mask over one sequence. */
function sequenceMass(mask: ArrayLike<number>, sequence: number, length: number): number {
  let mass = 0;
  for (let position = 0; position < length; position++) mass += mask[sequence * length + position] as number;
  return mass;
}

/**
 * The weight `w` of sequence `sequence`'s masked token losses in the aggregate, per loss type.
 * Normalisers that could be 0 are guarded so an all-padding batch gives loss 0, not NaN.
 */
function aggregationWeight(
  inputs: CheckedInputs,
  options: ResolvedOptions,
  sequence: number,
  totalMass: number,
): number {
  const { sequences, length } = inputs;
  switch (options.lossType) {
    case 'grpo':
    case 'sapo':
      return 1 / (sequences * Math.max(1, sequenceMass(inputs.mask, sequence, length)));
    case 'bnpo':
      return 1 / Math.max(1, totalMass);
    case 'dr_grpo': {
      const normaliser = sequences * (options.maxCompletionLength ?? length);
      return normaliser > 0 ? 1 / normaliser : 0;
    }
    case 'luspo':
      // Each sequence's (uniform) token loss summed over its tokens: its loss times its length.
      return 1 / sequences;
    case 'dapo':
    case 'cispo':
    case 'vespo': {
      const normaliser = options.numItemsInBatch ?? totalMass;
      return normaliser > 0 ? 1 / normaliser : 0;
    }
  }
}

function ratioOrZero(numerator: number, denominator: number): number {
  return denominator > 0 ? numerator / denominator : 0;
}

/**
 * Policy-gradient loss over `[S, T]` tokens.
 *
 * Per token, with `c` the importance weight (`exp(lp - old)`, or GSPO's per sequence):
 * `l = -min(min(c, delta) A, clip(c, 1 - epsLow, 1 + epsHigh) A)` (cispo: `-min(c, epsHigh) A lp`
 * with the weight detached; sapo: `-(4 / tau) sigmoid(tau (c - 1)) A`), times whether the token is
 * kept (its entropy at or above the `1 - topEntropyQuantile` quantile of the masked entropies;
 * always without the option), `+ beta * k3(ref, lp)`, aggregated by `lossType` (grpo, sapo:
 * per-sequence token mean, then mean over sequences; bnpo: sum / sum(mask); dr_grpo:
 * sum / (S * maxCompletionLength); dapo, cispo: sum / numItemsInBatch; luspo, sequence level only:
 * sum / S, each sequence's loss times its length); then `- entropyCoef * sum(kept H) / D` with D
 * dapo's and cispo's normaliser or the kept count.
 * Tokens with mask 0 contribute nothing, not even NaN. Stats are mask-weighted means over the
 * masked tokens (0 when there are none).
 *
 * @throws TypeError when an input is not float32
 * @throws RangeError on mismatched shapes, non-finite masked values, a negative mask, or a bad option
 */
export function policyLoss(inputs: PolicyLossInputs, options: PolicyLossOptions = {}): PolicyLossResult {
  const checked = checkInputs(inputs);
  const resolved = resolveOptions(options);
  if ((resolved.entropyQuantile > 0 || resolved.entropyCoef !== 0) && checked.entropy === undefined) {
    throw opRangeError(OP, 'topEntropyQuantile < 1 and entropyCoef need entropy');
  }
  checkValues(checked);
  const { sequences, length, mask } = checked;
  let totalMass = 0;
  for (let index = 0; index < mask.length; index++) totalMass += mask[index] as number;
  const selection = entropySelection(checked, resolved);
  const gradLogprobs = new Float32Array(sequences * length);
  let loss = 0;
  let clippedLowMass = 0;
  let clippedHighMass = 0;
  let klMass = 0;
  let ratioMass = 0;
  let keptEntropy = 0;
  let dropped = 0;
  let phiSum = 0;
  // Per sequence: its clip fractions (TRL's extremes) and whether it was clipped at all.
  const lowBySequence: number[] = [];
  const highBySequence: number[] = [];
  let lowSequences = 0;
  let highSequences = 0;
  for (let sequence = 0; sequence < sequences; sequence++) {
    let lowMass = 0;
    let highMass = 0;
    const weight = aggregationWeight(checked, resolved, sequence, totalMass);
    const advantage = checked.advantages[sequence] as number;
    const logWeight = meanLogRatio(checked, sequence);
    const perSequence = resolved.importanceSamplingLevel === 'sequence' ? Math.exp(logWeight) : undefined;
    // The off-policy mask keeps A >= 0, or a mean of old - lp within the threshold.
    const sequenceKept = resolved.offPolicyThreshold === undefined || advantage >= 0 || -logWeight <= resolved.offPolicyThreshold;
    if (!sequenceKept) dropped++;
    let entropyKeptTokens = 0;
    for (let position = 0; position < length; position++) entropyKeptTokens += selection.kept[sequence * length + position] as number;
    const mass = sequenceMass(mask, sequence, length);
    // CISPO's weight is detached: its tokens never share the sequence's weight.
    const keptShare = perSequence !== undefined && resolved.lossType !== 'cispo' ? (sequenceKept ? entropyKeptTokens / Math.max(1, mass) : 0) : undefined;
    const klShare = perSequence !== undefined && resolved.biasCorrectionKl ? sequenceKlShare(checked, sequence) : 0;
    const phi = resolved.lossType === 'vespo' ? vespoWeight(checked, sequence, advantage, resolved) : 0;
    phiSum += phi;
    for (let position = 0; position < length; position++) {
      const index = sequence * length + position;
      const tokenMask = mask[index] as number;
      if (tokenMask === 0) continue;
      const logprob = checked.logprobs[index] as number;
      const coef = perSequence ?? Math.exp(logprob - (checked.oldLogprobs[index] as number));
      const entropyKept = selection.kept[index] === 1;
      const terms = tokenTerms(logprob, { coef, phi, keptShare, kept: entropyKept && sequenceKept, sequenceKlShare: klShare }, checked.refLogprobs?.[index], advantage, resolved);
      loss += weight * tokenMask * terms.loss;
      gradLogprobs[index] = weight * tokenMask * terms.gradient;
      if (terms.clippedLow) lowMass += tokenMask;
      if (terms.clippedHigh) highMass += tokenMask;
      klMass += tokenMask * terms.kl;
      ratioMass += tokenMask * terms.ratio;
      if (entropyKept && checked.entropy) keptEntropy += checked.entropy[index] as number;
    }
    clippedLowMass += lowMass;
    clippedHighMass += highMass;
    if (mass > 0) {
      lowBySequence.push(lowMass / mass);
      highBySequence.push(highMass / mass);
    }
    if (lowMass > 0) lowSequences++;
    if (highMass > 0) highSequences++;
  }
  const byItems = resolved.lossType === 'dapo' || resolved.lossType === 'cispo' || resolved.lossType === 'vespo';
  const bonusDenominator = Math.max(1, byItems ? (resolved.numItemsInBatch ?? totalMass) : selection.keptTotal);
  const entropyBonus = (resolved.entropyCoef * keptEntropy) / bonusDenominator;
  loss -= entropyBonus;
  // At sequence level the clip is per sequence: fractions of the sequences, as TRL counts them.
  const bySequence = resolved.importanceSamplingLevel === 'sequence';
  const clipLowFraction = bySequence ? lowSequences / sequences : ratioOrZero(clippedLowMass, totalMass);
  const clipHighFraction = bySequence ? highSequences / sequences : ratioOrZero(clippedHighMass, totalMass);
  return {
    loss,
    gradLogprobs,
    ...(checked.entropy ? { gradEntropy: Float32Array.from(selection.kept, (k) => (k === 1 && resolved.entropyCoef !== 0 ? -resolved.entropyCoef / bonusDenominator : 0)) } : {}),
    stats: {
      clipLowFraction,
      clipHighFraction,
      clipFraction: clipLowFraction + clipHighFraction,
      clipLowMin: lowBySequence.length > 0 ? Math.min(...lowBySequence) : 0,
      clipHighMax: highBySequence.length > 0 ? Math.max(...highBySequence) : 0,
      entropyBonus,
      meanKl: ratioOrZero(klMass, totalMass),
      meanRatio: ratioOrZero(ratioMass, totalMass),
      tokenCount: totalMass,
      keptFraction: ratioOrZero(selection.keptTotal, totalMass),
      entropyThreshold: resolved.entropyQuantile > 0 ? selection.threshold : 0,
      meanEntropy: ratioOrZero(keptEntropy, selection.keptTotal),
      offPolicyFraction: dropped / sequences,
      vespoPhiMean: phiSum / sequences,
    },
  };
}

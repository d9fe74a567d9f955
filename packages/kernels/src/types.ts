/** Types shared by the native ops and their pure-TS references. Semantics: docs/ops.md. */

/** uint8 and bool (one byte holding 0 or 1) are for masks. */
export type DType = 'float32' | 'bfloat16' | 'int32' | 'uint8' | 'bool';

/** `cpu` or `cuda:N`. */
export type DeviceName = 'cpu' | `cuda:${number}`;

/** The storage each dtype travels in: bfloat16 travels as its raw 16 bits. */
export interface DTypeArray {
  float32: Float32Array;
  bfloat16: Uint16Array;
  int32: Int32Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

export type AnyTypedArray = Float32Array | Uint16Array | Int32Array | Uint8Array;

/** A mask of 0s and 1s, in any dtype PyTorch users pass one in. */
export type MaskDType = 'float32' | 'int32' | 'uint8' | 'bool';

/** Plain host data in a shape: what the references take, and what `Tensor.toHost()` gives. */
export interface HostTensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: DTypeArray[D];
}

/** A value for every row, or one value per row. */
export type PerRow = number | readonly number[] | Float32Array | Int32Array;

export interface SampleOptions {
  /** 0 = greedy (lowest index wins ties). Default 1. */
  temperature?: PerRow;
  /** Keep the k most likely tokens (ties at the k-th kept); 0 = off. Default 0. */
  topK?: PerRow;
  /** Nucleus mass in (0, 1]; 1 = off. Default 1. */
  topP?: PerRow;
  /** Keep tokens with p >= minP * max p, in [0, 1]; 0 = off. Default 0. */
  minP?: PerRow;
  /** Philox key; the same (seed, offset, row) gives the same draw on every backend. Default 0. */
  seed?: number | bigint;
  /** Philox counter, e.g. the decoding step. Default 0. */
  offset?: number | bigint;
}

export interface TokenLogprobsOptions {
  /** Default 1; must be > 0. */
  temperature?: number;
  /** Also compute the entropy of each row's distribution. Default false. */
  entropy?: boolean;
}

export interface LinearLogprobsOptions {
  /** Default 1; must be > 0. */
  temperature?: number;
  /** Also compute the entropy of each row's distribution. Default false. */
  entropy?: boolean;
  /**
   * Vocabulary columns per chunk; default napo's choice (about 4 MiB of logits at a time, at most
   * V/8 columns once V >= 32K). Extra memory is O(N * chunk + chunk * H).
   */
  chunkSize?: number;
}

export type AdvantageScale = 'group' | 'batch' | 'none';
export type AdvantageEstimator = 'grpo' | 'rloo';

export interface GroupAdvantagesOptions {
  /** Consecutive groups of this many samples; must divide the batch. */
  groupSize?: number;
  /** Group boundaries `[0, ..., S]`, strictly increasing (ragged groups). */
  groupOffsets?: readonly number[] | Int32Array;
  /** Divide by the group's std (`group`), the batch's std (`batch`) or nothing (`none`). Default group. */
  scale?: AdvantageScale;
  /** `grpo`: r - group mean; `rloo`: r - mean of the others. Default grpo. */
  estimator?: AdvantageEstimator;
  /** Added to the std. Default 1e-4 (TRL). */
  eps?: number;
}

export type LossType = 'grpo' | 'bnpo' | 'dr_grpo' | 'dapo' | 'cispo' | 'sapo' | 'luspo' | 'vespo';

/** Where the importance weight lives: per token (PPO, GRPO) or per sequence (GSPO). */
export type ImportanceSamplingLevel = 'token' | 'sequence';

export interface PolicyLossOptions {
  /** Default 0.2. */
  epsLow?: number;
  /** Default 0.2 (DAPO's clip-higher uses e.g. 0.28). */
  epsHigh?: number;
  /** Weight of the k3 KL to refLogprobs. Default 0. */
  beta?: number;
  /**
   * Default grpo. cispo: the importance weight capped at epsHigh (TRL's recommended 5), detached,
   * times A * logprob, aggregated as dapo; sapo: a sigmoid gate instead of the clip, aggregated as grpo;
   * luspo (sequence level only): the clipped surrogate, each sequence's loss times its length, / S;
   * vespo (token level only): the sequence's gamma weight phi(w), detached, times A * logprob,
   * aggregated as dapo.
   */
  lossType?: LossType;
  /** dr_grpo's normaliser; default T. */
  maxCompletionLength?: number;
  /** dapo's and cispo's normaliser; default sum(mask). */
  numItemsInBatch?: number;
  /** Default token; sequence: GSPO's weight exp(mean of the sequence's masked log-ratios). */
  importanceSamplingLevel?: ImportanceSamplingLevel;
  /** Two-sided clipping (INTELLECT-2): the unclipped ratio capped at delta, > 1 (TRL: > 1 + epsHigh). Default off. */
  delta?: number;
  /** sapo's gate temperature where A > 0. Default 1. */
  sapoTemperaturePos?: number;
  /** sapo's gate temperature where A <= 0. Default 1.05. */
  sapoTemperatureNeg?: number;
  /**
   * TRL's top_entropy_quantile: only the masked tokens whose entropy is at or above the
   * (1 - topEntropyQuantile) quantile of the masked tokens' entropies (torch.quantile's linear
   * interpolation) keep their surrogate; the KL and the normaliser keep every token. In [0, 1]:
   * 1 keeps all (default), 0.2 the paper's, 0 only the highest. Needs `entropy`; not with luspo.
   */
  topEntropyQuantile?: number;
  /**
   * The entropy bonus: `loss -= entropyCoef * H`, H the mean entropy over the kept tokens (dapo,
   * cispo: their sum over the type's normaliser, as TRL). Needs `entropy`; `gradEntropy` is
   * d loss / d entropy. Default 0.
   */
  entropyCoef?: number;
  /** vespo's gamma shape where A >= 0: w^k e^(-lambda (w - 1)). Defaults 2 and 3 (TRL's). */
  vespoKPos?: number;
  vespoLambdaPos?: number;
  /** vespo's gamma shape where A < 0. Defaults 3 and 2 (TRL's). */
  vespoKNeg?: number;
  vespoLambdaNeg?: number;
  /** TRL's use_bias_correction_kl (DeepSeek-V3.2): the k3 KL times the importance weight, its gradient included. Default false. */
  useBiasCorrectionKl?: boolean;
  /**
   * TRL's off_policy_mask_threshold (DeepSeek-V3.2): a sequence with A < 0 whose masked mean of
   * `oldLogprobs - logprobs` exceeds it (>= 0) trains no surrogate (its KL stays). Default off.
   */
  offPolicyMaskThreshold?: number;
}

export interface PolicyLossStats {
  /** Fraction of masked tokens with A < 0 and rho < 1 - epsLow (at sequence level: of the sequences, as TRL counts). */
  clipLowFraction: number;
  /** Fraction of masked tokens with A > 0 and rho > 1 + epsHigh (cispo: rho > epsHigh; sapo: 0 for both). */
  clipHighFraction: number;
  clipFraction: number;
  /** The lowest per-sequence clip-low fraction over the sequences with tokens (TRL's clip_ratio/low_min). */
  clipLowMin: number;
  /** The highest per-sequence clip-high fraction (TRL's clip_ratio/high_max). */
  clipHighMax: number;
  /** What the entropy bonus subtracted from the loss (TRL's policy_loss is loss + this). */
  entropyBonus: number;
  /** Mean k3 KL over masked tokens (0 without refLogprobs). */
  meanKl: number;
  /** Mean of the importance weight (rho, or the sequence's) over masked tokens. */
  meanRatio: number;
  /** sum(mask). */
  tokenCount: number;
  /** Share of the masked tokens the entropy quantile keeps (1 without it). */
  keptFraction: number;
  /** The entropy at the quantile (0 without it). */
  entropyThreshold: number;
  /** Mean entropy over the kept tokens (0 without `entropy`). */
  meanEntropy: number;
  /** Of the sequences, those the off-policy mask dropped (0 without it). */
  offPolicyFraction: number;
  /** vespo: the mean over sequences of the gamma weight (TRL's vespo/phi_seq_mean); 0 otherwise. */
  vespoPhiMean: number;
}

/** The Policy and Tokenizer interfaces: what a trainer needs from a language model. */
import type { DeviceName, Tensor } from '@napo/kernels';

/** Ragged token sequences: one array of token ids per row. */
export type RaggedTokens = readonly (readonly number[])[];

export interface ForwardOptions {
  /** Row lengths for a padded `[B, T]` tensor input; positions past a length are ignored. */
  lengths?: readonly number[] | Int32Array;
  /** Alternatively a `[B, T]` 0/1 mask; each row must be ones then zeros (a prefix). */
  mask?: RaggedTokens | Tensor;
}

export interface OptimizerOptions {
  /** Learning rate of this step (schedules live in TS: see `schedule.ts`). */
  lr: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.95. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay on 2-D weights (not biases or LayerNorm). Default 0.01. */
  weightDecay?: number;
  /** Global L2 gradient clipping; 0 = off. Default 1. */
  maxGradNorm?: number;
  /** The accumulated gradients' factor, before the norm and the clip (k micro-batches: 1 / k). Default 1. */
  gradScale?: number;
}

export interface StepResult {
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Factor applied to the gradients (1 when not clipped). */
  clipScale: number;
  /** The optimizer step just taken, counted from 1. */
  step: number;
}

/** AdamW state of a model, as a checkpoint stores it. */
export interface OptimizerState {
  /** First moments, every parameter's values packed in parameter order (parameter total long). */
  expAvg: Float32Array;
  /** Second moments, same layout; each >= 0. */
  expAvgSq: Float32Array;
  /** Optimizer steps taken (the bias correction uses it); the next step is steps + 1. */
  steps: number;
}

export interface ScoreOptions {
  /** Log-probs of logits / temperature. Default 1. */
  temperature?: number;
  /** Also the entropy of each scored position. Default false. */
  entropy?: boolean;
  /** Keep what scoreBackward needs (default). false: no backward will follow, the activations are freed at once (torch.no_grad). */
  keepActivations?: boolean;
}

export interface Scores {
  /** [B, T]: log p(targets[b, t] | tokens[b, <= t]); 0 where the target is -1. */
  logprobs: Tensor<'float32'>;
  /** [B, T], when asked for. */
  entropy?: Tensor<'float32'>;
}

export interface PrefillOptions {
  /** Positions the KV cache keeps per row: the longest prompt plus the tokens to generate. Default: maxPositions. */
  capacity?: number;
}

export interface DecodeOptions {
  /** Rows to compute; inactive rows keep their cache and get a row of zero logits. */
  active?: readonly boolean[];
}

export interface SaveOptions {
  /** Written beside the weights (tokenizer.json and tokenizer_config.json, or napo_tokenizer.json). */
  tokenizer?: Tokenizer;
  /** Extra string metadata stored in the weights file. */
  metadata?: Record<string, string>;
  /**
   * Also store the optimizer state (AdamW moments and step count) in optimizer.safetensors, so a
   * run resumed from the checkpoint continues exactly as if it had not stopped. Default false.
   */
  optimizer?: boolean;
  /** dtype of the saved weights. Default: the dtype the model was loaded in (float32 for a new model). */
  dtype?: 'float32' | 'bfloat16' | 'float16';
  /** Weights past this many bytes are split into shards with a model.safetensors.index.json. Default 5 GB, as transformers. */
  maxShardBytes?: number;
}

/**
 * A trainable, decodable language model. Compound calls return Promises and run off the JS main
 * thread; a model runs one call at a time.
 */
export interface Policy {
  readonly vocabSize: number;
  readonly contextLength: number;
  readonly device: DeviceName;
  /**
   * The RL scoring path: log-probs of given targets straight from the hidden states through the
   * LM head in vocabulary chunks (`linearLogprobs`), never holding `[B, T, V]` logits. `targets`
   * is `[B, T]` padded like `tokens` (row-major), -1 where a position is not scored. Keeps the
   * activations for `scoreBackward`.
   */
  score(tokens: RaggedTokens, targets: Int32Array, options?: ScoreOptions): Promise<Scores>;
  /** Accumulates parameter gradients from d loss / d log-probs `[B, T]` (and entropy) of the last score. */
  scoreBackward(gradLogprobs: Tensor, gradEntropy?: Tensor): Promise<void>;
  /** Training forward: logits `[B, T, V]` (rows past a length are 0); keeps activations for backward. */
  forward(tokens: RaggedTokens | Tensor, options?: ForwardOptions): Promise<Tensor<'float32'>>;
  /** Accumulates parameter gradients from d loss / d logits `[B, T, V]` of the last forward. */
  backward(gradLogits: Tensor): Promise<void>;
  /** One optimizer step on the accumulated gradients. */
  step(optimizer: OptimizerOptions): Promise<StepResult>;
  zeroGrad(): void;
  /** Starts decoding: ragged prompts -> logits `[B, V]` of each prompt's next token. */
  prefill(prompts: RaggedTokens, options?: PrefillOptions): Promise<Tensor<'float32'>>;
  /** Appends one token per row to the KV cache -> logits `[B, V]` of the next token. */
  decodeStep(tokens: readonly number[] | Int32Array, options?: DecodeOptions): Promise<Tensor<'float32'>>;
  /** Frees the KV cache and decoding workspaces (generation is over). */
  releaseCache(): void;
  /** An independent copy of the weights (no gradients or optimizer state): a frozen reference. */
  clone(): Promise<Policy>;
  /**
   * Moves these weights towards `source`'s (a policy of the same kind and shape):
   * `w = alpha * source + (1 - alpha) * w`, TRL's reference-model sync (alpha 1 copies). Rare
   * (every few hundred steps), so each parameter goes through the host.
   */
  blendFrom(source: Policy, alpha: number): Promise<void>;
  /**
   * Writes a Hugging Face model directory (config.json, model.safetensors or shards with an
   * index, generation_config.json, the tokenizer) that `fromPretrained` and `transformers` read;
   * with `optimizer: true` it also carries the optimizer state, for an exact resume.
   */
  save(dir: string, options?: SaveOptions): Promise<void>;
  /**
   * Loads the weights of a model directory of the same shape. When it carries optimizer state it
   * is restored too (the next step continues the saved run); otherwise the optimizer state is
   * left as it is.
   */
  load(dir: string): Promise<void>;
  dispose(): void;
}

export interface TokenizerJSON {
  type: string;
  [key: string]: unknown;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly eos: number;
  /** Every id that ends a generation (eos first), when there is more than one. */
  readonly eosIds?: readonly number[];
  readonly pad: number;
  encode(text: string): number[];
  /** Special tokens (pad, eos) are left out. */
  decode(ids: readonly number[] | Int32Array): string;
  toJSON(): TokenizerJSON;
  /** Writes the tokenizer's own files into a model directory. */
  save(dir: string): Promise<void>;
}

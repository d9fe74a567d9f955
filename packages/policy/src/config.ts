/**
 * Model configurations: napo's typed form of a decoder-only causal LM, and the mapping to and
 * from a Hugging Face `config.json` (gpt2, llama, qwen2, qwen3), with each family's defaults as
 * `transformers` has them. Bounds and consistency (heads divide the width, and so on) are checked
 * once, in native code, when the model is created.
 */
import type { DeviceName } from '@napo/kernels';

export const modelFamilies = ['gpt2', 'llama', 'qwen2', 'qwen3'] as const;
export type ModelFamily = (typeof modelFamilies)[number];

/** RoPE frequency scaling: `linear` divides every frequency; `llama3` is Llama 3.1's band scheme. */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

/** Storage dtypes of checkpoint tensors. Training always keeps float32 master weights. */
export type CheckpointDtype = 'float32' | 'bfloat16' | 'float16';

export interface ModelConfig {
  family: ModelFamily;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  /** Grouped-query attention: query heads share key/value heads in groups of numHeads / numKvHeads. */
  numKvHeads: number;
  headDim: number;
  /** Context length: learned positions (gpt2) or the longest sequence the model accepts. */
  maxPositions: number;
  /** LayerNorm (gpt2) or RMSNorm epsilon. */
  normEps: number;
  /** RoPE base (llama, qwen2, qwen3; unused by gpt2). */
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  /** Bias on the q, k and v projections (gpt2: c_attn; qwen2: always). */
  qkvBias: boolean;
  /** Bias on the attention output projection. */
  outputBias: boolean;
  /** Biases in the MLP. */
  mlpBias: boolean;
  /** The LM head is the embedding matrix. */
  tieWordEmbeddings: boolean;
  /** Std of the normal initialisation of a new (random) model. */
  initializerRange: number;
  /** Seeds the initialisation of a new model. */
  seed: number;
  device: DeviceName;
}

/** A config as a user writes it: the family and vocabulary, the rest defaulted per family. */
export type ModelConfigInput = Pick<ModelConfig, 'family' | 'vocabSize'> & Partial<ModelConfig>;

const sharedDefaults = {
  hiddenSize: 128,
  numLayers: 2,
  numHeads: 4,
  maxPositions: 256,
  ropeTheta: 10000,
  ropeScaling: null,
  initializerRange: 0.02,
  seed: 0,
  device: 'cpu',
} as const;

/** Fills the fields a family derives or defaults (as its `transformers` config class does). */
export function resolveModelConfig(input: ModelConfigInput): ModelConfig {
  if (!input || typeof input !== 'object') throw new TypeError('model config must be an object');
  if (!modelFamilies.includes(input.family)) {
    throw new RangeError(`model config: family = ${JSON.stringify(input.family)} must be one of ${modelFamilies.join(', ')}`);
  }
  const hiddenSize = input.hiddenSize ?? sharedDefaults.hiddenSize;
  const numHeads = input.numHeads ?? sharedDefaults.numHeads;
  const gpt2 = input.family === 'gpt2';
  const perFamily = {
    gpt2: { qkvBias: true, outputBias: true, mlpBias: true, tieWordEmbeddings: true, normEps: 1e-5, intermediateSize: 4 * hiddenSize },
    llama: { qkvBias: false, outputBias: false, mlpBias: false, tieWordEmbeddings: false, normEps: 1e-6, intermediateSize: 4 * hiddenSize },
    qwen2: { qkvBias: true, outputBias: false, mlpBias: false, tieWordEmbeddings: false, normEps: 1e-6, intermediateSize: 4 * hiddenSize },
    qwen3: { qkvBias: false, outputBias: false, mlpBias: false, tieWordEmbeddings: false, normEps: 1e-6, intermediateSize: 4 * hiddenSize },
  }[input.family];
  return {
    ...sharedDefaults,
    ...perFamily,
    numKvHeads: gpt2 ? numHeads : (input.numKvHeads ?? numHeads),
    headDim: gpt2 || input.headDim === undefined ? Math.floor(hiddenSize / numHeads) : input.headDim,
    ...stripUndefined(input),
    hiddenSize,
    numHeads,
  } as ModelConfig;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

type HFConfig = Record<string, unknown>;

function field<T>(json: HFConfig, key: string, kind: 'number' | 'boolean' | 'string', fallback?: T): T {
  const value = json[key];
  if (value === undefined || value === null) {
    if (fallback === undefined) throw new RangeError(`config.json: ${key} is missing`);
    return fallback;
  }
  if (typeof value !== kind) throw new TypeError(`config.json: ${key} = ${JSON.stringify(value)} must be a ${kind}`);
  return value as T;
}

function ropeScalingFromHF(json: HFConfig): RopeScaling | null {
  const raw = (json.rope_scaling ?? null) as HFConfig | null;
  if (raw === null) return null;
  if (typeof raw !== 'object') throw new TypeError('config.json: rope_scaling must be an object or null');
  const kind = raw.rope_type ?? raw.type;
  if (kind === 'default') return null;
  if (kind === 'linear') return { type: 'linear', factor: field(raw, 'factor', 'number') };
  if (kind === 'llama3') {
    return {
      type: 'llama3',
      factor: field(raw, 'factor', 'number'),
      lowFreqFactor: field(raw, 'low_freq_factor', 'number'),
      highFreqFactor: field(raw, 'high_freq_factor', 'number'),
      originalMaxPositions: field(raw, 'original_max_position_embeddings', 'number'),
    };
  }
  throw new RangeError(`config.json: rope_scaling type ${JSON.stringify(kind)} is not supported (napo has default, linear and llama3)`);
}

function ropeThetaFromHF(json: HFConfig): number {
  // transformers >= 4.56 may move it into rope_parameters.
  const parameters = json.rope_parameters as HFConfig | undefined;
  if (parameters && typeof parameters === 'object' && typeof parameters.rope_theta === 'number') return parameters.rope_theta;
  return field(json, 'rope_theta', 'number', 10000);
}

/** The checkpoint dtype a config.json names (`torch_dtype`, or `dtype` in newer files). */
export function checkpointDtypeFromHF(json: HFConfig): CheckpointDtype {
  const name = json.torch_dtype ?? json.dtype ?? 'float32';
  if (name === 'float32' || name === 'bfloat16' || name === 'float16') return name;
  throw new RangeError(`config.json: torch_dtype = ${JSON.stringify(name)} is not float32, bfloat16 or float16`);
}

/** napo's config from a Hugging Face config.json; an unknown model_type or an unsupported option is an error naming it. */
export function configFromHF(json: HFConfig, options: { device?: DeviceName; seed?: number } = {}): ModelConfig {
  if (!json || typeof json !== 'object') throw new TypeError('config.json must hold a JSON object');
  const modelType = json.model_type;
  const device = options.device ?? 'cpu';
  const seed = options.seed ?? 0;
  if (modelType === 'gpt2') {
    const activation = field<string>(json, 'activation_function', 'string', 'gelu_new');
    if (activation !== 'gelu_new' && activation !== 'gelu_pytorch_tanh') {
      throw new RangeError(`config.json: activation_function = ${JSON.stringify(activation)}; napo's gpt2 has the tanh GELU (gelu_new)`);
    }
    for (const key of ['scale_attn_by_inverse_layer_idx', 'reorder_and_upcast_attn']) {
      if (json[key] === true) throw new RangeError(`config.json: ${key} = true is not supported`);
    }
    const hiddenSize = field<number>(json, 'n_embd', 'number');
    return resolveModelConfig({
      family: 'gpt2',
      vocabSize: field(json, 'vocab_size', 'number'),
      hiddenSize,
      intermediateSize: field(json, 'n_inner', 'number', 4 * hiddenSize),
      numLayers: field(json, 'n_layer', 'number'),
      numHeads: field(json, 'n_head', 'number'),
      maxPositions: field(json, 'n_positions', 'number'),
      normEps: field(json, 'layer_norm_epsilon', 'number', 1e-5),
      tieWordEmbeddings: field(json, 'tie_word_embeddings', 'boolean', true),
      initializerRange: field(json, 'initializer_range', 'number', 0.02),
      seed,
      device,
    });
  }
  if (modelType === 'llama' || modelType === 'qwen2' || modelType === 'qwen3') {
    const activation = field<string>(json, 'hidden_act', 'string', 'silu');
    if (activation !== 'silu') throw new RangeError(`config.json: hidden_act = ${JSON.stringify(activation)}; napo's ${modelType} has SiLU`);
    if (json.use_sliding_window === true) throw new RangeError('config.json: use_sliding_window = true is not supported');
    const hiddenSize = field<number>(json, 'hidden_size', 'number');
    const numHeads = field<number>(json, 'num_attention_heads', 'number');
    const attentionBias = field<boolean>(json, 'attention_bias', 'boolean', false);
    return resolveModelConfig({
      family: modelType,
      vocabSize: field(json, 'vocab_size', 'number'),
      hiddenSize,
      intermediateSize: field(json, 'intermediate_size', 'number'),
      numLayers: field(json, 'num_hidden_layers', 'number'),
      numHeads,
      numKvHeads: field(json, 'num_key_value_heads', 'number', numHeads),
      headDim: field(json, 'head_dim', 'number', modelType === 'qwen3' ? 128 : Math.floor(hiddenSize / numHeads)),
      maxPositions: field(json, 'max_position_embeddings', 'number'),
      normEps: field(json, 'rms_norm_eps', 'number', 1e-6),
      ropeTheta: ropeThetaFromHF(json),
      ropeScaling: ropeScalingFromHF(json),
      qkvBias: modelType === 'qwen2' ? true : attentionBias,
      outputBias: modelType === 'qwen2' ? false : attentionBias,
      mlpBias: modelType === 'llama' ? field(json, 'mlp_bias', 'boolean', false) : false,
      tieWordEmbeddings: field(json, 'tie_word_embeddings', 'boolean', false),
      initializerRange: field(json, 'initializer_range', 'number', 0.02),
      seed,
      device,
    });
  }
  throw new RangeError(`config.json: model_type = ${JSON.stringify(modelType)} is not supported; napo loads gpt2, llama, qwen2 and qwen3`);
}

const architectureNames: Record<ModelFamily, string> = {
  gpt2: 'GPT2LMHeadModel',
  llama: 'LlamaForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
};

/** The config.json `transformers` reads back into the same model. */
export function configToHF(config: ModelConfig, dtype: CheckpointDtype, tokens: { bos?: number; eos?: number } = {}): HFConfig {
  const common = {
    architectures: [architectureNames[config.family]],
    model_type: config.family,
    vocab_size: config.vocabSize,
    initializer_range: config.initializerRange,
    tie_word_embeddings: config.tieWordEmbeddings,
    torch_dtype: dtype,
    ...(tokens.bos !== undefined ? { bos_token_id: tokens.bos } : {}),
    ...(tokens.eos !== undefined ? { eos_token_id: tokens.eos } : {}),
  };
  if (config.family === 'gpt2') {
    return {
      ...common,
      n_embd: config.hiddenSize,
      n_inner: config.intermediateSize,
      n_layer: config.numLayers,
      n_head: config.numHeads,
      n_positions: config.maxPositions,
      n_ctx: config.maxPositions,
      layer_norm_epsilon: config.normEps,
      activation_function: 'gelu_new',
    };
  }
  const scaling = config.ropeScaling;
  return {
    ...common,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    max_position_embeddings: config.maxPositions,
    rms_norm_eps: config.normEps,
    rope_theta: config.ropeTheta,
    rope_scaling:
      scaling === null
        ? null
        : scaling.type === 'linear'
          ? { rope_type: 'linear', factor: scaling.factor }
          : {
              rope_type: 'llama3',
              factor: scaling.factor,
              low_freq_factor: scaling.lowFreqFactor,
              high_freq_factor: scaling.highFreqFactor,
              original_max_position_embeddings: scaling.originalMaxPositions,
            },
    hidden_act: 'silu',
    ...(config.family === 'qwen2' ? {} : { attention_bias: config.qkvBias }),
    ...(config.family === 'llama' ? { mlp_bias: config.mlpBias } : {}),
    ...(config.family === 'qwen2' || config.family === 'qwen3' ? { use_sliding_window: false } : {}),
  };
}

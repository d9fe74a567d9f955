/** The addon's model bindings (native/addon/model.cpp), typed for this package. */
import { loadNativeAddon, type NativeTensorHandle } from '@napo/kernels';

/** What the addon reads to create a model: the TS config with its enums as the C ABI's codes. */
export interface NativeModelConfig {
  familyCode: number;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositions: number;
  normEps: number;
  ropeTheta: number;
  ropeScalingCode: number;
  ropeFactor: number;
  ropeLowFreqFactor: number;
  ropeHighFreqFactor: number;
  ropeOriginalMaxPositions: number;
  qkvBias: boolean;
  outputBias: boolean;
  mlpBias: boolean;
  tieWordEmbeddings: boolean;
  initializerRange: number;
  seed: bigint;
  device: string;
}

export interface NativeStepOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  maxGradNorm: number;
}

export interface NativeStepResult {
  gradNorm: number;
  clipScale: number;
  step: number;
}

/** AdamW state: moments packed in parameter order (each the parameter total long) and the steps taken. */
export interface NativeOptimizerState {
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  steps: number;
}

export interface NativeParameterInfo {
  /** The Hugging Face name. */
  name: string;
  /** The model's layout: nn.Linear [out, in]. */
  shape: number[];
  /** Stored [in, out] in checkpoints (gpt2's Conv1D). */
  checkpointTransposed: boolean;
  weightDecay: boolean;
}

/** napo_dtype codes of the storage dtypes parameters are read and written in. */
export const storageDtypeCodes = { float32: 0, bfloat16: 1, float16: 5 } as const;
export type StorageDtype = keyof typeof storageDtypeCodes;

/** One model in native memory. A call while another is in flight throws (one call at a time). */
export interface NativeModelHandle {
  readonly optimizerSteps: number;
  readonly disposed: boolean;
  /** tokens [batch * time] row-major; lengths [batch] or null; targets [batch * time] (-1 = not scored). */
  score(
    tokens: Int32Array,
    batch: number,
    time: number,
    lengths: Int32Array | null,
    targets: Int32Array,
    temperature: number,
    entropy: boolean,
    keepActivations: boolean,
  ): Promise<{ logprobs: NativeTensorHandle; entropy?: NativeTensorHandle }>;
  scoreBackward(gradLogprobs: NativeTensorHandle, gradEntropy: NativeTensorHandle | null): Promise<void>;
  /** -> logits [B, T, V]. */
  forward(tokens: Int32Array, batch: number, time: number, lengths: Int32Array | null): Promise<NativeTensorHandle>;
  backward(gradLogits: NativeTensorHandle): Promise<void>;
  step(options: NativeStepOptions): Promise<NativeStepResult>;
  zeroGrad(): void;
  /** -> logits [B, V] at each row's last prompt token; the cache keeps `capacity` positions per row. */
  prefill(tokens: Int32Array, batch: number, time: number, lengths: Int32Array | null, capacity: number): Promise<NativeTensorHandle>;
  /** tokens [B] (-1 = inactive row) -> logits [B, V]. */
  decodeStep(tokens: Int32Array): Promise<NativeTensorHandle>;
  cachePosition(row: number): number;
  /** Frees the KV cache and decoding workspaces. */
  releaseCache(): void;
  clone(): NativeModelHandle;
  parameters(): NativeParameterInfo[];
  /** float32 -> Float32Array; bfloat16 / float16 -> Uint16Array of the bits. */
  getParameter(index: number, dtypeCode: number, checkpointLayout: boolean): Float32Array | Uint16Array;
  setParameter(index: number, data: Float32Array | Uint16Array, dtypeCode: number, checkpointLayout: boolean): void;
  getGradient(index: number): Float32Array;
  getOptimizerState(): NativeOptimizerState;
  setOptimizerState(expAvg: Float32Array, expAvgSq: Float32Array, steps: number): void;
  dispose(): void;
}

/** napo_model_pass codes. */
export const modelPassCodes = { score: 0, scoreBackward: 1, forward: 2, backward: 3, prefill: 4, decode: 5 } as const;

export interface NativeMemoryQuery {
  pass: number;
  batch: number;
  time: number;
  scored: number;
  capacity: number;
  entropy: boolean;
  gradients: boolean;
  optimizerState: boolean;
}

export interface NativeModelAddon {
  ModelHandle: new (config: NativeModelConfig) => NativeModelHandle;
  /** Bytes by napo_memory_category a model of this config holds at the peak of the pass. */
  modelMemoryPlan(config: NativeModelConfig, query: NativeMemoryQuery): Float64Array;
  /** Peak float32 FMA GFLOP/s of one core, measured over about `seconds`. */
  modelCpuPeakGflops(seconds?: number): number;
  modelSgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    lda: number,
    b: Float32Array,
    ldb: number,
    beta: number,
    c: Float32Array,
    ldc: number,
  ): void;
  modelSgemmBench(
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    minSeconds: number,
  ): { seconds: number; gflops: number; calls: number };
}

export function modelAddon(): NativeModelAddon {
  const addon = loadNativeAddon<Partial<NativeModelAddon>>();
  if (typeof addon.ModelHandle !== 'function') {
    throw new Error(
      'napo: the native addon has no model bindings (ModelHandle); rebuild it (`npm run build:native`) from a tree that includes native/addon/model.cpp',
    );
  }
  return addon as NativeModelAddon;
}

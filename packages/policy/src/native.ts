/** The addon's TinyGPT bindings (native/addon/model.cpp), typed for this package. */
import { loadNativeAddon, type NativeTensorHandle } from '@napo/kernels';

export interface NativeModelConfig {
  vocabSize: number;
  contextLength: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
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

/** One TinyGPT in native memory. A call while another is in flight throws (one call at a time). */
export interface NativeModelHandle {
  readonly config: NativeModelConfig;
  readonly optimizerSteps: number;
  readonly disposed: boolean;
  /** tokens [batch * time] row-major; lengths [batch] or null (every row `time`) -> logits [B, T, V]. */
  forward(tokens: Int32Array, batch: number, time: number, lengths: Int32Array | null): Promise<NativeTensorHandle>;
  backward(gradLogits: NativeTensorHandle): Promise<void>;
  step(options: NativeStepOptions): Promise<NativeStepResult>;
  zeroGrad(): void;
  /** -> logits [B, V] at each row's last prompt token. */
  prefill(tokens: Int32Array, batch: number, time: number, lengths: Int32Array | null): Promise<NativeTensorHandle>;
  /** tokens [B] (-1 = inactive row) -> logits [B, V]. */
  decodeStep(tokens: Int32Array): Promise<NativeTensorHandle>;
  cachePosition(row: number): number;
  clone(): NativeModelHandle;
  parameters(): { name: string; shape: number[] }[];
  getParameter(index: number): Float32Array;
  setParameter(index: number, data: Float32Array): void;
  getGradient(index: number): Float32Array;
  /** Copies of the AdamW moments (zeros and steps 0 before the first step). */
  getOptimizerState(): NativeOptimizerState;
  /** Replaces the AdamW state; checks lengths, finite values, expAvgSq >= 0, steps >= 0 first. */
  setOptimizerState(expAvg: Float32Array, expAvgSq: Float32Array, steps: number): void;
  dispose(): void;
}

export interface NativeModelAddon {
  ModelHandle: new (config: NativeModelConfig) => NativeModelHandle;
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
      'napo: the native addon has no TinyGPT bindings (ModelHandle); rebuild it (`npm run build:native`) from a tree that includes native/addon/model.cpp',
    );
  }
  return addon as NativeModelAddon;
}

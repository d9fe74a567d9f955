/** The addon's benchmark probes (yardsticks measured in the same run as the ops). */
import { loadNativeAddon, Tensor, type NativeTensorHandle } from '@napo/kernels';

interface ProbeAddon {
  probeReadBandwidth(bytes: number, repeats: number): number;
  probeUnfusedLogprobs(logits: NativeTensorHandle, tokens: NativeTensorHandle): NativeTensorHandle;
  probeSortedSample(logits: NativeTensorHandle, topK: number, topP: number, seed: bigint): NativeTensorHandle;
  probeGemm(
    a: NativeTensorHandle,
    b: NativeTensorHandle,
    transA: boolean,
    transB: boolean,
    alpha: number,
    beta: number,
    c: NativeTensorHandle,
  ): void;
}

const probes = (): ProbeAddon => loadNativeAddon<ProbeAddon>();

/** Sustained read bandwidth of this machine's memory on napo's CPU threads, bytes/s. */
export function readBandwidth(bytes = 1 << 30, repeats = 5): number {
  return probes().probeReadBandwidth(bytes, repeats);
}

/** log_softmax materialised [N, V], then gather: the eager-framework composition. */
export function unfusedLogprobs(logits: Tensor, tokens: Tensor<'int32'>): Tensor<'float32'> {
  return Tensor.fromHandle(probes().probeUnfusedLogprobs(logits.handle, tokens.handle));
}

/** softmax, full sort, cumulative-sum masks, draw: the framework sampler without a fused kernel. */
export function sortedSample(logits: Tensor, topK: number, topP: number, seed: bigint): Tensor<'int32'> {
  return Tensor.fromHandle(probes().probeSortedSample(logits.handle, topK, topP, seed));
}

/** c = alpha op(a) op(b) + beta c with napo's CPU GEMM: the first step of the unfused linear composition. */
export function gemm(a: Tensor, b: Tensor, c: Tensor<'float32'>, options: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {}): void {
  probes().probeGemm(a.handle, b.handle, options.transA ?? false, options.transB ?? false, options.alpha ?? 1, options.beta ?? 0, c.handle);
}

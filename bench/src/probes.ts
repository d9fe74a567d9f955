/** The addon's benchmark probes (yardsticks measured in the same run as the ops). */
import { loadNativeAddon, Tensor, type NativeTensorHandle } from '@napo/kernels';

interface ProbeAddon {
  probeReadBandwidth(bytes: number, repeats: number): number;
  probeUnfusedLogprobs(logits: NativeTensorHandle, tokens: NativeTensorHandle): NativeTensorHandle;
  probeSortedSample(logits: NativeTensorHandle, topK: number, topP: number, seed: bigint): NativeTensorHandle;
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

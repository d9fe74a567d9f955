/**
 * @napo/kernels: napo's RL ops on CPU and CUDA tensors, devices and memory counters, and the
 * pure-TS references of every op (`reference.*`, usable without the native addon).
 */
export * from './types.js';
export { Tensor, tensor, empty, type TensorOptions } from './tensor.js';
export {
  backendInfo,
  cpuThreads,
  deviceProperties,
  devices,
  emptyCache,
  memoryStats,
  resetPeakMemoryStats,
  setCpuThreads,
  synchronize,
  type BackendInfo,
  type DeviceProperties,
  type MemoryStats,
} from './devices.js';
export {
  groupAdvantages,
  policyLoss,
  sample,
  tokenLogprobs,
  tokenLogprobsBackward,
  type PolicyLossInputs,
  type PolicyLossResult,
  type SampleResult,
  type TokenLogprobsBackwardOptions,
  type TokenLogprobsResult,
} from './ops.js';
export { addonCandidates, loadNativeAddon, type NativeTensorHandle } from './native.js';
export * as reference from './reference/index.js';

/**
 * @napo/kernels: napo's RL ops on CPU and CUDA tensors, devices and memory counters, and the
 * pure-TS references of every op (`reference.*`, usable without the native addon).
 */
export * from './types.js';
export { Tensor, tensor, empty, type ReadOptions, type TensorData, type TensorOptions } from './tensor.js';
export {
  backendInfo,
  cpuThreads,
  deviceProperties,
  devices,
  emptyCache,
  memoryCategories,
  memoryHistory,
  memoryStats,
  recordMemoryHistory,
  resetPeakMemoryStats,
  setCpuThreads,
  setMemoryPhase,
  synchronize,
  type BackendInfo,
  type BytesByCategory,
  type DeviceProperties,
  type MemoryCategory,
  type MemoryEvent,
  type MemoryHistory,
  type MemoryStats,
} from './devices.js';
export {
  groupAdvantages,
  groupAdvantagesAsync,
  linearLogprobs,
  linearLogprobsAsync,
  linearLogprobsBackward,
  linearLogprobsBackwardAsync,
  maskedRowSum,
  maskedRowSumAsync,
  repetitionPenalty,
  repetitionPenaltyAsync,
  maskedRowSumBackward,
  maskedRowSumBackwardAsync,
  policyLoss,
  policyLossAsync,
  sample,
  sampleAsync,
  tokenLogprobs,
  tokenLogprobsAsync,
  tokenLogprobsBackward,
  tokenLogprobsBackwardAsync,
  type LinearLogprobsBackwardOptions,
  type LinearLogprobsGradients,
  type PolicyLossInputs,
  type PolicyLossResult,
  type SampleResult,
  type TokenLogprobsBackwardOptions,
  type TokenLogprobsResult,
} from './ops.js';
export { addonCandidates, loadNativeAddon, platformPackage, type NativeTensorHandle } from './native.js';
export * as reference from './reference/index.js';

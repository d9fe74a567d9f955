/**
 * Loading the native addon (build/Release/napo.node), and the shape of what it exports. A
 * missing or broken binary gives one error that lists what to try; the pure-TS `reference` ops
 * work without it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { AnyTypedArray, DType, DeviceName } from './types.js';

/** The addon's tensor object: a napo allocation with a dtype and a shape. */
export interface NativeTensorHandle {
  readonly dtype: DType;
  readonly shape: number[];
  readonly device: DeviceName;
  readonly disposed: boolean;
  readonly byteLength: number;
  toArray(): AnyTypedArray;
  copyFrom(data: AnyTypedArray): void;
  to(device: string): NativeTensorHandle;
  reshape(shape: readonly number[]): NativeTensorHandle;
  dispose(): void;
}

export interface NativeBackendInfo {
  cuda: {
    compiled: boolean;
    available: boolean;
    deviceCount: number;
    runtimeVersion: number;
    driverVersion: number;
    reason?: string;
  };
  cpu: { threads: number; isa: string };
}

export interface NativeMemoryStats {
  /** Bytes held by live tensors (rounded to the allocator's blocks). */
  allocatedBytes: number;
  /** Bytes the caching allocator holds from the system: allocated + cached. */
  reservedBytes: number;
  /** Highest allocatedBytes since start or the last resetPeakMemoryStats. */
  peakAllocatedBytes: number;
  peakReservedBytes: number;
  /** Live allocations. */
  allocations: number;
  /** Free device memory as the driver reports it (CUDA only). */
  freeBytes?: number;
  /** Device memory in all (CUDA only). */
  totalBytes?: number;
}

export interface NativeDeviceProperties {
  name: string;
  totalBytes: number;
  computeCapability: string;
  multiprocessors: number;
}

export interface NativeSampleOptions {
  temperature: Float32Array;
  topK: Int32Array;
  topP: Float32Array;
  minP: Float32Array;
  seed: bigint;
  offset: bigint;
}

export interface NativePolicyLossOptions {
  epsLow: number;
  epsHigh: number;
  beta: number;
  lossType: number;
  maxCompletionLength: number;
  numItemsInBatch: number;
}

export interface NativeAddon {
  TensorHandle: abstract new () => NativeTensorHandle;
  empty(dtype: DType, shape: readonly number[], device: string): NativeTensorHandle;
  backendInfo(): NativeBackendInfo;
  cudaDeviceProperties(index: number): NativeDeviceProperties;
  memoryStats(device: string): NativeMemoryStats;
  resetPeakMemoryStats(device: string): void;
  emptyCache(device: string): void;
  synchronize(device: string): void;
  cpuThreads(): number;
  setCpuThreads(threads: number): void;
  sample(logits: NativeTensorHandle, options: NativeSampleOptions): {
    tokens: NativeTensorHandle;
    logprobs: NativeTensorHandle;
  };
  tokenLogprobs(
    logits: NativeTensorHandle,
    tokens: NativeTensorHandle,
    temperature: number,
    entropy: boolean,
  ): { logprobs: NativeTensorHandle; lse: NativeTensorHandle; entropy?: NativeTensorHandle };
  tokenLogprobsBackward(
    logits: NativeTensorHandle,
    tokens: NativeTensorHandle,
    lse: NativeTensorHandle,
    entropy: NativeTensorHandle | null,
    gradLogprobs: NativeTensorHandle,
    gradEntropy: NativeTensorHandle | null,
    temperature: number,
    inPlace: boolean,
  ): NativeTensorHandle;
  groupAdvantages(
    rewards: NativeTensorHandle,
    groupOffsets: Int32Array,
    scale: number,
    estimator: number,
    eps: number,
  ): NativeTensorHandle;
  policyLoss(
    logprobs: NativeTensorHandle,
    oldLogprobs: NativeTensorHandle,
    refLogprobs: NativeTensorHandle | null,
    advantages: NativeTensorHandle,
    mask: NativeTensorHandle,
    options: NativePolicyLossOptions,
  ): {
    loss: number;
    gradLogprobs: NativeTensorHandle;
    stats: {
      clipLowFraction: number;
      clipHighFraction: number;
      clipFraction: number;
      meanKl: number;
      meanRatio: number;
      tokenCount: number;
    };
  };
}

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const repositoryRoot = resolve(packageRoot, '..', '..');

/** Where the addon is looked for, in order. */
export function addonCandidates(): string[] {
  const fromEnvironment = process.env.NAPO_ADDON_PATH;
  return [
    ...(fromEnvironment ? [resolve(fromEnvironment)] : []),
    resolve(repositoryRoot, 'build', 'Release', 'napo.node'),
    resolve(packageRoot, 'build', 'Release', 'napo.node'),
  ];
}

let loaded: unknown;

function loadFailure(tried: string[], cause: unknown): Error {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new Error(
    [
      `napo: could not load the native addon (${reason}).`,
      `Looked in:\n${tried.map((path) => `  - ${path}`).join('\n')}`,
      'Possible fixes:',
      '  - build it: `npm install` at the repository root (or `npm run build:native`),',
      '    which needs CMake >= 3.20 and a C++17 compiler (nvcc optional, for CUDA);',
      '  - point NAPO_ADDON_PATH at a napo.node built for this platform and Node-API 8;',
      '  - if it was built on another machine, rebuild here: the CPU kernels use this host\'s',
      '    instruction set unless built with --CDNAPO_PORTABLE=ON;',
      '  - without a native build, the pure-TS ops still work: `import { reference } from \'@napo/kernels\'`.',
    ].join('\n'),
    { cause },
  );
}

/**
 * The raw addon. Sibling packages (the policy's model bindings) read their own functions from it
 * through a typed interface of their own, hence the type parameter.
 */
export function loadNativeAddon<T = NativeAddon>(): T {
  if (loaded === undefined) {
    const candidates = addonCandidates();
    const path = candidates.find((candidate) => existsSync(candidate));
    if (!path) throw loadFailure(candidates, new Error('no napo.node found'));
    try {
      loaded = createRequire(import.meta.url)(path);
    } catch (error) {
      throw loadFailure(candidates, error);
    }
  }
  return loaded as T;
}

/** The addon typed as napo's own exports. */
export function addon(): NativeAddon {
  return loadNativeAddon<NativeAddon>();
}

/**
 * Loading the native addon, and the shape of what it exports. The binary comes from, in order:
 * NAPO_ADDON_PATH; this package's own build (made on install from the shipped sources when no
 * prebuilt binary fits); the prebuilt platform package (@napo/kernels-linux-x64); inside the napo
 * repository, its build. A missing or broken binary gives one error that says what was looked
 * for and what to do; the pure-TS `reference` ops work without it.
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
  /** The CPU tensor's own memory, no copy. */
  arrayView(): AnyTypedArray;
  /** Overwrites the tensor with a TypedArray's bytes or another tensor's (same dtype and element count). */
  copyFrom(source: AnyTypedArray | NativeTensorHandle): void;
  to(device: string): NativeTensorHandle;
  reshape(shape: readonly number[]): NativeTensorHandle;
  /** Rows [begin, end) of the first dimension, a view of the same memory. */
  rows(begin: number, end: number): NativeTensorHandle;
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
  cpu: {
    threads: number;
    /** The copy of the CPU kernels in use: 'avx512', 'avx2' or 'generic' (picked at run time). */
    isa: string;
    /** The copies this CPU can run, best first, e.g. 'avx512,avx2,generic'. */
    isaSupported: string;
    /** Why NAPO_CPU_ISA or NAPO_NUM_THREADS was not followed, when it was not. */
    note?: string;
  };
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
  numAllocRetries: number;
  numOoms: number;
  /** By napo_memory_category: bytes now, each category's own peak, and the categories when the total peaked. */
  categoryAllocated: Float64Array;
  categoryPeak: Float64Array;
  categoryAtPeak: Float64Array;
}

export interface NativeMemoryHistory {
  timeMs: Float64Array;
  /** > 0 allocated, < 0 freed. */
  bytes: Float64Array;
  categories: Int32Array;
  phases: Int32Array;
  dropped: number;
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
  /** 0 token, 1 sequence. */
  importanceSamplingLevel: number;
  /** 0: off. */
  delta: number;
  sapoTemperaturePos: number;
  sapoTemperatureNeg: number;
  /** 1 - topEntropyQuantile; 0: off. */
  entropyQuantile: number;
  entropyCoef: number;
  biasCorrectionKl: boolean;
  offPolicyMask: boolean;
  offPolicyThreshold: number;
  vespoKPos: number;
  vespoLambdaPos: number;
  vespoKNeg: number;
  vespoLambdaNeg: number;
}

/** The RL ops as the addon exports them; each also has an `xxxAsync` form (a Promise). */
export interface NativeOps {
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
    entropy: NativeTensorHandle | null,
    advantages: NativeTensorHandle,
    mask: NativeTensorHandle,
    options: NativePolicyLossOptions,
  ): {
    loss: number;
    gradLogprobs: NativeTensorHandle;
    /** With entropy. */
    gradEntropy?: NativeTensorHandle;
    stats: {
      clipLowFraction: number;
      clipHighFraction: number;
      clipFraction: number;
      clipLowMin: number;
      clipHighMax: number;
      entropyBonus: number;
      meanKl: number;
      meanRatio: number;
      tokenCount: number;
      keptFraction: number;
      entropyThreshold: number;
      meanEntropy: number;
      offPolicyFraction: number;
      vespoPhiMean: number;
    };
  };
  repetitionPenalty(logits: NativeTensorHandle, history: NativeTensorHandle, penalty: number): NativeTensorHandle;
  maskedRowSum(values: NativeTensorHandle, mask: NativeTensorHandle): NativeTensorHandle;
  maskedRowSumBackward(mask: NativeTensorHandle, gradSums: NativeTensorHandle): NativeTensorHandle;
  linearLogprobs(
    hidden: NativeTensorHandle,
    weight: NativeTensorHandle,
    tokens: NativeTensorHandle,
    options: NativeLinearLogprobsOptions,
    entropy: boolean,
  ): { logprobs: NativeTensorHandle; lse: NativeTensorHandle; entropy?: NativeTensorHandle };
  linearLogprobsBackward(
    hidden: NativeTensorHandle,
    weight: NativeTensorHandle,
    tokens: NativeTensorHandle,
    lse: NativeTensorHandle,
    entropy: NativeTensorHandle | null,
    gradLogprobs: NativeTensorHandle,
    gradEntropy: NativeTensorHandle | null,
    options: NativeLinearLogprobsOptions,
    gradHidden: NativeTensorHandle | null,
    gradWeight: NativeTensorHandle | null,
  ): { gradHidden: NativeTensorHandle; gradWeight: NativeTensorHandle };
}

export interface NativeLinearLogprobsOptions {
  temperature: number;
  /** 0: napo's choice. */
  chunkSize: number;
}

type Async<F> = F extends (...args: infer A) => infer R ? (...args: A) => Promise<R> : never;

/** `sampleAsync` for `sample`, and so on: the same call, run off the JS thread. */
export type NativeAsyncOps = { [K in keyof NativeOps as `${K}Async`]: Async<NativeOps[K]> };

export interface NativeAddon extends NativeOps, NativeAsyncOps {
  TensorHandle: abstract new () => NativeTensorHandle;
  empty(dtype: DType, shape: readonly number[], device: string, op?: string): NativeTensorHandle;
  /** A CPU tensor over `data` itself. */
  wrap(data: AnyTypedArray, dtype: DType, shape: readonly number[]): NativeTensorHandle;
  backendInfo(): NativeBackendInfo;
  cudaDeviceProperties(index: number): NativeDeviceProperties;
  memoryStats(device: string): NativeMemoryStats;
  resetPeakMemoryStats(device: string): void;
  recordMemoryHistory(device: string, maxEvents: number): void;
  memoryHistory(device: string): NativeMemoryHistory;
  setMemoryPhase(device: string, phase: number): void;
  emptyCache(device: string): void;
  synchronize(device: string): void;
  cpuThreads(): number;
  setCpuThreads(threads: number): void;
}

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const requireHere = createRequire(import.meta.url);

/** The prebuilt binary's package for this platform, e.g. @napo/kernels-linux-x64. */
export const platformPackage = `@napo/kernels-${process.platform}-${process.arch}`;

function platformBinary(): string | undefined {
  try {
    return resolve(dirname(requireHere.resolve(`${platformPackage}/package.json`)), 'napo.node');
  } catch {
    return undefined;
  }
}

/** Where the addon is looked for, in order. */
export function addonCandidates(): string[] {
  const fromEnvironment = process.env.NAPO_ADDON_PATH;
  if (fromEnvironment) return [resolve(fromEnvironment)];
  const prebuilt = platformBinary();
  // Inside the napo repository (packages/kernels of a checkout), the root build is the addon.
  const repositoryRoot = resolve(packageRoot, '..', '..');
  const inRepository = existsSync(resolve(repositoryRoot, 'native', 'include', 'napo', 'napo.h'));
  return [
    resolve(packageRoot, 'build', 'Release', 'napo.node'),
    ...(prebuilt ? [prebuilt] : []),
    ...(inRepository ? [resolve(repositoryRoot, 'build', 'Release', 'napo.node')] : []),
  ];
}

let loaded: unknown;

function loadFailure(tried: string[], cause: unknown): Error {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new Error(
    [
      `napo: could not load the native addon of @napo/kernels (${reason}).`,
      `Looked for napo.node in:\n${tried.map((path) => `  - ${path}`).join('\n')}`,
      ...(platformBinary() ? [] : [`(no prebuilt binary for ${process.platform}-${process.arch} is installed: ${platformPackage})`]),
      'To fix it, in your project:',
      '  - build it from the sources @napo/kernels ships: `npm rebuild @napo/kernels`',
      '    (needs CMake >= 3.20 and a C++17 compiler; nvcc, when on the PATH, adds the CUDA backend);',
      '  - or point NAPO_ADDON_PATH at a napo.node built for this platform (Node-API 8).',
      "Without the addon, the pure-TS reference ops still work: `import { reference } from '@napo/kernels'`.",
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
      loaded = requireHere(path);
    } catch (error) {
      throw loadFailure(candidates, error);
    }
    const note = (loaded as NativeAddon).backendInfo().cpu.note;
    if (note) process.emitWarning(note, { code: 'NAPO_SETTING_IGNORED' });
  }
  return loaded as T;
}

/** The addon typed as napo's own exports. */
export function addon(): NativeAddon {
  return loadNativeAddon<NativeAddon>();
}

/** Backends, devices, threads and memory counters (torch.cuda.memory_* conventions). */
import { addon, type NativeBackendInfo, type NativeDeviceProperties } from './native.js';
import type { DeviceName } from './types.js';

export type BackendInfo = NativeBackendInfo;
export type DeviceProperties = NativeDeviceProperties;

/**
 * What an allocation is for, in napo_memory_category order: PyTorch's memory-profiler categories
 * where they fit, and napo's own (kvCache, logits, workspace).
 */
export const memoryCategories = [
  'parameter',
  'gradient',
  'optimizerState',
  'activation',
  'temporary',
  'input',
  'kvCache',
  'logits',
  'workspace',
] as const;
export type MemoryCategory = (typeof memoryCategories)[number];
export type BytesByCategory = Record<MemoryCategory, number>;

/** Counters of a device's caching allocator, in torch.cuda.memory_* conventions. */
export interface MemoryStats {
  /** Bytes live allocations asked for (rounded to 512). */
  allocatedBytes: number;
  /** Bytes the caching allocator holds from the system: allocated blocks whole, plus cached ones. */
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
  /** Allocations that failed, released the cache and retried. */
  numAllocRetries: number;
  /** Allocations that failed after the retry. */
  numOoms: number;
  /** Bytes of each category now (they add up to allocatedBytes). */
  byCategory: BytesByCategory;
  /** Each category's own peak since the reset. */
  peakByCategory: BytesByCategory;
  /** The categories at the moment allocatedBytes peaked (they add up to peakAllocatedBytes): where the peak's bytes were. */
  atPeakByCategory: BytesByCategory;
  /** The same counters under torch.cuda.memory_stats() keys. */
  torch: Record<string, number>;
}

function byCategory(values: Float64Array): BytesByCategory {
  return Object.fromEntries(memoryCategories.map((name, index) => [name, values[index] ?? 0])) as BytesByCategory;
}

/** Whether CUDA was compiled and usable (with the reason when not), and the CPU backend's threads. */
export function backendInfo(): BackendInfo {
  return addon().backendInfo();
}

/** 'cpu', then 'cuda:N' for every device that answered. */
export function devices(): DeviceName[] {
  const { cuda } = backendInfo();
  const gpus = Array.from({ length: cuda.available ? cuda.deviceCount : 0 }, (_, index): DeviceName => `cuda:${index}`);
  return ['cpu', ...gpus];
}

export function deviceProperties(device: DeviceName): DeviceProperties {
  const match = typeof device === 'string' ? /^cuda:(\d+)$/.exec(device) : null;
  if (!match) throw new RangeError(`deviceProperties: '${String(device)}' is not a CUDA device`);
  return addon().cudaDeviceProperties(Number(match[1]));
}

export function memoryStats(device: DeviceName = 'cpu'): MemoryStats {
  const raw = addon().memoryStats(device);
  const stats: MemoryStats = {
    allocatedBytes: raw.allocatedBytes,
    reservedBytes: raw.reservedBytes,
    peakAllocatedBytes: raw.peakAllocatedBytes,
    peakReservedBytes: raw.peakReservedBytes,
    allocations: raw.allocations,
    numAllocRetries: raw.numAllocRetries,
    numOoms: raw.numOoms,
    byCategory: byCategory(raw.categoryAllocated),
    peakByCategory: byCategory(raw.categoryPeak),
    atPeakByCategory: byCategory(raw.categoryAtPeak),
    torch: {
      'allocated_bytes.all.current': raw.allocatedBytes,
      'allocated_bytes.all.peak': raw.peakAllocatedBytes,
      'reserved_bytes.all.current': raw.reservedBytes,
      'reserved_bytes.all.peak': raw.peakReservedBytes,
      'active.all.current': raw.allocations,
      num_alloc_retries: raw.numAllocRetries,
      num_ooms: raw.numOoms,
    },
  };
  if (raw.freeBytes !== undefined) stats.freeBytes = raw.freeBytes;
  if (raw.totalBytes !== undefined) stats.totalBytes = raw.totalBytes;
  return stats;
}

export function resetPeakMemoryStats(device: DeviceName = 'cpu'): void {
  addon().resetPeakMemoryStats(device);
}

/** One allocation (bytes > 0) or free (bytes < 0) of the memory history. */
export interface MemoryEvent {
  /** Milliseconds since recordMemoryHistory started. */
  timeMs: number;
  bytes: number;
  category: MemoryCategory;
  /** The phase set with setMemoryPhase when it happened ('' before any). */
  phase: string;
}

export interface MemoryHistory {
  events: MemoryEvent[];
  /** Events that fell off the bounded log (the oldest go first). */
  dropped: number;
}

const phaseNames: string[] = [''];

/**
 * Starts keeping the last `maxEvents` allocations and frees of `device` (torch.cuda.memory.
 * _record_memory_history); 0 stops and clears. Bounded: older events are dropped, and counted.
 */
export function recordMemoryHistory(device: DeviceName = 'cpu', options: { maxEvents?: number } = {}): void {
  addon().recordMemoryHistory(device, options.maxEvents ?? 100_000);
}

/** Labels the events that follow (a training phase, say) until the next call. */
export function setMemoryPhase(device: DeviceName, phase: string): void {
  if (typeof phase !== 'string') throw new TypeError(`setMemoryPhase: phase must be a string`);
  let index = phaseNames.indexOf(phase);
  if (index < 0) index = phaseNames.push(phase) - 1;
  addon().setMemoryPhase(device, index);
}

/** The events recorded so far, oldest first (JSON-ready). */
export function memoryHistory(device: DeviceName = 'cpu'): MemoryHistory {
  const raw = addon().memoryHistory(device);
  const events = Array.from(raw.timeMs, (timeMs, i): MemoryEvent => ({
    timeMs,
    bytes: raw.bytes[i] as number,
    category: memoryCategories[raw.categories[i] as number] as MemoryCategory,
    phase: phaseNames[raw.phases[i] as number] ?? '',
  }));
  return { events, dropped: raw.dropped };
}

/** Hands cached, unused blocks back to the system (torch.cuda.empty_cache). */
export function emptyCache(device: DeviceName = 'cpu'): void {
  addon().emptyCache(device);
}

/** Waits for the device's queued work. */
export function synchronize(device: DeviceName = 'cpu'): void {
  addon().synchronize(device);
}

/** Threads of the CPU backend (NAPO_NUM_THREADS at start, default: the cores). */
export function cpuThreads(): number {
  return addon().cpuThreads();
}

/** 1 to 1024 threads (the caller's thread included); NAPO_NUM_THREADS sets the initial count. */
export function setCpuThreads(threads: number): void {
  if (typeof threads !== 'number' || !Number.isInteger(threads)) {
    throw new TypeError(`setCpuThreads: threads = ${String(threads)} must be an integer`);
  }
  addon().setCpuThreads(threads);
}

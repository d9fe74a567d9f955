/** Backends, devices, threads and memory counters (torch.cuda.memory_* conventions). */
import { addon, type NativeBackendInfo, type NativeDeviceProperties, type NativeMemoryStats } from './native.js';
import type { DeviceName } from './types.js';

export type BackendInfo = NativeBackendInfo;
export type DeviceProperties = NativeDeviceProperties;

/** Counters of a device's caching allocator, in torch.cuda.memory_* conventions. */
export type MemoryStats = NativeMemoryStats;

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
  return addon().memoryStats(device);
}

export function resetPeakMemoryStats(device: DeviceName = 'cpu'): void {
  addon().resetPeakMemoryStats(device);
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

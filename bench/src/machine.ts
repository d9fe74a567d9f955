/** What a result was measured on: written into every result so runs can be compared honestly. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { backendInfo, cpuThreads, deviceProperties, devices, type DeviceName } from '@napo/kernels';

import { schemaVersion, type BenchDevice, type BenchMode, type ResultHeader, type SuiteKind } from './results.js';

/** /proc/cpuinfo's model name (os.cpus() can report a generic one in containers). */
function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    const model = line?.split(':')[1]?.trim();
    if (model) return model;
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? 'unknown';
}

/** The commit of the checkout this bench runs from, whatever the working directory. */
export function napoCommit(): string {
  try {
    const here = dirname(fileURLToPath(import.meta.url));
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

/** CUDA's driver version as the runtime reports it (e.g. 12040 -> '12.4'). */
function driverVersion(encoded: number): string {
  return encoded > 0 ? `${Math.floor(encoded / 1000)}.${Math.floor((encoded % 1000) / 10)}` : 'none';
}

export function describeDevice(device: DeviceName): BenchDevice {
  const info = backendInfo();
  const host = { cpuModel: cpuModel(), cores: cpus().length, threads: cpuThreads(), memoryBytes: totalmem(), isa: info.cpu.isa };
  if (device === 'cpu') return { name: 'cpu', kind: 'cpu', ...host };
  const properties = deviceProperties(device);
  return {
    name: device,
    kind: 'cuda',
    ...host,
    gpu: {
      name: properties.name,
      driver: driverVersion(info.cuda.driverVersion),
      memoryBytes: properties.totalBytes,
      computeCapability: properties.computeCapability,
    },
  };
}

/** The devices to measure on: the one asked for, or every device present. */
export function benchDevices(asked: string | undefined): DeviceName[] {
  const present = devices();
  if (asked === undefined) return present;
  if (!(present as string[]).includes(asked)) {
    const cuda = backendInfo().cuda;
    const why = cuda.available ? '' : ` (CUDA unavailable: ${cuda.reason ?? 'no reason given'})`;
    throw new RangeError(`--device ${asked} is not present; present: ${present.join(', ')}${why}`);
  }
  return [asked as DeviceName];
}

export function resultHeader<K extends SuiteKind>(kind: K, mode: BenchMode, device: DeviceName): ResultHeader & { kind: K } {
  return {
    schemaVersion,
    kind,
    source: 'napo',
    createdAt: new Date().toISOString(),
    mode,
    device: describeDevice(device),
    napoCommit: napoCommit(),
    runtime: `node ${process.version}`,
  };
}

/** One line naming the machine, for the top of every table. */
export function describeLine(device: BenchDevice): string {
  const gpu = device.gpu ? `${device.gpu.name} (driver ${device.gpu.driver}) on ` : '';
  const cuda = backendInfo().cuda;
  const cudaNote = device.kind === 'cpu' ? `; CUDA ${cuda.available ? 'available' : `unavailable (${cuda.reason ?? 'no reason given'})`}` : '';
  return `${gpu}${device.cpuModel}, ${device.cores} cores, ${device.threads ?? '?'} napo threads, ${device.isa ?? ''}${cudaNote}`;
}

/** What a result was measured on: written into every result so runs can be compared honestly. */
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';

import { backendInfo, cpuThreads } from '@napo/kernels';

export interface MachineDescription {
  cpuModel: string;
  cores: number;
  threads: number;
  memoryBytes: number;
  node: string;
  isa: string;
  cuda: { compiled: boolean; available: boolean; reason?: string };
  napoCommit: string;
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

export function describeMachine(): MachineDescription {
  const info = backendInfo();
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    threads: cpuThreads(),
    memoryBytes: totalmem(),
    node: process.version,
    isa: info.cpu.isa,
    cuda: {
      compiled: info.cuda.compiled,
      available: info.cuda.available,
      ...(info.cuda.reason ? { reason: info.cuda.reason } : {}),
    },
    napoCommit: gitCommit(),
  };
}

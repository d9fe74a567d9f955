/** Readable tables of bench results. */
import Table from 'cli-table3';

import type { KernelBenchResult } from './kernels.js';

const gigabytes = (bytesPerSecond: number) => (bytesPerSecond / 1e9).toFixed(1);
const ratio = (value: number) => `${value.toFixed(value < 10 ? 2 : 1)}x`;

export function kernelTable(result: KernelBenchResult): string {
  const table = new Table({
    head: ['op', 'dtype', 'median ms (min-max)', 'GB/s', 'of read BW', 'vs unfused', 'vs TS ref'],
    style: { head: [], border: [] },
  });
  for (const f of result.figures) {
    table.push([
      f.op,
      f.dtype,
      `${f.timing.medianMs.toFixed(2)} (${f.timing.minMs.toFixed(2)}-${f.timing.maxMs.toFixed(2)})`,
      gigabytes(f.bytesPerSecond),
      `${(100 * f.fractionOfBandwidth).toFixed(0)}%`,
      `${ratio(f.baseline.speedup)} (${f.baseline.name}: ${f.baseline.medianMs.toFixed(1)} ms)`,
      ratio(f.reference.speedup),
    ]);
  }
  const { machine, options } = result;
  const header = [
    `napo kernels on ${machine.cpuModel} (${machine.threads} threads, ${machine.isa}), N = ${options.rows}, V = ${options.vocab}`,
    `measured read bandwidth: ${gigabytes(result.readBandwidthBytesPerSecond)} GB/s; CUDA: ${machine.cuda.available ? 'available' : `unavailable (${machine.cuda.reason ?? 'no reason given'})`}`,
  ];
  return `${header.join('\n')}\n${table.toString()}`;
}

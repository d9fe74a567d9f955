/** Readable tables of bench results, for stdout. */
import Table from 'cli-table3';

import { describeLine } from './machine.js';
import type { KernelEntry, KernelsResult, TrainerResult } from './results.js';

const gigabytes = (bytesPerSecond: number) => (bytesPerSecond / 1e9).toFixed(1);
const mebibytes = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const ratio = (value: number) => `${value.toFixed(value < 10 ? 2 : 1)}x`;
const milliseconds = (ms: number) => (ms < 0.1 ? ms.toFixed(4) : ms < 10 ? ms.toFixed(2) : ms.toFixed(1));

export function entryName(entry: Pick<KernelEntry, 'op' | 'variant'>): string {
  return entry.variant ? `${entry.op} ${entry.variant}` : entry.op;
}

function comparisonCell(entry: KernelEntry, kind: 'unfused' | 'reference'): string {
  const comparison = entry.comparisons.find((c) => c.kind === kind);
  if (!comparison) return '-';
  const scaled = comparison.scaledFromRows ? ` (from ${comparison.scaledFromRows} rows)` : '';
  const memory =
    entry.peakAllocatedBytes !== undefined && comparison.peakAllocatedBytes
      ? `; peak ${mebibytes(entry.peakAllocatedBytes)} MiB = ${((100 * entry.peakAllocatedBytes) / comparison.peakAllocatedBytes).toFixed(1)}% of its ${mebibytes(comparison.peakAllocatedBytes)}`
      : '';
  return `${ratio(comparison.speedup)}${kind === 'unfused' ? ` vs ${comparison.name}` : ''}${scaled}${memory}`;
}

export function kernelTable(result: KernelsResult): string {
  const table = new Table({
    head: ['op', 'dtype', 'shape', 'median ms (min-max)', 'GB/s (or GFLOP/s)', 'of BW', 'vs unfused', 'vs TS ref'],
    style: { head: [], border: [] },
  });
  for (const entry of result.entries) {
    const { medianMs, minMs, maxMs } = entry.timing;
    table.push([
      entryName(entry),
      entry.dtype,
      entry.shape.join('x'),
      `${milliseconds(medianMs)} (${milliseconds(minMs)}-${milliseconds(maxMs)})`,
      entry.flops ? `${(entry.flops / (medianMs / 1000) / 1e9).toFixed(1)} GFLOP/s` : gigabytes(entry.bytesPerSecond),
      entry.fractionOfBandwidth === undefined ? '-' : `${(100 * entry.fractionOfBandwidth).toFixed(0)}%`,
      comparisonCell(entry, 'unfused'),
      comparisonCell(entry, 'reference'),
    ]);
  }
  const bandwidth = result.bandwidth ? `measured read bandwidth ${gigabytes(result.bandwidth.bytesPerSecond)} GB/s` : 'no bandwidth probe on this device';
  return [
    `napo kernels (${result.mode}) on ${result.device.name}: ${describeLine(result.device)}`,
    `${bandwidth}; repetitions per op >= ${Math.min(...result.entries.map((e) => e.timing.repetitions))}; napo ${result.napoCommit}`,
    table.toString(),
  ].join('\n');
}

export function trainerTable(result: TrainerResult): string {
  const phaseNames = result.runs[0]?.phases.map((p) => p.phase) ?? [];
  const throughput = new Table({
    head: ['method', 'steps/s', 'step s', 'gen tok/s', 'trained tok/s', ...phaseNames.map((p) => `${p} s`), 'peak MiB'],
    style: { head: [], border: [] },
  });
  const memory = new Table({
    head: ['method', ...phaseNames.map((p) => `${p} MiB`), `allocated after (steps ${result.config.excludedSteps + 1}..${result.config.steps})`, 'leak?'],
    style: { head: [], border: [] },
  });
  for (const run of result.runs) {
    throughput.push([
      run.label,
      run.stepsPerSecond.toFixed(3),
      run.meanStepSeconds.toFixed(3),
      run.generatedTokensPerSecond.toFixed(0),
      run.trainedTokensPerSecond.toFixed(0),
      ...run.phases.map((p) => p.meanSeconds.toFixed(3)),
      mebibytes(run.peakAllocatedBytesPerStep),
    ]);
    const { leak } = run;
    memory.push([
      run.label,
      ...run.phases.map((p) => mebibytes(p.peakAllocatedBytes)),
      `${mebibytes(leak.firstBytes)} -> ${mebibytes(leak.lastBytes)} MiB (${leak.slopeBytesPerStep.toFixed(0)} B/step)`,
      leak.growing ? 'GROWING' : 'flat',
    ]);
  }
  const { cost, config } = result;
  const lines = [
    `napo trainer (${result.mode}) on ${describeLine(result.device)}; napo ${result.napoCommit}`,
    `TinyGPT ${JSON.stringify(config.model)}; ${config.train.promptsPerStep ?? '?'} prompts x G = ${config.train.groupSize ?? '?'}, ${config.train.maxNewTokens ?? '?'} new tokens; ${config.steps} steps per method, throughput over the last ${config.steps - config.excludedSteps}`,
    throughput.toString(),
    `peak allocated MiB per phase (max over steps) and allocated MiB after each step (leak check over ${result.runs[0]?.leak.steps ?? 0} steps)`,
    memory.toString(),
  ];
  if (cost.expoOverGrpo !== undefined) {
    const verdict = cost.withinTarget ? `within the ${cost.target}x target` : `above the ${cost.target}x target`;
    const top = cost.expoExtraSecondsByPhase.filter((p) => p.seconds > 0).slice(0, 3).map((p) => `${p.phase} +${p.seconds.toFixed(3)} s`);
    lines.push(`ExP-GRPO / GRPO step time: ${ratio(cost.expoOverGrpo)} (${verdict}); extra cost by phase: ${top.join(', ') || 'none'}`);
  }
  if (cost.sftOverGrpo !== undefined) lines.push(`GRPO+SFT / GRPO step time: ${ratio(cost.sftOverGrpo)}`);
  return lines.join('\n');
}

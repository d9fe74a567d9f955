/** Readable tables of bench results, for stdout. */
import Table from 'cli-table3';

import { describeLine } from './machine.js';
import type { KernelEntry, KernelsResult, TrainerResult } from './results.js';
import type { PolicySuiteResult, ThroughputFigure } from './suites/policy.js';

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

const percent = (fraction: number) => `${(100 * fraction).toFixed(fraction < 0.1 ? 1 : 0)}%`;

function throughputRow(model: string, kind: string, figure: ThroughputFigure): string[] {
  const { medianMs, minMs, maxMs, repetitions } = figure.timing;
  const perSecond = figure.tokensPerSecond < 100 ? figure.tokensPerSecond.toFixed(1) : figure.tokensPerSecond.toFixed(0);
  return [
    model,
    kind,
    figure.shape.join('x'),
    `${(medianMs / 1000).toFixed(3)} (${(minMs / 1000).toFixed(3)}-${(maxMs / 1000).toFixed(3)}) x${repetitions}`,
    perSecond,
    figure.gflops.toFixed(1),
    percent(figure.fractionOfPeak),
    figure.bytesPerSecond === undefined ? '-' : `${gigabytes(figure.bytesPerSecond)} (${percent(figure.fractionOfBandwidth ?? 0)})`,
  ];
}

export function policyTable(result: PolicySuiteResult): string {
  const { figures } = result;
  const { peak } = figures;
  const throughput = new Table({
    head: ['model (random weights)', 'what', 'shape', 'median s (min-max) x reps', 'tokens/s', 'GFLOP/s', 'of peak', 'weights GB/s (of BW)'],
    style: { head: [], border: [] },
  });
  for (const model of figures.models) {
    const layers = model.layersCut ? `${model.config.numLayers} of ${model.fullLayers} layers` : `${model.config.numLayers} layers`;
    const name = `${model.name} (${layers}, ${(model.parameterCount / 1e6).toFixed(1)}M params)`;
    throughput.push(throughputRow(name, 'prefill', model.prefill), throughputRow('', 'decode (KV cache)', model.decode), throughputRow('', 'train: score+scoreBackward', model.train));
  }
  const lines = [
    `napo policy (${result.mode}) on ${describeLine(result.device)}; napo ${result.napoCommit}`,
    `peak: ${peak.gflopsPerCore.toFixed(1)} GFLOP/s per core (float32 FMA, measured ${peak.seconds} s) x ${peak.threads} threads = ${peak.gflops.toFixed(1)} GFLOP/s; read bandwidth ${gigabytes(figures.bandwidth.bytesPerSecond)} GB/s`,
    throughput.toString(),
    `FLOPs: ${figures.flopFormula}`,
    'weights GB/s (decode): float32 matmul weights, the LM head included, read once per step; over the measured read bandwidth',
  ];
  const { grpo } = figures;
  if (grpo) {
    const [fused, unfused] = grpo.runs;
    const memory = new Table({
      head: ['phase', 'fused s', 'unfused s', 'unfused/fused', 'fused peak MiB (+ over state)', 'unfused peak MiB (+ over state)', 'unfused/fused (over state)'],
      style: { head: [], border: [] },
    });
    if (fused && unfused) {
      grpo.runs[0]?.phases.forEach((f, i) => {
        const u = unfused.phases[i];
        if (!u) return;
        memory.push([
          f.phase,
          f.seconds.toFixed(3),
          u.seconds.toFixed(3),
          ratio(grpo.unfusedOverFused.phaseSeconds[f.phase]),
          `${mebibytes(f.peakAllocatedBytes)} (+${mebibytes(f.peakAboveModelStateBytes)})`,
          `${mebibytes(u.peakAllocatedBytes)} (+${mebibytes(u.peakAboveModelStateBytes)})`,
          ratio(grpo.unfusedOverFused.phasePeakAboveModelState[f.phase]),
        ]);
      });
      memory.push([
        'step',
        fused.stepSeconds.toFixed(3),
        unfused.stepSeconds.toFixed(3),
        ratio(grpo.unfusedOverFused.stepSeconds),
        `${mebibytes(fused.peakAllocatedBytes)} (+${mebibytes(fused.peakAboveModelStateBytes)})`,
        `${mebibytes(unfused.peakAllocatedBytes)} (+${mebibytes(unfused.peakAboveModelStateBytes)})`,
        ratio(grpo.unfusedOverFused.peakAboveModelStateBytes),
      ]);
    }
    const layers = grpo.layersCut ? `${grpo.layers} of ${grpo.fullLayers} layers` : `${grpo.layers} layers`;
    lines.push(
      '',
      `one GRPO step on ${grpo.model} (${layers}, V = ${grpo.vocabSize}): ${grpo.prompts} prompts of ${grpo.promptLengths.join(', ')} tokens x G = ${grpo.groupSize}, ${grpo.maxNewTokens} new tokens, scored batch ${grpo.scoredShape.join('x')}; mean of ${grpo.timedSteps} timed step(s) per path`,
      `fused: ${fused?.description ?? '-'}; LM head over ${fused?.lmHeadRows ?? '-'} rows`,
      `unfused: ${unfused?.description ?? '-'}; LM head over ${unfused?.lmHeadRows ?? '-'} rows`,
      `peak = the allocator's peak in the phase; + over state = less weights, gradients and AdamW moments (${mebibytes(grpo.modelStateBytes)} MiB)`,
      memory.toString(),
      `unfused / fused: step time ${ratio(grpo.unfusedOverFused.stepSeconds)}, step peak ${ratio(grpo.unfusedOverFused.peakAllocatedBytes)}, peak over the model state ${ratio(grpo.unfusedOverFused.peakAboveModelStateBytes)}`,
      `generate and optimizer do the same work on both paths: how far their ratios are from 1.00x is this run's noise`,
    );
  }
  lines.push(...figures.notes.map((n) => `note: ${n}`));
  return lines.join('\n');
}

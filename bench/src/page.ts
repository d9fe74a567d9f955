/**
 * The results page: every JSON under a results folder (napo's suites and peers in the same schema)
 * as charts rendered to SVG by Apache ECharts on the server, so the page needs no script or network.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import * as echarts from 'echarts';

import { entryName } from './report.js';
import { readResults, type BenchResult, type KernelEntry, type KernelsResult, type TrainerResult } from './results.js';

type ChartOption = Parameters<echarts.ECharts['setOption']>[0];

/** Kernel runs beyond this many (newest kept) would make the bar charts unreadable. */
const maxKernelRuns = 8;

function renderSvg(option: ChartOption, width = 900, height = 360): string {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width, height });
  chart.setOption({ animation: false, ...option });
  const svg = chart.renderToSVGString();
  chart.dispose();
  return svg;
}

const escapeHtml = (text: string) => text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
const day = (iso: string) => iso.slice(0, 16).replace('T', ' ');

function deviceLabel(result: BenchResult): string {
  return result.device.gpu ? `${result.device.gpu.name}` : `${result.device.cpuModel.replace(/\s+\d+-Core Processor/, '')} x${result.device.threads ?? result.device.cores}`;
}

/** One series per (run, implementation): napo and each PyTorch peer get their own bars. */
function kernelSeriesKeys(runs: KernelsResult[]): { run: KernelsResult; implementation: string; name: string }[] {
  return runs.flatMap((run) =>
    [...new Set(run.entries.map((e) => e.implementation))].map((implementation) => ({
      run,
      implementation,
      name: `${implementation} @ ${run.device.name} ${deviceLabel(run)} ${day(run.createdAt)}`,
    })),
  );
}

const caseKey = (entry: KernelEntry) => `${entry.variant || entry.op} ${entry.dtype === 'bfloat16' ? 'bf16' : 'f32'} ${entry.shape.join('x')}`;

function kernelChart(op: string, runs: KernelsResult[], value: (entry: KernelEntry) => number | undefined, unit: string): string {
  const series = kernelSeriesKeys(runs);
  const categories = [...new Set(runs.flatMap((run) => run.entries.filter((e) => e.op === op).map(caseKey)))];
  return renderSvg(
    {
      title: { text: `${op}: ${unit}`, textStyle: { fontSize: 14 } },
      legend: { top: 24, type: 'plain' },
      grid: { top: 40 + 18 * series.length, bottom: 110, left: 60, right: 20 },
      xAxis: { type: 'category', data: categories, axisLabel: { rotate: 35, fontSize: 10 } },
      yAxis: { type: 'value', name: unit },
      series: series.map(({ run, implementation, name }) => ({
        name,
        type: 'bar' as const,
        data: categories.map((category) => {
          const entry = run.entries.find((e) => e.op === op && e.implementation === implementation && caseKey(e) === category);
          return entry ? (value(entry) ?? null) : null;
        }),
      })),
    },
    Math.max(900, 70 * categories.length),
    420 + 18 * series.length,
  );
}

function kernelSection(runs: KernelsResult[]): string {
  if (runs.length === 0) return '';
  const shown = runs.slice(-maxKernelRuns);
  const ops = [...new Set(shown.flatMap((run) => run.entries.map((e) => e.op)))];
  const charts = ops.flatMap((op) => [
    kernelChart(op, shown, (e) => e.bytesPerSecond / 1e9, 'GB/s (compulsory bytes / median time)'),
    kernelChart(op, shown, (e) => e.comparisons.find((c) => c.kind === 'unfused' || c.kind === 'reference')?.speedup, 'speed-up over the unfused composition (else the TS reference)'),
  ]);
  return `<h2>Kernels</h2><p>${shown.length} of ${runs.length} kernel runs (the newest). Bandwidth fractions and every ratio are in the tables below and the JSON.</p>${charts.join('\n')}${kernelTables(shown)}`;
}

function kernelTables(runs: KernelsResult[]): string {
  return runs
    .map((run) => {
      const rows = run.entries
        .map((e) => {
          const unfused = e.comparisons.find((c) => c.kind === 'unfused');
          const ref = e.comparisons.find((c) => c.kind === 'reference');
          return `<tr><td>${escapeHtml(entryName(e))}</td><td>${escapeHtml(e.implementation)}</td><td>${e.dtype}</td><td>${e.shape.join('x')}</td><td>${e.timing.medianMs.toFixed(3)} (${e.timing.minMs.toFixed(3)}-${e.timing.maxMs.toFixed(3)})</td><td>${(e.bytesPerSecond / 1e9).toFixed(1)}</td><td>${e.fractionOfBandwidth === undefined ? '-' : `${(100 * e.fractionOfBandwidth).toFixed(0)}%`}</td><td>${unfused ? `${unfused.speedup.toFixed(2)}x ${escapeHtml(unfused.name)}` : '-'}</td><td>${ref ? `${ref.speedup.toFixed(2)}x` : '-'}</td></tr>`;
        })
        .join('');
      return `<details><summary>${escapeHtml(run.source)} ${escapeHtml(run.device.name)} ${escapeHtml(deviceLabel(run))} ${day(run.createdAt)} (${run.mode})</summary><table><tr><th>op</th><th>impl</th><th>dtype</th><th>shape</th><th>median ms (min-max)</th><th>GB/s</th><th>of BW</th><th>vs unfused</th><th>vs TS ref</th></tr>${rows}</table></details>`;
    })
    .join('\n');
}

function trainerCharts(run: TrainerResult): string[] {
  const labels = run.runs.map((r) => r.label);
  const phaseNames = run.runs[0]?.phases.map((p) => p.phase) ?? [];
  const title = (text: string) => ({ text: `${text} (${deviceLabel(run)}, ${day(run.createdAt)}, ${run.mode})`, textStyle: { fontSize: 14 } });
  const time = renderSvg({
    title: title('seconds per step by phase'),
    legend: { top: 24 },
    grid: { top: 70 },
    xAxis: { type: 'category', data: labels },
    yAxis: { type: 'value', name: 's' },
    series: phaseNames.map((phase, index) => ({ name: phase, type: 'bar' as const, stack: 'time', data: run.runs.map((r) => r.phases[index]?.meanSeconds ?? 0) })),
  });
  // Per method, each phase's peak stacked by category (results written before categories existed: one bar).
  const memory = run.runs.map((r) => {
    const categories = [...new Set(r.phases.flatMap((p) => Object.keys(p.peakByCategory ?? {})))].filter((category) =>
      r.phases.some((p) => (p.peakByCategory?.[category] ?? 0) > 0),
    );
    const series =
      categories.length > 0
        ? categories.map((category) => ({ name: category, type: 'bar' as const, stack: 'memory', data: r.phases.map((p) => (p.peakByCategory?.[category] ?? 0) / 2 ** 20) }))
        : [{ name: 'peak', type: 'bar' as const, data: r.phases.map((p) => p.peakAllocatedBytes / 2 ** 20) }];
    return renderSvg({
      title: title(`${r.label}: peak allocated MiB by phase and category`),
      legend: { top: 30, itemGap: 8, textStyle: { fontSize: 11 } },
      grid: { top: 90 },
      xAxis: { type: 'category', data: phaseNames, axisLabel: { interval: 0, fontSize: 10 } },
      yAxis: { type: 'value', name: 'MiB' },
      series,
    });
  });
  const leak = renderSvg({
    title: title('allocated MiB after each step (flat = no leak)'),
    legend: { top: 24 },
    grid: { top: 70 },
    xAxis: { type: 'category', name: 'step', data: (run.runs[0]?.allocatedBytesAfter ?? []).map((_, i) => String(i + 1)) },
    yAxis: { type: 'value', name: 'MiB', scale: true },
    series: run.runs.map((r) => ({ name: `${r.label}${r.leak.growing ? ' (GROWING)' : ''}`, type: 'line' as const, data: r.allocatedBytesAfter.map((b) => b / 2 ** 20) })),
  });
  return [time, ...memory, leak];
}

function trainerSection(runs: TrainerResult[]): string {
  if (runs.length === 0) return '';
  const ratios = renderSvg({
    title: { text: 'ExP-GRPO / GRPO step time per run (target <= 1.2x)', textStyle: { fontSize: 14 } },
    xAxis: { type: 'category', data: runs.map((r) => `${deviceLabel(r)} ${day(r.createdAt)} ${r.mode}`), axisLabel: { fontSize: 10 } },
    yAxis: { type: 'value' },
    series: [
      { name: 'ExP-GRPO / GRPO', type: 'bar' as const, data: runs.map((r) => r.cost.expoOverGrpo ?? null), markLine: { data: [{ yAxis: 1.2, name: 'target' }], symbol: 'none' } },
    ],
  });
  const latest = runs[runs.length - 1] as TrainerResult;
  return `<h2>Trainer: GRPO vs GRPO+SFT vs ExP-GRPO</h2>${ratios}<h3>Newest run</h3>${trainerCharts(latest).join('\n')}`;
}

function runsTable(results: BenchResult[], skipped: string[]): string {
  const rows = results
    .map((r) => `<tr><td>${day(r.createdAt)}</td><td>${r.kind}</td><td>${escapeHtml(r.source)}</td><td>${r.mode}</td><td>${escapeHtml(r.device.name)}</td><td>${escapeHtml(r.device.cpuModel)} (${r.device.cores} cores)</td><td>${r.device.gpu ? `${escapeHtml(r.device.gpu.name)}, driver ${escapeHtml(r.device.gpu.driver)}` : '-'}</td><td>${escapeHtml(r.napoCommit)}</td><td>${escapeHtml(r.runtime)}</td></tr>`)
    .join('');
  const note = skipped.length > 0 ? `<p>Not in this schema (skipped): ${skipped.map(escapeHtml).join(', ')}</p>` : '';
  return `<h2>Runs</h2><table><tr><th>date</th><th>suite</th><th>source</th><th>mode</th><th>device</th><th>CPU</th><th>GPU</th><th>napo</th><th>runtime</th></tr>${rows}</table>${note}`;
}

export function renderPage(results: BenchResult[], skipped: string[] = []): string {
  const kernels = results.filter((r): r is KernelsResult => r.kind === 'kernels');
  const trainer = results.filter((r): r is TrainerResult => r.kind === 'trainer');
  const style = 'body{font-family:system-ui,sans-serif;margin:24px;max-width:1400px}table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}svg{display:block;margin:12px 0;max-width:100%;height:auto}';
  return `<!doctype html><html><head><meta charset="utf-8"><title>napo benchmarks</title><style>${style}</style></head><body><h1>napo benchmarks</h1><p>${results.length} results; what each figure means: bench/README.md.</p>${runsTable(results, skipped)}${trainerSection(trainer)}${kernelSection(kernels)}</body></html>\n`;
}

/** Renders every result in `directory` to `directory/index.html`; returns its path. */
export function writePage(directory: string): string {
  const { results, skipped } = readResults(directory);
  const path = join(directory, 'index.html');
  writeFileSync(path, renderPage(results, skipped));
  return path;
}

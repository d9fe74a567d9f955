/**
 * The comparison report: report.json (every record) and index.html with charts rendered to SVG
 * by Apache ECharts on the server side, so the page needs no script and no network.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { memoryCategories } from '@napo/kernels';
import * as echarts from 'echarts';

import type { ExplanationDiagnostics } from './diagnostics.js';
import { phases, type EvalRecord, type StepRecord } from './records.js';

export interface MethodRun {
  /** 'GRPO', 'GRPO+SFT', 'ExP-GRPO', ... */
  label: string;
  seed: number;
  steps: StepRecord[];
  evals: EvalRecord[];
}

export interface ComparisonReport {
  title: string;
  createdAt: string;
  machine: Record<string, unknown>;
  config: Record<string, unknown>;
  base: EvalRecord[];
  runs: MethodRun[];
  /** The table as printed: rows are methods, columns levels. */
  table: string;
}

type ChartOption = Parameters<echarts.ECharts['setOption']>[0];

function renderSvg(option: ChartOption, width = 560, height = 320): string {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width, height });
  chart.setOption({ animation: false, ...option });
  const svg = chart.renderToSVGString();
  chart.dispose();
  return svg;
}

function mean(values: number[]): number {
  return values.length === 0 ? 0 : values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** pass@k by level over evaluation steps, one chart per method (seeds averaged). */
function accuracyCharts(report: ComparisonReport): string[] {
  const labels = [...new Set(report.runs.map((run) => run.label))];
  return labels.map((label) => {
    const runs = report.runs.filter((run) => run.label === label);
    const steps = [...new Set(runs.flatMap((run) => run.evals.map((e) => e.step)))].sort((a, b) => a - b);
    const levels = [...new Set(runs.flatMap((run) => run.evals.flatMap((e) => e.byLevel.map((l) => l.level))))].sort();
    const series = levels.map((level) => ({
      name: `level ${level}`,
      type: 'line' as const,
      data: steps.map((step) =>
        mean(runs.flatMap((run) => run.evals.filter((e) => e.step === step).flatMap((e) => e.byLevel.filter((l) => l.level === level).map((l) => l.passK)))),
      ),
    }));
    return renderSvg({
      title: { text: `${label}: pass@k by level`, textStyle: { fontSize: 14 } },
      legend: { top: 24 },
      grid: { top: 60 },
      xAxis: { type: 'category', name: 'step', data: steps.map(String) },
      yAxis: { type: 'value', min: 0, max: 1 },
      series,
    });
  });
}

/** The seeds' mean of one premise figure at a level, from evaluations at one step (NaN: none). */
function premiseFigure(evals: EvalRecord[], level: number, pick: (d: ExplanationDiagnostics) => number): number {
  const values = evals.flatMap((e) => e.byLevel.filter((l) => l.level === level && l.explanations).map((l) => pick(l.explanations as ExplanationDiagnostics)));
  return values.length === 0 ? Number.NaN : mean(values);
}

/**
 * ExPO's premise per level over evaluation steps (step 0: the warm-up), per method: token-mean
 * log-prob of the self-explanation (solid) and of the expert solution (dashed) under the plain
 * prompt, and the answer's log-likelihood gain from the explanation (dotted, right axis).
 */
function premiseCharts(report: ComparisonReport): string[] {
  const labels = [...new Set(report.runs.map((run) => run.label))];
  const levels = [...new Set(report.base.flatMap((e) => e.byLevel.filter((l) => l.explanations).map((l) => l.level)))].sort((a, b) => a - b);
  const steps = [0, ...new Set(report.runs.flatMap((run) => run.evals.map((e) => e.step)))].sort((a, b) => a - b);
  const atStep = (label: string, step: number) =>
    step === 0 ? report.base : report.runs.filter((run) => run.label === label).flatMap((run) => run.evals.filter((e) => e.step === step));
  const figures: [string, (d: ExplanationDiagnostics) => number, 'solid' | 'dashed' | 'dotted', number][] = [
    ['self', (d) => d.explanationLogprob, 'solid', 0],
    ['expert', (d) => d.expertLogprob, 'dashed', 0],
    ['gain', (d) => d.answerGain, 'dotted', 1],
  ];
  return levels.map((level) =>
    renderSvg({
      title: { text: `level ${level}: log-prob of explanations (nats/token) and answer gain (nats)`, textStyle: { fontSize: 13 } },
      legend: { top: 30, itemGap: 6, textStyle: { fontSize: 10 } },
      grid: { top: 100 },
      xAxis: { type: 'category', name: 'step', data: steps.map(String) },
      yAxis: [{ type: 'value', name: 'log-prob' }, { type: 'value', name: 'gain' }],
      series: labels.flatMap((label) =>
        figures.map(([name, pick, lineType, yAxisIndex]) => ({
          name: `${label} ${name}`,
          type: 'line' as const,
          yAxisIndex,
          lineStyle: { type: lineType },
          data: steps.map((step) => premiseFigure(atStep(label, step), level, pick)),
        })),
      ),
    }, 560, 360),
  );
}

/** Mean seconds per step in each phase, stacked, per method. */
function phaseTimeChart(report: ComparisonReport): string {
  const labels = [...new Set(report.runs.map((run) => run.label))];
  const perMethod = (label: string, phase: (typeof phases)[number]) =>
    mean(report.runs.filter((run) => run.label === label).flatMap((run) => run.steps.map((s) => s.phases[phase].seconds)));
  return renderSvg({
    title: { text: 'time per step by phase (s)', textStyle: { fontSize: 14 } },
    legend: { top: 24 },
    grid: { top: 60 },
    tooltip: {},
    xAxis: { type: 'category', data: labels },
    yAxis: { type: 'value' },
    series: phases.map((phase) => ({ name: phase, type: 'bar' as const, stack: 'time', data: labels.map((label) => perMethod(label, phase)) })),
  });
}

/**
 * Per method, one step's memory across its phases, stacked by category (MiB at each phase's peak):
 * the last step of the method's first run, where the gradients and AdamW moments exist.
 */
function phaseMemoryCharts(report: ComparisonReport): string[] {
  const labels = [...new Set(report.runs.map((run) => run.label))];
  return labels.flatMap((label) => {
    const step = report.runs.find((run) => run.label === label)?.steps.at(-1);
    if (!step) return [];
    const used = memoryCategories.filter((category) => phases.some((phase) => step.phases[phase].peakByCategory[category] > 0));
    return [
      renderSvg({
        title: { text: `${label}: memory by phase and category (MiB, step ${step.step})`, textStyle: { fontSize: 14 } },
        legend: { top: 30, itemGap: 8, textStyle: { fontSize: 11 } },
        grid: { top: 90 },
        tooltip: {},
        // Every phase named: seven labels fit at this size.
        xAxis: { type: 'category', data: [...phases], axisLabel: { interval: 0, fontSize: 10 } },
        yAxis: { type: 'value' },
        series: used.map((category) => ({
          name: category,
          type: 'bar' as const,
          stack: 'memory',
          data: phases.map((phase) => step.phases[phase].peakByCategory[category] / 2 ** 20),
        })),
      }),
    ];
  });
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function renderHtml(report: ComparisonReport): string {
  const figures = [...accuracyCharts(report), ...premiseCharts(report), phaseTimeChart(report), ...phaseMemoryCharts(report)];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(report.title)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px}pre{background:#f6f6f6;padding:1rem;overflow:auto}
.charts{display:flex;flex-wrap:wrap;gap:1rem}</style></head>
<body><h1>${escapeHtml(report.title)}</h1>
<p>${escapeHtml(report.createdAt)}</p>
<pre>${escapeHtml(report.table)}</pre>
<div class="charts">${figures.map((svg) => `<figure>${svg}</figure>`).join('\n')}</div>
<h2>Configuration</h2><pre>${escapeHtml(JSON.stringify(report.config, null, 2))}</pre>
<h2>Machine</h2><pre>${escapeHtml(JSON.stringify(report.machine, null, 2))}</pre>
</body></html>
`;
}

/** Writes a file through a temporary name and a rename, so a reader never sees half of it. */
export function writeFileAtomic(path: string, contents: string): void {
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, contents);
  renameSync(temporary, path);
}

export function writeReport(directory: string, report: ComparisonReport): { json: string; html: string } {
  mkdirSync(directory, { recursive: true });
  const json = join(directory, 'report.json');
  const html = join(directory, 'index.html');
  writeFileAtomic(json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileAtomic(html, renderHtml(report));
  return { json, html };
}

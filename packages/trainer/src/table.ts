/**
 * The comparison as the paper prints it: methods by row, levels by column, plus cost per step;
 * then ExPO's premise (diagnostics.ts) by method and level at the last evaluation.
 */
import Table from 'cli-table3';

import type { ExplanationDiagnostics } from './diagnostics.js';
import type { ComparisonReport } from './report.js';
import type { EvalRecord, LevelScore } from './records.js';

function mean(values: number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((sum, v) => sum + v, 0) / values.length;
}

function percent(value: number): string {
  return Number.isNaN(value) ? '-' : (100 * value).toFixed(0);
}

/** The seeds' mean, and their range when there are several: `45 (40-50)`. */
function spread(values: number[], format: (value: number) => string): string {
  if (values.length < 2) return format(mean(values));
  return `${format(mean(values))} (${format(Math.min(...values))}-${format(Math.max(...values))})`;
}

function atLevel(evals: EvalRecord[], level: number): LevelScore[] {
  return evals.flatMap((e) => e.byLevel.filter((l) => l.level === level));
}

/** Each run's last evaluation. */
function finalEvals(report: ComparisonReport, label: string): EvalRecord[] {
  return report.runs
    .filter((run) => run.label === label)
    .map((run) => run.evals[run.evals.length - 1])
    .filter((e): e is EvalRecord => e !== undefined);
}

function reportLevels(report: ComparisonReport): number[] {
  return [...new Set(report.base.flatMap((e) => e.byLevel.map((l) => l.level)))].sort((a, b) => a - b);
}

function methodLabels(report: ComparisonReport): string[] {
  return [...new Set(report.runs.map((run) => run.label))];
}

function passKTable(report: ComparisonReport, levels: number[], k: number): string {
  const table = new Table({
    head: ['method', ...levels.map((level) => `L${level} pass@${k}`), 'steps/s', 'tokens/s', 'peak MiB/step'],
    style: { head: [], border: [] },
  });
  const scores = (evals: EvalRecord[]) => levels.map((level) => spread(atLevel(evals, level).map((l) => l.passK), percent));
  table.push(['base (warm-up)', ...scores(report.base), '-', '-', '-']);
  for (const label of methodLabels(report)) {
    const steps = report.runs.filter((run) => run.label === label).flatMap((run) => run.steps);
    const seconds = steps.reduce((sum, s) => sum + s.stepSeconds, 0);
    const tokens = steps.reduce((sum, s) => sum + s.tokensGenerated + s.tokensTrained, 0);
    const peak = Math.max(0, ...steps.flatMap((s) => Object.values(s.phases).map((p) => p.peakAllocatedBytes)));
    table.push([label, ...scores(finalEvals(report, label)), (steps.length / seconds).toFixed(2), (tokens / seconds).toFixed(0), (peak / 2 ** 20).toFixed(1)]);
  }
  return table.toString();
}

/** `valid% self/expert +gain`, seeds averaged. */
function premiseCell(diagnoses: ExplanationDiagnostics[]): string {
  if (diagnoses.length === 0) return '-';
  const figure = (pick: (d: ExplanationDiagnostics) => number) => mean(diagnoses.map(pick));
  const nats = (value: number) => (Number.isNaN(value) ? '-' : value.toFixed(2));
  const gain = figure((d) => d.answerGain);
  return `${percent(figure((d) => d.validFraction))}% ${nats(figure((d) => d.explanationLogprob))}/${nats(figure((d) => d.expertLogprob))} ${gain >= 0 ? '+' : ''}${nats(gain)}`;
}

function premiseTable(report: ComparisonReport, levels: number[]): string | undefined {
  const diagnosed = (evals: EvalRecord[], level: number) => atLevel(evals, level).flatMap((l) => (l.explanations ? [l.explanations] : []));
  if (levels.every((level) => diagnosed(report.base, level).length === 0)) return undefined;
  const table = new Table({ head: ['method', ...levels.map((level) => `L${level}`)], style: { head: [], border: [] } });
  table.push(['base (warm-up)', ...levels.map((level) => premiseCell(diagnosed(report.base, level)))]);
  for (const label of methodLabels(report)) table.push([label, ...levels.map((level) => premiseCell(diagnosed(finalEvals(report, label), level)))]);
  return table.toString();
}

export function formatComparisonTable(report: ComparisonReport): string {
  const levels = reportLevels(report);
  const k = report.base[0]?.k ?? 4;
  const seeds = report.base.length;
  const range = seeds > 1 ? `, mean over ${seeds} seeds (min-max)` : '';
  const lines = [`pass@${k} (%) by level on held-out items${range}; tokens/s counts generated + trained tokens`, passKTable(report, levels, k)];
  const premise = premiseTable(report, levels);
  if (premise) {
    lines.push(
      "ExPO's premise at the last evaluation: valid self-explanations (%), token-mean log-prob under the plain prompt of the",
      'self-explanation / of the expert solution, and the answer\'s log-likelihood gain from the explanation (nats)',
      premise,
    );
  }
  return lines.join('\n');
}

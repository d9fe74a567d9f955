/** The comparison as the paper prints it: methods by row, levels by column, plus cost per step. */
import Table from 'cli-table3';

import type { ComparisonReport } from './report.js';
import type { EvalRecord } from './records.js';

function mean(values: number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((sum, v) => sum + v, 0) / values.length;
}

function percent(value: number): string {
  return Number.isNaN(value) ? '-' : (100 * value).toFixed(0);
}

/** pass@k per level, averaged over seeds, from each run's last evaluation. */
function levelScores(evals: EvalRecord[], levels: number[]): number[] {
  return levels.map((level) => mean(evals.flatMap((e) => e.byLevel.filter((l) => l.level === level).map((l) => l.passK))));
}

export function formatComparisonTable(report: ComparisonReport): string {
  const levels = [...new Set(report.base.flatMap((e) => e.byLevel.map((l) => l.level)))].sort((a, b) => a - b);
  const k = report.base[0]?.k ?? 4;
  const table = new Table({
    head: ['method', ...levels.map((level) => `L${level} pass@${k}`), 'steps/s', 'tokens/s', 'peak MiB/step'],
    style: { head: [], border: [] },
  });
  table.push(['base (warm-up)', ...levelScores(report.base, levels).map(percent), '-', '-', '-']);
  const labels = [...new Set(report.runs.map((run) => run.label))];
  for (const label of labels) {
    const runs = report.runs.filter((run) => run.label === label);
    const finals = runs.map((run) => run.evals[run.evals.length - 1]).filter((e): e is EvalRecord => e !== undefined);
    const steps = runs.flatMap((run) => run.steps);
    const seconds = steps.reduce((sum, s) => sum + s.stepSeconds, 0);
    const tokens = steps.reduce((sum, s) => sum + s.tokensGenerated + s.tokensTrained, 0);
    const peak = Math.max(0, ...steps.flatMap((s) => Object.values(s.phases).map((p) => p.peakAllocatedBytes)));
    table.push([
      label,
      ...levelScores(finals, levels).map(percent),
      (steps.length / seconds).toFixed(2),
      (tokens / seconds).toFixed(0),
      (peak / 2 ** 20).toFixed(1),
    ]);
  }
  return `pass@${k} (%) by level on held-out items; tokens/s counts generated + trained tokens\n${table.toString()}`;
}

/**
 * Progress on a terminal (cli-progress bars), or one plain line every N steps when the output is
 * not a TTY (CI logs, files).
 */
import cliProgress from 'cli-progress';

import { describeDiagnostics } from './diagnostics.js';
import type { LoggedCompletion, TrainerRecord } from './records.js';

export interface Progress {
  start(label: string, total: number): void;
  update(label: string, done: number, detail: string): void;
  /** Lines printed above the bars (as they are, without a terminal). */
  log(text: string): void;
  stop(): void;
}

/** @param lines how many plain lines a non-interactive run prints per bar (about) */
export function createProgress(interactive = Boolean(process.stdout.isTTY), lines = 10): Progress {
  if (interactive) {
    const bars = new cliProgress.MultiBar(
      { format: ' {label} |{bar}| {value}/{total} {detail}', hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    const active = new Map<string, cliProgress.SingleBar>();
    return {
      start: (label, total) => active.set(label, bars.create(total, 0, { label: label.padEnd(14), detail: '' })),
      update: (label, done, detail) => active.get(label)?.update(done, { detail }),
      log: (text) => bars.log(`${text}\n`),
      stop: () => bars.stop(),
    };
  }
  const totals = new Map<string, number>();
  return {
    start: (label, total) => totals.set(label, total),
    update: (label, done, detail) => {
      const total = totals.get(label) ?? done;
      const every = Math.max(1, Math.round(total / lines));
      if (done % every === 0 || done === total) console.log(`${label} ${done}/${total} ${detail}`);
    },
    log: (text) => console.log(text),
    stop: () => undefined,
  };
}

/** A step's logged completions, one line each: reward, prompt and completion on one line. */
export function describeCompletions(step: number, completions: readonly LoggedCompletion[]): string {
  const oneLine = (text: string) => JSON.stringify(text);
  return [`step ${step} completions:`, ...completions.map((c) => `  [reward ${c.reward.toFixed(2)}] ${oneLine(c.prompt)} -> ${oneLine(c.completion)}`)].join('\n');
}

/** The one-line summary of a record a progress display shows. */
export function describeRecord(record: TrainerRecord): string {
  if (record.kind === 'eval') {
    return `eval pass@${record.k} ${record.byLevel.map((l) => `L${l.level} ${(100 * l.passK).toFixed(0)}%`).join(' ')}`;
  }
  const premise = record.explanations && record.explanations.count > 0 ? ` | all-wrong prompts: ${describeDiagnostics(record.explanations)}` : '';
  return `reward ${record.reward.toFixed(2)} loss ${record.loss.toFixed(4)} ${record.stepSeconds.toFixed(2)} s/step${premise}`;
}

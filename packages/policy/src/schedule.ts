/** Learning-rate schedules: functions from the optimizer step (from 0) to the learning rate. */

export type LrSchedule = (step: number) => number;

function checkNonNegative(op: string, name: string, value: number): void {
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${op}: ${name} = ${value} must be a finite number >= 0`);
}

export function constantSchedule(lr: number): LrSchedule {
  checkNonNegative('constantSchedule', 'lr', lr);
  return () => lr;
}

export interface WarmupCosineOptions {
  peakLr: number;
  /** Linear warmup from 0 to peakLr over these steps. Default 0. */
  warmupSteps?: number;
  /** Steps until the cosine reaches minLr (held there afterwards). */
  totalSteps: number;
  /** Default 0. */
  minLr?: number;
}

/** Linear warmup, then cosine decay to minLr at totalSteps (as nanoGPT / HF's cosine schedule). */
export function warmupCosineSchedule(options: WarmupCosineOptions): LrSchedule {
  const op = 'warmupCosineSchedule';
  const { peakLr, totalSteps } = options;
  const warmupSteps = options.warmupSteps ?? 0;
  const minLr = options.minLr ?? 0;
  checkNonNegative(op, 'peakLr', peakLr);
  checkNonNegative(op, 'minLr', minLr);
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) throw new RangeError(`${op}: warmupSteps = ${warmupSteps} must be an integer >= 0`);
  if (!Number.isInteger(totalSteps) || totalSteps <= warmupSteps) {
    throw new RangeError(`${op}: totalSteps = ${totalSteps} must be an integer > warmupSteps = ${warmupSteps}`);
  }
  if (minLr > peakLr) throw new RangeError(`${op}: minLr = ${minLr} must be <= peakLr = ${peakLr}`);
  return (step: number) => {
    if (step < warmupSteps) return (peakLr * (step + 1)) / warmupSteps;
    if (step >= totalSteps) return minLr;
    const progress = (step - warmupSteps) / (totalSteps - warmupSteps);
    return minLr + 0.5 * (peakLr - minLr) * (1 + Math.cos(Math.PI * progress));
  };
}

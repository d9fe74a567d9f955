/**
 * Reward functions in the manner of TRL's `reward_funcs` / `reward_weights`: each scores one
 * sample, the scores are weighted and summed. A function returns null where it does not apply to
 * a sample (TRL's None); a null is left out of that sample's sum, the way TRL's nansum skips NaN,
 * and is recorded as NaN in the per-function scores.
 */
import type { DatasetItem } from './dataset.js';
import { isVerifierName, verifierNames, verifiers, type VerifierName } from './verifiers.js';

export interface RewardSample {
  prompt: string;
  completion: string;
  answer: string;
  item: DatasetItem;
}

export type RewardFunction = (sample: RewardSample) => number | null | Promise<number | null>;

export interface WeightedReward {
  name: string;
  fn: RewardFunction;
  weight: number;
}

export interface RewardScores {
  /** Per sample: the sum of weight * value over the functions that applied (0 when none did). */
  total: number[];
  /** Per function name, per sample: the unweighted value, NaN where the function returned null. */
  byName: Record<string, number[]>;
}

/** Throws a RangeError when the list is empty, a name is empty or repeated, a weight is not finite, or fn is not a function. */
export function validateRewards(rewards: readonly WeightedReward[]): void {
  if (rewards.length === 0) throw new RangeError('rewards: at least one reward function is needed');
  const seen = new Set<string>();
  rewards.forEach((reward, index) => {
    if (typeof reward.name !== 'string' || reward.name.trim().length === 0) {
      throw new RangeError(`rewards[${index}]: name must be a non-empty string`);
    }
    if (seen.has(reward.name)) throw new RangeError(`rewards: the name "${reward.name}" is used more than once`);
    seen.add(reward.name);
    if (typeof reward.fn !== 'function') throw new TypeError(`reward "${reward.name}": fn must be a function`);
    if (typeof reward.weight !== 'number' || !Number.isFinite(reward.weight)) {
      throw new RangeError(`reward "${reward.name}": weight must be a finite number, got ${String(reward.weight)}`);
    }
  });
}

/**
 * Scores every sample with every function (each function's samples concurrently, the functions
 * one after another) and sums the weighted values. A function that throws, or returns anything but
 * a finite number or null, fails the whole call with an Error naming the function and the sample.
 */
export async function scoreRewards(rewards: readonly WeightedReward[], samples: readonly RewardSample[]): Promise<RewardScores> {
  validateRewards(rewards);
  const total = new Array<number>(samples.length).fill(0);
  const byName: Record<string, number[]> = {};
  for (const reward of rewards) {
    const settled = await Promise.allSettled(samples.map(async (sample) => reward.fn(sample)));
    const values = settled.map((outcome, index) => {
      if (outcome.status === 'rejected') {
        const reason: unknown = outcome.reason;
        const message = reason instanceof Error ? reason.message : String(reason);
        throw new Error(`reward "${reward.name}" failed on sample ${index}: ${message}`, { cause: reason });
      }
      const value: unknown = outcome.value;
      if (value === null) return Number.NaN;
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        throw new Error(`reward "${reward.name}" returned ${describe(value)} on sample ${index} (expected a finite number or null)`);
      }
      return value;
    });
    values.forEach((value, index) => {
      if (!Number.isNaN(value)) total[index] = (total[index] as number) + reward.weight * value;
    });
    byName[reward.name] = values;
  }
  return { total, byName };
}

function describe(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  return `a ${typeof value}`;
}

/** 1 when the completion's final answer is right by the named verifier, else 0. */
export function accuracyReward(verifier: VerifierName): RewardFunction {
  if (!isVerifierName(verifier)) {
    throw new RangeError(`accuracyReward: unknown verifier ${JSON.stringify(verifier)} (one of ${verifierNames.join(', ')})`);
  }
  const verify = verifiers[verifier];
  return ({ completion, answer }) => verify(completion, answer);
}

/**
 * 1 when the completion matches `pattern` (RegExp.test: anchor it with ^...$ for a whole-completion
 * format), else 0. The g / y flags are dropped so the test has no state between calls.
 */
export function formatReward(pattern: RegExp): RewardFunction {
  if (!(pattern instanceof RegExp)) throw new TypeError('formatReward: pattern must be a RegExp');
  const stateless = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
  return ({ completion }) => (typeof completion === 'string' && stateless.test(completion) ? 1 : 0);
}

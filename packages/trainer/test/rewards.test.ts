import { describe, expect, it } from 'vitest';

import type { DatasetItem } from '../src/dataset.js';
import { accuracyReward, formatReward, scoreRewards, validateRewards, type RewardSample, type WeightedReward } from '../src/rewards.js';

function sample(completion: string, answer: string, extra: Partial<DatasetItem> = {}): RewardSample {
  const item: DatasetItem = { prompt: 'Q', answer, ...extra };
  return { prompt: item.prompt, completion, answer, item };
}

const thinkFormat = /^<think>[\s\S]*?<\/think>\s*<answer>[\s\S]*?<\/answer>$/;

describe('built-in rewards', () => {
  it('accuracyReward scores with the named verifier', async () => {
    const reward = accuracyReward('gsm8k');
    expect(await reward(sample('3+4 = 7\n#### 7', '7'))).toBe(1);
    expect(await reward(sample('3+4 = 7\n#### 8', '7'))).toBe(0);
    expect(await reward(sample('garbage', '7'))).toBe(0);
    expect(() => accuracyReward('fuzzy' as 'exact')).toThrow(/unknown verifier "fuzzy"/);
  });

  it('formatReward is 1 when the completion matches, even with a stateful /g pattern', async () => {
    const reward = formatReward(thinkFormat);
    expect(await reward(sample('<think>a</think>\n<answer>7</answer>', '7'))).toBe(1);
    expect(await reward(sample('<answer>7</answer>', '7'))).toBe(0);
    const global = formatReward(/####/g);
    // RegExp.test with /g would alternate true/false through lastIndex; the reward must not.
    for (let i = 0; i < 3; i++) expect(await global(sample('#### 7', '7'))).toBe(1);
  });
});

describe('scoreRewards', () => {
  it('sums weight * value per sample and keeps each function\'s values', async () => {
    const rewards: WeightedReward[] = [
      { name: 'accuracy', fn: accuracyReward('gsm8k'), weight: 1 },
      { name: 'format', fn: formatReward(/####/), weight: 0.25 },
    ];
    const samples = [sample('#### 7', '7'), sample('#### 8', '7'), sample('7', '7')];
    const scores = await scoreRewards(rewards, samples);
    expect(scores.total).toEqual([1.25, 0.25, 0]);
    expect(scores.byName).toEqual({ accuracy: [1, 0, 0], format: [1, 1, 0] });
  });

  it('leaves null values out of the sum (TRL nansum) and records them as NaN', async () => {
    // A reward that applies only to items with a level, and an async one.
    const levelBonus: WeightedReward = { name: 'level', fn: ({ item }) => (item.level === undefined ? null : item.level / 10), weight: 2 };
    const length: WeightedReward = { name: 'length', fn: async ({ completion }) => Promise.resolve(completion.length > 5 ? -1 : null), weight: 0.5 };
    const samples = [sample('short', '1'), sample('a longer one', '1', { level: 3 }), sample('tiny', '1', { level: 5 })];
    const scores = await scoreRewards([levelBonus, length], samples);
    expect(scores.total[0]).toBe(0); // nothing applied
    expect(scores.total[1]).toBeCloseTo(2 * 0.3 + 0.5 * -1);
    expect(scores.total[2]).toBeCloseTo(2 * 0.5);
    expect(scores.byName.level).toEqual([Number.NaN, 0.3, 0.5]);
    expect(scores.byName.length).toEqual([Number.NaN, -1, Number.NaN]);
  });

  it('names the function and the sample when a function throws or returns a non-finite value', async () => {
    const ok: WeightedReward = { name: 'ok', fn: () => 1, weight: 1 };
    const throws: WeightedReward = {
      name: 'judge',
      fn: ({ completion }) => {
        if (completion === 'bad') throw new Error('parse error');
        return 1;
      },
      weight: 1,
    };
    const rejects: WeightedReward = { name: 'remote', fn: async () => Promise.reject(new Error('timeout')), weight: 1 };
    const nan: WeightedReward = { name: 'ratio', fn: ({ completion }) => (completion === 'bad' ? Number.NaN : 1), weight: 1 };
    const infinite: WeightedReward = { name: 'inf', fn: () => Number.POSITIVE_INFINITY, weight: 1 };
    const notANumber: WeightedReward = { name: 'str', fn: () => '1' as unknown as number, weight: 1 };
    const samples = [sample('fine', '1'), sample('bad', '1')];
    await expect(scoreRewards([ok, throws], samples)).rejects.toThrow('reward "judge" failed on sample 1: parse error');
    await expect(scoreRewards([rejects], samples)).rejects.toThrow('reward "remote" failed on sample 0: timeout');
    await expect(scoreRewards([nan], samples)).rejects.toThrow('reward "ratio" returned NaN on sample 1');
    await expect(scoreRewards([infinite], samples)).rejects.toThrow('reward "inf" returned Infinity on sample 0');
    await expect(scoreRewards([notANumber], samples)).rejects.toThrow('reward "str" returned the string "1" on sample 0');
  });

  it('validates names and weights with clear errors', async () => {
    const fn = (): number => 1;
    expect(() => validateRewards([])).toThrow('at least one reward function');
    expect(() => validateRewards([{ name: 'a', fn, weight: 1 }, { name: 'a', fn, weight: 2 }])).toThrow('the name "a" is used more than once');
    expect(() => validateRewards([{ name: ' ', fn, weight: 1 }])).toThrow('rewards[0]: name must be a non-empty string');
    expect(() => validateRewards([{ name: 'a', fn, weight: Number.NaN }])).toThrow('reward "a": weight must be a finite number, got NaN');
    expect(() => validateRewards([{ name: 'a', fn, weight: Number.POSITIVE_INFINITY }])).toThrow('got Infinity');
    expect(() => validateRewards([{ name: 'a', fn: 1 as unknown as () => number, weight: 1 }])).toThrow('reward "a": fn must be a function');
    await expect(scoreRewards([{ name: 'a', fn, weight: Number.NaN }], [sample('x', '1')])).rejects.toThrow('weight must be a finite number');
    // Zero and negative weights are allowed (a penalty, or a logged-only reward).
    expect(() => validateRewards([{ name: 'a', fn, weight: 0 }, { name: 'b', fn, weight: -0.5 }])).not.toThrow();
  });

  it('returns empty lists for no samples', async () => {
    const scores = await scoreRewards([{ name: 'a', fn: () => 1, weight: 1 }], []);
    expect(scores).toEqual({ total: [], byName: { a: [] } });
  });
});

/** TRL GRPOTrainer's knobs in napo's trainer: several passes per batch, truncation masking, dropping zero-std groups, TRL's metric names. */
import { describe, expect, it } from 'vitest';
import { CausalLM, CharTokenizer } from '@napo/policy';

import { AdditionTask } from '../src/tasks/addition.js';
import { Trainer } from '../src/trainer.js';
import type { TrainConfigInput } from '../src/config.js';
import { rewardGroups, trlMetrics, idleOptimisation } from '../src/trl-metrics.js';
import { EntropyBonus } from '../src/entropy-bonus.js';
import { normalizeThenSum } from '../src/reward-aggregation.js';
import { describeCompletions } from '../src/progress.js';

const task = new AdditionTask();
const tokenizer = new CharTokenizer(task.alphabet);

function tinyPolicy(seed = 1): CausalLM {
  return CausalLM.create({ family: 'gpt2', vocabSize: tokenizer.vocabSize, maxPositions: 96, hiddenSize: 32, numLayers: 2, numHeads: 2, seed });
}

const base: TrainConfigInput = { promptsPerStep: 2, groupSize: 4, maxNewTokens: 24, learningRate: 1e-3, steps: 4, diagnostics: false };

/** Distinct characters of the completion: an untrained model's groups always have a spread. */
const firstDigitReward = [{ name: 'variety', weight: 1, fn: (sample: { completion: string }) => new Set(sample.completion).size }];

describe('TRL metrics by hand', () => {
  it('groups, stds and lengths as TRL computes them', () => {
    const groups = rewardGroups([1, 0, 1, 0, 1, 1, 1, 1], 4);
    expect(groups.map((g) => g.zeroStd)).toEqual([false, true]);
    expect(groups[0]!.std).toBeCloseTo(Math.sqrt(1 / 3), 12);
    expect(groups[1]!.std).toBe(0);
    const metrics = trlMetrics({
      rollouts: {
        lengths: [3, 5, 8, 8, 2, 4, 8, 6],
        truncated: [false, false, true, true, false, false, true, false],
        rewards: [1, 0, 1, 0, 1, 1, 1, 1],
        rewardsByFunction: { format: [1, 0, Number.NaN, 1, 1, 1, 1, 1] },
      },
      groups,
      training: { ...idleOptimisation(), optimizerSteps: 2, meanKl: 0.25, clipLowFraction: 0.1, clipHighFraction: 0.05, clipLowMin: 0.02, clipHighMax: 0.3, gradNorm: 3, entropy: 1.5 },
      learningRate: 1e-4,
      numTokens: 1234,
      rewardNames: ['format'],
      beta: 0.04,
      lossType: 'grpo',
    });
    expect(metrics['completions/mean_length']).toBe(44 / 8);
    expect(metrics['completions/min_length']).toBe(2);
    expect(metrics['completions/max_length']).toBe(8);
    expect(metrics['completions/clipped_ratio']).toBe(3 / 8);
    expect(metrics['completions/mean_terminated_length']).toBe((3 + 5 + 2 + 4 + 6) / 5);
    expect(metrics['completions/min_terminated_length']).toBe(2);
    expect(metrics['completions/max_terminated_length']).toBe(6);
    expect(metrics.reward_std).toBeCloseTo(Math.sqrt(1 / 3) / 2, 12);
    expect(metrics.frac_reward_zero_std).toBe(0.5);
    expect(metrics.kl).toBe(0.25);
    expect(metrics['clip_ratio/region_mean']).toBeCloseTo(0.15, 12);
    expect([metrics['clip_ratio/low_min'], metrics['clip_ratio/high_max']]).toEqual([0.02, 0.3]);
    expect(metrics.num_tokens).toBe(1234);
    expect(metrics.grad_norm).toBe(3);
    expect(metrics.entropy).toBe(1.5);
    // NaN (does not apply) is left out: six 1s and one 0 -> mean 6/7, unbiased std.
    expect(metrics['rewards/format/mean']).toBeCloseTo(6 / 7, 12);
    const m = 6 / 7;
    expect(metrics['rewards/format/std']).toBeCloseTo(Math.sqrt((6 * (1 - m) ** 2 + m ** 2) / 6), 12);
    // TRL logs kl only with a KL term.
    expect('kl' in trlMetrics({ rollouts: { lengths: [1], truncated: [false], rewards: [0], rewardsByFunction: {} }, groups: [], training: idleOptimisation(), learningRate: 1, numTokens: 0, rewardNames: [], beta: 0, lossType: 'grpo' })).toBe(false);
  });
});

describe("TRL's loss types and importance levels", () => {
  it('every loss type at both levels, with delta: a finite step, its clip figures under the names TRL logs', async () => {
    for (const lossType of ['grpo', 'bnpo', 'dr_grpo', 'dapo', 'cispo', 'sapo', 'luspo', 'vespo'] as const) {
      const levels = lossType === 'luspo' ? (['sequence'] as const) : lossType === 'vespo' ? (['token'] as const) : (['token', 'sequence'] as const);
      for (const importanceSamplingLevel of levels) {
        const policy = tinyPolicy();
        const config: TrainConfigInput = { ...base, levels: [1], learningRate: 0.05, numIterations: 2, lossType, importanceSamplingLevel, delta: 1.5, epsHigh: lossType === 'cispo' ? 1.1 : 0.28 };
        const record = await new Trainer({ policy, tokenizer, task, config, rewards: firstDigitReward, evaluation: { itemsPerLevel: 1 } }).trainStep();
        expect(Number.isFinite(record.loss) && record.gradNorm > 0).toBe(true);
        expect('clip_ratio/region_mean' in record).toBe(lossType !== 'cispo' && lossType !== 'sapo' && lossType !== 'vespo');
        expect('cispo_clip_ratio' in record).toBe(lossType === 'cispo');
        expect('vespo/phi_seq_mean' in record).toBe(lossType === 'vespo');
        if (lossType === 'vespo') expect(record['vespo/phi_seq_mean']).toBeGreaterThan(0);
        if (lossType === 'cispo') expect(record.cispo_clip_ratio).toBe(record.clipHighFraction);
        policy.dispose();
      }
    }
  });

  it('refuses a delta of 1 or less and an unknown level by name', () => {
    const policy = tinyPolicy();
    expect(() => new Trainer({ policy, tokenizer, task, config: { delta: 1 } })).toThrow(/delta must be > 1/);
    expect(() => new Trainer({ policy, tokenizer, task, config: { lossType: 'luspo' } })).toThrow(/lossType luspo needs importanceSamplingLevel 'sequence'/);
    expect(() => new Trainer({ policy, tokenizer, task, config: { lossType: 'vespo', importanceSamplingLevel: 'sequence' } })).toThrow(/vespo weighs whole sequences itself/);
    expect(() => new Trainer({ policy, tokenizer, task, config: { lossType: 'vespo', vespoLambdaNeg: 0 } })).toThrow(/vespoLambdaNeg must be > 0/);
    expect(() => new Trainer({ policy, tokenizer, task, config: { importanceSamplingLevel: 'group' as 'token' } })).toThrow(/importanceSamplingLevel must be one of token, sequence/);
    policy.dispose();
  });
});

describe('several optimisation passes per batch (numIterations)', () => {
  it('one AdamW step per pass; the ratio is 1 in a single pass and moves from the second on', async () => {
    const single = tinyPolicy();
    const one = await new Trainer({ policy: single, tokenizer, task, config: { ...base, levels: [1], learningRate: 0.05 }, rewards: firstDigitReward, evaluation: { itemsPerLevel: 1 } }).trainStep();
    expect(one.optimizerSteps).toBe(1);
    expect(single.getOptimizerState().steps).toBe(1);
    expect(one['clip_ratio/region_mean']).toBe(0);

    const multi = tinyPolicy();
    const three = await new Trainer({ policy: multi, tokenizer, task, config: { ...base, levels: [1], learningRate: 0.05, numIterations: 3 }, rewards: firstDigitReward, evaluation: { itemsPerLevel: 1 } }).trainStep();
    expect(three.optimizerSteps).toBe(3);
    expect(multi.getOptimizerState().steps).toBe(3);
    // The same rollouts (same seed), so the same rewards; passes 2 and 3 see ratios away from 1 at this learning rate.
    expect(three.reward).toBe(one.reward);
    expect(three['clip_ratio/region_mean']).toBeGreaterThan(0);
    expect(three['clip_ratio/region_mean']).toBeCloseTo(three.clipLowFraction + three.clipHighFraction, 12);
    // TRL's extremes over the rollouts bracket the means.
    expect(three['clip_ratio/high_max']).toBeGreaterThanOrEqual(three['clip_ratio/high_mean'] as number);
    expect(three['clip_ratio/low_min']).toBeLessThanOrEqual(three['clip_ratio/low_mean'] as number);
    expect(three.entropy).toBeGreaterThan(0);
    single.dispose();
    multi.dispose();
  });
});

describe('mini-batches per generation (stepsPerGeneration)', () => {
  it('one AdamW step per mini-batch and pass; old log-probs from sampling time, so later mini-batches see ratios away from 1', async () => {
    const run = async (config: TrainConfigInput) => {
      const policy = tinyPolicy();
      const record = await new Trainer({ policy, tokenizer, task, config: { ...base, levels: [1], learningRate: 0.05, promptsPerStep: 4, ...config }, rewards: firstDigitReward, evaluation: { itemsPerLevel: 1 } }).trainStep();
      const adamSteps = policy.getOptimizerState().steps;
      policy.dispose();
      return { record, adamSteps };
    };
    const whole = await run({});
    const split = await run({ stepsPerGeneration: 2 });
    const twice = await run({ stepsPerGeneration: 2, numIterations: 2 });
    expect([whole.record.optimizerSteps, split.record.optimizerSteps, twice.record.optimizerSteps]).toEqual([1, 2, 4]);
    expect([whole.adamSteps, split.adamSteps, twice.adamSteps]).toEqual([1, 2, 4]);
    // The same rollouts, split in two: the same tokens trained, each mini-batch half the rows.
    expect(split.record.reward).toBe(whole.record.reward);
    expect(split.record.tokensTrained).toBe(whole.record.tokensTrained);
    expect(split.record.shapes.scoredRows).toBe(whole.record.shapes.scoredRows / 2);
    expect(whole.record['clip_ratio/region_mean']).toBe(0);
    expect(split.record['clip_ratio/region_mean']).toBeGreaterThan(0);
  });

  it('refuses 0 mini-batches by name', () => {
    const policy = tinyPolicy();
    expect(() => new Trainer({ policy, tokenizer, task, config: { stepsPerGeneration: 0 } })).toThrow(/stepsPerGeneration must be >= 1/);
    policy.dispose();
  });
});

describe('gradient accumulation (gradientAccumulationSteps)', () => {
  it('micro-batches summed and scaled by 1 / k: the gradient of the whole batch for grpo and dapo, with half the activations', async () => {
    const run = async (config: TrainConfigInput) => {
      const policy = tinyPolicy();
      const record = await new Trainer({ policy, tokenizer, task, config: { ...base, algorithm: 'grpo', levels: [1], learningRate: 0.05, ...config }, rewards: firstDigitReward, evaluation: { itemsPerLevel: 1 } }).trainStep();
      // The gradients the step left: the micro-batches' sum (before the optimizer's 1 / k).
      const gradients = policy.parameters().flatMap((p) => Array.from(policy.getGradient(p.name)));
      const adamSteps = policy.getOptimizerState().steps;
      policy.dispose();
      return { record, gradients, adamSteps };
    };
    for (const lossType of ['grpo', 'dapo'] as const) {
      const whole = await run({ lossType });
      const accumulated = await run({ lossType, gradientAccumulationSteps: 2 });
      expect([accumulated.record.optimizerSteps, accumulated.record.microBatches, accumulated.adamSteps]).toEqual([1, 2, 1]);
      expect([whole.record.optimizerSteps, whole.record.microBatches]).toEqual([1, 1]);
      expect(accumulated.record.reward).toBe(whole.record.reward);
      expect(accumulated.record.gradNorm).toBeCloseTo(whole.record.gradNorm, 5);
      expect(accumulated.record.loss).toBeCloseTo(whole.record.loss, 6);
      // Each micro-batch's loss is its own aggregate: their sum is k times the whole batch's.
      const largest = Math.max(...whole.gradients.map(Math.abs));
      const apart = Math.max(...whole.gradients.map((g, i) => Math.abs(g - (accumulated.gradients[i] as number) / 2)));
      expect(largest).toBeGreaterThan(0);
      expect(apart).toBeLessThan(1e-4 * largest);
      expect(accumulated.record.phases.score.peakByCategory.activation).toBeLessThan(whole.record.phases.score.peakByCategory.activation);
    }
  });

  it('refuses 0 micro-batches by name', () => {
    const policy = tinyPolicy();
    expect(() => new Trainer({ policy, tokenizer, task, config: { gradientAccumulationSteps: 0 } })).toThrow(/gradientAccumulationSteps must be >= 1/);
    policy.dispose();
  });
});

describe('multiObjectiveAggregation and minP', () => {
  it('normalize_then_sum by hand: each function normalised within its group (NaN left out), then the weighted sum', () => {
    const f1 = [1, 0, 1, 1];
    const f2 = [0, Number.NaN, 2, 4];
    const total = normalizeThenSum([{ weight: 1, values: f1 }, { weight: 0.5, values: f2 }], 2);
    const s1 = Math.sqrt(0.5) + 1e-4;
    const s2 = Math.sqrt(2) + 1e-4;
    // Group 1: f2 has one value (no std): it adds nothing. Group 2: f1 has no spread: 0.
    const expected = [0.5 / s1, -0.5 / s1, 0.5 * (-1 / s2), 0.5 * (1 / s2)];
    total.forEach((value, i) => expect(value).toBeCloseTo(expected[i]!, 12));
  });

  it('normalize_then_sum trains on other advantages than sum_then_normalize; refuses scaleRewards and estimator', async () => {
    const rewards = [
      { name: 'variety', weight: 1, fn: (sample: { completion: string }) => new Set(sample.completion).size },
      { name: 'length', weight: 0.1, fn: (sample: { completion: string }) => sample.completion.length },
    ];
    const run = async (multiObjectiveAggregation: 'sum_then_normalize' | 'normalize_then_sum') => {
      const policy = tinyPolicy();
      const record = await new Trainer({ policy, tokenizer, task, config: { ...base, algorithm: 'grpo', levels: [1], multiObjectiveAggregation }, rewards, evaluation: { itemsPerLevel: 1 } }).trainStep();
      policy.dispose();
      return record;
    };
    const summed = await run('sum_then_normalize');
    const normalised = await run('normalize_then_sum');
    expect(normalised.reward).toBe(summed.reward);
    expect(normalised.gradNorm).toBeGreaterThan(0);
    expect(normalised.loss).not.toBe(summed.loss);
    const policy = tinyPolicy();
    expect(() => new Trainer({ policy, tokenizer, task, config: { multiObjectiveAggregation: 'normalize_then_sum', scaleRewards: 'batch' } })).toThrow(/scaleRewards and estimator do not apply/);
    policy.dispose();
  });

  it('repetitionPenalty: the same seed, other rollouts', async () => {
    const run = async (repetitionPenalty: number) => {
      const policy = tinyPolicy();
      const record = await new Trainer({ policy, tokenizer, task, config: { ...base, algorithm: 'grpo', levels: [1], repetitionPenalty, logCompletions: true }, rewards: firstDigitReward, evaluation: { itemsPerLevel: 1 } }).trainStep();
      policy.dispose();
      return (record.completions ?? []).map((c) => c.completion);
    };
    expect(await run(3)).not.toEqual(await run(1));
  });

  it('minP = 1 keeps only the most likely token: every rollout of a prompt is the same', async () => {
    const policy = tinyPolicy();
    const record = await new Trainer({ policy, tokenizer, task, config: { ...base, algorithm: 'grpo', levels: [1], minP: 1 }, rewards: firstDigitReward, evaluation: { itemsPerLevel: 1 } }).trainStep();
    expect(record.frac_reward_zero_std).toBe(1);
    expect(() => new Trainer({ policy, tokenizer, task, config: { minP: 2 } })).toThrow(/minP must be <= 1/);
    expect(() => new Trainer({ policy, tokenizer, task, config: { repetitionPenalty: 0 } })).toThrow(/repetitionPenalty must be > 0/);
    policy.dispose();
  });
});

describe('logCompletions', () => {
  it("the step's first numCompletionsToPrint rollouts with their rewards, and the lines napo train prints", async () => {
    const policy = tinyPolicy();
    const record = await new Trainer({ policy, tokenizer, task, config: { ...base, algorithm: 'grpo', levels: [1], logCompletions: true, numCompletionsToPrint: 3 }, rewards: firstDigitReward, evaluation: { itemsPerLevel: 1 } }).trainStep();
    expect(record.completions).toHaveLength(3);
    for (const logged of record.completions ?? []) {
      expect(logged.rewards.variety).toBe(new Set(logged.completion).size);
      expect(logged.reward).toBe(logged.rewards.variety);
      expect(logged.prompt.length).toBeGreaterThan(0);
    }
    const printed = describeCompletions(record.step, record.completions ?? []).split('\n');
    expect(printed[0]).toBe('step 1 completions:');
    expect(printed).toHaveLength(4);
    expect(printed[1]).toContain(JSON.stringify(record.completions?.[0]?.completion));
    const quiet = await new Trainer({ policy: tinyPolicy(), tokenizer, task, config: { ...base, algorithm: 'grpo', levels: [1] }, rewards: firstDigitReward, evaluation: { itemsPerLevel: 1 } }).trainStep();
    expect('completions' in quiet).toBe(false);
    policy.dispose();
  });
});

describe('what a step leaves out', () => {
  it('maskTruncatedCompletions: completions cut at maxNewTokens train no token', async () => {
    const policy = tinyPolicy();
    // An untrained model rarely writes EOS within 4 tokens.
    const record = await new Trainer({ policy, tokenizer, task, config: { ...base, algorithm: 'grpo', maxNewTokens: 4, maskTruncatedCompletions: true }, rewards: firstDigitReward, evaluation: { itemsPerLevel: 1 } }).trainStep();
    const truncated = record['completions/clipped_ratio'] * 8;
    expect(truncated).toBeGreaterThan(0);
    expect(record.truncatedMasked).toBe(truncated);
    expect(record['completions/max_length']).toBe(4);
    // Only the completions that ended (EOS included) are trained.
    expect(record.tokensTrained).toBe(record['completions/mean_length'] * 8 - 4 * truncated);
    // Unmasked, the same step (same seed, same rollouts) trains on every completion token.
    const unmasked = await new Trainer({ policy: tinyPolicy(), tokenizer, task, config: { ...base, algorithm: 'grpo', maxNewTokens: 4 }, rewards: firstDigitReward, evaluation: { itemsPerLevel: 1 } }).trainStep();
    expect(unmasked.truncatedMasked).toBe(0);
    expect(unmasked.tokensTrained).toBe(record['completions/mean_length'] * 8);
    policy.dispose();
  });

  it('dropZeroStdGroups: all-wrong groups leave the batch; GRPO takes no step, ExP-GRPO trains on its explanations only', async () => {
    for (const algorithm of ['grpo', 'expo'] as const) {
      const policy = tinyPolicy();
      // An untrained model never solves a 5-digit sum: every group's rewards are all 0.
      const record = await new Trainer({ policy, tokenizer, task, config: { ...base, algorithm, levels: [5], dropZeroStdGroups: true }, evaluation: { itemsPerLevel: 1 } }).trainStep();
      expect(record.zeroStdGroupsDropped).toBe(2);
      expect(record.frac_reward_zero_std).toBe(1);
      expect(record.reward_std).toBe(0);
      if (algorithm === 'grpo') {
        expect(record.optimizerSteps).toBe(0);
        expect(record.shapes.scoredRows).toBe(0);
        expect(policy.getOptimizerState().steps).toBe(0);
        expect(record.phases.score.seconds).toBe(0);
      } else {
        expect(record.optimizerSteps).toBe(1);
        expect(record.shapes.scoredRows).toBe(2);
        expect(record.gradNorm).toBeGreaterThan(0);
      }
      policy.dispose();
    }
  });

  it('refuses bad values by name', () => {
    const policy = tinyPolicy();
    expect(() => new Trainer({ policy, tokenizer, task, config: { numIterations: 0 } })).toThrow(/numIterations must be >= 1/);
    expect(() => new Trainer({ policy, tokenizer, task, config: { maskTruncatedCompletions: 'yes' as unknown as boolean } })).toThrow(/maskTruncatedCompletions must be a boolean/);
    policy.dispose();
  });
});

describe("DeepSeek-V3.2's KL correction and off-policy sequence mask", () => {
  const run = async (config: TrainConfigInput) => {
    const policy = tinyPolicy();
    const record = await new Trainer({ policy, tokenizer, task, config: { ...base, algorithm: 'grpo', levels: [1], learningRate: 0.05, numIterations: 2, ...config }, rewards: firstDigitReward, evaluation: { itemsPerLevel: 1 } }).trainStep();
    policy.dispose();
    return record;
  };

  it('useBiasCorrectionKl: the same first pass, a different KL once the ratios move', async () => {
    const plain = await run({ klBeta: 0.1 });
    const corrected = await run({ klBeta: 0.1, useBiasCorrectionKl: true });
    expect(corrected.reward).toBe(plain.reward);
    expect(corrected.meanKl).not.toBe(plain.meanKl);
    expect(corrected.meanKl).toBeGreaterThan(0);
  });

  it('offPolicyMaskThreshold: nothing dropped on the first pass, negative-advantage rollouts the update pushed away on the second', async () => {
    const record = await run({ offPolicyMaskThreshold: 0 });
    expect('offPolicyMaskedFraction' in (await run({}))).toBe(false);
    // A mean over the two passes: the first drops none, the second some (those with A < 0 the step made less likely).
    expect(record.offPolicyMaskedFraction).toBeGreaterThan(0);
    expect(record.offPolicyMaskedFraction).toBeLessThan(0.5);
    expect(() => new Trainer({ policy: tinyPolicy(), tokenizer, task, config: { offPolicyMaskThreshold: -1 } })).toThrow(/offPolicyMaskThreshold must be >= 0/);
  });
});

describe('syncRefModel: the frozen policy follows the trained one', () => {
  it('every refModelSyncSteps optimizer steps, frozen = alpha * policy + (1 - alpha) * frozen', async () => {
    const run = async (refModelSyncSteps: number) => {
      const policy = tinyPolicy();
      const weights = (model: CausalLM) => Float32Array.from(model.parameters().flatMap((p) => Array.from(model.getParameter(p.name))));
      const initial = weights(policy);
      const trainer = new Trainer({
        policy,
        tokenizer,
        task,
        config: { ...base, algorithm: 'grpo', levels: [1], learningRate: 0.05, klBeta: 0.04, numIterations: 2, syncRefModel: true, refModelSyncSteps, refModelMixupAlpha: 0.6 },
        rewards: firstDigitReward,
        evaluation: { itemsPerLevel: 1 },
      });
      await trainer.trainStep();
      const frozen = weights(trainer.frozenPolicy as CausalLM);
      const trained = weights(policy);
      expect(trainer.state().optimizerSteps).toBe(2);
      trainer.frozenPolicy?.dispose();
      policy.dispose();
      return { initial, frozen, trained };
    };
    // Two optimizer steps: synced after the second.
    const synced = await run(2);
    expect(Math.max(...synced.trained.map((w, i) => Math.abs(w - (synced.initial[i] as number))))).toBeGreaterThan(1e-3);
    const expected = synced.trained.map((w, i) => 0.6 * w + 0.4 * (synced.initial[i] as number));
    expect(Math.max(...synced.frozen.map((w, i) => Math.abs(w - (expected[i] as number))))).toBeLessThan(1e-6);
    // Not yet due: the frozen policy is the starting one.
    const due = await run(3);
    expect(Array.from(due.frozen)).toEqual(Array.from(due.initial));
  });

  it('needs a frozen policy, and alpha in (0, 1]', () => {
    const policy = tinyPolicy();
    expect(() => new Trainer({ policy, tokenizer, task, config: { syncRefModel: true } })).toThrow(/syncRefModel needs a frozen policy/);
    expect(() => new Trainer({ policy, tokenizer, task, config: { klBeta: 0.1, syncRefModel: true, refModelMixupAlpha: 0 } })).toThrow(/refModelMixupAlpha must be > 0/);
    policy.dispose();
  });
});

describe('entropy: the top-entropy tokens and the entropy bonus', () => {
  it('the adaptive coefficient, by hand: no bonus before a step has measured the entropy, then up at or below the target and down above it, within its bounds', () => {
    const bonus = new EntropyBonus({ entropyCoef: 0.01, useAdaptiveEntropy: true, entropyCoefMin: 0, entropyCoefMax: 0.02, entropyCoefDelta: 0.005, entropyTarget: 0.5 });
    expect(bonus.enabled).toBe(true);
    expect(bonus.applied()).toBe(0);
    bonus.update(0.4);
    expect(bonus.coef).toBeCloseTo(0.015, 12);
    expect(bonus.applied()).toBeCloseTo(0.015, 12);
    bonus.update(0.5);
    bonus.update(0.1);
    expect(bonus.coef).toBe(0.02);
    bonus.update(0.9);
    expect(bonus.coef).toBeCloseTo(0.015, 12);
    // Above the target the coefficient is not applied.
    expect(bonus.applied()).toBe(0);
    const restored = new EntropyBonus({ entropyCoef: 0.01, useAdaptiveEntropy: true, entropyCoefMin: 0, entropyCoefMax: 0.02, entropyCoefDelta: 0.005, entropyTarget: 0.5 });
    restored.restore(bonus.state());
    expect(restored.state()).toEqual({ coef: bonus.coef, lastEntropy: 0.9 });
    const constant = new EntropyBonus({ entropyCoef: 0.03, useAdaptiveEntropy: false, entropyCoefMin: 0, entropyCoefMax: 1, entropyCoefDelta: 0.005, entropyTarget: 0.2 });
    constant.update(0);
    expect([constant.applied(), constant.coef]).toEqual([0.03, 0.03]);
    expect(new EntropyBonus({ entropyCoef: 0, useAdaptiveEntropy: false, entropyCoefMin: 0, entropyCoefMax: 1, entropyCoefDelta: 0.005, entropyTarget: 0.2 }).enabled).toBe(false);
  });

  it('topEntropyQuantile: the same rollouts, about the top fifth of their tokens trained, a different update', async () => {
    const run = async (config: TrainConfigInput) => {
      const policy = tinyPolicy();
      const record = await new Trainer({ policy, tokenizer, task, config: { ...base, algorithm: 'grpo', levels: [1], ...config }, rewards: firstDigitReward, evaluation: { itemsPerLevel: 1 } }).trainStep();
      policy.dispose();
      return record;
    };
    const all = await run({});
    const top = await run({ topEntropyQuantile: 0.2 });
    expect(top.reward).toBe(all.reward);
    expect(top.entropy).toBe(all.entropy);
    expect(top.tokensTrained).toBe(all.tokensTrained);
    expect('entropyKeptFraction' in all).toBe(false);
    // At least the top fifth (more only on ties at the threshold).
    expect(top.entropyKeptFraction).toBeGreaterThanOrEqual(0.2 - 1 / top.tokensTrained);
    expect(top.entropyKeptFraction).toBeLessThan(0.3);
    expect(top.gradNorm).not.toBe(all.gradNorm);
  });

  it('entropyCoef: with zero advantages the bonus is the only gradient, and its sign moves the entropy', async () => {
    const run = async (entropyCoef: number) => {
      const policy = tinyPolicy();
      // An untrained model never solves a 5-digit sum: every reward is 0, so is every advantage.
      const record = await new Trainer({ policy, tokenizer, task, config: { ...base, algorithm: 'grpo', levels: [5], learningRate: 0.02, numIterations: 2, entropyCoef }, evaluation: { itemsPerLevel: 1 } }).trainStep();
      policy.dispose();
      return record;
    };
    const none = await run(0);
    const up = await run(1);
    const down = await run(-1);
    expect(none.reward).toBe(0);
    expect(none.gradNorm).toBe(0);
    expect(up.gradNorm).toBeGreaterThan(0);
    expect(up.entropy_coef).toBe(1);
    // With zero advantages the policy loss before the bonus is 0: the loss is minus the bonus.
    expect(up.policy_loss).toBeCloseTo(0, 12);
    expect(up.loss).toBeLessThan(0);
    expect('entropy_coef' in none).toBe(false);
    // record.entropy is the mean over both passes; the second pass scores after one bonus step.
    expect(up.entropy).toBeGreaterThan(none.entropy);
    expect(down.entropy).toBeLessThan(none.entropy);
  });

  it('useAdaptiveEntropy: the coefficient moves once per optimizer step and is recorded as TRL logs it', async () => {
    const policy = tinyPolicy();
    const trainer = new Trainer({
      policy,
      tokenizer,
      task,
      config: { ...base, algorithm: 'grpo', levels: [1], numIterations: 2, entropyCoef: 0.01, useAdaptiveEntropy: true, entropyTarget: 100, entropyCoefDelta: 0.005 },
      rewards: firstDigitReward,
      evaluation: { itemsPerLevel: 1 },
    });
    const record = await trainer.trainStep();
    expect(record.entropyCoef).toBeCloseTo(0.02, 12);
    expect(record.entropy_coef).toBe(record.entropyCoef);
    expect(trainer.state().entropyBonus?.coef).toBeCloseTo(0.02, 12);
    policy.dispose();
  });

  it('refuses entropy options it cannot apply, by name', () => {
    const policy = tinyPolicy();
    expect(() => new Trainer({ policy, tokenizer, task, config: { topEntropyQuantile: 1.5 } })).toThrow(/topEntropyQuantile must be <= 1/);
    expect(() => new Trainer({ policy, tokenizer, task, config: { lossType: 'luspo', importanceSamplingLevel: 'sequence', topEntropyQuantile: 0.2 } })).toThrow(/luspo has one loss per sequence/);
    expect(() => new Trainer({ policy, tokenizer, task, config: { algorithm: 'expo-dpo', entropyCoef: 0.01 } })).toThrow(/expo-dpo does not have/);
    expect(() => new Trainer({ policy, tokenizer, task, config: { entropyCoefMin: 0.5, entropyCoefMax: 0.1 } })).toThrow(/entropyCoefMin = 0.5 must be <= entropyCoefMax = 0.1/);
    policy.dispose();
  });
});

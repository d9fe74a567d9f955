import { describe, expect, it } from 'vitest';
import { CausalLM, CharTokenizer } from '@napo/policy';

import { diagnoseByLevel, diagnoseExplanations, solutionPair } from '../src/diagnostics.js';
import { defaultEvaluationOptions, evaluate } from '../src/evaluate.js';
import { Rng } from '../src/rng.js';
import { scoreBatch } from '../src/scoring.js';
import { packSequences, type SequencePair } from '../src/sequences.js';
import { formatComparisonTable } from '../src/table.js';
import { columnSteps, countingOnSteps, AdditionTask } from '../src/tasks/addition.js';
import type { Task, TaskItem } from '../src/task.js';
import { Trainer } from '../src/trainer.js';
import { parseConfig } from '../src/config.js';
import { warmup, warmupConfigSchema, warmupExamples } from '../src/warmup.js';

const task = new AdditionTask();
const tokenizer = new CharTokenizer(task.alphabet);

function tinyPolicy(seed = 1): CausalLM {
  return CausalLM.create({ family: 'gpt2', vocabSize: tokenizer.vocabSize, maxPositions: 96, hiddenSize: 32, numLayers: 2, numHeads: 2, seed });
}

/** One sequence's per-position log-probs, scored alone (no padding, no neighbours). */
async function scoreAlone(policy: CausalLM, pair: SequencePair): Promise<number[]> {
  const batch = packSequences([pair]);
  const logprobs = await scoreBatch(policy, batch, 1, false);
  return pair.completion.map((_, j) => logprobs[pair.prompt.length - 1 + j] as number);
}

describe('AdditionTask.checkSteps', () => {
  const item: TaskItem = { prompt: 'Q04821+03957:', answer: '8778', expertReasoning: countingOnSteps(4821, 3957), level: 4 };
  it('accepts the column steps and the counting-on steps of the item, nothing else', () => {
    expect(task.checkSteps(columnSteps(4821, 3957, task.width), item)).toBe(true);
    expect(task.checkSteps('1+7=8,2+5=7,8+9=17,4+3+1=8,0+0=0', item)).toBe(true);
    expect(task.checkSteps(item.expertReasoning, item)).toBe(true);
    // A wrong carry, a wrong digit, a missing column, another item's steps.
    expect(task.checkSteps('1+7=8,2+5=7,8+9=17,4+3=7,0+0=0', item)).toBe(false);
    expect(task.checkSteps('1+7=8,2+5=7,8+9=16,4+3+1=8,0+0=0', item)).toBe(false);
    expect(task.checkSteps('1+7=8,2+5=7,8+9=17,4+3+1=8', item)).toBe(false);
    expect(task.checkSteps(columnSteps(4821, 3958, task.width), item)).toBe(false);
  });
});

describe('diagnoseExplanations', () => {
  const rng = new Rng(3);
  const items = [task.sample(rng, 3), task.sample(rng, 4), task.sample(rng, 2)];
  const valid = (item: TaskItem) => task.format(task.policyReasoning(item), item.answer);
  // A valid explanation, one reaching another answer, one with a wrong step.
  const explanations = [valid(items[0]!), task.format(task.policyReasoning(items[1]!), '1'), task.format('1+1=3', items[2]!.answer)];
  // The policy's own attempts at the plain prompt: any number per item, any shape.
  const attempts = [[valid(items[0]!), '1+1=2>5'], ['0+0'], ['9+9=18>18', valid(items[2]!), '>3']];
  const logMeanExp = (values: number[]) => Math.log(values.reduce((sum, v) => sum + Math.exp(v), 0) / values.length);

  it('matches the figures computed sequence by sequence, at any batch size', async () => {
    const policy = tinyPolicy();
    const encode = (text: string) => tokenizer.encode(text);
    const expected = { valid: [1, 0, 0], self: [] as number[], expert: [] as number[], gain: [] as number[] };
    for (const [index, item] of items.entries()) {
      const prompt = encode(item.prompt);
      const reasoning = task.parse(explanations[index]!)!.reasoning;
      const self = solutionPair(task, tokenizer, prompt, reasoning, item.answer, policy.contextLength);
      const expert = solutionPair(task, tokenizer, prompt, item.expertReasoning, item.answer, policy.contextLength);
      const [selfLp, expertLp] = [await scoreAlone(policy, self), await scoreAlone(policy, expert)];
      const meanOf = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
      expected.self.push(meanOf(selfLp));
      expected.expert.push(meanOf(expertLp));
      // The answer's tokens sit just before the final EOS.
      const answerSum = (values: number[], answerTokens: number) => values.slice(-1 - answerTokens, -1).reduce((a, b) => a + b, 0);
      const own: number[] = [];
      for (const text of attempts[index]!) {
        const pair = solutionPair(task, tokenizer, prompt, task.parse(text)?.reasoning ?? text, item.answer, policy.contextLength);
        own.push(answerSum(await scoreAlone(policy, pair), pair.answerTokens));
      }
      expected.gain.push(answerSum(selfLp, self.answerTokens) - logMeanExp(own));
    }
    const meanOf = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    for (const batchSize of [1, 2, 64]) {
      const d = await diagnoseExplanations({ policy, tokenizer, task, items, explanations, attempts, encode, batchSize });
      expect(d.count).toBe(3);
      expect(d.validFraction).toBeCloseTo(1 / 3, 12);
      expect(d.explanationLogprob).toBeCloseTo(meanOf(expected.self), 4);
      expect(d.expertLogprob).toBeCloseTo(meanOf(expected.expert), 4);
      expect(d.answerGain).toBeCloseTo(meanOf(expected.gain), 3);
    }
    const byLevel = await diagnoseByLevel({ policy, tokenizer, task, items, explanations, attempts, encode, batchSize: 8 });
    expect([...byLevel.keys()]).toEqual([2, 3, 4]);
    expect(byLevel.get(3)?.validFraction).toBe(1);
    expect(byLevel.get(3)?.answerGain).toBeCloseTo(expected.gain[0]!, 3);
    policy.dispose();
  });

  it('gives count 0 and no figures for no items, and refuses a count mismatch', async () => {
    const policy = tinyPolicy();
    const input = { policy, tokenizer, task, encode: (text: string) => tokenizer.encode(text), batchSize: 4 };
    const none = await diagnoseExplanations({ ...input, items: [], explanations: [], attempts: [] });
    expect(none.count).toBe(0);
    expect(none.answerGain).toBeNaN();
    await expect(diagnoseExplanations({ ...input, items, explanations: [], attempts })).rejects.toThrow('0 explanations for 3 items');
    await expect(diagnoseExplanations({ ...input, items, explanations, attempts: [['1'], [], ['2']] })).rejects.toThrow('item 1 has no attempts');
    policy.dispose();
  });

  it('needs Task.checkSteps for validity: NaN without it', async () => {
    const policy = tinyPolicy();
    const uncheckable: Task = {
      name: 'addition without step checks',
      levels: task.levels,
      alphabet: task.alphabet,
      sample: (r, level) => task.sample(r, level),
      verify: (completion, answer) => task.verify(completion, answer),
      explainPrompt: (prompt, answer) => task.explainPrompt(prompt, answer),
      format: (reasoning, answer) => task.format(reasoning, answer),
      parse: (completion) => task.parse(completion),
    };
    const d = await diagnoseExplanations({ policy, tokenizer, task: uncheckable, items, explanations, attempts, encode: (text) => tokenizer.encode(text), batchSize: 4 });
    expect(d.validFraction).toBeNaN();
    expect(d.explanationLogprob).toBeLessThan(0);
    policy.dispose();
  });
});

describe('diagnostics in the trainer and the evaluation', () => {
  const config = { promptsPerStep: 2, groupSize: 4, maxNewTokens: 24, learningRate: 1e-3, steps: 2, levels: [5] };

  it('records the premise on the all-wrong prompts every step, for every algorithm, without changing the training', async () => {
    for (const algorithm of ['grpo', 'expo', 'grpo-sft', 'expo-dpo'] as const) {
      const withDiagnostics = tinyPolicy();
      const without = tinyPolicy();
      const a = await new Trainer({ policy: withDiagnostics, tokenizer, task, config: { ...config, algorithm }, evaluation: { itemsPerLevel: 1 } }).trainStep();
      const b = await new Trainer({ policy: without, tokenizer, task, config: { ...config, algorithm, diagnostics: false }, evaluation: { itemsPerLevel: 1 } }).trainStep();
      // An untrained model gets every 5-digit sum wrong: both prompts are diagnosed.
      expect(a.allWrongPrompts).toBe(2);
      expect(a.explanations?.count).toBe(2);
      expect(a.explanations?.explanationLogprob).toBeLessThan(0);
      expect(Number.isFinite(a.explanations?.answerGain)).toBe(true);
      expect(a.diagnosticSeconds).toBeGreaterThan(0);
      expect(b.explanations).toBeUndefined();
      const same = withDiagnostics.parameters().every((p) => withDiagnostics.getParameter(p.name).every((v, i) => Object.is(v, without.getParameter(p.name)[i])));
      expect(same).toBe(true);
      withDiagnostics.dispose();
      without.dispose();
    }
  }, 60_000);

  it("explanationFilter 'consistent' drops the self-explanations whose own answer is not the given one, and counts them", async () => {
    const policy = tinyPolicy();
    const trainer = new Trainer({ policy, tokenizer, task, config: { ...config, algorithm: 'expo', explanationFilter: 'consistent' }, evaluation: { itemsPerLevel: 1 } });
    const rng = new Rng(5);
    const items = [task.sample(rng, 5), task.sample(rng, 5)];
    const result = await trainer.auxiliaryPairs(items, { pairs: [], rewards: [] }, 9);
    const consistent = result.explanations.filter((text, p) => task.parse(text)?.answer === items[p]!.answer).length;
    expect(result.pairs).toHaveLength(consistent);
    expect(result.dropped).toBe(2 - consistent);
    // An untrained model does not reach a 5-digit answer: both dropped.
    expect(result.dropped).toBe(2);
    expect((await trainer.trainStep()).explanationsDropped).toBe(2);
    policy.dispose();
  });

  it('evaluates the premise on the first diagnosticItems items of each level', async () => {
    const policy = tinyPolicy();
    const rng = new Rng(8);
    const items = task.levels.flatMap((level) => [task.sample(rng, level), task.sample(rng, level), task.sample(rng, level)]);
    const options = { ...defaultEvaluationOptions, itemsPerLevel: 3, k: 2, maxNewTokens: 24, diagnosticItems: 2 };
    const scores = await evaluate(policy, tokenizer, task, items, options);
    expect(scores.map((s) => s.explanations?.count)).toEqual([2, 2, 2, 2, 2]);
    const off = await evaluate(policy, tokenizer, task, items, { ...options, diagnosticItems: 0 });
    expect(off.every((s) => s.explanations === undefined)).toBe(true);
    expect(off.map((s) => s.passK)).toEqual(scores.map((s) => s.passK));
    policy.dispose();
  });
});

describe('the comparison table', () => {
  const level = (passK: number, gain: number) => ({
    level: 5,
    pass1: 0,
    passK,
    explanations: { count: 4, validFraction: 0.5, explanationLogprob: -0.5, expertLogprob: -8, answerGain: gain },
  });
  const evalRecord = (seed: number, passK: number, gain: number) => ({ kind: 'eval' as const, algorithm: 'base' as const, seed, step: 0, k: 4, byLevel: [level(passK, gain)] });

  it('gives the seeds\' mean with their range, and the premise by level', () => {
    const table = formatComparisonTable({
      title: '',
      createdAt: '',
      machine: {},
      config: {},
      base: [evalRecord(0, 0.1, 2), evalRecord(1, 0.3, 4)],
      runs: [],
      table: '',
    });
    expect(table).toContain('mean over 2 seeds (min-max)');
    expect(table).toContain('20 (10-30)');
    expect(table).toContain('50% -0.50/-8.00 +3.00');
  });
});

describe('warm-up with hard levels explained only', () => {
  it('puts easy items both ways, hard items explained, and a plain hard item every hardPlainEvery steps', () => {
    const config = parseConfig(warmupConfigSchema, { levels: [1, 2], batchSize: 4, explainLevels: [4, 5], explainExamples: 3, hardPlainEvery: 2 }, 'warm-up config');
    const rng = new Rng(1);
    for (const step of [1, 2]) {
      const prompts = warmupExamples(task, tokenizer, config, rng, step).map((pair) => tokenizer.decode(pair.prompt));
      const explained = prompts.filter((prompt) => prompt.includes('A'));
      const plain = prompts.filter((prompt) => !prompt.includes('A'));
      // Operands are zero-padded to 5 digits: a level-L first operand has 5 - L leading zeros.
      const level = (prompt: string) => 5 - (/^Q(0*)/.exec(prompt)?.[1]?.length ?? 0);
      expect(explained).toHaveLength(2 + 3);
      expect(explained.filter((prompt) => level(prompt) >= 4)).toHaveLength(3);
      expect(plain.filter((prompt) => level(prompt) >= 4)).toHaveLength(step === 2 ? 1 : 0);
      expect(plain.filter((prompt) => level(prompt) <= 2)).toHaveLength(2);
    }
  });

  it('runs, and validates its options by name', async () => {
    const policy = tinyPolicy();
    const losses: number[] = [];
    await warmup(policy, tokenizer, task, { steps: 2, batchSize: 4, explainLevels: [4, 5], explainExamples: 2, hardPlainEvery: 2 }, (p) => losses.push(p.loss));
    expect(losses).toHaveLength(2);
    await expect(warmup(policy, tokenizer, task, { explainExamples: -1 })).rejects.toThrow('explainExamples must be >= 0');
    policy.dispose();
  });
});

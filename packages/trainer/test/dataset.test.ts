import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { DatasetTask, loadJsonlDataset, type DatasetItem } from '../src/dataset.js';
import { Rng } from '../src/rng.js';
import type { Task } from '../src/task.js';
import { verifierNames } from '../src/verifiers.js';

const dir = mkdtempSync(join(tmpdir(), 'napo-dataset-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeJsonl(name: string, lines: readonly string[]): string {
  const path = join(dir, name);
  writeFileSync(path, lines.join('\n'));
  return path;
}

const gsm8kItems: DatasetItem[] = [
  {
    prompt: 'Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?',
    answer: '72',
    solution: 'Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72',
  },
  {
    prompt: 'Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?',
    answer: '10',
    solution: 'Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10',
  },
];

const mathItems: DatasetItem[] = [
  { prompt: 'What is $\\frac{1}{2} + \\frac{1}{4}$?', answer: '\\frac{3}{4}', solution: 'We have $\\frac{1}{2} + \\frac{1}{4} = \\frac{2}{4} + \\frac{1}{4} = \\boxed{\\frac{3}{4}}$.', level: 1 },
  { prompt: 'Compute $\\sqrt{16}$.', answer: '4', solution: 'Since $4^2 = 16$, we get 4.\nThe final answer is $\\boxed{4}$.', level: 2 },
  { prompt: 'Find $x$ if $2x = 6$.', answer: '3', level: 2 },
];

/** n items spread over levels 1..3, with distinct prompts. */
function manyItems(n: number): DatasetItem[] {
  return Array.from({ length: n }, (_, i) => ({ prompt: `What is ${i} + ${i}?`, answer: String(2 * i), level: (i % 3) + 1 }));
}

describe('loadJsonlDataset', () => {
  it('reads one object a line, skipping blank lines, ignoring extra fields, turning numeric answers into strings', () => {
    const path = writeJsonl('good.jsonl', [
      JSON.stringify({ prompt: 'What is 2+2?', answer: '4', id: 'a1', source: 'hand' }),
      '',
      '   ',
      JSON.stringify({ prompt: 'What is 1/2 of 9?', answer: 4.5, solution: '9/2 = 4.5\n#### 4.5', level: 2 }),
      JSON.stringify({ problem: 'x', prompt: 'Level from MATH', answer: '1', solution: null, level: 'Level 3' }) + '\r',
      '',
    ]);
    expect(loadJsonlDataset(path)).toEqual([
      { prompt: 'What is 2+2?', answer: '4' },
      { prompt: 'What is 1/2 of 9?', answer: '4.5', solution: '9/2 = 4.5\n#### 4.5', level: 2 },
      { prompt: 'Level from MATH', answer: '1', level: 3 },
    ]);
  });

  it('names the file and the line of a bad record', () => {
    const good = JSON.stringify({ prompt: 'p', answer: 'a' });
    const cases: [string, string, RegExp][] = [
      ['answer-null.jsonl', JSON.stringify({ prompt: 'p', answer: null }), /answer-null\.jsonl:4: "answer" must be a string, got null/],
      ['answer-missing.jsonl', JSON.stringify({ prompt: 'p' }), /answer-missing\.jsonl:4: "answer" must be a string \(missing\)/],
      ['prompt-number.jsonl', JSON.stringify({ prompt: 5, answer: 'a' }), /prompt-number\.jsonl:4: "prompt" must be a string, got 5/],
      ['bad-json.jsonl', '{"prompt": "p", "answer": ', /bad-json\.jsonl:4: invalid JSON/],
      ['array.jsonl', '["p", "a"]', /array\.jsonl:4: expected a JSON object/],
      ['level.jsonl', JSON.stringify({ prompt: 'p', answer: 'a', level: 0 }), /level\.jsonl:4: "level" must be an integer >= 1, got 0/],
      ['level-text.jsonl', JSON.stringify({ prompt: 'p', answer: 'a', level: 'Level ?' }), /level-text\.jsonl:4: "level" must be an integer >= 1/],
      ['solution.jsonl', JSON.stringify({ prompt: 'p', answer: 'a', solution: 3 }), /solution\.jsonl:4: "solution" must be a string, got 3/],
      ['empty-answer.jsonl', JSON.stringify({ prompt: 'p', answer: ' ' }), /empty-answer\.jsonl:4: "answer" is empty/],
    ];
    for (const [name, line, message] of cases) {
      // Line 3 is blank and still counted: line numbers are the file's.
      const path = writeJsonl(name, [good, good, '', line, good]);
      expect(() => loadJsonlDataset(path)).toThrow(message);
    }
    expect(() => loadJsonlDataset(writeJsonl('empty.jsonl', ['', '  ']))).toThrow(/empty\.jsonl: no items/);
    expect(() => loadJsonlDataset(join(dir, 'missing.jsonl'))).toThrow(/ENOENT/);
  });
});

describe('DatasetTask', () => {
  it('validates its options and items', () => {
    expect(() => new DatasetTask(gsm8kItems, { verifier: 'fuzzy' as 'exact' })).toThrow(/DatasetTask: verifier must be one of exact, numeric, gsm8k, boxed/);
    expect(() => new DatasetTask(gsm8kItems, { verifier: 'gsm8k', evalFraction: 1 })).toThrow(/evalFraction must be < 1/);
    expect(() => new DatasetTask([], { verifier: 'gsm8k' })).toThrow(/no items/);
    expect(() => new DatasetTask([{ prompt: 'p', answer: 3 as unknown as string, level: 1.5 }], { verifier: 'gsm8k' })).toThrow(/item 0: "level" must be an integer/);
  });

  it('has the distinct levels, sorted, and level 1 by default', () => {
    expect(new DatasetTask(mathItems, { verifier: 'boxed' }).levels).toEqual([1, 2]);
    expect(new DatasetTask(gsm8kItems, { verifier: 'gsm8k', name: 'gsm8k' }).levels).toEqual([1]);
    expect(new DatasetTask(manyItems(30), { verifier: 'numeric' }).levels).toEqual([1, 2, 3]);
  });

  it('splits deterministically, disjointly, by level, and samples only training items', () => {
    const items = manyItems(300);
    const task = new DatasetTask(items, { verifier: 'numeric', seed: 7 });
    const again = new DatasetTask(items, { verifier: 'numeric', seed: 7 });
    const other = new DatasetTask(items, { verifier: 'numeric', seed: 8 });
    const heldOut = task.heldOut();
    expect(again.heldOut()).toEqual(heldOut);
    expect(other.heldOut().map((item) => item.prompt)).not.toEqual(heldOut.map((item) => item.prompt));
    // 10% of each level's 100 prompts.
    for (const level of task.levels) expect(heldOut.filter((item) => item.level === level)).toHaveLength(10);
    expect(heldOut.map((item) => item.level)).toEqual([...heldOut.map((item) => item.level)].sort());
    const training = task.trainingItems();
    expect(training.length + heldOut.length).toBe(300);
    const heldOutPrompts = new Set(heldOut.map((item) => item.prompt));
    expect(training.some((item) => heldOutPrompts.has(item.prompt))).toBe(false);

    const rng = new Rng(1);
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const level = rng.pick(task.levels);
      const item = task.sample(rng, level);
      expect(item.level).toBe(level);
      expect(heldOutPrompts.has(item.prompt)).toBe(false);
      seen.add(item.prompt);
    }
    expect(seen.size).toBe(training.length); // uniform enough to reach every training item
    expect(() => task.sample(rng, 4)).toThrow(/level 4 is not one of 1, 2, 3/);
  });

  it('keeps repeated prompts on one side and at least one training prompt per level', () => {
    const items = [...manyItems(40), ...manyItems(40)];
    const task = new DatasetTask(items, { verifier: 'numeric', evalFraction: 0.5 });
    const heldOutPrompts = new Set(task.heldOut().map((item) => item.prompt));
    expect(task.trainingItems().some((item) => heldOutPrompts.has(item.prompt))).toBe(false);
    expect(task.heldOut()).toHaveLength(2 * heldOutPrompts.size);

    const tiny = new DatasetTask(mathItems, { verifier: 'boxed', evalFraction: 0.9 });
    expect(tiny.heldOut().map((item) => item.prompt)).toHaveLength(1); // level 2's two items: one held out
    for (const level of tiny.levels) expect(() => tiny.sample(new Rng(0), level)).not.toThrow();
    expect(new DatasetTask(manyItems(30), { verifier: 'numeric', evalFraction: 0 }).heldOut()).toEqual([]);
  });

  it('writes and parses the final answer the way each verifier reads it', () => {
    const expected = {
      gsm8k: 'step 1\n#### 3/4',
      boxed: 'step 1\nThe final answer is \\boxed{3/4}.',
      exact: 'step 1\nAnswer: 3/4',
      numeric: 'step 1\nAnswer: 3/4',
    };
    for (const verifier of verifierNames) {
      const task = new DatasetTask(gsm8kItems, { verifier });
      const text = task.format('step 1', '3/4');
      expect(text).toBe(expected[verifier]);
      expect(task.parse(text)).toEqual({ reasoning: 'step 1', answer: '3/4' });
      expect(task.verify(text, '3/4')).toBe(1);
      expect(task.verify(text, '0.5')).toBe(0);
      // What the trainer writes for an answer alone.
      expect(task.parse(task.format('', '12'))).toEqual({ reasoning: '', answer: '12' });
      expect(task.verify(task.format('', '12'), '12')).toBe(1);
      // Multi-line reasoning survives the round trip.
      expect(task.parse(task.format('a\n\nb', '7'))).toEqual({ reasoning: 'a\n\nb', answer: '7' });
      for (const bad of ['', 'no final answer here', '####', 'Answer:', '\\boxed{']) {
        expect(task.parse(bad)).toBeNull();
      }
    }
    // A model's own boxed ending parses too.
    const boxed = new DatasetTask(mathItems, { verifier: 'boxed' });
    expect(boxed.parse('So $x = \\boxed{\\frac{1}{2}}$')).toEqual({ reasoning: 'So $x =', answer: '\\frac{1}{2}' });
  });

  it('asks for an explanation with the answer given, ending in the verifier format', () => {
    const gsm8k = new DatasetTask(gsm8kItems, { verifier: 'gsm8k' });
    const prompt = gsm8k.explainPrompt('How many?', '72');
    expect(prompt.startsWith('How many?\n\n')).toBe(true);
    expect(prompt).toContain('The correct answer is 72.');
    expect(prompt).toMatch(/step by step/);
    expect(prompt.endsWith('#### 72')).toBe(true);
    expect(new DatasetTask(mathItems, { verifier: 'boxed' }).explainPrompt('Q', '4')).toContain('The final answer is \\boxed{4}.');
    expect(new DatasetTask(gsm8kItems, { verifier: 'exact' }).explainPrompt('Q', 'B')).toContain('Answer: B');
  });

  it('gives the expert reasoning without its final answer line, and format() restores a verifiable solution', () => {
    const gsm8k = new DatasetTask(gsm8kItems, { verifier: 'gsm8k', evalFraction: 0 });
    const [natalia] = gsm8k.trainingItems();
    expect(natalia?.expertReasoning).toBe(
      'Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.',
    );
    for (const item of gsm8k.trainingItems()) expect(gsm8k.verify(gsm8k.format(item.expertReasoning, item.answer), item.answer)).toBe(1);

    const math = new DatasetTask(mathItems, { verifier: 'boxed', evalFraction: 0 });
    const [fractions, root, noSolution] = math.trainingItems();
    // A box inside a sentence is unwrapped; a line that only states the answer is dropped.
    expect(fractions?.expertReasoning).toBe('We have $\\frac{1}{2} + \\frac{1}{4} = \\frac{2}{4} + \\frac{1}{4} = \\frac{3}{4}$.');
    expect(root?.expertReasoning).toBe('Since $4^2 = 16$, we get 4.');
    expect(noSolution?.expertReasoning).toBe('');
    for (const item of math.trainingItems()) expect(math.verify(math.format(item.expertReasoning, item.answer), item.answer)).toBe(1);

    const exact = new DatasetTask([{ prompt: 'Capital of France?', answer: 'Paris', solution: 'It is the largest city.\nAnswer: Paris' }], { verifier: 'exact' });
    expect(exact.trainingItems()[0]?.expertReasoning).toBe('It is the largest city.');
  });

  it('has an alphabet covering every prompt, answer, completion and explain prompt', () => {
    const check = (task: DatasetTask & Task): void => {
      expect([...task.alphabet]).toEqual([...new Set(task.alphabet)]);
      const chars = [...task.alphabet];
      expect(chars).toEqual([...chars].sort((a, b) => (a.codePointAt(0) as number) - (b.codePointAt(0) as number)));
      for (const item of [...task.trainingItems(), ...task.heldOut()]) {
        for (const text of [item.prompt, task.explainPrompt(item.prompt, item.answer), task.format(item.expertReasoning, item.answer)]) {
          for (const char of text) expect(task.alphabet).toContain(char);
        }
      }
    };
    for (const verifier of verifierNames) {
      check(new DatasetTask(gsm8kItems, { verifier }));
      check(new DatasetTask(mathItems, { verifier }));
    }
    // Characters outside the BMP count as one.
    expect([...new DatasetTask([{ prompt: 'emoji 😀?', answer: '😀' }], { verifier: 'exact' }).alphabet]).toContain('😀');
  });
});

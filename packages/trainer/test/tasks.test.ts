import { describe, expect, it } from 'vitest';

import { Rng } from '../src/rng.js';
import { AdditionTask, columnSteps, countingOnSteps } from '../src/tasks/addition.js';

describe('AdditionTask', () => {
  const task = new AdditionTask();

  it('writes the policy style column by column with carries, and the expert style by place value', () => {
    expect(columnSteps(4821, 3957)).toBe('1+7=8,2+5=7,8+9=17,4+3+1=8');
    expect(columnSteps(95, 7)).toBe('5+7=12,9+0+1=10');
    expect(columnSteps(95, 7, 4)).toBe('5+7=12,9+0+1=10,0+0+1=1,0+0=0');
    expect(countingOnSteps(4821, 3957)).toBe('4821+3000=7821,7821+900=8721,8721+50=8771,8771+7=8778');
    expect(countingOnSteps(5, 0)).toBe('5+0=5');
  });

  it('samples items whose answer is the sum, at the level asked, within the alphabet', () => {
    const rng = new Rng(3);
    for (const level of task.levels) {
      for (let i = 0; i < 200; i++) {
        const item = task.sample(rng, level);
        const [, left, right] = /^Q(\d+)\+(\d+):$/.exec(item.prompt) ?? [];
        expect(Number(left) + Number(right)).toBe(Number(item.answer));
        // Fixed width: every level writes its operands with the same number of digits.
        expect(left).toHaveLength(task.width);
        expect(right).toHaveLength(task.width);
        expect(String(Number(left)).length).toBe(level === 1 ? String(Number(left)).length : level);
        expect(String(Number(right)).length).toBeLessThanOrEqual(level);
        const completions = [task.format(task.policyReasoning(item), item.answer), task.format(item.expertReasoning, item.answer)];
        for (const text of [item.prompt, task.explainPrompt(item.prompt, item.answer), ...completions]) {
          for (const char of text) expect(task.alphabet).toContain(char);
        }
        for (const completion of completions) expect(task.verify(completion, item.answer)).toBe(1);
      }
    }
  });

  it('scores malformed or wrong completions 0 without throwing', () => {
    for (const completion of ['', '>', '1+2=3', '1+2=3>', '>12a', '>1 2', '>>', '9'.repeat(500), '1+1=2>3']) {
      expect(task.verify(completion, '2')).toBe(0);
    }
    expect(task.verify('anything>2', '2')).toBe(1);
    expect(task.parse('x>1>2')).toEqual({ reasoning: 'x>1', answer: '2' });
  });

  it('puts the answer in the explain prompt only', () => {
    const item = task.sample(new Rng(1), 3);
    const explain = task.explainPrompt(item.prompt, item.answer);
    expect(explain).toBe(`${item.prompt.slice(0, -1)}A${item.answer.padStart(task.width + 1, '0')}:`);
    expect(item.prompt).not.toContain('A');
    expect(() => task.explainPrompt('hello', '1')).toThrow(RangeError);
  });

  it('draws the same items from the same seed, and resumes from a saved state', () => {
    const a = new Rng(7);
    a.next();
    const saved = a.getState();
    const first = Array.from({ length: 5 }, () => task.sample(a, 4).prompt);
    const b = new Rng(saved);
    expect(Array.from({ length: 5 }, () => task.sample(b, 4).prompt)).toEqual(first);
  });
});

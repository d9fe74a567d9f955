/**
 * Multi-digit addition with the carries written out: a reasoning task with a verifiable answer,
 * in five levels by the number of digits (level L adds an L-digit number and a number of at most
 * L digits). Operands are written at a fixed width (zero-padded to the highest level), so every
 * level puts the same column at the same position and only what is in the columns changes.
 *
 * Why it fits ExPO: a model warmed up on one- and two-digit sums has only ever seen `0+0=0` in the
 * upper columns, so its sampled answers on the hardest levels are all wrong and GRPO gets no
 * signal there. Given the answer, writing the steps is easier: each column's sum ends in the
 * answer's digit, so a self-explanation can lean on the hint - the "checking is easier than
 * finding" asymmetry.
 *
 * The policy's own format (what the warm-up teaches) works column by column from the right:
 *   Q04821+03957:1+7=8,2+5=7,8+9=17,4+3+1=8,0+0=0>8778
 * The expert solutions are written the way a person adds in their head, counting on by place
 * value from the left, a style the warm-up never shows:
 *   Q04821+03957:4821+3000=7821,7821+900=8721,8721+50=8771,8771+7=8778>8778
 */
import type { Rng } from '../rng.js';
import type { ParsedCompletion, Task, TaskItem } from '../task.js';

const answerMark = '>';

function randomNumber(rng: Rng, digits: number): number {
  return digits === 1 ? rng.integer(0, 9) : rng.integer(10 ** (digits - 1), 10 ** digits - 1);
}

/** The policy's style: one `a+b(+1)=s` per column, right to left, over `width` columns. */
export function columnSteps(left: number, right: number, width = Math.max(String(left).length, String(right).length)): string {
  const a = String(left).split('').reverse();
  const b = String(right).split('').reverse();
  const steps: string[] = [];
  let carry = 0;
  for (let column = 0; column < width; column++) {
    const x = Number(a[column] ?? '0');
    const y = Number(b[column] ?? '0');
    const sum = x + y + carry;
    steps.push(`${x}+${y}${carry ? '+1' : ''}=${sum}`);
    carry = sum >= 10 ? 1 : 0;
  }
  return steps.join(',');
}

/** The expert's style: add the second number's place values to the first, largest first. */
export function countingOnSteps(left: number, right: number): string {
  const digits = String(right);
  const steps: string[] = [];
  let running = left;
  digits.split('').forEach((digit, index) => {
    const part = Number(digit) * 10 ** (digits.length - 1 - index);
    if (part === 0) return;
    steps.push(`${running}+${part}=${running + part}`);
    running += part;
  });
  return steps.length > 0 ? steps.join(',') : `${left}+0=${left}`;
}

export interface AdditionTaskOptions {
  /** Highest level (digits of the first operand). Default 5. */
  maxLevel?: number;
}

export class AdditionTask implements Task {
  readonly name = 'addition';
  readonly levels: readonly number[];
  readonly alphabet = '0123456789+=,>:QA';
  /** Digits every operand is written with. */
  readonly width: number;

  constructor(options: AdditionTaskOptions = {}) {
    const maxLevel = options.maxLevel ?? 5;
    if (!Number.isInteger(maxLevel) || maxLevel < 1 || maxLevel > 9) {
      throw new RangeError(`AdditionTask: maxLevel must be an integer in [1, 9], got ${maxLevel}`);
    }
    this.levels = Array.from({ length: maxLevel }, (_, i) => i + 1);
    this.width = maxLevel;
  }

  sample(rng: Rng, level: number): TaskItem {
    if (!this.levels.includes(level)) throw new RangeError(`AdditionTask: level ${level} is not one of ${this.levels.join(', ')}`);
    const left = randomNumber(rng, level);
    const right = randomNumber(rng, rng.integer(1, level));
    const answer = String(left + right);
    return {
      prompt: `Q${this.pad(left)}+${this.pad(right)}:`,
      answer,
      expertReasoning: countingOnSteps(left, right),
      level,
    };
  }

  /** The policy's own worked solution of an item (what the supervised warm-up trains on). */
  policyReasoning(item: TaskItem): string {
    const [left, right] = operands(item.prompt);
    return columnSteps(left, right, this.width);
  }

  private pad(value: number): string {
    return String(value).padStart(this.width, '0');
  }

  verify(completion: string, answer: string): number {
    const parsed = this.parse(completion);
    return parsed !== null && parsed.answer === answer ? 1 : 0;
  }

  /** The answer is written at a fixed width too (one more digit than the operands, for the carry). */
  explainPrompt(prompt: string, answer: string): string {
    if (!prompt.endsWith(':')) throw new RangeError(`AdditionTask: '${prompt}' is not a prompt of this task`);
    return `${prompt.slice(0, -1)}A${answer.padStart(this.width + 1, '0')}:`;
  }

  format(reasoning: string, answer: string): string {
    return `${reasoning}${answerMark}${answer}`;
  }

  /**
   * The steps are valid when they are this item's column steps (the policy's style) or its
   * counting-on steps (the expert's): each style has exactly one correct chain per item.
   */
  checkSteps(reasoning: string, item: TaskItem): boolean {
    const [left, right] = operands(item.prompt);
    return reasoning === columnSteps(left, right, this.width) || reasoning === countingOnSteps(left, right);
  }

  parse(completion: string): ParsedCompletion | null {
    const mark = completion.lastIndexOf(answerMark);
    if (mark < 0) return null;
    const answer = completion.slice(mark + 1);
    if (!/^\d{1,12}$/.test(answer)) return null;
    return { reasoning: completion.slice(0, mark), answer };
  }
}

function operands(prompt: string): [number, number] {
  const match = /^Q(\d+)\+(\d+):$/.exec(prompt);
  if (!match) throw new RangeError(`AdditionTask: '${prompt}' is not a prompt of this task`);
  return [Number(match[1]), Number(match[2])];
}

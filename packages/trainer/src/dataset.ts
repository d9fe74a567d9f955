/**
 * Tasks from data: items read from a JSONL file (one `{"prompt", "answer", "solution"?, "level"?}`
 * object a line, e.g. GSM8K or MATH exported from Hugging Face) and a Task over them, scored by a
 * built-in verifier. The items are split once, by a seed, into training items (what `sample`
 * draws) and held-out items (`heldOut()`, for evaluation), so training never sees an evaluation
 * item; items sharing a prompt land on the same side.
 */
import { readFileSync } from 'node:fs';

import { z } from 'zod';

import { parseConfig } from './config.js';
import { Rng } from './rng.js';
import type { ParsedCompletion, Task, TaskItem } from './task.js';
import { lastAnswerMark, lastBoxed, verifierNames, verifiers, type VerifierName } from './verifiers.js';

export interface DatasetItem {
  prompt: string;
  answer: string;
  /** A worked solution (GSM8K's `answer` field, MATH's `solution`), its final answer included. */
  solution?: string;
  /** Difficulty level, an integer >= 1 (default 1). */
  level?: number;
}

/**
 * Checks one raw record and returns it as a DatasetItem; throws a message without location
 * (`"answer" must be a string`), which the caller prefixes. Extra fields are ignored; a finite
 * number as answer becomes its string; a null solution or level counts as absent; a level may be
 * written `3` or `"Level 3"` (MATH's style).
 */
function toItem(record: unknown): DatasetItem {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) throw new Error('expected a JSON object');
  const fields = record as Record<string, unknown>;
  const { prompt, answer, solution, level } = fields;
  if (typeof prompt !== 'string') throw new Error(`"prompt" must be a string${got(prompt)}`);
  if (prompt.trim().length === 0) throw new Error('"prompt" is empty');
  let answerText: string;
  if (typeof answer === 'string') answerText = answer;
  else if (typeof answer === 'number' && Number.isFinite(answer)) answerText = String(answer);
  else throw new Error(`"answer" must be a string${got(answer)}`);
  if (answerText.trim().length === 0) throw new Error('"answer" is empty');
  const item: DatasetItem = { prompt, answer: answerText };
  if (solution !== undefined && solution !== null) {
    if (typeof solution !== 'string') throw new Error(`"solution" must be a string${got(solution)}`);
    item.solution = solution;
  }
  if (level !== undefined && level !== null) item.level = toLevel(level);
  return item;
}

function toLevel(level: unknown): number {
  const text = typeof level === 'string' ? /^\s*(?:level\s*)?(\d+)\s*$/i.exec(level)?.[1] : undefined;
  const value = typeof level === 'number' ? level : text !== undefined ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < 1) throw new Error(`"level" must be an integer >= 1${got(level)}`);
  return value;
}

function got(value: unknown): string {
  if (value === undefined) return ' (missing)';
  const shown = JSON.stringify(value) ?? String(value);
  return `, got ${shown.length > 40 ? `${shown.slice(0, 37)}...` : shown}`;
}

/**
 * Reads a JSONL dataset: one JSON object a line, blank lines skipped. Errors name the file and the
 * line (`data.jsonl:17: "answer" must be a string, got null`); a file with no items is an error.
 */
export function loadJsonlDataset(path: string): DatasetItem[] {
  const text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
  const items: DatasetItem[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim().length === 0) return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (error) {
      throw new Error(`${path}:${index + 1}: invalid JSON (${error instanceof Error ? error.message : String(error)})`);
    }
    try {
      items.push(toItem(record));
    } catch (error) {
      throw new Error(`${path}:${index + 1}: ${error instanceof Error ? error.message : String(error)}`);
    }
  });
  if (items.length === 0) throw new Error(`${path}: no items (the file is empty or blank)`);
  return items;
}

export const datasetTaskOptionsSchema = z
  .object({
    name: z.string().min(1).default('dataset'),
    verifier: z.enum(verifierNames),
    /** Share of each level's distinct prompts held out for evaluation. */
    evalFraction: z.number().min(0).lt(1).default(0.1),
    /** Seed of the train / held-out split (not of training). */
    seed: z.number().int().min(0).default(0),
  })
  .strict();

export type DatasetTaskOptions = z.input<typeof datasetTaskOptionsSchema>;

const gsm8kMark = '####';
const boxedLead = 'The final answer is ';
const answerLead = 'Answer: ';

export class DatasetTask implements Task {
  readonly name: string;
  readonly levels: readonly number[];
  readonly alphabet: string;
  readonly verifier: VerifierName;
  readonly evalFraction: number;
  readonly seed: number;
  private readonly training = new Map<number, TaskItem[]>();
  private readonly evaluation: TaskItem[] = [];

  constructor(items: readonly DatasetItem[], options: DatasetTaskOptions) {
    const config = parseConfig(datasetTaskOptionsSchema, options, 'DatasetTask');
    this.name = config.name;
    this.verifier = config.verifier;
    this.evalFraction = config.evalFraction;
    this.seed = config.seed;
    if (items.length === 0) throw new RangeError('DatasetTask: no items');
    const checked = items.map((item, index) => {
      try {
        return toItem(item);
      } catch (error) {
        throw new RangeError(`DatasetTask: item ${index}: ${error instanceof Error ? error.message : String(error)}`);
      }
    });
    const taskItems = checked.map((item) => ({
      prompt: item.prompt,
      answer: item.answer,
      expertReasoning: this.expertReasoning(item.solution),
      level: item.level ?? 1,
    }));
    this.levels = [...new Set(taskItems.map((item) => item.level))].sort((a, b) => a - b);

    // Split by distinct prompt (a repeated question must not sit on both sides), level by level,
    // keeping at least one training prompt per level.
    const groups = new Map<string, number[]>();
    taskItems.forEach((item, index) => {
      const group = groups.get(item.prompt);
      if (group) group.push(index);
      else groups.set(item.prompt, [index]);
    });
    const heldOut = new Set<number>();
    const rng = new Rng(this.seed);
    for (const level of this.levels) {
      const levelGroups = [...groups.values()].filter((group) => taskItems[group[0] as number]?.level === level);
      shuffle(levelGroups, rng);
      const count = evalCount(levelGroups.length, this.evalFraction);
      for (const group of levelGroups.slice(0, count)) for (const index of group) heldOut.add(index);
    }
    taskItems.forEach((item, index) => {
      if (heldOut.has(index)) {
        this.evaluation.push(item);
        return;
      }
      const pool = this.training.get(item.level);
      if (pool) pool.push(item);
      else this.training.set(item.level, [item]);
    });
    this.evaluation.sort((a, b) => a.level - b.level); // stable: file order within a level
    for (const level of this.levels) {
      if (!this.training.has(level)) {
        throw new RangeError(`DatasetTask: level ${level} has no training item (its prompts repeat at another level)`);
      }
    }

    const chars = new Set<string>();
    const add = (text: string): void => {
      for (const char of text) chars.add(char);
    };
    for (const item of checked) {
      add(item.prompt);
      add(item.answer);
      add(item.solution ?? '');
    }
    add(this.format('\n', ''));
    add(this.explainPrompt('', ''));
    this.alphabet = [...chars].sort((a, b) => (a.codePointAt(0) as number) - (b.codePointAt(0) as number)).join('');
  }

  /** Reads a JSONL file (see loadJsonlDataset) into a task. */
  static fromJsonl(path: string, options: DatasetTaskOptions): DatasetTask {
    return new DatasetTask(loadJsonlDataset(path), options);
  }

  /** A training item of `level`, uniformly. */
  sample(rng: Rng, level: number): TaskItem {
    const pool = this.training.get(level);
    if (!pool) throw new RangeError(`DatasetTask ${this.name}: level ${level} is not one of ${this.levels.join(', ')}`);
    return { ...rng.pick(pool) };
  }

  /** The held-out items (evaluation split), by level, in file order within a level. */
  heldOut(): TaskItem[] {
    return this.evaluation.map((item) => ({ ...item }));
  }

  /** The training items, by level, in file order within a level. */
  trainingItems(): TaskItem[] {
    return this.levels.flatMap((level) => (this.training.get(level) ?? []).map((item) => ({ ...item })));
  }

  verify(completion: string, answer: string): number {
    return verifiers[this.verifier](completion, answer);
  }

  /** The final answer written the way the verifier reads it. */
  format(reasoning: string, answer: string): string {
    const line =
      this.verifier === 'gsm8k' ? `${gsm8kMark} ${answer}` : this.verifier === 'boxed' ? `${boxedLead}\\boxed{${answer}}.` : `${answerLead}${answer}`;
    return reasoning.length > 0 ? `${reasoning}\n${line}` : line;
  }

  /** Splits a completion at its final answer (the inverse of format); null when it has none. */
  parse(completion: string): ParsedCompletion | null {
    if (typeof completion !== 'string') return null;
    if (this.verifier === 'gsm8k') {
      const mark = completion.lastIndexOf(gsm8kMark);
      if (mark < 0) return null;
      const answer = completion.slice(mark + gsm8kMark.length).trim();
      return answer.length > 0 ? { reasoning: dropNewline(completion.slice(0, mark)), answer } : null;
    }
    if (this.verifier === 'boxed') {
      const box = lastBoxed(completion);
      if (!box) return null;
      const answer = box.content.trim();
      if (answer.length === 0) return null;
      const before = completion.slice(0, box.start);
      const reasoning = before.endsWith(boxedLead) ? dropNewline(before.slice(0, -boxedLead.length)) : before.replace(/\s*\$?\s*$/, '');
      return { reasoning, answer };
    }
    const mark = lastAnswerMark(completion);
    if (!mark) return null;
    const answer = completion.slice(mark.end).replace(/^[\s*]+|[\s*]+$/g, '');
    return answer.length > 0 ? { reasoning: dropNewline(completion.slice(0, mark.start)), answer } : null;
  }

  /** ExPO's self-explanation prompt: the question with its correct answer, asking for the steps that reach it. */
  explainPrompt(prompt: string, answer: string): string {
    return (
      `${prompt}\n\n` +
      `The correct answer is ${answer}. Explain step by step how to reach this answer, ` +
      `then end with the final answer in the form: ${this.format('', answer)}`
    );
  }

  /**
   * The worked solution without its final answer line ('' when there is none), so that
   * format(expertReasoning, answer) writes it once, the way the verifier reads it. In a boxed
   * solution whose last box sits inside a sentence, the box is unwrapped to its content.
   */
  private expertReasoning(solution: string | undefined): string {
    if (solution === undefined || solution.trim().length === 0) return '';
    if (this.verifier === 'boxed') {
      const box = lastBoxed(solution);
      if (!box) return solution.trim();
      const lineStart = solution.lastIndexOf('\n', box.start - 1) + 1;
      const newline = solution.indexOf('\n', box.end);
      const lineEnd = newline < 0 ? solution.length : newline;
      const rest = solution.slice(lineStart, box.start) + solution.slice(box.end, lineEnd);
      // A line that says nothing but "the (final) answer is <box>." goes; otherwise keep the sentence.
      if (/^[\s$.]*(?:(?:so|thus|therefore|hence)[\s,]*)?(?:the\s+)?(?:final\s+)?(?:answer\s+is\s*:?)?[\s$.]*$/i.test(rest)) {
        return solution.slice(0, lineStart).trim();
      }
      return (solution.slice(0, box.start) + box.content + solution.slice(box.end)).trim();
    }
    const parsed = this.parse(solution);
    return (parsed ? parsed.reasoning : solution).trim();
  }
}

/** Held-out prompts of a level: round(fraction * n), at least 1 when the fraction is positive, at most n - 1. */
function evalCount(prompts: number, fraction: number): number {
  if (fraction === 0 || prompts < 2) return 0;
  return Math.min(prompts - 1, Math.max(1, Math.round(fraction * prompts)));
}

function shuffle<T>(items: T[], rng: Rng): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.integer(0, i);
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
}

function dropNewline(text: string): string {
  return text.endsWith('\n') ? text.slice(0, -1) : text;
}

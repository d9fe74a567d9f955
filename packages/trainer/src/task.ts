/** Tasks with verifiable rewards: what a trainer samples prompts from and scores completions with. */
import type { Rng } from './rng.js';

export interface TaskItem {
  /** The question as the policy sees it (no hint). */
  prompt: string;
  /** The ground-truth final answer. */
  answer: string;
  /** A worked solution in the task author's style (the "expert CoT" of the SFT baseline). */
  expertReasoning: string;
  level: number;
}

export interface ParsedCompletion {
  reasoning: string;
  answer: string;
}

export interface Task {
  readonly name: string;
  /** Levels of rising difficulty, e.g. [1, 2, 3, 4, 5]. */
  readonly levels: readonly number[];
  /** Every character a prompt or a completion may contain (the tokenizer's alphabet). */
  readonly alphabet: string;
  sample(rng: Rng, level: number): TaskItem;
  /** 1 when the completion's final answer is right, 0 otherwise; malformed output scores 0, never throws. */
  verify(completion: string, answer: string): number;
  /** The prompt with the answer given, asking for the steps that reach it. */
  explainPrompt(prompt: string, answer: string): string;
  /** A completion made of reasoning and a final answer, in the format `verify` reads. */
  format(reasoning: string, answer: string): string;
  /** Splits a completion into reasoning and answer; null when it has no final answer. */
  parse(completion: string): ParsedCompletion | null;
  /**
   * Whether every step of `reasoning` is a valid step of a solution of `item` (not only the final
   * answer): what ExPO's diagnostics count as a valid self-explanation. Optional; without it
   * validity is not measured.
   */
  checkSteps?(reasoning: string, item: TaskItem): boolean;
  /** A fixed evaluation split never sampled for training (datasets); generated tasks draw held-out items from their own seed instead. */
  heldOut?(): TaskItem[];
}

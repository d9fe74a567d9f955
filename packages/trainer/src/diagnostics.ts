/**
 * ExPO's premise, measured. A self-explanation c~ (the policy's own steps toward an answer a* it
 * was given) can only teach the plain policy when
 *   (1) it is likely under the plain prompt: the token-mean log pi(c~, a* | q), set beside the
 *       same figure for the expert's solution (what GRPO + SFT trains on), and
 *   (2) it makes the right answer likelier: log p(a* | q, c~) - log p(a* | q), over a*'s tokens,
 *       where p(a* | q) is the policy's own: the mean over its attempts c_i ~ pi(. | q) of
 *       p(a* | q, c_i) (a Monte Carlo estimate of the marginal over its reasoning; the answer
 *       written straight after q would be out of the policy's format and make any c~ look good);
 * and it is worth learning only when its steps are right: the task checks each step, not just
 * the final answer. The trainer measures these on the prompts GRPO is blind on (all G rollouts
 * wrong) every step, and the evaluation on held-out items per level.
 */
import type { Policy, Tokenizer } from '@napo/policy';

import { scoreBatch } from './scoring.js';
import { packSequences, type PackedBatch, type SequencePair } from './sequences.js';
import type { Task, TaskItem } from './task.js';

export interface ExplanationDiagnostics {
  /** Items measured. */
  count: number;
  /** Fraction whose steps are all valid (Task.checkSteps) and whose own final answer is the given one; NaN when the task cannot check steps. */
  validFraction: number;
  /** Property 1: token-mean log pi(steps, answer, EOS | plain prompt) of the self-explanations, averaged over items. */
  explanationLogprob: number;
  /** The same figure for the expert solutions. */
  expertLogprob: number;
  /** Property 2: log p(a* | q, c~) - log mean_i p(a* | q, c_i) over the policy's own attempts c_i, averaged over items. */
  answerGain: number;
}

/** One item's figures, before averaging. */
interface ItemDiagnosis {
  valid: number;
  explanationLogprob: number;
  expertLogprob: number;
  answerGain: number;
}

/** A worked solution as a completion of the plain prompt: `reasoning + answer + EOS`, the reasoning cut to fit the context. */
export interface SolutionPair extends SequencePair {
  /** Tokens of the formatted answer at the end of the completion, before EOS. */
  answerTokens: number;
}

export function solutionPair(task: Task, tokenizer: Tokenizer, prompt: readonly number[], reasoning: string, answer: string, contextLength: number): SolutionPair {
  const answerIds = tokenizer.encode(task.format('', answer));
  const room = contextLength - prompt.length - answerIds.length - 1;
  const steps = tokenizer.encode(reasoning).slice(0, Math.max(0, room));
  return { prompt, completion: [...steps, ...answerIds, tokenizer.eos], answerTokens: answerIds.length };
}

/** Token-mean log-prob of a row's completion. */
function completionMean(batch: PackedBatch, logprobs: Float32Array, row: number): number {
  let sum = 0;
  let count = 0;
  for (let i = row * batch.width; i < (row + 1) * batch.width; i++) {
    if (batch.completionMask[i] === 1) {
      sum += logprobs[i] as number;
      count++;
    }
  }
  return count > 0 ? sum / count : 0;
}

/** Sum of the log-probs of the `answerTokens` completion tokens before the final EOS. */
function answerLogprob(batch: PackedBatch, logprobs: Float32Array, row: number, pair: SolutionPair): number {
  // Completion token j is predicted at position prompt.length - 1 + j.
  const last = pair.prompt.length - 1 + pair.completion.length - 1;
  let sum = 0;
  for (let t = last - pair.answerTokens; t < last; t++) sum += logprobs[row * batch.width + t] as number;
  return sum;
}

export interface DiagnosisInput {
  policy: Policy;
  tokenizer: Tokenizer;
  task: Task;
  items: readonly TaskItem[];
  /** The policy's texts under each item's explain prompt (their own final answer included). */
  explanations: readonly string[];
  /** Per item, the policy's own completions of the plain prompt (at least one each). */
  attempts: readonly (readonly string[])[];
  /** A prompt's tokens as the policy sees it. */
  encode: (text: string) => number[];
  /** Items scored per forward. */
  batchSize: number;
}

/** The reasoning of a completion: before its final answer, or all of it when it has none. */
function reasoningOf(task: Task, text: string): string {
  return task.parse(text)?.reasoning ?? text;
}

/** log (1/n) sum exp(values), stable. */
function logMeanExp(values: readonly number[]): number {
  const top = Math.max(...values);
  return top + Math.log(values.reduce((sum, v) => sum + Math.exp(v - top), 0) / values.length);
}

async function diagnoseChunk(input: DiagnosisInput, begin: number, end: number): Promise<ItemDiagnosis[]> {
  const { policy, tokenizer, task } = input;
  const items = input.items.slice(begin, end);
  // Per item: the self-explanation, the expert solution, then the answer after each own attempt.
  const firstRows: number[] = [];
  let rows = 0;
  const pairs = items.flatMap((item, index) => {
    const prompt = input.encode(item.prompt);
    const attempts = input.attempts[begin + index] ?? [];
    if (attempts.length === 0) throw new RangeError(`diagnoseExplanations: item ${begin + index} has no attempts`);
    const solution = (reasoning: string) => solutionPair(task, tokenizer, prompt, reasoning, item.answer, policy.contextLength);
    firstRows.push(rows);
    rows += 2 + attempts.length;
    return [solution(reasoningOf(task, input.explanations[begin + index] ?? '')), solution(item.expertReasoning), ...attempts.map((text) => solution(reasoningOf(task, text)))];
  });
  const batch = packSequences(pairs);
  // The model's own distribution (T = 1), and no backward follows.
  const logprobs = await scoreBatch(policy, batch, 1, false);
  const answerAt = (row: number) => answerLogprob(batch, logprobs, row, pairs[row] as SolutionPair);
  return items.map((item, index) => {
    const row = firstRows[index] as number;
    const parsed = task.parse(input.explanations[begin + index] ?? '');
    const stepsValid = parsed !== null && parsed.answer === item.answer && task.checkSteps?.(parsed.reasoning, item) === true;
    const attempts = (input.attempts[begin + index] as readonly string[]).length;
    const ownAnswer = logMeanExp(Array.from({ length: attempts }, (_, i) => answerAt(row + 2 + i)));
    return {
      valid: task.checkSteps ? Number(stepsValid) : Number.NaN,
      explanationLogprob: completionMean(batch, logprobs, row),
      expertLogprob: completionMean(batch, logprobs, row + 1),
      answerGain: answerAt(row) - ownAnswer,
    };
  });
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((sum, v) => sum + v, 0) / values.length;
}

function summarize(diagnoses: readonly ItemDiagnosis[]): ExplanationDiagnostics {
  return {
    count: diagnoses.length,
    validFraction: mean(diagnoses.map((d) => d.valid)),
    explanationLogprob: mean(diagnoses.map((d) => d.explanationLogprob)),
    expertLogprob: mean(diagnoses.map((d) => d.expertLogprob)),
    answerGain: mean(diagnoses.map((d) => d.answerGain)),
  };
}

/** One line: `valid 70% lp self -0.63 expert -9.20 gain +3.10 (n 20)`. */
export function describeDiagnostics(d: ExplanationDiagnostics): string {
  const nats = (value: number) => (Number.isNaN(value) ? '-' : value.toFixed(2));
  const valid = Number.isNaN(d.validFraction) ? '-' : `${(100 * d.validFraction).toFixed(0)}%`;
  return `valid ${valid} lp self ${nats(d.explanationLogprob)} expert ${nats(d.expertLogprob)} gain ${d.answerGain >= 0 ? '+' : ''}${nats(d.answerGain)} (n ${d.count})`;
}

/** The premise's figures over `items` (none: count 0, figures NaN, written as null in JSON). */
export async function diagnoseExplanations(input: DiagnosisInput): Promise<ExplanationDiagnostics> {
  return summarize(await diagnoseItems(input));
}

/** The premise's figures per level of the items, in the task's level order (levels without items left out). */
export async function diagnoseByLevel(input: DiagnosisInput): Promise<Map<number, ExplanationDiagnostics>> {
  const diagnoses = await diagnoseItems(input);
  const byLevel = new Map<number, ExplanationDiagnostics>();
  for (const level of input.task.levels) {
    const atLevel = diagnoses.filter((_, index) => input.items[index]?.level === level);
    if (atLevel.length > 0) byLevel.set(level, summarize(atLevel));
  }
  return byLevel;
}

async function diagnoseItems(input: DiagnosisInput): Promise<ItemDiagnosis[]> {
  for (const [name, list] of [['explanations', input.explanations], ['attempts', input.attempts]] as const) {
    if (list.length !== input.items.length) throw new RangeError(`diagnoseExplanations: ${list.length} ${name} for ${input.items.length} items`);
  }
  const diagnoses: ItemDiagnosis[] = [];
  for (let begin = 0; begin < input.items.length; begin += input.batchSize) {
    diagnoses.push(...(await diagnoseChunk(input, begin, Math.min(input.items.length, begin + input.batchSize))));
  }
  return diagnoses;
}

/**
 * A step's memory from shapes alone: the peak of each phase, by category, before running it. The
 * model's own buffers come from `planModelMemory` (napo_model_memory_plan: the layouts the model
 * allocates by, so prediction and measurement count the same buffers); what the trainer adds
 * around them (the frozen policy, the loss's tensors) is counted here. Steady state: the
 * gradients and AdamW moments exist (every step after the first).
 */
import Table from 'cli-table3';
import { memoryCategories, type BytesByCategory } from '@napo/kernels';
import { planModelMemory, type ModelConfig, type ModelMemoryQuery } from '@napo/policy';

import type { Algorithm } from './config.js';
import { phases, type Phase, type StepShapes } from './records.js';

export interface StepMemoryPlan {
  algorithm: Algorithm;
  shapes: StepShapes;
  /** A frozen policy is scored (KL or ExP-DPO). */
  frozenPolicy: boolean;
  /** Score through [N, V] logits (forward / backward) instead of linearLogprobs. */
  unfused?: boolean;
}

const zeros = (): BytesByCategory => Object.fromEntries(memoryCategories.map((category) => [category, 0])) as BytesByCategory;

function add(...parts: BytesByCategory[]): BytesByCategory {
  const out = zeros();
  for (const part of parts) for (const category of memoryCategories) out[category] += part[category];
  return out;
}

function only(bytes: BytesByCategory, categories: readonly (keyof BytesByCategory)[]): BytesByCategory {
  const out = zeros();
  for (const category of categories) out[category] = bytes[category];
  return out;
}

export function totalBytes(bytes: BytesByCategory): number {
  return memoryCategories.reduce((sum, category) => sum + bytes[category], 0);
}

/** A float32 tensor of `count` values as the allocator counts it (512-byte blocks). */
function tensorBytes(count: number): number {
  return Math.ceil((count * 4) / 512) * 512;
}

/** The peak of each phase of one steady-state step, by category. */
export function predictStepMemory(config: ModelConfig, plan: StepMemoryPlan): Record<Phase, BytesByCategory> {
  const s = plan.shapes;
  const state = { gradients: true, optimizerState: true };
  const model = (query: ModelMemoryQuery) => planModelMemory(config, { ...state, ...query });
  const capacity = (prompt: number) => Math.min(config.maxPositions, prompt + s.maxNewTokens);
  // The frozen copy holds its weights from its first use on, in every phase.
  const frozenWeights = plan.frozenPolicy ? only(planModelMemory(config, { pass: 'decode', batch: 1, time: 1, capacity: 1 }), ['parameter']) : zeros();
  const persistent = add(only(model({ pass: 'decode', batch: 1, time: 1, capacity: 1 }), ['parameter', 'gradient', 'optimizerState', 'workspace']), frozenWeights);
  const generation = (rows: number, prompt: number) =>
    rows === 0 ? persistent : add(model({ pass: 'prefill', batch: rows, time: prompt, capacity: capacity(prompt) }), frozenWeights);
  const scoreQuery = { batch: s.scoredRows, time: s.scoredWidth, scored: s.scoredTokens };
  // The trainer's score returns the entropy too (TRL's entropy metric).
  const score = plan.unfused ? model({ pass: 'forward', ...scoreQuery }) : model({ pass: 'score', ...scoreQuery, entropy: true });
  const backward = plan.unfused ? model({ pass: 'backward', ...scoreQuery }) : model({ pass: 'scoreBackward', ...scoreQuery });
  const batchRows = tensorBytes(s.scoredRows * s.scoredWidth);
  const auxiliaryRows = s.scoredRows - s.rolloutRows;
  // The loss runs on the device (losses.ts): the completion mask is uploaded before the first
  // score and lives to the last optimizer step, as do the first pass's log-probs (the old ones
  // of later passes) and the frozen log-probs; the score's returned log-probs and entropy stay
  // through the loss.
  const mask = { ...zeros(), input: batchRows };
  const kept = add(mask, { ...zeros(), temporary: (plan.frozenPolicy ? 2 : 1) * batchRows });
  const held = add(score, frozenWeights, mask);
  const frozenPass = plan.frozenPolicy
    ? only(planModelMemory(config, { pass: 'score', ...scoreQuery }), ['activation', 'temporary', 'input', 'workspace'])
    : zeros();
  // policyLoss's gradient over the rollout rows (and its advantages); with auxiliary rows, theirs
  // and the two stacked into the batch's gradient.
  const lossTensors = {
    ...zeros(),
    input: tensorBytes(s.rolloutRows),
    temporary: tensorBytes(s.rolloutRows * s.scoredWidth) + (auxiliaryRows > 0 ? tensorBytes(auxiliaryRows * s.scoredWidth) + batchRows : 0),
  };
  // The backward's incoming gradient is that stacked temporary, not an upload.
  const gradient = plan.unfused ? zeros() : { ...zeros(), input: -batchRows, temporary: batchRows };
  const byPhase: Record<Phase, BytesByCategory> = {
    rollout: generation(s.rolloutRows, s.rolloutPromptTokens),
    explain: generation(s.explainRows, s.explainPromptTokens),
    score: held,
    logprobs: add(held, frozenPass),
    loss: add(held, plan.frozenPolicy ? { ...zeros(), temporary: batchRows } : zeros(), lossTensors),
    backward: add(backward, frozenWeights, gradient, kept),
    optimizer: add(persistent, kept),
  };
  return Object.fromEntries(phases.map((phase) => [phase, byPhase[phase]])) as Record<Phase, BytesByCategory>;
}

/** The shapes of a step that has not run: every completion maxNewTokens long (the worst case). */
export function worstCaseShapes(options: {
  algorithm: Algorithm;
  promptsPerStep: number;
  groupSize: number;
  promptTokens: number;
  explainPromptTokens: number;
  maxNewTokens: number;
  maxPositions: number;
}): StepShapes {
  const rolloutRows = options.promptsPerStep * options.groupSize;
  const explains = options.algorithm === 'expo' || options.algorithm === 'expo-dpo';
  const auxiliaryRows = options.algorithm === 'grpo' ? 0 : options.algorithm === 'expo-dpo' ? 2 * options.promptsPerStep : options.promptsPerStep;
  const width = Math.min(options.maxPositions, options.promptTokens + options.maxNewTokens + 1);
  return {
    rolloutRows,
    rolloutPromptTokens: options.promptTokens,
    explainRows: explains ? options.promptsPerStep : 0,
    explainPromptTokens: explains ? options.explainPromptTokens : 0,
    maxNewTokens: options.maxNewTokens,
    scoredRows: rolloutRows + auxiliaryRows,
    scoredWidth: width,
    scoredTokens: (rolloutRows + auxiliaryRows) * (width - options.promptTokens),
  };
}

const mebibytes = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

/** The predicted peak of each phase, by the categories that hold anything (MiB). */
export function formatPrediction(predicted: Record<Phase, BytesByCategory>, title: string): string {
  const used = memoryCategories.filter((category) => phases.some((phase) => predicted[phase][category] > 0));
  const table = new Table({ head: ['phase', ...used, 'peak MiB'], style: { head: [], border: [] } });
  for (const phase of phases) table.push([phase, ...used.map((category) => mebibytes(predicted[phase][category])), mebibytes(totalBytes(predicted[phase]))]);
  return [`predicted peak memory per phase (steady state: gradients and AdamW moments held): ${title}`, table.toString()].join('\n');
}

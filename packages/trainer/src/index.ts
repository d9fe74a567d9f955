/**
 * @napo/trainer: tasks with verifiable rewards, GRPO / ExP-GRPO / GRPO + SFT / ExP-DPO trainers
 * over any Policy, evaluation by level, checkpoints, reports and the `napo` CLI.
 */
export { algorithms, trainConfig, trainConfigSchema, type Algorithm, type TrainConfig, type TrainConfigInput } from './config.js';
export { AdditionTask, columnSteps, countingOnSteps } from './tasks/addition.js';
export type { ParsedCompletion, Task, TaskItem } from './task.js';
export {
  collapseWhitespace,
  extractAnswer,
  isVerifierName,
  normaliseLatex,
  numericTolerance,
  parseNumber,
  verifierNames,
  verifiers,
  type Verifier,
  type VerifierName,
} from './verifiers.js';
export {
  accuracyReward,
  formatReward,
  scoreRewards,
  validateRewards,
  type RewardFunction,
  type RewardSample,
  type RewardScores,
  type WeightedReward,
} from './rewards.js';
export { DatasetTask, datasetTaskOptionsSchema, loadJsonlDataset, type DatasetItem, type DatasetTaskOptions } from './dataset.js';
export { Rng, type RngState } from './rng.js';
export { Trainer, type AuxiliaryPair, type TrainerOptions, type TrainerState } from './trainer.js';
export { evaluate, heldOutItems, defaultEvaluationOptions, type EvaluationOptions } from './evaluate.js';
export {
  hasCachedWarmup,
  supervisedStep,
  warmup,
  warmupCachePath,
  warmupConfigSchema,
  type WarmupConfig,
  type WarmupTask,
  warmedUpPolicy,
} from './warmup.js';
export {
  formatProfileTable,
  runProfile,
  summariseSteps,
  type PhaseProfile,
  type ProfileOptions,
  type ProfileResult,
} from './profile.js';
export { saveCheckpoint, loadCheckpoint, latestCheckpoint } from './checkpoint.js';
export { runComparison, methodLabels, compareMethods, compareMethodNames, type CompareMethod, type CompareOptions } from './compare.js';
export { presets, type Preset } from './presets.js';
export { writeReport, renderHtml, type ComparisonReport, type MethodRun } from './report.js';
export { phases, type EvalRecord, type LevelScore, type Phase, type PhaseFigures, type StepRecord, type TrainerRecord } from './records.js';

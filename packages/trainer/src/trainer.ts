/**
 * GRPO and ExPO trainers over any Policy + Task, on napo's ops: `sample` (through generate) for
 * rollouts and self-explanations, the policy's fused scoring path (`linearLogprobs`: no [N, V]
 * logits), `groupAdvantages`, `policyLoss`. One step:
 *   rollout   G completions per prompt, rewarded by the reward functions (default: the task's verifier)
 *   explain   ExP-GRPO: a self-explanation per prompt, sampled with the answer in the prompt
 *             (GRPO+SFT: the task's expert solution; ExP-DPO: chosen/rejected pairs)
 *   score     one forward over rollouts and auxiliary sequences (plain prompts: no hint), with
 *             the completion tokens' log-probs and entropies
 *   logprobs  the frozen policy's log-probs (KL or DPO); the sampling policy's with mini-batches
 *   loss      the policyLoss op (advantages from the whole round) and the auxiliary term
 *             (maskedRowSum), as d loss / d log-probs, on the policy's device (losses.ts)
 *   backward  d loss / d log-probs -> hidden states and LM head -> parameters
 *   optimizer AdamW
 * score .. optimizer run once per mini-batch (stepsPerGeneration) and pass (numIterations); from
 * score to optimizer nothing [rows, width] leaves the policy's device, only row sums and scalars.
 * Prompts go through the tokenizer's chat template when it has one (prompting.ts).
 * Each phase's time and peak allocated memory are recorded (records.ts lists them).
 */
import {
  groupAdvantages,
  memoryCategories,
  memoryStats,
  resetPeakMemoryStats,
  setMemoryPhase,
  tensor,
  type GroupAdvantagesOptions,
  type Tensor,
} from '@napo/kernels';
import { generate, warmupCosineSchedule, type LrSchedule, type Policy, type Tokenizer } from '@napo/policy';

import { trainConfig, type TrainConfig, type TrainConfigInput } from './config.js';
import { diagnoseExplanations, solutionPair, type ExplanationDiagnostics } from './diagnostics.js';
import { EntropyBonus, type EntropyBonusState } from './entropy-bonus.js';
import { defaultEvaluationOptions, evaluate, heldOutItems, type EvaluationOptions } from './evaluate.js';
import { phases, type EvalRecord, type LoggedCompletion, type Phase, type PhaseFigures, type StepRecord } from './records.js';
import { idleOptimisation, rewardGroups, trlMetrics, type Optimisation } from './trl-metrics.js';
import { Rng, type RngState } from './rng.js';
import { encodePrompt } from './prompting.js';
import { scoreRewards, type WeightedReward } from './rewards.js';
import { miniBatchLoss, type LossParts, type LossSettings } from './losses.js';
import { normalizeThenSum } from './reward-aggregation.js';
import { scoreOnDevice, scoreWithEntropyOnDevice } from './scoring.js';
import { packSequences, type PackedBatch, type SequencePair } from './sequences.js';
import type { Task, TaskItem } from './task.js';

/** An auxiliary sequence and what it is for. */
export interface AuxiliaryPair extends SequencePair {
  /** 'positive': raise log pi (ExPO / SFT); 'chosen' / 'rejected': a DPO pair (consecutive rows). */
  role: 'positive' | 'chosen' | 'rejected';
  /** Which of the step's prompts it belongs to (its mini-batch follows the prompt's). */
  item: number;
}

export interface TrainerOptions {
  policy: Policy;
  tokenizer: Tokenizer;
  task: Task;
  config?: TrainConfigInput;
  /** The frozen policy the KL term and ExP-DPO compare with (TRL's ref_model); cloned from the policy at the first step if not given. */
  frozenPolicy?: Policy;
  evaluation?: Partial<EvaluationOptions>;
  /**
   * Reward functions with weights, as TRL's reward_funcs / reward_weights: a rollout's reward is
   * the weighted sum. Default: the task's verifier with weight 1.
   */
  rewards?: WeightedReward[];
}

/** What a checkpoint needs besides the weights to continue exactly where a run stopped. */
export interface TrainerState {
  step: number;
  /** Prompt and completion tokens of every rollout so far (TRL's num_tokens); absent in older checkpoints. */
  tokensSeen?: number;
  rng: RngState;
  offlineExplanations: [string, string][];
  /** The entropy bonus's coefficient and last entropy (useAdaptiveEntropy); absent in older checkpoints. */
  entropyBonus?: EntropyBonusState;
  /** AdamW steps so far (when syncRefModel syncs); absent in older checkpoints. */
  optimizerSteps?: number;
}

/** A step's rollouts: G per prompt, prompt-major. */
interface Rollouts {
  pairs: SequencePair[];
  rewards: number[];
  /** The task's verifier per rollout, whatever the rewards are. */
  correct: number[];
  rewardsByName: Record<string, number>;
  /** Each reward function's value per rollout (NaN where it does not apply); empty without reward functions. */
  rewardsByFunction: Record<string, number[]>;
  texts: string[];
  /** Completion tokens per rollout, EOS included. */
  lengths: number[];
  /** No EOS within maxNewTokens. */
  truncated: boolean[];
  tokensGenerated: number;
}

/** One backward's batch: kept rollouts first (with their advantages), then their prompts' auxiliary rows. */
interface MicroBatch {
  batch: PackedBatch;
  advantages: Float32Array;
}

/** One optimizer step: its micro-batches (gradientAccumulationSteps of consecutive prompts), gradients summed. */
type MiniBatch = MicroBatch[];


/** Runs one phase of a step, measuring its time and peak memory. */
type Timer = <T>(phase: Phase, work: () => Promise<T>) => Promise<T>;


export class Trainer {
  readonly config: TrainConfig;
  readonly policy: Policy;
  readonly tokenizer: Tokenizer;
  readonly task: Task;
  private readonly evaluation: EvaluationOptions;
  private readonly evalItems: TaskItem[];
  private readonly levels: readonly number[];
  private readonly rewards: WeightedReward[] | undefined;
  private frozen: Policy | undefined;
  private rng: Rng;
  private stepCount = 0;
  private tokensSeen = 0;
  private optimizerStepsTaken = 0;
  /** ExPO offline mode: the explanation drawn the first time a prompt was seen. */
  private offlineExplanations = new Map<string, string>();
  private readonly learningRate: LrSchedule;
  private readonly entropyBonus: EntropyBonus;

  constructor(options: TrainerOptions) {
    this.config = trainConfig(options.config ?? {});
    this.policy = options.policy;
    this.tokenizer = options.tokenizer;
    this.task = options.task;
    this.frozen = options.frozenPolicy;
    this.evaluation = {
      ...defaultEvaluationOptions,
      explainTemperature: this.config.explainTemperature,
      ...options.evaluation,
      maxNewTokens: this.config.maxNewTokens,
    };
    this.evalItems = heldOutItems(this.task, this.evaluation.itemsPerLevel, this.evaluation.itemSeed);
    this.levels = this.config.levels ?? this.task.levels;
    for (const level of this.levels) {
      if (!this.task.levels.includes(level)) throw new RangeError(`levels: ${level} is not a level of task ${this.task.name}`);
    }
    this.rewards = options.rewards;
    this.rng = new Rng(this.config.seed);
    this.entropyBonus = new EntropyBonus(this.config);
    const { learningRate, warmupSteps, schedule, steps } = this.config;
    // Linear warm-up, then constant or a cosine down to a tenth of the peak at the last step.
    this.learningRate = warmupCosineSchedule({
      peakLr: learningRate,
      warmupSteps,
      totalSteps: Math.max(steps, warmupSteps + 1),
      minLr: schedule === 'constant' ? learningRate : learningRate / 10,
    });
  }

  get step(): number {
    return this.stepCount;
  }

  state(): TrainerState {
    return {
      step: this.stepCount,
      tokensSeen: this.tokensSeen,
      rng: this.rng.getState(),
      offlineExplanations: [...this.offlineExplanations],
      entropyBonus: this.entropyBonus.state(),
      optimizerSteps: this.optimizerStepsTaken,
    };
  }

  restore(state: TrainerState): void {
    this.stepCount = state.step;
    this.tokensSeen = state.tokensSeen ?? 0;
    this.rng = new Rng(state.rng);
    this.offlineExplanations = new Map(state.offlineExplanations);
    if (state.entropyBonus) this.entropyBonus.restore(state.entropyBonus);
    this.optimizerStepsTaken = state.optimizerSteps ?? 0;
  }

  /** Steps until config.steps, with evaluations at evalEvery and at the end, as records. */
  async *run(): AsyncGenerator<StepRecord | EvalRecord> {
    while (this.stepCount < this.config.steps) {
      yield await this.trainStep();
      const every = this.config.evalEvery;
      if ((every > 0 && this.stepCount % every === 0) || this.stepCount === this.config.steps) yield await this.evaluate();
    }
  }

  async evaluate(): Promise<EvalRecord> {
    const byLevel = await evaluate(this.policy, this.tokenizer, this.task, this.evalItems, this.evaluation, (text) => this.encode(text));
    return { kind: 'eval', algorithm: this.config.algorithm, seed: this.config.seed, step: this.stepCount, k: this.evaluation.k, byLevel };
  }

  async trainStep(): Promise<StepRecord> {
    const config = this.config;
    const started = performance.now();
    const items = Array.from({ length: config.promptsPerStep }, () => this.task.sample(this.rng, this.rng.pick(this.levels)));
    const rolloutSeed = this.rng.fork();
    const explainSeed = this.rng.fork();
    const figures = Object.fromEntries(phases.map((phase) => [phase, idlePhase()])) as Record<Phase, PhaseFigures>;
    const device = this.policy.device;
    // A phase run more than once (numIterations) adds its seconds and keeps its highest peak.
    const timed: Timer = async (phase, work) => {
      resetPeakMemoryStats(device);
      setMemoryPhase(device, phase);
      const begin = performance.now();
      const result = await work();
      const stats = memoryStats(device);
      const previous = figures[phase];
      const seconds = previous.seconds + (performance.now() - begin) / 1000;
      const driver = stats.freeBytes === undefined || stats.totalBytes === undefined ? {} : { deviceFreeBytes: stats.freeBytes, deviceTotalBytes: stats.totalBytes };
      figures[phase] =
        stats.peakAllocatedBytes >= previous.peakAllocatedBytes
          ? { seconds, peakAllocatedBytes: stats.peakAllocatedBytes, peakByCategory: stats.atPeakByCategory, ...driver }
          : { ...previous, seconds, ...driver };
      return result;
    };

    const rollouts = await timed('rollout', () => this.rollout(items, rolloutSeed));
    const { pairs: auxiliary, tokensGenerated: explainTokens, explainPrompts, explanations, dropped } = await timed('explain', () =>
      this.auxiliaryPairs(items, rollouts, explainSeed),
    );
    const diagnosisStarted = performance.now();
    const allWrong = items.filter((_, p) => rollouts.correct.slice(p * config.groupSize, (p + 1) * config.groupSize).every((r) => r === 0));
    const diagnosis = config.diagnostics ? await this.diagnose(items, allWrong, explanations, rollouts.texts, explainSeed) : undefined;
    const diagnosticSeconds = (performance.now() - diagnosisStarted) / 1000;
    const groups = rewardGroups(rollouts.rewards, config.groupSize);
    const keptGroups = groups.flatMap((group, g) => (config.dropZeroStdGroups && group.zeroStd ? [] : [g]));
    const learningRate = this.learningRate(this.stepCount);
    const miniBatches = this.miniBatches(items.length, keptGroups, rollouts, auxiliary);
    const training = miniBatches.length > 0 ? await this.optimise(miniBatches, learningRate, timed) : idleOptimisation();
    this.stepCount++;
    this.tokensSeen += rollouts.pairs.reduce((n, pair) => n + pair.prompt.length + pair.completion.length, 0);
    setMemoryPhase(device, '');
    const stepPeak = Math.max(...phases.map((phase) => figures[phase].peakAllocatedBytes));
    return {
      kind: 'step',
      algorithm: config.algorithm,
      seed: config.seed,
      step: this.stepCount,
      reward: mean(rollouts.rewards),
      rewardsByName: rollouts.rewardsByName,
      accuracyByLevel: accuracyByLevel(items, rollouts.correct, config.groupSize),
      allWrongPrompts: allWrong.length,
      ...(config.logCompletions ? { completions: this.loggedCompletions(items, rollouts) } : {}),
      ...(diagnosis ? { explanations: diagnosis } : {}),
      diagnosticSeconds,
      explanationsDropped: dropped,
      zeroStdGroupsDropped: config.dropZeroStdGroups ? groups.filter((group) => group.zeroStd).length : 0,
      truncatedMasked: config.maskTruncatedCompletions ? keptGroups.reduce((n, g) => n + this.truncatedIn(rollouts, g), 0) : 0,
      optimizerSteps: training.optimizerSteps,
      microBatches: training.microBatches,
      loss: training.loss,
      auxiliaryLoss: training.auxiliaryLoss,
      meanKl: training.meanKl,
      clipLowFraction: training.clipLowFraction,
      clipHighFraction: training.clipHighFraction,
      ...(config.topEntropyQuantile < 1 ? { entropyKeptFraction: training.keptFraction } : {}),
      ...(config.offPolicyMaskThreshold === undefined ? {} : { offPolicyMaskedFraction: training.offPolicyFraction }),
      ...(this.entropyBonus.enabled ? { entropyCoef: this.entropyBonus.coef } : {}),
      gradNorm: training.gradNorm,
      learningRate,
      tokensGenerated: rollouts.tokensGenerated + explainTokens,
      tokensTrained: training.tokensTrained,
      stepSeconds: (performance.now() - started) / 1000 - diagnosticSeconds,
      phases: figures,
      'perf/max_memory_allocated_gb': stepPeak / 2 ** 30,
      allocatedBytesAfter: memoryStats(device).allocatedBytes,
      shapes: {
        rolloutRows: rollouts.pairs.length,
        rolloutPromptTokens: Math.max(...rollouts.pairs.map((pair) => pair.prompt.length)),
        explainRows: explainPrompts.length,
        explainPromptTokens: Math.max(0, ...explainPrompts.map((prompt) => prompt.length)),
        maxNewTokens: config.maxNewTokens,
        scoredRows: training.largest.rows,
        scoredWidth: training.largest.width,
        scoredTokens: training.largest.tokens,
      },
      ...trlMetrics({
        rollouts,
        groups,
        training,
        learningRate,
        numTokens: this.tokensSeen,
        rewardNames: Object.keys(rollouts.rewardsByName),
        beta: config.klBeta,
        lossType: config.lossType,
        ...(this.entropyBonus.enabled ? { entropyCoef: this.entropyBonus.coef } : {}),
      }),
    };
  }

  /**
   * The step's training batches: stepsPerGeneration mini-batches of consecutive prompts (TRL's
   * steps_per_generation), each split into gradientAccumulationSteps micro-batches of consecutive
   * prompts, each with its kept rollout groups (their advantages computed over all kept groups,
   * as TRL computes them over the generation batch) and its prompts' auxiliary rows. Batches with
   * nothing to train are left out.
   */
  private miniBatches(prompts: number, keptGroups: number[], rollouts: Rollouts, auxiliary: AuxiliaryPair[]): MiniBatch[] {
    const { groupSize, stepsPerGeneration, gradientAccumulationSteps, maskTruncatedCompletions } = this.config;
    const rows = keptGroups.flatMap((g) => Array.from({ length: groupSize }, (_, i) => g * groupSize + i));
    const advantages = rows.length > 0 ? this.advantages(rows, rollouts) : new Float32Array(0);
    const perMiniBatch = Math.ceil(prompts / stepsPerGeneration);
    const perMicroBatch = Math.ceil(perMiniBatch / gradientAccumulationSteps);
    // A prompt's place: its mini-batch, and its micro-batch within it.
    const placeOf = (prompt: number) => {
      const mini = Math.floor(prompt / perMiniBatch);
      return { mini, micro: Math.floor((prompt - mini * perMiniBatch) / perMicroBatch) };
    };
    const microBatch = (mini: number, micro: number): MicroBatch[] => {
      const at = (prompt: number) => {
        const place = placeOf(prompt);
        return place.mini === mini && place.micro === micro;
      };
      const indices = rows.flatMap((row, index) => (at(Math.floor(row / groupSize)) ? [index] : []));
      const pairs = [...indices.map((index) => rollouts.pairs[rows[index] as number] as SequencePair), ...auxiliary.filter((pair) => at(pair.item))];
      if (pairs.length === 0) return [];
      const batch = packSequences(pairs);
      if (maskTruncatedCompletions) {
        indices.forEach((index, r) => rollouts.truncated[rows[index] as number] && batch.completionMask.fill(0, r * batch.width, (r + 1) * batch.width));
      }
      return [{ batch, advantages: Float32Array.from(indices, (index) => advantages[index] as number) }];
    };
    const count = (n: number) => Array.from({ length: n }, (_, i) => i);
    return count(stepsPerGeneration)
      .map((mini) => count(gradientAccumulationSteps).flatMap((micro) => microBatch(mini, micro)))
      .filter((micros) => micros.length > 0);
  }

  /** The rollouts as TRL's completions table lists them: prompt, completion, reward, each function's. */
  private loggedCompletions(items: TaskItem[], rollouts: Rollouts): LoggedCompletion[] {
    const { groupSize, numCompletionsToPrint } = this.config;
    const count = Math.min(rollouts.texts.length, numCompletionsToPrint ?? rollouts.texts.length);
    return rollouts.texts.slice(0, count).map((completion, row) => ({
      prompt: (items[Math.floor(row / groupSize)] as TaskItem).prompt,
      completion,
      reward: rollouts.rewards[row] as number,
      rewards: Object.fromEntries(Object.entries(rollouts.rewardsByFunction).map(([name, values]) => [name, values[row] as number])),
    }));
  }

  /** Rollouts of group `g` that hit maxNewTokens. */
  private truncatedIn(rollouts: Rollouts, g: number): number {
    const { groupSize } = this.config;
    return rollouts.truncated.slice(g * groupSize, (g + 1) * groupSize).filter(Boolean).length;
  }

  /**
   * The kept rollouts' advantages (groupAdvantages op), of the weighted reward sum normalised as
   * scaleRewards and estimator say; or, with multiObjectiveAggregation normalize_then_sum, of the
   * per-function group-normalised sum, scaled over the batch (TRL's GDPO path).
   */
  private advantages(rows: number[], rollouts: Rollouts): Float32Array {
    const { groupSize, scaleRewards, estimator, multiObjectiveAggregation } = this.config;
    const perFunction = multiObjectiveAggregation === 'normalize_then_sum';
    const total = rows.map((row) => rollouts.rewards[row] as number);
    const functions = () =>
      this.rewards
        ? this.rewards.map(({ name, weight }) => ({ weight, values: rows.map((row) => rollouts.rewardsByFunction[name]?.[row] ?? Number.NaN) }))
        : [{ weight: 1, values: total }];
    const rewards = perFunction ? normalizeThenSum(functions(), groupSize) : total;
    const rewardsTensor = tensor<'float32'>(Float32Array.from(rewards));
    try {
      const options: GroupAdvantagesOptions = perFunction
        ? { groupOffsets: [0, rewards.length], scale: 'batch' }
        : { groupSize, scale: scaleRewards, estimator };
      const advantages = groupAdvantages(rewardsTensor, options);
      const values = advantages.toArray();
      advantages.dispose();
      return values;
    } finally {
      rewardsTensor.dispose();
    }
  }

  /**
   * numIterations passes over the mini-batches, each an AdamW step on the summed gradients of its
   * micro-batches (each a score -> loss -> backward), scaled by 1 / their count, all on the
   * policy's device (losses.ts): log-probs, entropies, masks and gradients stay there, only row
   * sums and scalars come back. A micro-batch's first-pass log-probs are the sampling policy's
   * when no update came before them and serve as old log-probs from then on; with several
   * mini-batches the later ones see updated weights, so all are scored (keeping no activations)
   * before the first update, as TRL takes them at generation time. The frozen policy is scored
   * once per micro-batch. Figures are means over the micro-batches (the gradient norm over the
   * optimizer steps).
   */
  private async optimise(miniBatches: MiniBatch[], learningRate: number, timed: Timer): Promise<Optimisation> {
    const config = this.config;
    const sum = idleOptimisation();
    const device = this.policy.device;
    const micros = miniBatches.flat();
    const masks = micros.map(({ batch }) => tensor<'float32'>(batch.completionMask, [batch.rows, batch.width], { device }));
    const oldLogprobs: (Tensor<'float32'> | undefined)[] = [];
    const refLogprobs: (Tensor<'float32'> | undefined)[] = [];
    try {
      if (miniBatches.length > 1) {
        await timed('logprobs', async () => {
          for (const { batch } of micros) oldLogprobs.push(await scoreOnDevice(this.policy, batch, config.temperature, false));
        });
      }
      for (let pass = 0; pass < config.numIterations; pass++) {
        for (const miniBatch of miniBatches) {
          this.policy.zeroGrad();
          const settings = this.lossSettings(miniBatch);
          const trained = { entropy: 0, tokens: 0 };
          for (const micro of miniBatch) {
            const { batch, advantages } = micro;
            const m = micros.indexOf(micro);
            const scores = await timed('score', () => scoreWithEntropyOnDevice(this.policy, batch, config.temperature));
            if (pass === 0) {
              refLogprobs[m] = await timed('logprobs', async () =>
                this.needsFrozenPolicy() ? await scoreOnDevice(await this.frozenPolicyModel(), batch, config.temperature, false) : undefined,
              );
            }
            const deviceScores = { ...scores, old: oldLogprobs[m] ?? scores.logprobs, ref: refLogprobs[m], mask: masks[m] as Tensor<'float32'> };
            const parts = await timed('loss', async () => miniBatchLoss(batch, deviceScores, advantages, settings));
            scores.entropy.dispose();
            // The first pass's log-probs are the old ones of the later passes.
            if (oldLogprobs[m] === undefined) oldLogprobs[m] = scores.logprobs;
            else scores.logprobs.dispose();
            await timed('backward', async () => {
              try {
                await this.policy.scoreBackward(parts.gradLogprobs, parts.gradEntropy);
              } finally {
                parts.gradLogprobs.dispose();
                parts.gradEntropy?.dispose();
              }
            });
            sum.microBatches++;
            for (const key of averagedFigures) sum[key] += parts[key];
            sum.entropy += parts.rolloutEntropy;
            if (parts.trainedEntropy !== undefined) {
              const tokens = parts.keptFraction * rolloutTokens(batch, advantages.length);
              trained.entropy += parts.trainedEntropy * tokens;
              trained.tokens += tokens;
            }
          }
          const optimizer = await timed('optimizer', async () => {
            const result = await this.policy.step({
              lr: learningRate,
              weightDecay: config.weightDecay,
              maxGradNorm: config.maxGradNorm,
              gradScale: 1 / miniBatch.length,
            });
            await this.syncFrozenPolicy();
            return result;
          });
          sum.optimizerSteps++;
          sum.gradNorm += optimizer.gradNorm;
          // The adaptive bonus sees the whole optimizer step's entropy, as TRL's accumulation window.
          if (settings.withEntropy) this.entropyBonus.update(trained.tokens > 0 ? trained.entropy / trained.tokens : 0);
        }
      }
    } finally {
      for (const t of [...masks, ...oldLogprobs, ...refLogprobs]) t?.dispose();
    }
    const tokens = (batch: PackedBatch) => batch.completionMask.reduce((n, m) => n + m, 0);
    const largest = micros.map(({ batch }) => batch).reduce((a, b) => (b.rows * b.width > a.rows * a.width ? b : a));
    const means = { ...sum };
    for (const key of averagedFigures) means[key] = sum[key] / sum.microBatches;
    return {
      ...means,
      gradNorm: sum.gradNorm / sum.optimizerSteps,
      entropy: sum.entropy / sum.microBatches,
      tokensTrained: micros.reduce((n, { batch }) => n + tokens(batch), 0),
      largest: { rows: largest.rows, width: largest.width, tokens: tokens(largest) },
    };
  }

  /**
   * What miniBatchLoss needs of the config for the micro-batches of one optimizer step: this
   * step's entropy bonus, and for dapo and cispo the step's rollout tokens over the micro-batch
   * count (TRL's num_items_in_batch; the optimizer scales the summed gradients by 1 / count).
   */
  private lossSettings(miniBatch: MiniBatch): LossSettings {
    const config = this.config;
    const windowTokens = miniBatch.reduce((n, { batch, advantages }) => n + rolloutTokens(batch, advantages.length), 0);
    return {
      ...config,
      withEntropy: config.topEntropyQuantile < 1 || this.entropyBonus.enabled,
      entropyCoef: this.entropyBonus.enabled ? this.entropyBonus.applied() : 0,
      ...(windowTokens > 0 ? { numItemsInBatch: windowTokens / miniBatch.length } : {}),
    };
  }

  /**
   * ExPO's premise on the prompts the rollouts all got wrong: their self-explanations (the step's
   * own when the algorithm made them, else sampled here with the step's explain seed) diagnosed,
   * p(a* | q) from the prompt's G rollouts.
   */
  private async diagnose(items: TaskItem[], allWrong: TaskItem[], explanations: string[], rolloutTexts: string[], seed: number): Promise<ExplanationDiagnostics> {
    const { groupSize } = this.config;
    const made = explanations.length === items.length;
    const texts = made
      ? allWrong.map((item) => explanations[items.indexOf(item)] as string)
      : (await this.sampleExplanations(allWrong, seed)).texts;
    return diagnoseExplanations({
      policy: this.policy,
      tokenizer: this.tokenizer,
      task: this.task,
      items: allWrong,
      explanations: texts,
      attempts: allWrong.map((item) => {
        const p = items.indexOf(item);
        return rolloutTexts.slice(p * groupSize, (p + 1) * groupSize);
      }),
      encode: (text) => this.encode(text),
      batchSize: this.evaluation.batchSize,
    });
  }

  /** A prompt's tokens as the policy sees it (the chat template when there is one). */
  private encode(text: string): number[] {
    return encodePrompt(this.tokenizer, text, this.config);
  }

  private async rollout(
    items: TaskItem[],
    seed: number,
  ): Promise<Rollouts> {
    const { groupSize, maxNewTokens, temperature, topK, topP, minP, repetitionPenalty } = this.config;
    const prompts = items.flatMap((item) => Array.from({ length: groupSize }, () => this.encode(item.prompt)));
    const result = await generate(this.policy, prompts, { maxNewTokens, temperature, topK, topP, minP, repetitionPenalty, seed, tokenizer: this.tokenizer });
    const texts = result.texts ?? [];
    const itemOf = (row: number) => items[Math.floor(row / groupSize)] as TaskItem;
    // Correctness is the task's verifier whatever the rewards are; it is what accuracy reports.
    const correct = texts.map((text, row) => this.task.verify(text, itemOf(row).answer));
    let rewards = correct;
    let rewardsByName: Record<string, number> = {};
    let rewardsByFunction: Record<string, number[]> = {};
    if (this.rewards) {
      const samples = texts.map((completion, row) => ({ prompt: itemOf(row).prompt, completion, answer: itemOf(row).answer, item: itemOf(row) }));
      const scores = await scoreRewards(this.rewards, samples);
      rewards = scores.total;
      rewardsByName = Object.fromEntries(Object.entries(scores.byName).map(([name, values]) => [name, nanMean(values)]));
      rewardsByFunction = scores.byName;
    }
    return {
      pairs: prompts.map((prompt, row) => ({ prompt, completion: result.tokens[row] as number[] })),
      rewards,
      correct,
      rewardsByName,
      rewardsByFunction,
      texts,
      lengths: result.lengths,
      truncated: result.finishReasons.map((reason) => reason === 'length'),
      tokensGenerated: result.lengths.reduce((n, length) => n + length, 0),
    };
  }

  /**
   * The completion `reasoning + answer + EOS` under the plain prompt. A self-explanation's own
   * final answer is dropped: the given one replaces it.
   */
  private positive(item: TaskItem, text: string): SequencePair {
    const reasoning = this.task.parse(text)?.reasoning ?? text;
    const { prompt, completion } = solutionPair(this.task, this.tokenizer, this.encode(item.prompt), reasoning, item.answer, this.policy.contextLength);
    return { prompt, completion };
  }

  /** The policy's texts under the items' explain prompts (the answer given), one draw each. */
  private async sampleExplanations(items: TaskItem[], seed: number): Promise<{ texts: string[]; tokensGenerated: number; prompts: number[][] }> {
    const prompts = items.map((item) => this.encode(this.task.explainPrompt(item.prompt, item.answer)));
    if (items.length === 0) return { texts: [], tokensGenerated: 0, prompts };
    const result = await generate(this.policy, prompts, {
      maxNewTokens: this.config.maxNewTokens,
      temperature: this.config.explainTemperature,
      seed,
      tokenizer: this.tokenizer,
    });
    return { texts: result.texts ?? [], tokensGenerated: result.lengths.reduce((n, length) => n + length, 0), prompts };
  }

  /** Self-explanations: the policy's own steps toward the answer it was given, as generated (its own final answer included). */
  private async selfExplanations(
    items: TaskItem[],
    seed: number,
  ): Promise<{ explanations: string[]; tokensGenerated: number; explainPrompts: number[][] }> {
    const offline = this.config.explanations === 'offline';
    const missing = items.filter((item) => !(offline && this.offlineExplanations.has(item.prompt)));
    const sampled = await this.sampleExplanations(missing, seed);
    missing.forEach((item, index) => this.offlineExplanations.set(item.prompt, sampled.texts[index] ?? ''));
    const explanations = items.map((item) => this.offlineExplanations.get(item.prompt) ?? '');
    if (!offline) this.offlineExplanations.clear();
    return { explanations, tokensGenerated: sampled.tokensGenerated, explainPrompts: sampled.prompts };
  }

  /** Whether explanationFilter keeps the self-explanation `text` of `item`. */
  private keeps(item: TaskItem, text: string): boolean {
    return this.config.explanationFilter === 'none' || this.task.parse(text)?.answer === item.answer;
  }

  /**
   * The sequences each algorithm adds to the rollouts, the tokens generated to make them, the
   * self-explanations (one per item; none for algorithms without them) and how many the filter dropped.
   */
  async auxiliaryPairs(
    items: TaskItem[],
    rollouts: { pairs: SequencePair[]; rewards: number[] },
    seed: number,
  ): Promise<{ pairs: AuxiliaryPair[]; tokensGenerated: number; explainPrompts: number[][]; explanations: string[]; dropped: number }> {
    switch (this.config.algorithm) {
      case 'grpo':
        return { pairs: [], tokensGenerated: 0, explainPrompts: [], explanations: [], dropped: 0 };
      case 'grpo-sft':
        return {
          pairs: items.map((item, p) => ({ ...this.positive(item, item.expertReasoning), role: 'positive' as const, item: p })),
          tokensGenerated: 0,
          explainPrompts: [],
          explanations: [],
          dropped: 0,
        };
      case 'expo': {
        const { explanations, tokensGenerated, explainPrompts } = await this.selfExplanations(items, seed);
        const kept = items.flatMap((item, p) => (this.keeps(item, explanations[p] as string) ? [p] : []));
        return {
          pairs: kept.map((p) => ({ ...this.positive(items[p] as TaskItem, explanations[p] as string), role: 'positive' as const, item: p })),
          tokensGenerated,
          explainPrompts,
          explanations,
          dropped: items.length - kept.length,
        };
      }
      case 'expo-dpo': {
        const { explanations, tokensGenerated, explainPrompts } = await this.selfExplanations(items, seed);
        const { groupSize } = this.config;
        let dropped = 0;
        const pairs = items.flatMap((item, p) => {
          // Rejected: the model's own wrong answer to this prompt; prompts it always solves give no pair.
          const wrong = rollouts.rewards.findIndex((reward, row) => reward === 0 && Math.floor(row / groupSize) === p);
          if (wrong < 0) return [];
          if (!this.keeps(item, explanations[p] as string)) {
            dropped++;
            return [];
          }
          const rejected = rollouts.pairs[wrong] as SequencePair;
          return [
            { ...this.positive(item, explanations[p] as string), role: 'chosen' as const, item: p },
            { prompt: rejected.prompt, completion: rejected.completion, role: 'rejected' as const, item: p },
          ];
        });
        return { pairs, tokensGenerated, explainPrompts, explanations, dropped };
      }
    }
  }

  /** The frozen policy (KL, ExP-DPO), cloned from the policy the first time it is needed. */
  async frozenPolicyModel(): Promise<Policy> {
    this.frozen ??= await this.policy.clone();
    return this.frozen;
  }

  /** The frozen policy if one was made or given. */
  get frozenPolicy(): Policy | undefined {
    return this.frozen;
  }

  /** TRL's ref-model sync after an optimizer step: every refModelSyncSteps, the frozen policy blends towards the policy. */
  private async syncFrozenPolicy(): Promise<void> {
    this.optimizerStepsTaken++;
    const { syncRefModel, refModelSyncSteps, refModelMixupAlpha } = this.config;
    if (!syncRefModel || this.optimizerStepsTaken % refModelSyncSteps !== 0) return;
    await (await this.frozenPolicyModel()).blendFrom(this.policy, refModelMixupAlpha);
  }

  private needsFrozenPolicy(): boolean {
    return this.config.klBeta > 0 || this.config.algorithm === 'expo-dpo';
  }

}

/** What each micro-batch's loss gives and a step records as the mean over its micro-batches. */
const averagedFigures = [
  'loss',
  'auxiliaryLoss',
  'meanKl',
  'clipLowFraction',
  'clipHighFraction',
  'clipLowMin',
  'clipHighMax',
  'policyLoss',
  'vespoPhiMean',
  'keptFraction',
  'offPolicyFraction',
] as const satisfies readonly (keyof Optimisation & keyof LossParts)[];

/** Completion tokens with a loss in the batch's first `rows` rows (its rollouts). */
function rolloutTokens(batch: PackedBatch, rows: number): number {
  return batch.completionMask.subarray(0, rows * batch.width).reduce((n, m) => n + m, 0);
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** The mean of the values that are not NaN (a reward function's "does not apply"); 0 when none is. */
function nanMean(values: readonly number[]): number {
  return mean(values.filter((value) => !Number.isNaN(value)));
}

function accuracyByLevel(items: TaskItem[], rewards: number[], groupSize: number): Record<string, number> {
  const totals = new Map<number, { correct: number; count: number }>();
  items.forEach((item, p) => {
    const entry = totals.get(item.level) ?? { correct: 0, count: 0 };
    for (let g = 0; g < groupSize; g++) {
      entry.correct += rewards[p * groupSize + g] as number;
      entry.count++;
    }
    totals.set(item.level, entry);
  });
  return Object.fromEntries([...totals].sort(([a], [b]) => a - b).map(([level, { correct, count }]) => [String(level), correct / count]));
}

/** A phase that did not run this step. */
function idlePhase(): PhaseFigures {
  return { seconds: 0, peakAllocatedBytes: 0, peakByCategory: Object.fromEntries(memoryCategories.map((category) => [category, 0])) as PhaseFigures['peakByCategory'] };
}


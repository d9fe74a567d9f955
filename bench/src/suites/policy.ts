/**
 * The policy suite: napo's native causal LMs with random weights, shaped like SmolLM2-135M (llama)
 * and Qwen2.5-0.5B (qwen2), on the CPU backend. For each: prefill, decode (a batch of rows on the
 * KV cache) and training (score + scoreBackward on a [B, T] batch) tokens/s, each with its
 * achieved matmul GFLOP/s and that over this machine's peak FMA throughput, measured in the same
 * run. Then one GRPO step on the Qwen2.5-0.5B shape, split by phase with the allocator's peak per
 * phase, done twice: through the fused scoring path (score / scoreBackward: linearLogprobs, never
 * [N, V] logits) and through the unfused one (forward's [B, T, V] logits, tokenLogprobs,
 * tokenLogprobsBackward, backward), with the ratios of their times and peaks. Decoding a few rows
 * is bound by streaming the weights, not by FMA throughput: its weight bytes per second are also
 * given over the machine's read bandwidth, measured in the same run.
 *
 * Quick mode keeps the real vocabularies and widths and cuts layers (the figures say how many);
 * the full mode runs the real depths. Benchmarks measure; nothing here asserts a figure.
 */
import {
  cpuThreads,
  groupAdvantages,
  memoryStats,
  policyLoss,
  resetPeakMemoryStats,
  tensor,
  tokenLogprobs,
  tokenLogprobsBackward,
  type Tensor,
} from '@napo/kernels';
import { CausalLM, generate, modelAddon, type ModelConfig, type ModelConfigInput } from '@napo/policy';

import { resultHeader } from '../machine.js';
import { readBandwidth } from '../probes.js';
import type { BenchMode, PolicyResult, Timing } from '../results.js';

/** A published model's shape: napo's config of it (random weights: nothing is downloaded). */
export interface ModelShape {
  /** The Hugging Face model whose config.json this copies. */
  name: string;
  config: Omit<ModelConfigInput, 'seed' | 'device'>;
}

export const smolLM2Shape: ModelShape = {
  name: 'SmolLM2-135M',
  config: {
    family: 'llama',
    vocabSize: 49_152,
    hiddenSize: 576,
    intermediateSize: 1_536,
    numLayers: 30,
    numHeads: 9,
    numKvHeads: 3,
    headDim: 64,
    tieWordEmbeddings: true,
    ropeTheta: 100_000,
    normEps: 1e-5,
    maxPositions: 8_192,
  },
};

export const qwen25Shape: ModelShape = {
  name: 'Qwen2.5-0.5B',
  config: {
    family: 'qwen2',
    vocabSize: 151_936,
    hiddenSize: 896,
    intermediateSize: 4_864,
    numLayers: 24,
    numHeads: 14,
    numKvHeads: 2,
    headDim: 64,
    tieWordEmbeddings: true,
    ropeTheta: 1_000_000,
    normEps: 1e-6,
    maxPositions: 32_768,
  },
};

/** The shapes by their model's name. */
export const modelShapes: Record<string, ModelShape> = Object.fromEntries([smolLM2Shape, qwen25Shape].map((shape) => [shape.name, shape]));

export interface ThroughputOptions {
  /** Rows prefilled together, then decoded together. */
  decodeBatch: number;
  /** Prompt tokens per row (the prefill's length). */
  promptLength: number;
  /** Tokens decoded per row after the prefill. */
  decodeSteps: number;
  /** The training batch [B, T]: every position scored. */
  trainBatch: number;
  trainLength: number;
  /** Untimed repetitions first (page faults, the gradients' first allocation), then timed ones. */
  warmup: number;
  repetitions: number;
}

export interface GrpoOptions {
  prompts: number;
  /** Completions per prompt (G). */
  groupSize: number;
  /** Prompt lengths are drawn around this (plus or minus promptJitter). */
  promptLength: number;
  promptJitter: number;
  maxNewTokens: number;
  learningRate: number;
  /** Timed steps per scoring path (after one untimed warm-up of that path). */
  steps: number;
}

export interface ModelRun {
  shape: ModelShape;
  /** Layers built: the shape's own, or fewer in quick mode. */
  layers: number;
  throughput: ThroughputOptions;
  /** The GRPO step runs on this model (first, before the throughput figures). */
  grpo?: GrpoOptions;
}

export interface PolicySuiteOptions {
  mode: BenchMode;
  /** Seconds the per-core peak FMA probe runs. */
  peakSeconds: number;
  /** Buffer the read-bandwidth probe streams (far larger than the caches). */
  bandwidthBytes: number;
  models: ModelRun[];
  seed: number;
}

const quickThroughput: ThroughputOptions = { decodeBatch: 4, promptLength: 64, decodeSteps: 16, trainBatch: 4, trainLength: 64, warmup: 1, repetitions: 2 };
const fullThroughput: ThroughputOptions = { decodeBatch: 8, promptLength: 128, decodeSteps: 64, trainBatch: 8, trainLength: 128, warmup: 1, repetitions: 3 };
const grpoShape = { prompts: 2, groupSize: 4, promptLength: 32, promptJitter: 4, learningRate: 1e-6 };

/** A tiny llama for CI: every code path, none of the figures worth quoting. */
const smokeShape: ModelShape = {
  name: 'tiny llama (smoke)',
  config: { family: 'llama', vocabSize: 1_000, hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, tieWordEmbeddings: true, maxPositions: 256 },
};

export const policySuitePresets: Record<BenchMode, PolicySuiteOptions> = {
  smoke: {
    mode: 'smoke',
    peakSeconds: 0.1,
    bandwidthBytes: 64 << 20,
    seed: 0,
    models: [
      {
        shape: smokeShape,
        layers: 2,
        throughput: { decodeBatch: 2, promptLength: 8, decodeSteps: 4, trainBatch: 2, trainLength: 8, warmup: 1, repetitions: 1 },
        grpo: { prompts: 2, groupSize: 2, promptLength: 8, promptJitter: 2, maxNewTokens: 4, learningRate: 1e-6, steps: 1 },
      },
    ],
  },
  // About a minute on 2 cores: the real vocabularies and widths, 4 and 2 layers, 32 new tokens.
  quick: {
    mode: 'quick',
    peakSeconds: 0.5,
    bandwidthBytes: 256 << 20,
    seed: 0,
    models: [
      { shape: smolLM2Shape, layers: 4, throughput: { ...quickThroughput, decodeSteps: 32 } },
      // No throughput warm-up: the GRPO step, which runs first on this model, has touched every buffer.
      { shape: qwen25Shape, layers: 2, throughput: { ...quickThroughput, warmup: 0, repetitions: 1 }, grpo: { ...grpoShape, maxNewTokens: 32, steps: 1 } },
    ],
  },
  full: {
    mode: 'full',
    peakSeconds: 2,
    bandwidthBytes: 1 << 30,
    seed: 0,
    models: [
      { shape: smolLM2Shape, layers: 30, throughput: fullThroughput },
      // No throughput warm-up, as in quick mode: the GRPO step ran first on this model.
      { shape: qwen25Shape, layers: 24, throughput: { ...fullThroughput, warmup: 0, repetitions: 2 }, grpo: { ...grpoShape, maxNewTokens: 128, steps: 1 } },
    ],
  },
};

/** Achieved matmul throughput of one measurement. */
export interface ThroughputFigure {
  /** What one repetition does. */
  work: string;
  /** [B, T] (prefill, train) or [B, steps] (decode). */
  shape: number[];
  /** Tokens per repetition. */
  tokens: number;
  /** Matmul FLOPs per repetition (see `flopFormula`). */
  flops: number;
  /** Per repetition. */
  timing: Timing;
  /** tokens / median seconds. */
  tokensPerSecond: number;
  /** flops / median seconds / 1e9. */
  gflops: number;
  /** gflops / the measured peak (per core x napo's threads). */
  fractionOfPeak: number;
  /** Decode: float32 matmul weights (the LM head's included) read once per step, per repetition; KV cache reads not counted. */
  weightBytes?: number;
  /** weightBytes / median seconds. */
  bytesPerSecond?: number;
  /** bytesPerSecond / the measured read bandwidth. */
  fractionOfBandwidth?: number;
}

export interface ModelFigures {
  name: string;
  family: ModelConfig['family'];
  config: Pick<ModelConfig, 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numLayers' | 'numHeads' | 'numKvHeads' | 'headDim' | 'tieWordEmbeddings' | 'ropeTheta'>;
  /** Layers of the real model; `config.numLayers` is what was built. */
  fullLayers: number;
  layersCut: boolean;
  parameterCount: number;
  /** The allocator's bytes for the weights (float32). */
  weightBytes: number;
  createSeconds: number;
  prefill: ThroughputFigure;
  decode: ThroughputFigure;
  train: ThroughputFigure;
}

export type ScoringPath = 'fused' | 'unfused';
export const grpoPhases = ['generate', 'score', 'loss', 'backward', 'optimizer'] as const;
export type GrpoPhase = (typeof grpoPhases)[number];

export interface GrpoPhaseFigure {
  phase: GrpoPhase;
  /** Mean over the timed steps. */
  seconds: number;
  /** The allocator's peak during the phase (reset at its start; max over the steps): torch.cuda's convention. */
  peakAllocatedBytes: number;
  /** That peak less the model state (weights, gradients, AdamW moments): activations, logits, scratch, KV cache. */
  peakAboveModelStateBytes: number;
}

export interface GrpoRun {
  path: ScoringPath;
  description: string;
  /** Mean step seconds (the phases' sum). */
  stepSeconds: number;
  phases: GrpoPhaseFigure[];
  /** Highest phase peak. */
  peakAllocatedBytes: number;
  peakAboveModelStateBytes: number;
  /** Rows the LM head projects in the score phase (fused: the scored positions; unfused: every position). */
  lmHeadRows: number;
  loss: number;
}

export interface GrpoFigures {
  model: string;
  layers: number;
  fullLayers: number;
  layersCut: boolean;
  vocabSize: number;
  prompts: number;
  groupSize: number;
  promptLengths: number[];
  maxNewTokens: number;
  /** Completion tokens per step (every row generates maxNewTokens: no EOS stops it). */
  generatedTokens: number;
  /** [B, T] of the scored batch (prompt + completion, padded). */
  scoredShape: number[];
  /** Weights, gradients and both AdamW moments: 4 x the weights' bytes (all float32). */
  modelStateBytes: number;
  timedSteps: number;
  rewards: string;
  runs: GrpoRun[];
  /** unfused / fused: step time, peak, peak above the model state, and each phase's time. */
  unfusedOverFused: {
    stepSeconds: number;
    peakAllocatedBytes: number;
    peakAboveModelStateBytes: number;
    phaseSeconds: Record<GrpoPhase, number>;
    phasePeakAboveModelState: Record<GrpoPhase, number>;
  };
}

export interface PolicyFigures {
  peak: {
    /** modelCpuPeakGflops: float32 FMA throughput of one core. */
    gflopsPerCore: number;
    /** napo's CPU threads (cpuThreads()). */
    threads: number;
    /** gflopsPerCore x threads: what fractionOfPeak divides by. */
    gflops: number;
    seconds: number;
  };
  /** The yardstick of decode's weight streaming, measured in the same run. */
  bandwidth: { bytesPerSecond: number; method: string };
  flopFormula: string;
  models: ModelFigures[];
  grpo?: GrpoFigures;
  notes: string[];
}

export interface PolicySuiteResult extends PolicyResult {
  figures: PolicyFigures;
}

export interface PolicySuiteHooks {
  /** A progress line (stderr in the CLI). */
  onNote?: (line: string) => void;
}

/*
 * Matmul FLOPs (2 per multiply-add), per forward pass:
 *
 *   forward  = 2 * Wblock * L * trunkTokens        Wblock = H*hd*(2*heads + 2*kvHeads) + 3*H*I  (q, o; k, v; gate, up, down)
 *            + 2 * V * H * headRows                the LM head (tied: the embedding matrix, counted once, as a matmul)
 *            + 4 * hd * heads * L * pairs          QK^T and PV, per (query, attended key) pair
 *   training = 3 * forward                         the backward is 2 matmuls per forward matmul
 *
 * i.e. about 2 x (matmul parameters) per token plus attention's 4 * T * hd * heads per token and
 * layer, where T is the keys the token attends: t + 1 at position t (causal), so a row of T
 * tokens has T (T + 1) / 2 pairs. The embedding lookup, biases, norms, RoPE and softmax are not
 * counted, nor is what a backward recomputes (the MLP activation, the fused path's logit chunks).
 * Prefill projects only each row's last token through the LM head; training and decode project
 * every token they score or decode.
 */
export const flopFormula =
  'matmul FLOPs only. forward = 2 x (q, k, v, o and MLP weights) x layers per token through the trunk + 2 x V x H per row the LM head ' +
  'projects + 4 x headDim x heads x layers per (query, attended key) pair (causal: position t attends t + 1 keys); ' +
  'training (score + scoreBackward) = 3 x forward (the backward is 2 matmuls per forward matmul; what it recomputes is not counted); ' +
  'prefill projects only each row\'s last token through the LM head; biases, norms, RoPE, softmax and the embedding lookup are not counted';

/** The shapes that set the matmul FLOPs of a model. */
interface FlopShape {
  /** Weights of the matmuls in one block. */
  blockMatmulWeights: number;
  layers: number;
  lmHead: number;
  /** 4 x headDim x heads x layers: FLOPs per (query, key) pair. */
  attentionPerPair: number;
}

/** Bytes of the float32 matmul weights a forward step reads once (blocks and LM head). */
const matmulWeightBytes = (shape: FlopShape) => 4 * (shape.blockMatmulWeights * shape.layers + shape.lmHead);

function flopShape(config: ModelConfig): FlopShape {
  const { hiddenSize: H, intermediateSize: I, numHeads, numKvHeads, headDim, numLayers, vocabSize } = config;
  const attention = H * numHeads * headDim * 2 + H * numKvHeads * headDim * 2; // q and o; k and v
  const mlp = (config.family === 'gpt2' ? 2 : 3) * H * I; // gpt2: fc, proj; the rest: gate, up, down
  return { blockMatmulWeights: attention + mlp, layers: numLayers, lmHead: vocabSize * H, attentionPerPair: 4 * headDim * numHeads * numLayers };
}

/** Forward matmul FLOPs: `rows` tokens through the trunk, `headRows` through the LM head, `pairs` (query, key) pairs. */
function forwardFlops(shape: FlopShape, rows: number, headRows: number, pairs: number): number {
  return 2 * shape.blockMatmulWeights * shape.layers * rows + 2 * shape.lmHead * headRows + shape.attentionPerPair * pairs;
}

/** (query, key) pairs of a causal row of `length` tokens from position 0. */
const causalPairs = (length: number) => (length * (length + 1)) / 2;

/** A small xorshift: the same prompts and rewards on every run. */
function uniforms(seed: number): () => number {
  let state = (seed * 2654435761) >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
}

function randomTokens(next: () => number, length: number, vocab: number): number[] {
  return Array.from({ length }, () => Math.floor(next() * vocab));
}

function summarize(samplesMs: number[]): Timing {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const medianMs = sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
  return { medianMs, minMs: sorted[0] as number, maxMs: sorted[sorted.length - 1] as number, repetitions: sorted.length };
}

function throughputFigure(work: string, shape: number[], tokens: number, flops: number, timing: Timing, peakGflops: number): ThroughputFigure {
  const seconds = timing.medianMs / 1000;
  const gflops = flops / seconds / 1e9;
  return { work, shape, tokens, flops, timing, tokensPerSecond: tokens / seconds, gflops, fractionOfPeak: gflops / peakGflops };
}

const allocated = () => memoryStats('cpu').allocatedBytes;

/** Prefill and decode, timed apart in each repetition: B prompts of P tokens, then S steps of B rows. */
async function generationFigures(
  model: CausalLM,
  options: ThroughputOptions,
  shape: FlopShape,
  peakGflops: number,
  bandwidth: number,
  seed: number,
): Promise<{ prefill: ThroughputFigure; decode: ThroughputFigure }> {
  const { decodeBatch: B, promptLength: P, decodeSteps: S } = options;
  const next = uniforms(seed);
  const prompts = Array.from({ length: B }, () => randomTokens(next, P, model.vocabSize));
  const feed = Int32Array.from({ length: B }, () => Math.floor(next() * model.vocabSize));
  const prefillMs: number[] = [];
  const decodeMs: number[] = [];
  for (let repetition = 0; repetition < options.warmup + options.repetitions; repetition++) {
    const started = performance.now();
    (await model.prefill(prompts, { capacity: P + S })).dispose();
    const prefilled = performance.now();
    for (let step = 0; step < S; step++) (await model.decodeStep(feed)).dispose();
    const decoded = performance.now();
    if (repetition >= options.warmup) {
      prefillMs.push(prefilled - started);
      decodeMs.push(decoded - prefilled);
    }
  }
  // Decode step s (from 0) feeds position P + s, which attends P + s + 1 keys.
  const decodePairs = B * (S * (P + 1) + (S * (S - 1)) / 2);
  const decode = throughputFigure(
    `${S} decode steps of ${B} rows on the KV cache after a ${P}-token prefill`,
    [B, S],
    B * S,
    forwardFlops(shape, B * S, B * S, decodePairs),
    summarize(decodeMs),
    peakGflops,
  );
  const weightBytes = S * matmulWeightBytes(shape);
  const bytesPerSecond = weightBytes / (decode.timing.medianMs / 1000);
  return {
    prefill: throughputFigure(`prefill of ${B} rows x ${P} tokens`, [B, P], B * P, forwardFlops(shape, B * P, B, B * causalPairs(P)), summarize(prefillMs), peakGflops),
    decode: { ...decode, weightBytes, bytesPerSecond, fractionOfBandwidth: bytesPerSecond / bandwidth },
  };
}

/** score + scoreBackward on [B, T], every position scored (gradients accumulate: no step). */
async function trainFigure(model: CausalLM, options: ThroughputOptions, shape: FlopShape, peakGflops: number, seed: number): Promise<ThroughputFigure> {
  const { trainBatch: B, trainLength: T } = options;
  const next = uniforms(seed + 1);
  const rows = Array.from({ length: B }, () => randomTokens(next, T, model.vocabSize));
  const targets = Int32Array.from({ length: B * T }, () => Math.floor(next() * model.vocabSize));
  const grad = tensor<'float32'>(new Float32Array(B * T).fill(-1 / (B * T)), [B, T]);
  const samples: number[] = [];
  try {
    for (let repetition = 0; repetition < options.warmup + options.repetitions; repetition++) {
      const started = performance.now();
      const scores = await model.score(rows, targets);
      scores.logprobs.dispose();
      await model.scoreBackward(grad);
      if (repetition >= options.warmup) samples.push(performance.now() - started);
    }
  } finally {
    grad.dispose();
    model.zeroGrad();
  }
  const flops = 3 * forwardFlops(shape, B * T, B * T, B * causalPairs(T));
  return throughputFigure(`score + scoreBackward on [${B}, ${T}]`, [B, T], B * T, flops, summarize(samples), peakGflops);
}

/** One GRPO batch: G completions of each prompt, packed as prompt ++ completion, with what the loss needs. */
interface GrpoBatch {
  sequences: number[][];
  width: number;
  /** [B * width]: the next token where it is a completion token, else -1. */
  targets: Int32Array;
  /** [B * width]: 1 where targets >= 0. */
  mask: Float32Array;
  rewards: Float32Array;
}

function packGrpo(prompts: number[][], completions: number[][], rewards: Float32Array): GrpoBatch {
  const sequences = prompts.map((prompt, row) => [...prompt, ...(completions[row] as number[])]);
  const width = Math.max(...sequences.map((s) => s.length));
  const targets = new Int32Array(sequences.length * width).fill(-1);
  const mask = new Float32Array(sequences.length * width);
  sequences.forEach((sequence, row) => {
    const promptLength = (prompts[row] as number[]).length;
    // Position t predicts token t + 1: the completion's first token is predicted at the prompt's last position.
    for (let t = promptLength - 1; t + 1 < sequence.length; t++) {
      targets[row * width + t] = sequence[t + 1] as number;
      mask[row * width + t] = 1;
    }
  });
  return { sequences, width, targets, mask, rewards };
}

/** The phases after generation, one scoring path; times and peaks go to `record`. */
async function trainOnBatch(
  model: CausalLM,
  batch: GrpoBatch,
  path: ScoringPath,
  options: GrpoOptions,
  record: (phase: GrpoPhase, run: () => Promise<void>) => Promise<void>,
): Promise<number> {
  const rows = batch.sequences.length;
  const { width } = batch;
  const vocab = model.vocabSize;
  let logprobs: Tensor<'float32'> | undefined;
  let gradLogprobs: Tensor<'float32'> | undefined;
  // The unfused path's [B * width, V] logits, its int32 targets and log-sum-exps, kept for the backward.
  let logits: Tensor<'float32'> | undefined;
  let flatTargets: Tensor<'int32'> | undefined;
  let lse: Tensor<'float32'> | undefined;
  let loss = Number.NaN;
  try {
    await record('score', async () => {
      if (path === 'fused') {
        logprobs = (await model.score(batch.sequences, batch.targets, { temperature: 1 })).logprobs;
        return;
      }
      const shaped = await model.forward(batch.sequences);
      logits = shaped.reshape([rows * width, vocab]);
      shaped.dispose();
      // tokenLogprobs takes a token per row: 0 where nothing is scored (the mask drops it).
      flatTargets = tensor<'int32'>(batch.targets.map((t) => Math.max(t, 0)), [rows * width]);
      const result = tokenLogprobs(logits, flatTargets, { temperature: 1 });
      lse = result.lse;
      logprobs = result.logprobs.reshape([rows, width]);
      result.logprobs.dispose();
    });
    await record('loss', async () => {
      const rewards = tensor<'float32'>(batch.rewards, [rows]);
      const mask = tensor<'float32'>(batch.mask, [rows, width]);
      const advantages = groupAdvantages(rewards, { groupSize: options.groupSize });
      const current = logprobs as Tensor<'float32'>;
      // One pass per batch: the sampling policy is the current one, so oldLogprobs = logprobs.
      const result = policyLoss({ logprobs: current, oldLogprobs: current, advantages, mask }, { lossType: 'grpo' });
      loss = result.loss;
      gradLogprobs = result.gradLogprobs;
      for (const t of [rewards, mask, advantages]) t.dispose();
    });
    await record('backward', async () => {
      const grad = gradLogprobs as Tensor<'float32'>;
      if (path === 'fused') {
        await model.scoreBackward(grad);
        return;
      }
      const flatGrad = grad.reshape([rows * width]);
      // In place over the logits: the unfused path at its leanest (no second [N, V] buffer).
      const gradLogits = tokenLogprobsBackward(logits as Tensor<'float32'>, flatTargets as Tensor<'int32'>, lse as Tensor<'float32'>, flatGrad, {
        temperature: 1,
        inPlace: true,
      });
      flatGrad.dispose();
      const shaped = gradLogits.reshape([rows, width, vocab]);
      try {
        await model.backward(shaped);
      } finally {
        shaped.dispose();
        for (const t of [logits, flatTargets, lse]) if (t && !t.disposed) t.dispose();
      }
    });
    await record('optimizer', async () => {
      await model.step({ lr: options.learningRate });
      model.zeroGrad();
    });
  } finally {
    for (const t of [logprobs, gradLogprobs, logits, flatTargets, lse]) if (t && !t.disposed) t.dispose();
  }
  return loss;
}

interface PhaseSample {
  seconds: number;
  peakAllocatedBytes: number;
}

async function measured(run: () => Promise<void>): Promise<PhaseSample> {
  resetPeakMemoryStats('cpu');
  const started = performance.now();
  await run();
  const seconds = (performance.now() - started) / 1000;
  return { seconds, peakAllocatedBytes: memoryStats('cpu').peakAllocatedBytes };
}

const pathDescriptions: Record<ScoringPath, string> = {
  fused: 'score(): trunk, then linearLogprobs over the scored positions (no [N, V] logits); scoreBackward()',
  unfused: 'forward(): [B, T, V] logits; tokenLogprobs; tokenLogprobsBackward in place over the logits; backward()',
};

async function grpoFigures(model: CausalLM, run: ModelRun, options: GrpoOptions, weightBytes: number, seed: number, note: (line: string) => void): Promise<GrpoFigures> {
  const vocab = model.vocabSize;
  const next = uniforms(seed + 2);
  const promptLengths = Array.from({ length: options.prompts }, () => options.promptLength - options.promptJitter + Math.floor(next() * (2 * options.promptJitter + 1)));
  const prompts = promptLengths.map((length) => randomTokens(next, length, vocab));
  // G copies of each prompt, group by group (groupAdvantages' consecutive groups).
  const rows = prompts.flatMap((prompt) => Array.from({ length: options.groupSize }, () => prompt));
  const B = rows.length;
  const modelStateBytes = 4 * weightBytes;
  const capacity = Math.max(...promptLengths) + options.maxNewTokens;
  const runs: GrpoRun[] = [];
  let scoredShape: number[] = [];
  for (const path of ['fused', 'unfused'] as const) {
    // Untimed warm-up of this path: the KV cache at its size, then every training phase once on
    // random completions of the same length (first-touch page faults, the gradients and moments).
    (await model.prefill(rows, { capacity })).dispose();
    (await model.decodeStep(rows.map(() => 0))).dispose();
    const warmupBatch = packGrpo(rows, rows.map(() => randomTokens(next, options.maxNewTokens, vocab)), new Float32Array(B));
    await trainOnBatch(model, warmupBatch, path, options, async (_phase, body) => body());

    const totals = new Map<GrpoPhase, PhaseSample>(grpoPhases.map((phase) => [phase, { seconds: 0, peakAllocatedBytes: 0 }]));
    const record = async (phase: GrpoPhase, body: () => Promise<void>) => {
      const sample = await measured(body);
      const total = totals.get(phase) as PhaseSample;
      total.seconds += sample.seconds;
      total.peakAllocatedBytes = Math.max(total.peakAllocatedBytes, sample.peakAllocatedBytes);
    };
    let loss = Number.NaN;
    let lmHeadRows = 0;
    for (let step = 0; step < options.steps; step++) {
      let completions: number[][] = [];
      await record('generate', async () => {
        // No EOS: every row generates maxNewTokens, so both paths train on the same amount of work.
        const result = await generate(model, rows, { maxNewTokens: options.maxNewTokens, temperature: 1, seed: seed + step, eos: null });
        completions = result.tokens;
      });
      // Random 0/1 rewards: a benchmark needs the loss's work, not a task.
      const rewards = Float32Array.from({ length: B }, () => (next() < 0.5 ? 1 : 0));
      const batch = packGrpo(rows, completions, rewards);
      scoredShape = [B, batch.width];
      lmHeadRows = path === 'fused' ? batch.targets.filter((t) => t >= 0).length : B * batch.width;
      loss = await trainOnBatch(model, batch, path, options, record);
    }
    const phases = grpoPhases.map((phase): GrpoPhaseFigure => {
      const total = totals.get(phase) as PhaseSample;
      return { phase, seconds: total.seconds / options.steps, peakAllocatedBytes: total.peakAllocatedBytes, peakAboveModelStateBytes: total.peakAllocatedBytes - modelStateBytes };
    });
    const stepSeconds = phases.reduce((sum, p) => sum + p.seconds, 0);
    const peakAllocatedBytes = Math.max(...phases.map((p) => p.peakAllocatedBytes));
    runs.push({ path, description: pathDescriptions[path], stepSeconds, phases, peakAllocatedBytes, peakAboveModelStateBytes: peakAllocatedBytes - modelStateBytes, lmHeadRows, loss });
    note(`  GRPO step, ${path} scoring: ${stepSeconds.toFixed(2)} s, peak ${(peakAllocatedBytes / 2 ** 20).toFixed(0)} MiB`);
  }
  const [fused, unfused] = runs as [GrpoRun, GrpoRun];
  const perPhase = (value: (p: GrpoPhaseFigure) => number) =>
    Object.fromEntries(grpoPhases.map((phase, i) => [phase, value(unfused.phases[i] as GrpoPhaseFigure) / value(fused.phases[i] as GrpoPhaseFigure)])) as Record<GrpoPhase, number>;
  return {
    model: run.shape.name,
    layers: run.layers,
    fullLayers: run.shape.config.numLayers ?? run.layers,
    layersCut: run.layers < (run.shape.config.numLayers ?? run.layers),
    vocabSize: vocab,
    prompts: options.prompts,
    groupSize: options.groupSize,
    promptLengths,
    maxNewTokens: options.maxNewTokens,
    generatedTokens: B * options.maxNewTokens,
    scoredShape,
    modelStateBytes,
    timedSteps: options.steps,
    rewards: 'random 0/1 per completion (seeded): the benchmark times the loss, it does not learn a task',
    runs,
    unfusedOverFused: {
      stepSeconds: unfused.stepSeconds / fused.stepSeconds,
      peakAllocatedBytes: unfused.peakAllocatedBytes / fused.peakAllocatedBytes,
      peakAboveModelStateBytes: unfused.peakAboveModelStateBytes / fused.peakAboveModelStateBytes,
      phaseSeconds: perPhase((p) => p.seconds),
      phasePeakAboveModelState: perPhase((p) => p.peakAboveModelStateBytes),
    },
  };
}

export async function runPolicySuite(options: PolicySuiteOptions, hooks: PolicySuiteHooks = {}): Promise<PolicySuiteResult> {
  const note = hooks.onNote ?? (() => {});
  const threads = cpuThreads();
  const gflopsPerCore = modelAddon().modelCpuPeakGflops(options.peakSeconds);
  const peakGflops = gflopsPerCore * threads;
  const bandwidth = readBandwidth(options.bandwidthBytes);
  note(`  peak FMA: ${gflopsPerCore.toFixed(1)} GFLOP/s per core x ${threads} threads; read bandwidth ${(bandwidth / 1e9).toFixed(1)} GB/s`);
  const models: ModelFigures[] = [];
  let grpo: GrpoFigures | undefined;
  const notes = ['random weights (nothing downloaded): the shapes set the work, the values do not'];
  for (const [index, run] of options.models.entries()) {
    const seed = options.seed + 101 * index;
    const fullLayers = run.shape.config.numLayers ?? run.layers;
    const before = allocated();
    const started = performance.now();
    const model = CausalLM.create({ ...run.shape.config, numLayers: run.layers, seed });
    const createSeconds = (performance.now() - started) / 1000;
    const weightBytes = allocated() - before;
    const config = model.config;
    note(`  ${run.shape.name}: ${run.layers}${run.layers < fullLayers ? ` of ${fullLayers}` : ''} layers, ${(model.parameterCount / 1e6).toFixed(1)}M parameters (created in ${createSeconds.toFixed(1)} s)`);
    if (run.layers < fullLayers) notes.push(`${run.shape.name}: ${run.layers} of its ${fullLayers} layers (${options.mode} mode); vocabulary and widths are the real ones`);
    try {
      const shape = flopShape(config);
      if (run.grpo) {
        grpo = await grpoFigures(model, run, run.grpo, weightBytes, seed, note);
        if (grpo.maxNewTokens < 128) notes.push(`GRPO step: ${grpo.maxNewTokens} new tokens per completion (${options.mode} mode; the full mode has 128)`);
      }
      const { prefill, decode } = await generationFigures(model, run.throughput, shape, peakGflops, bandwidth, seed);
      note(`  ${run.shape.name}: prefill ${prefill.tokensPerSecond.toFixed(0)} tok/s, decode ${decode.tokensPerSecond.toFixed(1)} tok/s`);
      const train = await trainFigure(model, run.throughput, shape, peakGflops, seed);
      note(`  ${run.shape.name}: train ${train.tokensPerSecond.toFixed(0)} tok/s (${train.gflops.toFixed(1)} GFLOP/s)`);
      models.push({
        name: run.shape.name,
        family: config.family,
        config: {
          vocabSize: config.vocabSize,
          hiddenSize: config.hiddenSize,
          intermediateSize: config.intermediateSize,
          numLayers: config.numLayers,
          numHeads: config.numHeads,
          numKvHeads: config.numKvHeads,
          headDim: config.headDim,
          tieWordEmbeddings: config.tieWordEmbeddings,
          ropeTheta: config.ropeTheta,
        },
        fullLayers,
        layersCut: run.layers < fullLayers,
        parameterCount: model.parameterCount,
        weightBytes,
        createSeconds,
        prefill,
        decode,
        train,
      });
    } finally {
      model.dispose();
    }
  }
  if (grpo) {
    notes.push('GRPO: oldLogprobs = logprobs (one pass per batch), beta = 0 (no reference model), no EOS (every completion is maxNewTokens long), temperature 1');
    notes.push(`GRPO: ${grpo.rewards}`);
    notes.push('GRPO: each scoring path gets one untimed warm-up (KV cache, every training phase) before its timed step; the fused path runs first');
  }
  const figures: PolicyFigures = {
    peak: { gflopsPerCore, threads, gflops: peakGflops, seconds: options.peakSeconds },
    bandwidth: { bytesPerSecond: bandwidth, method: `read of a ${options.bandwidthBytes >> 20} MiB buffer on napo's CPU threads, best of 5` },
    flopFormula,
    models,
    ...(grpo ? { grpo } : {}),
    notes,
  };
  return { ...resultHeader('policy', options.mode, 'cpu'), figures };
}


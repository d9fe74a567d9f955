/**
 * The kernel suite: every op and its backward over a grid of N x V, float32 and bfloat16, on every
 * device present. Each entry: median and min-max over >= 5 timed calls after warm-up, GB/s of its
 * compulsory traffic (bytes.ts), and, measured in the same run, the ratio to the device's read
 * bandwidth, to the unfused composition and (CPU) to the TS reference.
 */
import {
  empty,
  groupAdvantages,
  linearLogprobs,
  linearLogprobsBackward,
  memoryStats,
  maskedRowSum,
  maskedRowSumBackward,
  policyLoss,
  repetitionPenalty,
  resetPeakMemoryStats,
  reference,
  sample,
  tensor,
  tokenLogprobs,
  tokenLogprobsBackward,
  type AdvantageEstimator,
  type AdvantageScale,
  type DeviceName,
  type LossType,
  type SampleOptions,
  type Tensor,
} from '@napo/kernels';

import { resultHeader } from '../machine.js';
import { gemm, readBandwidth, sortedSample, unfusedLogprobs } from '../probes.js';
import type { BenchMode, Comparison, KernelEntry, KernelsResult } from '../results.js';
import { timeCall } from '../timing.js';
import {
  groupAdvantagesBytes,
  maskedRowSumBytes,
  repetitionPenaltyBytes,
  policyLossBytes,
  sampleBytes,
  tokenLogprobsBackwardBytes,
  tokenLogprobsBytes,
  type LogitsDType,
} from './bytes.js';
import { unfusedTokenLogprobsBackward, type HostLogits } from './unfused.js';

export interface KernelSuiteOptions {
  mode: BenchMode;
  rows: number[];
  vocabs: number[];
  dtypes: LogitsDType[];
  /** Timed calls per op (at least 5). */
  iterations: number;
  warmup: number;
  /** Rows the slow baselines (sort-based sampler, TS compositions) run on; scaled to N. */
  baselineRows: number;
  /** Rows the TS reference runs on (it is ~10-100x slower); scaled to N. */
  referenceRows: number;
  /** Buffer the read-bandwidth probe streams: far larger than the caches. */
  bandwidthBytes: number;
  /** Sequence length T of policyLoss's [S, T] inputs (S = N / T). */
  completionLength: number;
  /** Samples per group for groupAdvantages. */
  groupSize: number;
  /** linearLogprobs against the unfused composition: N hidden rows of width H, a vocabulary V. */
  linear: { rows: number; width: number; vocab: number; dtypes: LogitsDType[]; iterations: number };
}

const baseOptions = { dtypes: ['float32', 'bfloat16'] as LogitsDType[], warmup: 2, referenceRows: 4, completionLength: 128, groupSize: 8 };

export const kernelSuitePresets: Record<BenchMode, KernelSuiteOptions> = {
  smoke: { ...baseOptions, mode: 'smoke', rows: [8], vocabs: [1000], iterations: 5, warmup: 1, baselineRows: 4, referenceRows: 2, bandwidthBytes: 64 << 20, completionLength: 4, linear: { rows: 8, width: 16, vocab: 1000, dtypes: ['float32'], iterations: 5 } },
  quick: { ...baseOptions, mode: 'quick', rows: [256], vocabs: [32_000, 151_936], iterations: 5, baselineRows: 32, bandwidthBytes: 1 << 30, linear: { rows: 512, width: 896, vocab: 151_936, dtypes: ['float32'], iterations: 5 } },
  full: { ...baseOptions, mode: 'full', rows: [256, 2_048, 8_192], vocabs: [32_000, 151_936], iterations: 10, baselineRows: 256, bandwidthBytes: 1 << 30, linear: { rows: 2_048, width: 896, vocab: 151_936, dtypes: ['float32', 'bfloat16'], iterations: 5 } },
};

/** The sampler's modes: each filter alone, the common pair, and greedy. */
/** One scalar per filter: every row sampled the same way. */
interface SampleMode extends SampleOptions {
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
}

export const sampleModes: { variant: string; options: SampleMode }[] = [
  { variant: 'greedy', options: { temperature: 0 } },
  { variant: 'temperature 0.7', options: { temperature: 0.7 } },
  { variant: 'top-k 50', options: { topK: 50 } },
  { variant: 'top-p 0.9', options: { topP: 0.9 } },
  { variant: 'top-k 50 + top-p 0.9', options: { topK: 50, topP: 0.9 } },
  { variant: 'min-p 0.05', options: { minP: 0.05 } },
];

const scales: AdvantageScale[] = ['group', 'batch', 'none'];
const estimators: AdvantageEstimator[] = ['grpo', 'rloo'];
const lossTypes: LossType[] = ['grpo', 'bnpo', 'dr_grpo', 'dapo'];

/** A way to compute the same thing, timed on `rows` rows (scaled to the entry's rows). */
interface Baseline {
  name: string;
  rows: number;
  run: () => void;
  /** Also record the allocator's peak during one call (for ops whose point is memory). */
  trackMemory?: boolean;
}

/** One op call to time, with what it is compared with. */
interface Case {
  op: string;
  variant: string;
  dtype: LogitsDType;
  rows: number;
  vocab?: number;
  shape: number[];
  bytesMoved: number;
  run: () => void;
  /** Extra repetitions for microsecond ops, whose single calls are mostly timer noise. */
  iterations?: number;
  /** Record the allocator's peak during one call, and the unfused baseline's. */
  trackMemory?: boolean;
  /** Useful multiply-adds x 2 per call (GEMM-bound ops). */
  flops?: number;
  unfused?: Baseline;
  reference?: Baseline;
}

/** Cases that share inputs, and how to free those inputs once they are all measured. */
interface CaseGroup {
  cases: Case[];
  release: () => void;
}

interface DeviceContext {
  device: DeviceName;
  options: KernelSuiteOptions;
  bandwidth?: number;
}

/** A small xorshift: the same logits on every run and machine. */
function uniforms(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
}

function normals(count: number, seed: number, sd: number, mean = 0): Float32Array {
  const next = uniforms(seed);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(next() + 1e-12)) * sd;
    const angle = 2 * Math.PI * next();
    values[i] = mean + radius * Math.cos(angle);
    if (i + 1 < count) values[i + 1] = mean + radius * Math.sin(angle);
  }
  return values;
}

/**
 * Logits spread like a language model's (normal, sd 3: a few large, most small). A block of up to
 * 64 distinct rows is tiled to N rows: drawing 10^9 normals would take longer than the benchmark.
 */
function hostLogits(rows: number, vocab: number, dtype: LogitsDType): HostLogits {
  const blockRows = Math.min(rows, 64);
  const block = normals(blockRows * vocab, 2024 + vocab, 3);
  const data = dtype === 'float32' ? new Float32Array(rows * vocab) : new Uint16Array(rows * vocab);
  const converted = dtype === 'float32' ? block : Uint16Array.from(block, reference.float32ToBf16);
  for (let start = 0; start < rows; start += blockRows) {
    const count = Math.min(blockRows, rows - start);
    data.set(converted.subarray(0, count * vocab), start * vocab);
  }
  return { dtype, rows, vocab, data };
}

function copyRows(host: HostLogits, rows: number): HostLogits {
  return { ...host, rows, data: host.data.slice(0, rows * host.vocab) };
}

function sliceLogits(host: HostLogits, rows: number): HostLogits {
  return { ...host, rows, data: host.data.subarray(0, rows * host.vocab) };
}

function toTensor(host: HostLogits, device: DeviceName): Tensor {
  const shape = [host.rows, host.vocab];
  return host.dtype === 'float32' ? tensor(host.data as Float32Array, shape, { device }) : tensor(host.data as Uint16Array, shape, { dtype: 'bfloat16', device });
}

function asReference(host: HostLogits): reference.LogitsTensor {
  return host.dtype === 'float32'
    ? { dtype: 'float32', shape: [host.rows, host.vocab], data: host.data as Float32Array }
    : { dtype: 'bfloat16', shape: [host.rows, host.vocab], data: host.data as Uint16Array };
}

const disposeAll = (...tensors: (Tensor | undefined)[]) => tensors.forEach((t) => t?.dispose());

/** The allocator's peak above what it held before, during one call on the CPU. */
function peakDuring(run: () => void): number {
  const before = memoryStats('cpu').allocatedBytes;
  resetPeakMemoryStats('cpu');
  run();
  return memoryStats('cpu').peakAllocatedBytes - before;
}

function timeBaseline(baseline: Baseline, entryRows: number, entryMs: number, kind: Comparison['kind']): Comparison {
  const timing = timeCall(baseline.name, baseline.run, { iterations: 5, warmup: 1 });
  const medianMs = timing.medianMs * (entryRows / baseline.rows);
  return {
    name: baseline.name,
    kind,
    medianMs,
    speedup: medianMs / entryMs,
    ...(baseline.rows !== entryRows ? { scaledFromRows: baseline.rows } : {}),
    ...(baseline.trackMemory ? { peakAllocatedBytes: peakDuring(baseline.run) } : {}),
  };
}

function measure(item: Case, context: DeviceContext): KernelEntry {
  const { options, device, bandwidth } = context;
  const timing = timeCall(`${item.op} ${item.variant}`, item.run, { iterations: item.iterations ?? options.iterations, warmup: options.warmup, device });
  const bytesPerSecond = item.bytesMoved / (timing.medianMs / 1000);
  const comparisons: Comparison[] = [];
  if (item.unfused) comparisons.push(timeBaseline(item.unfused, item.rows, timing.medianMs, 'unfused'));
  if (item.reference) comparisons.push(timeBaseline(item.reference, item.rows, timing.medianMs, 'reference'));
  return {
    op: item.op,
    variant: item.variant,
    implementation: 'napo',
    dtype: item.dtype,
    rows: item.rows,
    ...(item.vocab !== undefined ? { vocab: item.vocab } : {}),
    shape: item.shape,
    timing,
    bytesMoved: item.bytesMoved,
    bytesPerSecond,
    ...(bandwidth && !item.flops ? { fractionOfBandwidth: bytesPerSecond / bandwidth } : {}),
    ...(item.trackMemory ? { peakAllocatedBytes: peakDuring(item.run) } : {}),
    ...(item.flops ? { flops: item.flops } : {}),
    comparisons,
  };
}

/** What the native probes can compare on this device (they run on CPU tensors only). */
const probesAvailable = (device: DeviceName) => device === 'cpu';

function sampleCases(logits: Tensor, host: HostLogits, context: DeviceContext): CaseGroup {
  const rows = logits.shape[0] as number;
  const { vocab, dtype } = host;
  const cpu = probesAvailable(context.device);
  const baselineLogits = cpu ? toTensor(sliceLogits(host, Math.min(rows, context.options.baselineRows)), 'cpu') : undefined;
  const referenceLogits = asReference(sliceLogits(host, Math.min(rows, context.options.referenceRows)));
  const temperatureTokens = cpu ? tensor<'int32'>(new Int32Array(rows)) : undefined;
  const cases = sampleModes.map(({ variant, options }): Case => {
    const seeded = { ...options, seed: 1 };
    const filtered = options.topK !== undefined || options.topP !== undefined;
    let unfused: Baseline | undefined;
    if (cpu && filtered && baselineLogits) {
      const slice = baselineLogits;
      unfused = { name: 'softmax [N,V] + full sort + masks + draw', rows: slice.shape[0] as number, run: () => sortedSample(slice, options.topK ?? 0, options.topP ?? 1, 1n).dispose() };
    } else if (temperatureTokens && variant !== 'greedy') {
      // An eager sampler's first step is the [N, V] softmax; timing only that makes the ratio a lower bound.
      const tokens = temperatureTokens;
      unfused = { name: 'softmax [N,V] materialised (lower bound)', rows, run: () => unfusedLogprobs(logits, tokens).dispose() };
    }
    return {
      op: 'sample',
      variant,
      dtype,
      rows,
      vocab,
      shape: [rows, vocab],
      bytesMoved: sampleBytes(rows, vocab, dtype),
      run: () => {
        const result = sample(logits, seeded);
        disposeAll(result.tokens, result.logprobs);
      },
      ...(unfused ? { unfused } : {}),
      ...(cpu ? { reference: { name: 'TS reference', rows: referenceLogits.shape[0] as number, run: () => void reference.sample(referenceLogits, seeded) } } : {}),
    };
  });
  return { cases, release: () => disposeAll(baselineLogits, temperatureTokens) };
}

/** repetitionPenalty over a history of 256 tokens a row: a copy of [N, V] and a scatter, against the TS reference. */
function repetitionPenaltyCases(logits: Tensor, host: HostLogits, context: DeviceContext): CaseGroup {
  const rows = logits.shape[0] as number;
  const { vocab, dtype } = host;
  const length = 256;
  const historyValues = Int32Array.from({ length: rows * length }, (_, i) => (i * 7919) % vocab);
  const history = tensor<'int32'>(historyValues, [rows, length], { device: context.device });
  const referenceRows = Math.min(rows, context.options.referenceRows);
  const referenceLogits = asReference(sliceLogits(host, referenceRows));
  const referenceHistory = { dtype: 'int32' as const, shape: [referenceRows, length], data: historyValues.subarray(0, referenceRows * length) };
  const cases: Case[] = [
    {
      op: 'repetitionPenalty',
      variant: `history ${length}`,
      dtype,
      rows,
      vocab,
      shape: [rows, vocab],
      bytesMoved: repetitionPenaltyBytes(rows, vocab, dtype, length),
      run: () => repetitionPenalty(logits as Tensor<'float32'>, history, 1.2).dispose(),
      ...(probesAvailable(context.device) ? { reference: { name: 'TS reference', rows: referenceRows, run: () => void reference.repetitionPenalty(referenceLogits, referenceHistory, 1.2) } } : {}),
    },
  ];
  return { cases, release: () => history.dispose() };
}

function logprobCases(logits: Tensor, host: HostLogits, context: DeviceContext): CaseGroup {
  const rows = logits.shape[0] as number;
  const { vocab, dtype } = host;
  const cpu = probesAvailable(context.device);
  const device = context.device;
  const tokenIds = Int32Array.from({ length: rows }, (_, r) => (r * 7919) % vocab);
  const tokens = tensor<'int32'>(tokenIds, [rows], { device });
  const referenceRows = Math.min(rows, context.options.referenceRows);
  const referenceLogits = asReference(sliceLogits(host, referenceRows));
  const referenceTokens = tokenIds.subarray(0, referenceRows);
  const forward = tokenLogprobs(logits, tokens, { entropy: true });
  const entropy = forward.entropy as Tensor<'float32'>;
  const gradLogprobs = tensor<'float32'>(new Float32Array(rows).fill(-1 / rows), [rows], { device });
  const gradEntropy = tensor<'float32'>(new Float32Array(rows).fill(0.01), [rows], { device });
  const hostLse = forward.lse.toArray();
  const hostGradLogprobs = gradLogprobs.toArray();
  const hostGradEntropy = gradEntropy.toArray();
  const baselineRows = Math.min(rows, context.options.baselineRows);
  const baselineLogits = sliceLogits(host, baselineRows);
  const unfusedForward: Baseline | undefined = cpu ? { name: 'log_softmax [N,V] + gather', rows, run: () => unfusedLogprobs(logits, tokens).dispose() } : undefined;

  const forwardCase = (withEntropy: boolean): Case => ({
    op: 'tokenLogprobs',
    variant: withEntropy ? 'entropy' : '',
    dtype,
    rows,
    vocab,
    shape: [rows, vocab],
    bytesMoved: tokenLogprobsBytes(rows, vocab, dtype, withEntropy),
    run: () => {
      const result = tokenLogprobs(logits, tokens, { entropy: withEntropy });
      disposeAll(result.logprobs, result.lse, result.entropy);
    },
    ...(unfusedForward ? { unfused: { ...unfusedForward, name: withEntropy ? 'log_softmax [N,V] + gather (no entropy pass: lower bound)' : unfusedForward.name } } : {}),
    ...(cpu ? { reference: { name: 'TS reference', rows: referenceRows, run: () => void reference.tokenLogprobs(referenceLogits, referenceTokens, { entropy: withEntropy }) } } : {}),
  });

  const backwardCase = (withEntropy: boolean): Case => ({
    op: 'tokenLogprobsBackward',
    variant: withEntropy ? 'entropy' : '',
    dtype,
    rows,
    vocab,
    shape: [rows, vocab],
    bytesMoved: tokenLogprobsBackwardBytes(rows, vocab, dtype, withEntropy),
    run: () => tokenLogprobsBackward(logits, tokens, forward.lse, gradLogprobs, withEntropy ? { gradEntropy, entropy } : {}).dispose(),
    ...(cpu
      ? {
          unfused: {
            name: 'TS: softmax [N,V] materialised, then one-hot - p',
            rows: baselineRows,
            run: () =>
              void unfusedTokenLogprobsBackward(
                baselineLogits,
                tokenIds.subarray(0, baselineRows),
                hostGradLogprobs.subarray(0, baselineRows),
                withEntropy ? hostGradEntropy.subarray(0, baselineRows) : undefined,
              ),
          },
          reference: {
            name: 'TS reference',
            rows: referenceRows,
            run: () =>
              void reference.tokenLogprobsBackward(
                referenceLogits,
                referenceTokens,
                hostLse.subarray(0, referenceRows),
                hostGradLogprobs.subarray(0, referenceRows),
                withEntropy ? hostGradEntropy.subarray(0, referenceRows) : undefined,
              ),
          },
        }
      : {}),
  });

  return {
    cases: [forwardCase(false), forwardCase(true), backwardCase(false), backwardCase(true)],
    release: () => disposeAll(tokens, forward.logprobs, forward.lse, entropy, gradLogprobs, gradEntropy),
  };
}

function advantageCases(samples: number, context: DeviceContext): CaseGroup {
  const { device, options } = context;
  const groupSize = Math.min(options.groupSize, samples);
  const hostRewards = Float32Array.from(normals(samples, 7, 1), (r) => (r > 0 ? 1 : 0));
  const rewards = tensor<'float32'>(hostRewards, [samples], { device });
  const cases = scales.flatMap((scale) =>
    estimators.map((estimator): Case => ({
      op: 'groupAdvantages',
      variant: `${scale}/${estimator}`,
      dtype: 'float32',
      rows: samples,
      shape: [samples],
      bytesMoved: groupAdvantagesBytes(samples),
      iterations: 50,
      run: () => groupAdvantages(rewards, { groupSize, scale, estimator }).dispose(),
      // No eager composition worth a name: the TS reference is the baseline.
      ...(probesAvailable(device) ? { reference: { name: 'TS reference', rows: samples, run: () => void reference.groupAdvantages(hostRewards, { groupSize, scale, estimator }) } } : {}),
    })),
  );
  return { cases, release: () => rewards.dispose() };
}

/** `tokens` laid out as completions of the suite's length: [sequences, length], and a ragged mask over it. */
function completions(tokens: number, context: DeviceContext): { sequences: number; length: number; shape: number[]; count: number; mask: Float32Array } {
  const length = Math.min(context.options.completionLength, tokens);
  const sequences = Math.max(1, Math.floor(tokens / length));
  const count = sequences * length;
  const mask = Float32Array.from({ length: count }, (_, i) => (i % length < length - (Math.floor(i / length) % (length / 2 + 1)) ? 1 : 0));
  return { sequences, length, shape: [sequences, length], count, mask };
}

function policyLossCases(tokens: number, context: DeviceContext): CaseGroup {
  const { device } = context;
  const { sequences, length, shape, count, mask } = completions(tokens, context);
  const logprobs = normals(count, 11, 0.5, -1.5);
  const old = Float32Array.from(logprobs, (lp, i) => lp + 0.1 * Math.sin(i));
  const ref = Float32Array.from(logprobs, (lp, i) => lp + 0.05 * Math.cos(i));
  const advantages = normals(sequences, 13, 1);
  const host = (data: Float32Array) => ({ dtype: 'float32' as const, shape, data });
  const inputs = {
    logprobs: tensor<'float32'>(logprobs, shape, { device }),
    oldLogprobs: tensor<'float32'>(old, shape, { device }),
    refLogprobs: tensor<'float32'>(ref, shape, { device }),
    advantages: tensor<'float32'>(advantages, [sequences], { device }),
    mask: tensor<'float32'>(mask, shape, { device }),
  };
  const referenceInputs = { logprobs: host(logprobs), oldLogprobs: host(old), refLogprobs: host(ref), advantages, mask: host(mask) };
  const cases = lossTypes.map((lossType): Case => ({
    op: 'policyLoss',
    variant: lossType,
    dtype: 'float32',
    rows: count,
    shape,
    bytesMoved: policyLossBytes(sequences, length),
    iterations: 50,
    run: () => policyLoss(inputs, { lossType, beta: 0.04 }).gradLogprobs.dispose(),
    ...(probesAvailable(device) ? { reference: { name: 'TS reference', rows: count, run: () => void reference.policyLoss(referenceInputs, { lossType, beta: 0.04 }) } } : {}),
  }));
  return { cases, release: () => Object.values(inputs).forEach((t) => t.dispose()) };
}

/** maskedRowSum and its backward on the policyLoss shapes: bandwidth-bound, against the TS reference. */
function maskedRowSumCases(tokens: number, context: DeviceContext): CaseGroup {
  const { device } = context;
  const { sequences, length, shape, count, mask: hostMask } = completions(tokens, context);
  const hostValues = normals(count, 17, 0.5, -1.5);
  const hostGrad = normals(sequences, 19, 1);
  const values = tensor<'float32'>(hostValues, shape, { device });
  const mask = tensor<'float32'>(hostMask, shape, { device });
  const gradSums = tensor<'float32'>(hostGrad, [sequences], { device });
  const host = (data: Float32Array) => ({ dtype: 'float32' as const, shape, data });
  const common = { dtype: 'float32' as const, rows: count, shape, bytesMoved: maskedRowSumBytes(sequences, length), iterations: 50 };
  const versusReference = (run: () => void) => (probesAvailable(device) ? { reference: { name: 'TS reference', rows: count, run } } : {});
  const cases: Case[] = [
    { op: 'maskedRowSum', variant: 'forward', ...common, run: () => maskedRowSum(values, mask).dispose(), ...versusReference(() => void reference.maskedRowSum(host(hostValues), host(hostMask))) },
    {
      op: 'maskedRowSum',
      variant: 'backward',
      ...common,
      run: () => maskedRowSumBackward(mask, gradSums).dispose(),
      ...versusReference(() => void reference.maskedRowSumBackward(host(hostMask), hostGrad)),
    },
  ];
  return { cases, release: () => [values, mask, gradSums].forEach((t) => t.dispose()) };
}

/**
 * linearLogprobs against the unfused composition on the same inputs: the [N, V] logits of a GEMM,
 * then tokenLogprobs; for forward + backward, then tokenLogprobsBackward in place and the two
 * GEMMs into the gradients. Both accumulate into preallocated gradients (an LM head's), so the
 * peaks compare the memory each needs on top of its inputs and outputs. CPU only (the GEMM probe).
 */
function linearCases(dtype: LogitsDType, context: DeviceContext): CaseGroup {
  const { rows, width, vocab, iterations } = context.options.linear;
  const stored = (values: Float32Array, shape: number[]) =>
    dtype === 'float32' ? tensor(values, shape) : tensor(Uint16Array.from(values, reference.float32ToBf16), shape, { dtype: 'bfloat16' });
  const hidden = stored(normals(rows * width, 31, 1), [rows, width]);
  const weight = stored(normals(vocab * width, 37, 1 / Math.sqrt(width) * 3), [vocab, width]);
  const tokens = tensor<'int32'>(Int32Array.from({ length: rows }, (_, r) => (r * 7919) % vocab), [rows]);
  const gradHidden = tensor<'float32'>(new Float32Array(rows * width), [rows, width]);
  const gradWeight = tensor<'float32'>(new Float32Array(vocab * width), [vocab, width]);
  const gradLogprobs = tensor<'float32'>(new Float32Array(rows).fill(-1 / rows), [rows]);
  const matmulFlops = 2 * rows * vocab * width;
  // The TS reference over a few rows (it is timed per row, as for the other ops).
  const referenceRows = Math.min(rows, context.options.referenceRows);
  const hostHidden = hidden.toArray();
  const hostWeight = weight.toArray();
  const referenceHidden: reference.LogitsTensor =
    dtype === 'float32'
      ? { dtype: 'float32', shape: [referenceRows, width], data: (hostHidden as Float32Array).subarray(0, referenceRows * width) }
      : { dtype: 'bfloat16', shape: [referenceRows, width], data: (hostHidden as Uint16Array).subarray(0, referenceRows * width) };
  const referenceWeight: reference.LogitsTensor =
    dtype === 'float32' ? { dtype: 'float32', shape: [vocab, width], data: hostWeight as Float32Array } : { dtype: 'bfloat16', shape: [vocab, width], data: hostWeight as Uint16Array };
  const referenceTokens = Int32Array.from({ length: referenceRows }, (_, r) => (r * 7919) % vocab);
  const referenceForward = () => reference.linearLogprobs(referenceHidden, referenceWeight, referenceTokens, { entropy: true });
  const unfusedLogits = () => {
    const logits = empty([rows, vocab]);
    gemm(hidden, weight, logits, { transB: true });
    return logits;
  };
  const unfusedForward = () => {
    const logits = unfusedLogits();
    const result = tokenLogprobs(logits, tokens, { entropy: true });
    disposeAll(logits, result.logprobs, result.lse, result.entropy);
  };
  const cases: Case[] = [
    {
      op: 'linearLogprobs',
      variant: 'forward',
      dtype,
      rows,
      vocab,
      shape: [rows, width, vocab],
      bytesMoved: (rows + vocab) * width * (dtype === 'float32' ? 4 : 2),
      iterations,
      trackMemory: true,
      flops: matmulFlops,
      run: () => {
        const result = linearLogprobs(hidden, weight, tokens, { entropy: true });
        disposeAll(result.logprobs, result.lse, result.entropy);
      },
      unfused: { name: 'GEMM to [N,V] logits + tokenLogprobs', rows, run: unfusedForward, trackMemory: true },
      reference: { name: 'TS reference', rows: referenceRows, run: () => void referenceForward() },
    },
    {
      op: 'linearLogprobs',
      variant: 'forward+backward',
      dtype,
      rows,
      vocab,
      shape: [rows, width, vocab],
      bytesMoved: (rows + vocab) * width * (dtype === 'float32' ? 4 : 2),
      iterations,
      trackMemory: true,
      flops: 3 * matmulFlops,
      run: () => {
        const result = linearLogprobs(hidden, weight, tokens, { entropy: true });
        linearLogprobsBackward(hidden, weight, tokens, result.lse, gradLogprobs, { gradHidden, gradWeight });
        disposeAll(result.logprobs, result.lse, result.entropy);
      },
      unfused: {
        name: 'GEMM to [N,V] + tokenLogprobs + its backward in place + 2 GEMMs',
        rows,
        trackMemory: true,
        run: () => {
          const logits = unfusedLogits();
          const result = tokenLogprobs(logits, tokens, { entropy: true });
          tokenLogprobsBackward(logits, tokens, result.lse, gradLogprobs, { inPlace: true });
          gemm(logits, weight, gradHidden, { beta: 1 });
          gemm(logits, hidden, gradWeight, { transA: true, beta: 1 });
          disposeAll(logits, result.logprobs, result.lse, result.entropy);
        },
      },
      reference: {
        name: 'TS reference',
        rows: referenceRows,
        run: () => {
          const result = referenceForward();
          reference.linearLogprobsBackward(referenceHidden, referenceWeight, referenceTokens, result.lse, new Float32Array(referenceRows).fill(-1));
        },
      },
    },
  ];
  return { cases, release: () => disposeAll(hidden, weight, tokens, gradHidden, gradWeight, gradLogprobs) };
}

function measureAll(group: CaseGroup, context: DeviceContext, onEntry: (entry: KernelEntry) => void): KernelEntry[] {
  try {
    return group.cases.map((item) => {
      const entry = measure(item, context);
      onEntry(entry);
      return entry;
    });
  } finally {
    group.release();
  }
}

function logitsEntries(rows: number, vocab: number, dtype: LogitsDType, context: DeviceContext, onEntry: (entry: KernelEntry) => void): KernelEntry[] {
  const full = hostLogits(rows, vocab, dtype);
  const logits = toTensor(full, context.device);
  // Only the rows the baselines and the reference read stay on the host: at 8,192 x 151,936 a
  // second full copy would be 5 GB beside the tensor, the backward's output and the unfused scratch.
  const { baselineRows, referenceRows } = context.options;
  const host = copyRows(full, Math.min(rows, Math.max(baselineRows, referenceRows)));
  try {
    return [
      ...measureAll(sampleCases(logits, host, context), context, onEntry),
      ...measureAll(logprobCases(logits, host, context), context, onEntry),
      ...measureAll(repetitionPenaltyCases(logits, host, context), context, onEntry),
    ];
  } finally {
    logits.dispose();
  }
}

export function runKernelSuiteOn(device: DeviceName, options: KernelSuiteOptions, onEntry: (entry: KernelEntry) => void = () => {}): KernelsResult {
  // The read-bandwidth probe runs on CPU memory; a CUDA device's bandwidth comes from bench/cpp or the peer kit.
  const bandwidth = device === 'cpu' ? readBandwidth(options.bandwidthBytes) : undefined;
  const context: DeviceContext = { device, options, ...(bandwidth ? { bandwidth } : {}) };
  const entries: KernelEntry[] = [];
  for (const dtype of options.dtypes) {
    for (const vocab of options.vocabs) {
      for (const rows of options.rows) entries.push(...logitsEntries(rows, vocab, dtype, context, onEntry));
    }
  }
  for (const rows of options.rows) {
    entries.push(...measureAll(advantageCases(rows, context), context, onEntry));
    entries.push(...measureAll(policyLossCases(rows, context), context, onEntry));
    entries.push(...measureAll(maskedRowSumCases(rows, context), context, onEntry));
  }
  if (device === 'cpu') {
    for (const dtype of options.linear.dtypes) entries.push(...measureAll(linearCases(dtype, context), context, onEntry));
  }
  return {
    ...resultHeader('kernels', options.mode, device),
    ...(bandwidth ? { bandwidth: { bytesPerSecond: bandwidth, method: `read of a ${options.bandwidthBytes >> 20} MiB buffer on napo's CPU threads, best of 5` } } : {}),
    entries,
  };
}

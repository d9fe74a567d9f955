/**
 * The kernel benchmark: tokenLogprobs and sample at a training-sized shape, each as a ratio to
 * this machine's measured read bandwidth, to the unfused composition and to the TS reference,
 * all measured in one run.
 */
import { reference, sample, tensor, tokenLogprobs, type Tensor } from '@napo/kernels';

import { describeMachine, type MachineDescription } from './machine.js';
import { readBandwidth, sortedSample, unfusedLogprobs } from './probes.js';
import { timeCall, type Timing } from './timing.js';

export interface KernelBenchOptions {
  rows: number;
  vocab: number;
  /** Timed calls per fused op. */
  iterations: number;
  /** Rows the TS reference runs on (it is ~100x slower); its time is scaled to `rows`. */
  referenceRows: number;
  /** Size of the buffer the read-bandwidth probe streams: far larger than the caches. */
  bandwidthBytes: number;
}

export const defaultKernelBenchOptions: KernelBenchOptions = {
  rows: 256,
  vocab: 151_936,
  iterations: 10,
  referenceRows: 4,
  bandwidthBytes: 1 << 30,
};

export interface KernelFigure {
  op: string;
  dtype: 'float32' | 'bfloat16';
  shape: [number, number];
  timing: Timing;
  /** Logits bytes read per second by the fused op. */
  bytesPerSecond: number;
  /** bytesPerSecond / the machine's measured read bandwidth. */
  fractionOfBandwidth: number;
  /** What the fused op is compared with, and its time per call. */
  baseline: { name: string; medianMs: number; speedup: number };
  /** The TS reference's time per call, scaled from referenceRows rows. */
  reference: { medianMs: number; speedup: number };
}

export interface KernelBenchResult {
  kind: 'napo-kernel-bench';
  date: string;
  device: 'cpu';
  machine: MachineDescription;
  readBandwidthBytesPerSecond: number;
  options: KernelBenchOptions;
  figures: KernelFigure[];
}

/** Logits spread like a language model's: a few large, most small (normal around 0, sd 3). */
function randomLogits(count: number, seed: number): Float32Array {
  const values = new Float32Array(count);
  let state = seed >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  for (let i = 0; i < count; i += 2) {
    // Box-Muller: two normals per pair of uniforms.
    const radius = Math.sqrt(-2 * Math.log(next() + 1e-12)) * 3;
    const angle = 2 * Math.PI * next();
    values[i] = radius * Math.cos(angle);
    if (i + 1 < count) values[i + 1] = radius * Math.sin(angle);
  }
  return values;
}

function logitsTensor(values: Float32Array, rows: number, vocab: number, dtype: 'float32' | 'bfloat16'): Tensor {
  return dtype === 'float32'
    ? tensor(values, [rows, vocab])
    : tensor(Uint16Array.from(values, reference.float32ToBf16), [rows, vocab], { dtype: 'bfloat16' });
}

/** Times `call`, disposing what each call returns so the allocator reuses its blocks. */
function timeOp(name: string, call: () => Tensor[], iterations: number, warmup = 2): Timing {
  return timeCall(name, () => call().forEach((t) => t.dispose()), { iterations, warmup });
}

function figure(
  op: string,
  dtype: 'float32' | 'bfloat16',
  options: KernelBenchOptions,
  bandwidth: number,
  timing: Timing,
  baseline: { name: string; timing: Timing },
  referenceMs: number,
): KernelFigure {
  const bytes = options.rows * options.vocab * (dtype === 'float32' ? 4 : 2);
  const bytesPerSecond = bytes / (timing.medianMs / 1000);
  return {
    op,
    dtype,
    shape: [options.rows, options.vocab],
    timing,
    bytesPerSecond,
    fractionOfBandwidth: bytesPerSecond / bandwidth,
    baseline: {
      name: baseline.name,
      medianMs: baseline.timing.medianMs,
      speedup: baseline.timing.medianMs / timing.medianMs,
    },
    reference: { medianMs: referenceMs, speedup: referenceMs / timing.medianMs },
  };
}

function referenceTime(options: KernelBenchOptions, call: () => void): number {
  const timing = timeCall('reference', call, { iterations: 3, warmup: 1 });
  return timing.medianMs * (options.rows / options.referenceRows);
}

function benchDtype(dtype: 'float32' | 'bfloat16', values: Float32Array, options: KernelBenchOptions, bandwidth: number): KernelFigure[] {
  const { rows, vocab, iterations } = options;
  const logits = logitsTensor(values, rows, vocab, dtype);
  const tokens = tensor<'int32'>(Int32Array.from({ length: rows }, (_, r) => (r * 7919) % vocab));
  const host = logits.toHost();
  const hostRows = {
    dtype: host.dtype,
    shape: [options.referenceRows, vocab],
    data: host.data.subarray(0, options.referenceRows * vocab),
  } as Parameters<typeof reference.tokenLogprobs>[0];
  const hostTokens = tokens.toArray().subarray(0, options.referenceRows);

  const unfused = { name: 'log_softmax [N,V] + gather', timing: timeOp('unfused', () => [unfusedLogprobs(logits, tokens)], Math.max(5, iterations / 2)) };
  const logprobsOnly = timeOp('tokenLogprobs', () => Object.values(tokenLogprobs(logits, tokens)), iterations);
  const withEntropy = timeOp('tokenLogprobs+entropy', () => Object.values(tokenLogprobs(logits, tokens, { entropy: true })), iterations);
  const referenceLogprobs = referenceTime(options, () => reference.tokenLogprobs(hostRows, hostTokens));
  const referenceEntropy = referenceTime(options, () => reference.tokenLogprobs(hostRows, hostTokens, { entropy: true }));

  const samplerOptions = { topK: 50, topP: 0.9, seed: 1 };
  const sorted = { name: 'softmax + full sort + masks', timing: timeOp('sorted', () => [sortedSample(logits, 50, 0.9, 1n)], 3, 1) };
  const fusedSample = timeOp('sample', () => Object.values(sample(logits, samplerOptions)), iterations);
  const referenceSample = referenceTime(options, () => reference.sample(hostRows, samplerOptions));
  logits.dispose();
  tokens.dispose();
  return [
    figure('tokenLogprobs', dtype, options, bandwidth, logprobsOnly, unfused, referenceLogprobs),
    figure('tokenLogprobs+entropy', dtype, options, bandwidth, withEntropy, unfused, referenceEntropy),
    figure('sample top-k 50 top-p 0.9', dtype, options, bandwidth, fusedSample, sorted, referenceSample),
  ];
}

export function runKernelBench(options: KernelBenchOptions = defaultKernelBenchOptions): KernelBenchResult {
  const bandwidth = readBandwidth(options.bandwidthBytes);
  const values = randomLogits(options.rows * options.vocab, 2024);
  const figures = (['float32', 'bfloat16'] as const).flatMap((dtype) => benchDtype(dtype, values, options, bandwidth));
  return {
    kind: 'napo-kernel-bench',
    date: new Date().toISOString(),
    device: 'cpu',
    machine: describeMachine(),
    readBandwidthBytesPerSecond: bandwidth,
    options,
    figures,
  };
}

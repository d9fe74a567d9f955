/**
 * The policy benchmark: TinyGPT forward+backward and decode tokens/s on 1 and 2 threads, and the
 * GFLOP/s of the model's matmul shapes against this machine's measured peak FMA throughput.
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

import { backendInfo, cpuThreads, setCpuThreads, tensor } from '@napo/kernels';

import { modelAddon, TinyGPT, type TinyGPTConfig } from '@napo/policy';

export interface PolicyBenchOptions {
  config: Omit<TinyGPTConfig, 'device'>;
  batch: number;
  threads: number[];
  /** Seconds spent on each timed measurement (at least). */
  seconds: number;
  decodePromptLength: number;
  decodeSteps: number;
}

export const defaultPolicyBenchOptions: PolicyBenchOptions = {
  config: { vocabSize: 65, contextLength: 128, dModel: 128, nLayers: 4, nHeads: 4, seed: 0 },
  batch: 8,
  threads: [1, 2],
  seconds: 1,
  decodePromptLength: 16,
  decodeSteps: 96,
};

export interface MatmulFigure {
  name: string;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  gflops: number;
  /** gflops / (peak per core x threads). */
  fractionOfPeak: number;
}

export interface PolicyBenchRow {
  threads: number;
  trainTokensPerSecond: number;
  decodeTokensPerSecond: number;
  matmuls: MatmulFigure[];
  /** Flop-weighted GFLOP/s over the matmul shapes (total flops / total time). */
  matmulGflops: number;
  matmulFractionOfPeak: number;
}

export interface PolicyBenchResult {
  device: string;
  isa: string;
  options: PolicyBenchOptions;
  peakGflopsPerCore: number;
  rows: PolicyBenchRow[];
  /** Throughput at the largest thread count over one thread. */
  speedup?: { threads: number; train: number; decode: number; matmul: number };
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    if (line) return line.split(':')[1]?.trim() ?? 'cpu';
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? 'cpu';
}

async function timeLoop(seconds: number, body: () => Promise<void>): Promise<{ iterations: number; elapsed: number }> {
  await body(); // warm-up
  const start = performance.now();
  let iterations = 0;
  let elapsed = 0;
  do {
    await body();
    iterations++;
    elapsed = (performance.now() - start) / 1000;
  } while (elapsed < seconds);
  return { iterations, elapsed };
}

export async function runPolicyBench(options: PolicyBenchOptions = defaultPolicyBenchOptions, log = true): Promise<PolicyBenchResult> {
  const addon = modelAddon();
  const { config, batch: B } = options;
  const T = config.contextLength;
  const D = config.dModel;
  const originalThreads = cpuThreads();
  const peak = addon.modelCpuPeakGflops(0.5);
  const shapes: Omit<MatmulFigure, 'gflops' | 'fractionOfPeak'>[] = [
    { name: 'qkv x W', m: B * T, n: 3 * D, k: D, transA: false, transB: false },
    { name: 'mlp up', m: B * T, n: 4 * D, k: D, transA: false, transB: false },
    { name: 'mlp down', m: B * T, n: D, k: 4 * D, transA: false, transB: false },
    { name: 'dX = dY W^T', m: B * T, n: D, k: 4 * D, transA: false, transB: true },
    { name: 'dW = X^T dY', m: D, n: 4 * D, k: B * T, transA: true, transB: false },
  ];
  const model = TinyGPT.create(config);
  const rows: PolicyBenchRow[] = [];
  try {
    const tokens = Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => (b * 7 + t * 13) % config.vocabSize));
    const grad = tensor(new Float32Array(B * T * config.vocabSize).fill(1 / (B * T)), [B, T, config.vocabSize]);
    const prompts = tokens.map((row) => row.slice(0, options.decodePromptLength));
    for (const threads of options.threads) {
      setCpuThreads(threads);
      const train = await timeLoop(options.seconds, async () => {
        (await model.forward(tokens)).dispose();
        await model.backward(grad);
      });
      let decodeTokens = 0;
      let decodeSeconds = 0;
      while (decodeSeconds < options.seconds) {
        (await model.prefill(prompts)).dispose();
        const start = performance.now();
        const next = prompts.map((p) => p[0] as number);
        for (let s = 0; s < options.decodeSteps; s++) (await model.decodeStep(next)).dispose();
        decodeSeconds += (performance.now() - start) / 1000;
        decodeTokens += B * options.decodeSteps;
      }
      let flops = 0;
      let time = 0;
      const matmuls = shapes.map((s) => {
        const r = addon.modelSgemmBench(s.m, s.n, s.k, s.transA, s.transB, Math.max(0.1, options.seconds / 4));
        flops += 2 * s.m * s.n * s.k;
        time += r.seconds;
        return { ...s, gflops: r.gflops, fractionOfPeak: r.gflops / (peak * threads) };
      });
      const matmulGflops = flops / time / 1e9;
      rows.push({
        threads,
        trainTokensPerSecond: (train.iterations * B * T) / train.elapsed,
        decodeTokensPerSecond: decodeTokens / decodeSeconds,
        matmuls,
        matmulGflops,
        matmulFractionOfPeak: matmulGflops / (peak * threads),
      });
    }
    grad.dispose();
  } finally {
    model.dispose();
    setCpuThreads(originalThreads);
  }
  const info = backendInfo();
  const result: PolicyBenchResult = { device: cpuModel(), isa: info.cpu.isa, options, peakGflopsPerCore: peak, rows };
  const first = rows[0];
  const last = rows[rows.length - 1];
  if (first && last && last !== first) {
    result.speedup = {
      threads: last.threads,
      train: last.trainTokensPerSecond / first.trainTokensPerSecond,
      decode: last.decodeTokensPerSecond / first.decodeTokensPerSecond,
      matmul: last.matmulGflops / first.matmulGflops,
    };
  }
  if (log) console.log(policyBenchTable(result));
  return result;
}

export function policyBenchTable(result: PolicyBenchResult): string {
  const { config, batch } = result.options;
  const lines = [
    `napo policy: TinyGPT d=${config.dModel} L=${config.nLayers} H=${config.nHeads} ctx=${config.contextLength} V=${config.vocabSize}, batch ${batch}, on ${result.device} (${result.isa})`,
    `measured peak FMA throughput: ${result.peakGflopsPerCore.toFixed(1)} GFLOP/s per core`,
    '',
    'threads | fwd+bwd tok/s | decode tok/s | matmul GFLOP/s | % of peak',
  ];
  for (const row of result.rows) {
    lines.push(
      `${String(row.threads).padStart(7)} | ${row.trainTokensPerSecond.toFixed(0).padStart(13)} | ${row.decodeTokensPerSecond.toFixed(0).padStart(12)} | ${row.matmulGflops
        .toFixed(1)
        .padStart(14)} | ${(100 * row.matmulFractionOfPeak).toFixed(0).padStart(8)}%`,
    );
  }
  lines.push('', 'matmul shapes (M x N x K)         ' + result.rows.map((r) => `${r.threads}T GFLOP/s (% peak)`.padStart(22)).join(''));
  const first = result.rows[0];
  first?.matmuls.forEach((m, i) => {
    const label = `${m.name} ${m.m}x${m.n}x${m.k}`.padEnd(34);
    lines.push(
      label +
        result.rows
          .map((r) => {
            const f = r.matmuls[i] as MatmulFigure;
            return `${f.gflops.toFixed(1)} (${(100 * f.fractionOfPeak).toFixed(0)}%)`.padStart(22);
          })
          .join(''),
    );
  });
  if (result.speedup) {
    const s = result.speedup;
    lines.push('', `${s.threads} threads vs 1: fwd+bwd ${s.train.toFixed(2)}x, decode ${s.decode.toFixed(2)}x, matmul ${s.matmul.toFixed(2)}x`);
  }
  return lines.join('\n');
}

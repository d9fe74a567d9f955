/**
 * The result schema every suite writes, and what bench/peers writes in the same shape, so one
 * page can put napo and its peers side by side. One JSON document per run, under bench/results/.
 * Bump `schemaVersion` on any change a reader has to know about; bench/README.md documents it.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const schemaVersion = 1;

export type SuiteKind = 'kernels' | 'trainer' | 'policy';
export type BenchMode = 'smoke' | 'quick' | 'full';

/** Where a result was measured: enough to tell two runs' machines apart. */
export interface BenchDevice {
  /** The device the figures are for: 'cpu' or 'cuda:N'. */
  name: string;
  kind: 'cpu' | 'cuda';
  cpuModel: string;
  /** Logical CPUs of the machine. */
  cores: number;
  /** Threads napo's CPU backend ran on. */
  threads?: number;
  memoryBytes?: number;
  /** The CPU backend's instruction set ('avx512', 'avx2', ...). */
  isa?: string;
  /** Present when `kind` is 'cuda'. */
  gpu?: { name: string; driver: string; memoryBytes?: number; computeCapability?: string };
}

/** Fields every result has, whatever the suite and whoever wrote it. */
export interface ResultHeader {
  schemaVersion: typeof schemaVersion;
  kind: SuiteKind;
  /** Who produced the figures: 'napo' for this suite, 'pytorch' for bench/peers/torch_peer.py. */
  source: string;
  /** ISO 8601. */
  createdAt: string;
  mode: BenchMode;
  device: BenchDevice;
  /** `git rev-parse --short HEAD` of the napo checkout (the peer's too: it runs napo's libnapo.so). */
  napoCommit: string;
  /** 'node v20.19.0', 'python 3.11 torch 2.5.1', ... */
  runtime: string;
}

/** Milliseconds per call over the timed repetitions, after warm-up calls. */
export interface Timing {
  medianMs: number;
  minMs: number;
  maxMs: number;
  repetitions: number;
}

/** The same op done another way, timed in the same run. speedup = its median / the entry's median. */
export interface Comparison {
  name: string;
  /** 'unfused': the eager composition; 'reference': napo's pure-TS reference; 'peer': another library. */
  kind: 'unfused' | 'reference' | 'peer';
  medianMs: number;
  speedup: number;
  /** Measured on this many rows and scaled linearly to the entry's rows (rows are independent). */
  scaledFromRows?: number;
  /** The allocator's peak above what was held before one call (ops that track memory). */
  peakAllocatedBytes?: number;
}

/** One op, one variant, one shape, one dtype, one implementation. */
export interface KernelEntry {
  /** 'sample' | 'tokenLogprobs' | 'tokenLogprobsBackward' | 'groupAdvantages' | 'policyLoss' | 'maskedRowSum' | 'repetitionPenalty'. */
  op: string;
  /** 'greedy', 'top-k 50', 'entropy', 'group/rloo', 'dr_grpo', ... ('' when the op has one). */
  variant: string;
  /** 'napo', or the peer's implementation ('torch eager', 'torch.compile', 'TRL selective_log_softmax'). */
  implementation: string;
  dtype: 'float32' | 'bfloat16';
  /** Rows N (tokens, or samples for groupAdvantages). */
  rows: number;
  /** Vocabulary V for the ops over logits; absent otherwise. */
  vocab?: number;
  /** The tensor shape the op ran on ([N, V], [S], [S, T]). */
  shape: number[];
  timing: Timing;
  /** Compulsory bytes read + written by one call (suites/bytes.ts defines them per op). */
  bytesMoved: number;
  bytesPerSecond: number;
  /** bytesPerSecond / the device's measured bandwidth (absent when none was measured). */
  fractionOfBandwidth?: number;
  /** The allocator's peak above what was held before one call (ops whose point is memory). */
  peakAllocatedBytes?: number;
  /** Multiply-adds x 2 per call, for the GEMM-bound ops (GFLOP/s = flops / time). */
  flops?: number;
  comparisons: Comparison[];
}

export interface KernelsResult extends ResultHeader {
  kind: 'kernels';
  /** The yardstick fractionOfBandwidth divides by, measured in the same run. */
  bandwidth?: { bytesPerSecond: number; method: string };
  entries: KernelEntry[];
}

export interface PhaseSummary {
  phase: string;
  /** Mean over the measured steps. */
  meanSeconds: number;
  /** meanSeconds / mean step seconds. */
  share: number;
  /** Highest peak allocated bytes of this phase over all steps. */
  peakAllocatedBytes: number;
  /** Where that peak's bytes were, by memory category (napo's allocator: parameter, activation, kvCache, ...). */
  peakByCategory?: Record<string, number>;
}

export interface LeakCheck {
  /** Steps whose allocatedBytesAfter the rule looked at (the warm-up steps excluded). */
  steps: number;
  firstBytes: number;
  lastBytes: number;
  /** Theil-Sen slope of allocatedBytesAfter over the second half of the steps, bytes per step. */
  slopeBytesPerStep: number;
  /** slope > 0 and last > first: memory still grows when it should be flat. */
  growing: boolean;
}

export interface AlgorithmRun {
  algorithm: string;
  label: string;
  /** Steps the throughput figures average over (the first `warmupSteps` excluded). */
  measuredSteps: number;
  meanStepSeconds: number;
  stepsPerSecond: number;
  generatedTokensPerSecond: number;
  trainedTokensPerSecond: number;
  phases: PhaseSummary[];
  /** Highest peak allocated bytes of any phase of any step. */
  peakAllocatedBytesPerStep: number;
  /** allocatedBytes after each step, every step included. */
  allocatedBytesAfter: number[];
  leak: LeakCheck;
}

export interface TrainerResult extends ResultHeader {
  kind: 'trainer';
  config: {
    model: Record<string, unknown>;
    train: Record<string, unknown>;
    warmupSteps: number;
    /** Steps run per algorithm (throughput excludes the first `excludedSteps`). */
    steps: number;
    excludedSteps: number;
  };
  runs: AlgorithmRun[];
  /** The seed's question: ExP-GRPO's step time over GRPO's, against the 1.2x target. */
  cost: {
    expoOverGrpo?: number;
    sftOverGrpo?: number;
    target: number;
    withinTarget?: boolean;
    /** Extra seconds per step of each phase, ExP-GRPO minus GRPO, largest first. */
    expoExtraSecondsByPhase: { phase: string; seconds: number }[];
  };
}

export interface PolicyResult extends ResultHeader {
  kind: 'policy';
  figures: unknown;
}

export type BenchResult = KernelsResult | TrainerResult | PolicyResult;

function slug(text: string): string {
  return text.toLowerCase().replace(/\(r\)|\(tm\)/g, '').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
}

/** `<date>-<suite>-<device>.json`: sorts by date, says what and where without opening it. */
export function resultFileName(result: ResultHeader): string {
  const date = result.createdAt.replace(/:/g, '').replace(/\.\d+Z$/, 'Z');
  const where = result.device.gpu ? result.device.gpu.name : result.device.cpuModel;
  const tag = result.source === 'napo' ? '' : `-${slug(result.source)}`;
  return `${date}-${result.kind}${tag}-${slug(result.device.name)}-${slug(where)}.json`;
}

export function writeResult(directory: string, result: BenchResult): string {
  mkdirSync(directory, { recursive: true });
  const path = join(directory, resultFileName(result));
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  return path;
}

function isResult(value: unknown): value is BenchResult {
  if (typeof value !== 'object' || value === null) return false;
  const header = value as Partial<ResultHeader>;
  return header.schemaVersion === schemaVersion && typeof header.kind === 'string' && typeof header.device === 'object';
}

/** Every result of this schema version in a folder, oldest first; other JSON files are skipped, with their names. */
export function readResults(directory: string): { results: BenchResult[]; skipped: string[] } {
  const results: BenchResult[] = [];
  const skipped: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(directory).filter((name) => name.endsWith('.json')).sort();
  } catch {
    return { results, skipped };
  }
  for (const name of names) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(join(directory, name), 'utf8'));
      if (isResult(parsed)) results.push(parsed);
      else skipped.push(name);
    } catch {
      skipped.push(name);
    }
  }
  return { results, skipped };
}

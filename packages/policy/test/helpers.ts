/** Shared test helpers: small configs, seeded randomness, log-softmax in float64, layout maps. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { resolveModelConfig, type ModelConfig, type ModelConfigInput } from '../src/config.js';
import type { CausalLM } from '../src/model.js';
import type { NativeParameterInfo } from '../src/native.js';

/** TinyGPT as it is now: a small gpt2 (tied embeddings, learned positions). */
export const tinyGPT: ModelConfigInput = { family: 'gpt2', vocabSize: 11, hiddenSize: 16, numLayers: 2, numHeads: 2, maxPositions: 8, seed: 3 };

/** A small config of any family (the sizes every family accepts). */
export function smallConfig(input: Omit<ModelConfigInput, 'vocabSize'> & { vocabSize?: number }): ModelConfig {
  return resolveModelConfig({ vocabSize: 37, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, maxPositions: 32, ...input });
}

/** mulberry32: a small seeded PRNG for test data, uniform in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every parameter drawn uniform in +-scale around 0 (norm weights around 1), so no gradient is trivially zero. */
export function randomizeParameters(model: CausalLM, seed: number, scale = 0.3): void {
  const next = rng(seed);
  for (const { name, shape } of model.parameters()) {
    const isNormWeight = shape.length === 1 && /(ln_\w+|norm)\.weight$/.test(name);
    const data = model.getParameter(name);
    for (let i = 0; i < data.length; i++) data[i] = (isNormWeight ? 1 : 0) + scale * (2 * next() - 1);
    model.setParameter(name, data);
  }
}

/** Every parameter, float32 in the model's layout. */
export function weightsOf(model: CausalLM): Map<string, Float32Array> {
  return new Map(model.parameters().map(({ name }) => [name, model.getParameter(name)]));
}

export function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/**
 * Index in the checkpoint's layout of entry `index` of a parameter in the model's layout: the
 * same, except for gpt2's Conv1D weights, [out, in] in the model and [in, out] in the file.
 */
export function checkpointIndex(info: Readonly<NativeParameterInfo>, index: number): number {
  if (!info.checkpointTransposed) return index;
  const [rows, cols] = info.shape as [number, number];
  const row = Math.floor(index / cols);
  const col = index % cols;
  return col * rows + row;
}

/** A checkpoint tensor (checkpoint layout, flat) in the model's layout. */
export function toModelLayout(info: Readonly<NativeParameterInfo>, values: ArrayLike<number>): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = values[checkpointIndex(info, i)] as number;
  return out;
}

/** log softmax(z / temperature) in float64, and the entropy of that distribution. */
export function logSoftmax(z: ArrayLike<number>, temperature = 1): { logp: Float64Array; entropy: number } {
  const scaled = Float64Array.from(z as ArrayLike<number>, (v) => v / temperature);
  const max = scaled.reduce((m, v) => Math.max(m, v), -Infinity);
  let total = 0;
  for (const v of scaled) total += Math.exp(v - max);
  const lse = max + Math.log(total);
  const logp = scaled.map((v) => v - lse);
  let entropy = 0;
  for (const lp of logp) entropy -= Math.exp(lp) * lp;
  return { logp, entropy };
}

/** A temporary directory, removed by the returned cleanup. */
export async function temporaryDirectory(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Every parameter as float64 in the checkpoint's layout, keyed by its Hugging Face name: what `referenceForward` reads. */
export function checkpointTensorsOf(model: CausalLM): Map<string, Float64Array> {
  return new Map(
    model.parameters().map((info) => {
      const values = model.getParameter(info.name);
      const out = new Float64Array(values.length);
      for (let i = 0; i < values.length; i++) out[checkpointIndex(info, i)] = values[i] as number;
      return [info.name, out];
    }),
  );
}

/** `text` as a literal inside a RegExp (paths in error messages). */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

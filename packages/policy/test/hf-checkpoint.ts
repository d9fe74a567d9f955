/**
 * Test helper: writes random Hugging Face checkpoints (config.json + safetensors, optionally
 * sharded with an index) for gpt2, llama, qwen2 and qwen3, laid out as `save_pretrained` writes
 * them. The tensor names and shapes are written out here from `transformers`' modules, on purpose
 * independently of napo's loader, so a test that loads these files checks the loader too.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { configToHF, type CheckpointDtype, type ModelConfig } from '../src/config.js';
import { encodeSafetensors, type SafetensorsTensor } from '../src/safetensors.js';

/**
 * Every tensor `save_pretrained` writes for the config, name -> shape, in module order. Tied LM
 * heads are not written (transformers drops the tied copy); gpt2 names carry `transformer.`.
 */
export function hfTensorShapes(config: ModelConfig): Map<string, number[]> {
  return config.family === 'gpt2' ? gpt2Shapes(config) : llamaStyleShapes(config);
}

function gpt2Shapes(config: ModelConfig): Map<string, number[]> {
  const { vocabSize: V, hiddenSize: D, intermediateSize: I, maxPositions: P } = config;
  const shapes = new Map<string, number[]>([
    ['transformer.wte.weight', [V, D]],
    ['transformer.wpe.weight', [P, D]],
  ]);
  // Conv1D weights are [in, out].
  const conv1d = (name: string, inDim: number, outDim: number, bias: boolean) => {
    shapes.set(`${name}.weight`, [inDim, outDim]);
    if (bias) shapes.set(`${name}.bias`, [outDim]);
  };
  const layerNorm = (name: string) => {
    shapes.set(`${name}.weight`, [D]);
    shapes.set(`${name}.bias`, [D]);
  };
  for (let l = 0; l < config.numLayers; l++) {
    const prefix = `transformer.h.${l}`;
    layerNorm(`${prefix}.ln_1`);
    conv1d(`${prefix}.attn.c_attn`, D, 3 * D, config.qkvBias);
    conv1d(`${prefix}.attn.c_proj`, D, D, config.outputBias);
    layerNorm(`${prefix}.ln_2`);
    conv1d(`${prefix}.mlp.c_fc`, D, I, config.mlpBias);
    conv1d(`${prefix}.mlp.c_proj`, I, D, config.mlpBias);
  }
  layerNorm('transformer.ln_f');
  if (!config.tieWordEmbeddings) shapes.set('lm_head.weight', [V, D]);
  return shapes;
}

function llamaStyleShapes(config: ModelConfig): Map<string, number[]> {
  const { vocabSize: V, hiddenSize: D, intermediateSize: I, numHeads: H, numKvHeads: KV, headDim: hd } = config;
  const shapes = new Map<string, number[]>([['model.embed_tokens.weight', [V, D]]]);
  // nn.Linear weights are [out, in].
  const linear = (name: string, inDim: number, outDim: number, bias: boolean) => {
    shapes.set(`${name}.weight`, [outDim, inDim]);
    if (bias) shapes.set(`${name}.bias`, [outDim]);
  };
  for (let l = 0; l < config.numLayers; l++) {
    const prefix = `model.layers.${l}`;
    shapes.set(`${prefix}.input_layernorm.weight`, [D]);
    linear(`${prefix}.self_attn.q_proj`, D, H * hd, config.qkvBias);
    linear(`${prefix}.self_attn.k_proj`, D, KV * hd, config.qkvBias);
    linear(`${prefix}.self_attn.v_proj`, D, KV * hd, config.qkvBias);
    linear(`${prefix}.self_attn.o_proj`, H * hd, D, config.outputBias);
    if (config.family === 'qwen3') {
      shapes.set(`${prefix}.self_attn.q_norm.weight`, [hd]);
      shapes.set(`${prefix}.self_attn.k_norm.weight`, [hd]);
    }
    shapes.set(`${prefix}.post_attention_layernorm.weight`, [D]);
    linear(`${prefix}.mlp.gate_proj`, D, I, config.mlpBias);
    linear(`${prefix}.mlp.up_proj`, D, I, config.mlpBias);
    linear(`${prefix}.mlp.down_proj`, I, D, config.mlpBias);
  }
  shapes.set('model.norm.weight', [D]);
  if (!config.tieWordEmbeddings) shapes.set('lm_head.weight', [V, D]);
  return shapes;
}

export interface WrittenCheckpoint {
  dir: string;
  /** The config.json written. */
  hfConfig: Record<string, unknown>;
  /**
   * The values exactly as stored (rounded to the stored dtype), keyed by the full Hugging Face
   * names (`transformer.`-prefixed for gpt2 even when the files omit the prefix).
   */
  tensors: Map<string, Float64Array>;
}

export interface RandomTensorOptions {
  dtype?: CheckpointDtype;
  seed?: number;
  /** Std of the weight matrices (default 0.02). */
  std?: number;
}

export interface WriteCheckpointOptions extends RandomTensorOptions {
  /** More than 1 writes model-0000k-of-0000N.safetensors files and model.safetensors.index.json. */
  shards?: number;
  /** gpt2 only: names without `transformer.`, as the openai-community/gpt2 files have them. */
  omitPrefix?: boolean;
}

/**
 * Random values for every checkpoint tensor, already rounded to `dtype`: matrices normal(0, std),
 * biases normal(0, 0.02), norm weights 1 + 0.1 normal (so a norm's scale is not the identity).
 * Each tensor draws from its own stream, seeded from the seed and its name, so its values do not
 * depend on which other tensors exist.
 */
export function randomHFTensors(config: ModelConfig, options: RandomTensorOptions = {}): Map<string, Float64Array> {
  const { dtype = 'float32', seed = 0, std = 0.02 } = options;
  const round = roundingFor(dtype);
  const tensors = new Map<string, Float64Array>();
  for (const [name, shape] of hfTensorShapes(config)) {
    const normal = normalSampler(hashSeed(seed, name));
    const count = shape.reduce((product, dim) => product * dim, 1);
    const sample = isNormWeight(name) ? () => 1 + 0.1 * normal() : name.endsWith('.bias') ? () => 0.02 * normal() : () => std * normal();
    tensors.set(name, Float64Array.from({ length: count }, () => round(sample())));
  }
  return tensors;
}

function isNormWeight(name: string): boolean {
  if (!name.endsWith('.weight')) return false;
  const module = name.slice(0, -'.weight'.length).split('.').pop() ?? '';
  return module.startsWith('ln_') || module.endsWith('norm');
}

/** Writes config.json and the weights as `save_pretrained` does (safetensors, metadata {"format": "pt"}). */
export async function writeHFCheckpoint(dir: string, config: ModelConfig, options: WriteCheckpointOptions = {}): Promise<WrittenCheckpoint> {
  const { dtype = 'float32', shards = 1, omitPrefix = false } = options;
  const tensors = randomHFTensors(config, options);
  if (!Number.isInteger(shards) || shards < 1 || shards > tensors.size) {
    throw new RangeError(`writeHFCheckpoint: shards = ${shards} must be an integer in [1, ${tensors.size}]`);
  }
  await mkdir(dir, { recursive: true });
  const hfConfig = configToHF(config, dtype);
  await writeFile(join(dir, 'config.json'), `${JSON.stringify(hfConfig, null, 2)}\n`);

  const storedName = (name: string) => (omitPrefix && config.family === 'gpt2' ? name.replace(/^transformer\./, '') : name);
  const shapes = hfTensorShapes(config);
  const stored = [...tensors].map(([name, values]) => ({ name: storedName(name), tensor: encodeTensor(values, shapes.get(name) ?? [], dtype) }));
  if (shards === 1) {
    await writeFile(join(dir, 'model.safetensors'), encodeShard(stored));
    return { dir, hfConfig, tensors };
  }
  const assignment = assignShards(stored.map(({ tensor }) => tensor.data.byteLength), shards);
  const fileName = (k: number) => `model-${String(k + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
  const weightMap: Record<string, string> = {};
  for (let k = 0; k < shards; k++) {
    const members = stored.filter((_, i) => assignment[i] === k);
    for (const { name } of members) weightMap[name] = fileName(k);
    await writeFile(join(dir, fileName(k)), encodeShard(members));
  }
  const totalSize = stored.reduce((bytes, { tensor }) => bytes + tensor.data.byteLength, 0);
  // transformers writes the index with json.dumps(index, indent=2, sort_keys=True) + "\n".
  const index = { metadata: { total_size: totalSize }, weight_map: sortKeys(weightMap) };
  await writeFile(join(dir, 'model.safetensors.index.json'), `${JSON.stringify(index, null, 2)}\n`);
  return { dir, hfConfig, tensors };
}

function encodeTensor(values: Float64Array, shape: number[], dtype: CheckpointDtype): SafetensorsTensor {
  if (dtype === 'float32') return { dtype: 'F32', shape, data: Float32Array.from(values) };
  if (dtype === 'bfloat16') return { dtype: 'BF16', shape, data: Uint16Array.from(values, toBfloat16Bits) };
  return { dtype: 'F16', shape, data: Uint16Array.from(values, toFloat16Bits) };
}

/** The safetensors library orders a file's tensors by name (within one dtype). */
function encodeShard(members: { name: string; tensor: SafetensorsTensor }[]): Buffer {
  const sorted = [...members].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return encodeSafetensors(new Map(sorted.map(({ name, tensor }) => [name, tensor])), { format: 'pt' });
}

/**
 * Consecutive runs of tensors (in module order, as transformers fills shards) into exactly
 * `shards` non-empty files of roughly equal bytes.
 */
function assignShards(sizes: number[], shards: number): number[] {
  const total = sizes.reduce((a, b) => a + b, 0);
  const assignment: number[] = [];
  let current = 0;
  let before = 0;
  sizes.forEach((size, i) => {
    const wanted = Math.floor((before * shards) / total);
    const mustAdvance = sizes.length - i <= shards - 1 - current;
    if (i > 0 && current < shards - 1 && (mustAdvance || wanted > current)) current++;
    assignment.push(current);
    before += size;
  });
  return assignment;
}

function sortKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** `count` token ids uniform in [0, vocab), deterministic in the seed. */
export function randomTokens(count: number, vocab: number, seed: number): number[] {
  const next = mulberry32(seed);
  return Array.from({ length: count }, () => Math.min(vocab - 1, Math.floor(next() * vocab)));
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness.

/** mulberry32: 32 bits of state, uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draws by Box-Muller (one of the pair; simplicity over speed). */
function normalSampler(seed: number): () => number {
  const uniform = mulberry32(seed);
  return () => {
    const u1 = 1 - uniform(); // in (0, 1], so the log is finite
    const u2 = uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  };
}

/** FNV-1a over the name, mixed with the seed. */
function hashSeed(seed: number, name: string): number {
  let hash = (0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}

// ---------------------------------------------------------------------------------------------
// bfloat16 and float16, rounded from the exact (float64) value to nearest, ties to even.

interface HalfFormat {
  mantissaBits: number;
  exponentBias: number;
  nanBits: number;
}

const bfloat16: HalfFormat = { mantissaBits: 7, exponentBias: 127, nanBits: 0x7fc0 };
const float16: HalfFormat = { mantissaBits: 10, exponentBias: 15, nanBits: 0x7e00 };

export function toBfloat16Bits(x: number): number {
  return toHalfBits(x, bfloat16);
}

export function fromBfloat16Bits(bits: number): number {
  return fromHalfBits(bits, bfloat16);
}

export function toFloat16Bits(x: number): number {
  return toHalfBits(x, float16);
}

export function fromFloat16Bits(bits: number): number {
  return fromHalfBits(bits, float16);
}

function roundingFor(dtype: CheckpointDtype): (x: number) => number {
  if (dtype === 'float32') return Math.fround;
  if (dtype === 'bfloat16') return (x) => fromBfloat16Bits(toBfloat16Bits(x));
  return (x) => fromFloat16Bits(toFloat16Bits(x));
}

/**
 * Rounds |x| to a multiple of the quantum of its binade (the smallest normal binade's quantum
 * below it, which gives subnormals), ties to even; a result past the largest finite is infinity.
 * Every step is exact in float64 (scaling by powers of two, floor, subtraction), so this is the
 * correctly rounded value of x, not of some intermediate.
 */
function toHalfBits(x: number, format: HalfFormat): number {
  const { mantissaBits: m, exponentBias: bias, nanBits } = format;
  if (Number.isNaN(x)) return nanBits;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const infinityBits = sign | (((2 * bias + 1) << m) >>> 0);
  const magnitude = Math.abs(x);
  const minExponent = 1 - bias;
  const maxExponent = bias;
  if (magnitude === 0) return sign;
  if (magnitude >= 2 ** (maxExponent + 1)) return infinityBits;
  const quantum = 2 ** (Math.max(binade(magnitude), minExponent) - m);
  const rounded = roundHalfEven(magnitude / quantum) * quantum;
  if (rounded >= 2 ** (maxExponent + 1)) return infinityBits;
  if (rounded < 2 ** minExponent) return sign | (rounded / 2 ** (minExponent - m)); // subnormal (or zero)
  const exponent = binade(rounded);
  const mantissa = rounded / 2 ** (exponent - m) - 2 ** m;
  return sign | ((exponent + bias) << m) | mantissa;
}

function fromHalfBits(bits: number, format: HalfFormat): number {
  const { mantissaBits: m, exponentBias: bias } = format;
  if (!Number.isInteger(bits) || bits < 0 || bits > 0xffff) throw new RangeError(`not 16-bit: ${bits}`);
  const sign = bits & 0x8000 ? -1 : 1;
  const exponentField = (bits & 0x7fff) >>> m;
  const mantissa = bits & ((1 << m) - 1);
  if (exponentField === 2 * bias + 1) return mantissa === 0 ? sign * Infinity : NaN;
  if (exponentField === 0) return sign * mantissa * 2 ** (1 - bias - m);
  return sign * (2 ** m + mantissa) * 2 ** (exponentField - bias - m);
}

/** floor(log2(x)) for finite x > 0, corrected where Math.log2 rounds across a power of two. */
function binade(x: number): number {
  let exponent = Math.floor(Math.log2(x));
  if (2 ** exponent > x) exponent--;
  if (2 ** (exponent + 1) <= x) exponent++;
  return exponent;
}

function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

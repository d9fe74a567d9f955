/**
 * A slow float64 forward pass of the decoder-only causal LMs napo runs (gpt2, llama, qwen2, qwen3),
 * written from `transformers`' modeling files (modeling_gpt2.py, modeling_llama.py,
 * modeling_qwen2.py, modeling_qwen3.py) so tests can check the native models against something
 * that shares none of their code. It reads tensors by their Hugging Face checkpoint names, in the
 * checkpoint's layouts. Tiny configs only: every product is a plain loop.
 */
import type { ModelConfig, RopeScaling } from '../config.js';

type Vector = Float64Array;
type VectorMap = (x: Vector) => Vector;

/** A position's query, key and value; heads are contiguous runs of headDim, as `.view(..., heads, headDim)` lays them out. */
interface Projections {
  q: Vector;
  k: Vector;
  v: Vector;
}

/** One pre-norm decoder block; gpt2 and the llama-style families differ only in what fills these slots. */
interface DecoderLayer {
  attentionNorm: VectorMap;
  project: (x: Vector) => Projections;
  attentionOutput: VectorMap;
  mlpNorm: VectorMap;
  mlp: VectorMap;
}

interface CausalLM {
  embed: (tokens: readonly number[]) => Vector[];
  /** Rotates one position's heads in place (RoPE); null where positions are learned embeddings (gpt2). */
  rotate: ((heads: Vector, headCount: number, position: number) => void) | null;
  layers: DecoderLayer[];
  finalNorm: VectorMap;
  lmHead: VectorMap;
}

/**
 * Logits of every position of every (ragged, unpadded) row: result[row][position] has vocabSize
 * values. Positions start at 0 in each row, as with no padding and no cache in `transformers`.
 */
export function referenceForward(
  config: ModelConfig,
  tensors: ReadonlyMap<string, ArrayLike<number>>,
  tokens: readonly (readonly number[])[],
): Float64Array[][] {
  checkConfig(config);
  const weights = new CheckpointTensors(tensors);
  const model = config.family === 'gpt2' ? gpt2Model(config, weights) : llamaStyleModel(config, weights);
  return tokens.map((row, index) => {
    checkRow(config, row, index);
    return forwardRow(model, config, row);
  });
}

/**
 * RoPE inverse frequencies as `transformers`' rope init functions compute them (in float64 here;
 * `transformers` uses float32): 1 / theta^(2i / headDim), then the config's scaling.
 */
export function ropeInverseFrequencies(headDim: number, theta: number, scaling: RopeScaling | null): Float64Array {
  const base = new Float64Array(headDim / 2).map((_, i) => 1 / theta ** ((2 * i) / headDim));
  if (scaling === null) return base;
  if (scaling.type === 'linear') return base.map((f) => f / scaling.factor);
  return llama3Scaling(base, scaling);
}

/** Llama 3.1's band rule (`_compute_llama3_parameters`): long wavelengths are slowed by `factor`, short ones kept, the band between blended. */
function llama3Scaling(base: Float64Array, scaling: Extract<RopeScaling, { type: 'llama3' }>): Float64Array {
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling;
  const lowFreqWavelength = originalMaxPositions / lowFreqFactor;
  const highFreqWavelength = originalMaxPositions / highFreqFactor;
  return base.map((f) => {
    const wavelength = (2 * Math.PI) / f;
    if (wavelength > lowFreqWavelength) return f / factor;
    if (wavelength < highFreqWavelength) return f;
    const smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return ((1 - smooth) * f) / factor + smooth * f;
  });
}

// ---------------------------------------------------------------------------------------------
// The forward pass, shared by every family.

function forwardRow(model: CausalLM, config: ModelConfig, tokens: readonly number[]): Vector[] {
  let hidden = model.embed(tokens);
  for (const layer of model.layers) hidden = decoderLayer(layer, model.rotate, config, hidden);
  return hidden.map((x) => model.lmHead(model.finalNorm(x)));
}

function decoderLayer(layer: DecoderLayer, rotate: CausalLM['rotate'], config: ModelConfig, hidden: Vector[]): Vector[] {
  const projections = hidden.map((x) => layer.project(layer.attentionNorm(x)));
  if (rotate !== null) {
    projections.forEach(({ q, k }, position) => {
      rotate(q, config.numHeads, position);
      rotate(k, config.numKvHeads, position);
    });
  }
  const attended = causalAttention(projections, config);
  const afterAttention = hidden.map((x, t) => add(x, layer.attentionOutput(attended[t])));
  return afterAttention.map((x) => add(x, layer.mlp(layer.mlpNorm(x))));
}

/**
 * Scaled dot-product attention over positions 0..t for each t. Query head h reads key/value head
 * floor(h / (numHeads / numKvHeads)): `repeat_kv` repeats each kv head for consecutive query heads.
 */
function causalAttention(projections: Projections[], config: ModelConfig): Vector[] {
  const { numHeads, numKvHeads, headDim } = config;
  const group = numHeads / numKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  return projections.map(({ q }, t) => {
    const out = new Float64Array(numHeads * headDim);
    for (let h = 0; h < numHeads; h++) {
      const qOffset = h * headDim;
      const kvOffset = Math.floor(h / group) * headDim;
      const scores = new Float64Array(t + 1);
      for (let s = 0; s <= t; s++) scores[s] = scale * dot(q, qOffset, projections[s].k, kvOffset, headDim);
      const weights = softmax(scores);
      for (let s = 0; s <= t; s++) {
        const v = projections[s].v;
        for (let j = 0; j < headDim; j++) out[qOffset + j] += weights[s] * v[kvOffset + j];
      }
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// gpt2 (GPT2LMHeadModel).

function gpt2Model(config: ModelConfig, weights: CheckpointTensors): CausalLM {
  const { vocabSize: V, hiddenSize: D, intermediateSize: I, maxPositions: P, normEps: eps } = config;
  const wte = weights.get('transformer.wte.weight', [V, D]);
  const wpe = weights.get('transformer.wpe.weight', [P, D]);
  const layerNormNamed = (name: string) => layerNorm(weights.get(`${name}.weight`, [D]), weights.get(`${name}.bias`, [D]), eps);
  // Conv1D keeps its weight [in, out]: y = x W + b.
  const conv1dNamed = (name: string, inDim: number, outDim: number, hasBias: boolean) =>
    conv1d(weights.get(`${name}.weight`, [inDim, outDim]), weights.optional(`${name}.bias`, [outDim], hasBias), inDim, outDim);
  const layers = Array.from({ length: config.numLayers }, (_, l): DecoderLayer => {
    const prefix = `transformer.h.${l}`;
    const qkv = conv1dNamed(`${prefix}.attn.c_attn`, D, 3 * D, config.qkvBias);
    const fc = conv1dNamed(`${prefix}.mlp.c_fc`, D, I, config.mlpBias);
    const fcOut = conv1dNamed(`${prefix}.mlp.c_proj`, I, D, config.mlpBias);
    return {
      attentionNorm: layerNormNamed(`${prefix}.ln_1`),
      // c_attn's output is q | k | v, each D wide (`.split(n_embd, dim=2)`).
      project: (x) => {
        const fused = qkv(x);
        return { q: fused.subarray(0, D), k: fused.subarray(D, 2 * D), v: fused.subarray(2 * D) };
      },
      attentionOutput: conv1dNamed(`${prefix}.attn.c_proj`, D, D, config.outputBias),
      mlpNorm: layerNormNamed(`${prefix}.ln_2`),
      mlp: (x) => fcOut(fc(x).map(geluTanh)),
    };
  });
  const head = config.tieWordEmbeddings ? wte : weights.get('lm_head.weight', [V, D]);
  return {
    embed: (tokens) => tokens.map((token, position) => add(wte.subarray(token * D, (token + 1) * D), wpe.subarray(position * D, (position + 1) * D))),
    rotate: null,
    layers,
    finalNorm: layerNormNamed('transformer.ln_f'),
    lmHead: linear(head, null, D, V),
  };
}

/** `gelu_new`: the tanh approximation of GELU. */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

// ---------------------------------------------------------------------------------------------
// llama, qwen2, qwen3 (LlamaForCausalLM and the Qwen models built on the same block).

function llamaStyleModel(config: ModelConfig, weights: CheckpointTensors): CausalLM {
  const { vocabSize: V, hiddenSize: D, intermediateSize: I, numHeads: H, numKvHeads: KV, headDim: hd, normEps: eps } = config;
  const embedding = weights.get('model.embed_tokens.weight', [V, D]);
  const rmsNormNamed = (name: string, width: number) => rmsNorm(weights.get(`${name}.weight`, [width]), eps);
  const linearNamed = (name: string, inDim: number, outDim: number, hasBias: boolean) =>
    linear(weights.get(`${name}.weight`, [outDim, inDim]), weights.optional(`${name}.bias`, [outDim], hasBias), inDim, outDim);
  const layers = Array.from({ length: config.numLayers }, (_, l): DecoderLayer => {
    const prefix = `model.layers.${l}`;
    const q = linearNamed(`${prefix}.self_attn.q_proj`, D, H * hd, config.qkvBias);
    const k = linearNamed(`${prefix}.self_attn.k_proj`, D, KV * hd, config.qkvBias);
    const v = linearNamed(`${prefix}.self_attn.v_proj`, D, KV * hd, config.qkvBias);
    // Qwen3 normalises each head of q and k over headDim, before RoPE.
    const qwen3 = config.family === 'qwen3';
    const qNorm = qwen3 ? perHead(rmsNormNamed(`${prefix}.self_attn.q_norm`, hd), hd) : identity;
    const kNorm = qwen3 ? perHead(rmsNormNamed(`${prefix}.self_attn.k_norm`, hd), hd) : identity;
    const gate = linearNamed(`${prefix}.mlp.gate_proj`, D, I, config.mlpBias);
    const up = linearNamed(`${prefix}.mlp.up_proj`, D, I, config.mlpBias);
    const down = linearNamed(`${prefix}.mlp.down_proj`, I, D, config.mlpBias);
    return {
      attentionNorm: rmsNormNamed(`${prefix}.input_layernorm`, D),
      project: (x) => ({ q: qNorm(q(x)), k: kNorm(k(x)), v: v(x) }),
      attentionOutput: linearNamed(`${prefix}.self_attn.o_proj`, H * hd, D, config.outputBias),
      mlpNorm: rmsNormNamed(`${prefix}.post_attention_layernorm`, D),
      mlp: (x) => {
        const upX = up(x);
        return down(gate(x).map((g, i) => silu(g) * upX[i]));
      },
    };
  });
  // A tied head is the embedding; transformers ignores any lm_head.weight then, and so does this.
  const head = config.tieWordEmbeddings ? embedding : weights.get('lm_head.weight', [V, D]);
  const inverseFrequencies = ropeInverseFrequencies(hd, config.ropeTheta, config.ropeScaling);
  return {
    embed: (tokens) => tokens.map((token) => Float64Array.from(embedding.subarray(token * D, (token + 1) * D))),
    rotate: (heads, headCount, position) => rotateHalf(heads, headCount, hd, position, inverseFrequencies),
    layers,
    finalNorm: rmsNormNamed('model.norm', D),
    lmHead: linear(head, null, D, V),
  };
}

/**
 * RoPE in `transformers`' rotate_half layout: dimension i pairs with i + headDim/2 (not with its
 * neighbour), and both use the angle position * inverseFrequencies[i], because cos and sin are
 * cat(freqs, freqs).
 */
function rotateHalf(heads: Vector, headCount: number, headDim: number, position: number, inverseFrequencies: Float64Array): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const angle = position * inverseFrequencies[i];
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    for (let h = 0; h < headCount; h++) {
      const a = h * headDim + i;
      const b = a + half;
      const x1 = heads[a];
      const x2 = heads[b];
      heads[a] = x1 * cos - x2 * sin;
      heads[b] = x2 * cos + x1 * sin;
    }
  }
}

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

// ---------------------------------------------------------------------------------------------
// Building blocks.

/** nn.Linear keeps its weight [out, in]: y = W x + b. */
function linear(weight: Float64Array, bias: Float64Array | null, inDim: number, outDim: number): VectorMap {
  return (x) => {
    const y = new Float64Array(outDim);
    for (let o = 0; o < outDim; o++) y[o] = (bias === null ? 0 : bias[o]) + dot(weight, o * inDim, x, 0, inDim);
    return y;
  };
}

/** gpt2's Conv1D keeps its weight [in, out]: y = x W + b. */
function conv1d(weight: Float64Array, bias: Float64Array | null, inDim: number, outDim: number): VectorMap {
  return (x) => {
    const y = bias === null ? new Float64Array(outDim) : Float64Array.from(bias);
    for (let i = 0; i < inDim; i++) {
      const row = i * outDim;
      for (let o = 0; o < outDim; o++) y[o] += x[i] * weight[row + o];
    }
    return y;
  };
}

/** LayerNorm with the biased variance and eps inside the square root, as torch has it. */
function layerNorm(weight: Float64Array, bias: Float64Array, eps: number): VectorMap {
  return (x) => {
    const mean = sum(x) / x.length;
    const variance = sum(x.map((v) => (v - mean) ** 2)) / x.length;
    const scale = 1 / Math.sqrt(variance + eps);
    return x.map((v, j) => (v - mean) * scale * weight[j] + bias[j]);
  };
}

/** RMSNorm: x / sqrt(mean(x^2) + eps) * weight (no mean subtraction, no bias). */
function rmsNorm(weight: Float64Array, eps: number): VectorMap {
  return (x) => {
    const scale = 1 / Math.sqrt(sum(x.map((v) => v * v)) / x.length + eps);
    return x.map((v, j) => v * scale * weight[j]);
  };
}

/** Applies a map to each headDim-wide run of a vector. */
function perHead(map: VectorMap, headDim: number): VectorMap {
  return (x) => {
    const out = new Float64Array(x.length);
    for (let offset = 0; offset < x.length; offset += headDim) out.set(map(x.subarray(offset, offset + headDim)), offset);
    return out;
  };
}

function identity(x: Vector): Vector {
  return x;
}

function softmax(scores: Float64Array): Float64Array {
  const max = scores.reduce((a, b) => Math.max(a, b), -Infinity);
  const exps = scores.map((s) => Math.exp(s - max));
  const total = sum(exps);
  return exps.map((e) => e / total);
}

function dot(a: ArrayLike<number>, aOffset: number, b: ArrayLike<number>, bOffset: number, length: number): number {
  let total = 0;
  for (let i = 0; i < length; i++) total += a[aOffset + i] * b[bOffset + i];
  return total;
}

function add(a: Vector, b: Vector): Vector {
  return a.map((v, i) => v + b[i]);
}

function sum(x: Float64Array): number {
  let total = 0;
  for (const v of x) total += v;
  return total;
}

// ---------------------------------------------------------------------------------------------
// Inputs.

/** Checkpoint tensors by name; only sizes can be checked (the map holds flat values), against the shape the name implies. */
class CheckpointTensors {
  constructor(private readonly tensors: ReadonlyMap<string, ArrayLike<number>>) {}

  get(name: string, shape: readonly number[]): Float64Array {
    const value = this.tensors.get(name);
    if (value === undefined) throw new RangeError(`referenceForward: tensor ${name} [${shape.join(', ')}] is missing`);
    const expected = shape.reduce((product, dim) => product * dim, 1);
    if (value.length !== expected) {
      throw new RangeError(`referenceForward: tensor ${name} has ${value.length} values; its shape [${shape.join(', ')}] has ${expected}`);
    }
    // One float64 copy up front, so every product below reads the same array type.
    return Float64Array.from(value);
  }

  optional(name: string, shape: readonly number[], present: boolean): Float64Array | null {
    return present ? this.get(name, shape) : null;
  }
}

function checkConfig(config: ModelConfig): void {
  const { family, numHeads, numKvHeads, headDim, hiddenSize } = config;
  for (const key of ['vocabSize', 'hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'maxPositions'] as const) {
    const value = config[key];
    if (!Number.isInteger(value) || value < (key === 'numLayers' ? 0 : 1)) throw new RangeError(`referenceForward: config.${key} = ${value} is not a valid size`);
  }
  if (numHeads % numKvHeads !== 0) throw new RangeError(`referenceForward: numHeads ${numHeads} is not a multiple of numKvHeads ${numKvHeads}`);
  if (family === 'gpt2') {
    // GPT-2 splits the width into heads and has no grouped-query attention.
    if (numKvHeads !== numHeads || headDim * numHeads !== hiddenSize) {
      throw new RangeError(`referenceForward: gpt2 needs numKvHeads = numHeads and headDim * numHeads = hiddenSize (got ${numKvHeads}, ${numHeads}, ${headDim}, ${hiddenSize})`);
    }
  } else if (headDim % 2 !== 0) {
    throw new RangeError(`referenceForward: RoPE needs an even headDim (got ${headDim})`);
  }
}

function checkRow(config: ModelConfig, row: readonly number[], index: number): void {
  for (const token of row) {
    if (!Number.isInteger(token) || token < 0 || token >= config.vocabSize) {
      throw new RangeError(`referenceForward: row ${index} has token ${token} outside [0, ${config.vocabSize})`);
    }
  }
  // Learned positions stop at maxPositions; RoPE has no such table, and transformers does not cut it off either.
  if (config.family === 'gpt2' && row.length > config.maxPositions) {
    throw new RangeError(`referenceForward: row ${index} has ${row.length} tokens, more than gpt2's ${config.maxPositions} positions`);
  }
}

import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { configFromHF, resolveModelConfig, type ModelConfig, type ModelConfigInput } from '../src/config.js';
import { geluTanh, referenceForward, ropeInverseFrequencies } from '../src/reference/causal-lm.js';
import { readSafetensors } from '../src/safetensors.js';
import {
  fromBfloat16Bits,
  fromFloat16Bits,
  hfTensorShapes,
  randomHFTensors,
  randomTokens,
  toBfloat16Bits,
  toFloat16Bits,
  writeHFCheckpoint,
} from './hf-checkpoint.js';

const tiny = (input: Omit<ModelConfigInput, 'vocabSize'> & { vocabSize?: number }): ModelConfig =>
  resolveModelConfig({ vocabSize: 13, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, maxPositions: 16, ...input });

const families: Record<string, ModelConfig> = {
  gpt2: tiny({ family: 'gpt2' }),
  'gpt2 untied': tiny({ family: 'gpt2', tieWordEmbeddings: false }),
  llama: tiny({ family: 'llama', numKvHeads: 2, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8 } }),
  'llama biased, tied': tiny({ family: 'llama', qkvBias: true, outputBias: true, mlpBias: true, tieWordEmbeddings: true }),
  qwen2: tiny({ family: 'qwen2', numKvHeads: 1, ropeScaling: { type: 'linear', factor: 2 } }),
  qwen3: tiny({ family: 'qwen3', numKvHeads: 2, headDim: 6, tieWordEmbeddings: true }),
};

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe('referenceForward', () => {
  for (const [label, config] of Object.entries(families)) {
    it(`${label}: position t does not see later tokens, and rows are independent`, () => {
      const tensors = randomHFTensors(config, { seed: 1, std: 0.3 });
      const row = randomTokens(9, config.vocabSize, 2);
      const changed = [...row.slice(0, 5), ...row.slice(5).map((token) => (token + 1) % config.vocabSize)];
      const [a, b, prefix] = referenceForward(config, tensors, [row, changed, row.slice(0, 3)]);
      for (let t = 0; t < 5; t++) expect(b[t]).toEqual(a[t]);
      for (let t = 5; t < 9; t++) expect(maxAbsDiff(a[t], b[t])).toBeGreaterThan(1e-6);
      expect(prefix).toEqual(a.slice(0, 3));
      expect(a[0].length).toBe(config.vocabSize);
      expect(a.every((logits) => logits.every(Number.isFinite))).toBe(true);
    });
  }

  it('returns an empty row for an empty row', () => {
    const config = families.llama;
    expect(referenceForward(config, randomHFTensors(config), [[], [1]]).map((row) => row.length)).toEqual([0, 1]);
  });

  it('llama: grouped-query attention equals full attention with each kv head repeated for its query group', () => {
    const gqa = tiny({ family: 'llama', numKvHeads: 2 });
    const mha = tiny({ family: 'llama', numKvHeads: 4 });
    const tensors = randomHFTensors(gqa, { seed: 5, std: 0.3 });
    const repeated = new Map(tensors);
    const { headDim: hd, hiddenSize: D, numHeads: H, numKvHeads: KV } = gqa;
    for (let l = 0; l < gqa.numLayers; l++) {
      for (const projection of ['k_proj', 'v_proj']) {
        const name = `model.layers.${l}.self_attn.${projection}.weight`;
        const weight = tensors.get(name) as Float64Array;
        const out = new Float64Array(H * hd * D);
        for (let h = 0; h < H; h++) out.set(weight.subarray(Math.floor(h / (H / KV)) * hd * D, (Math.floor(h / (H / KV)) + 1) * hd * D), h * hd * D);
        repeated.set(name, out);
      }
    }
    const rows = [randomTokens(7, gqa.vocabSize, 6)];
    const [expected] = referenceForward(mha, repeated, rows);
    const [actual] = referenceForward(gqa, tensors, rows);
    for (let t = 0; t < 7; t++) expect(maxAbsDiff(actual[t], expected[t])).toBeLessThan(1e-12);
    // The MHA config reads [H*hd, D] key weights, so the GQA tensors do not fit it.
    expect(() => referenceForward(mha, tensors, rows)).toThrow(/k_proj\.weight has 128 values; its shape \[16, 16\] has 256/);
  });

  it('RoPE is the identity at position 0: theta and scaling change only later positions', () => {
    const config = tiny({ family: 'llama', numKvHeads: 2 });
    const other = { ...config, ropeTheta: 37, ropeScaling: { type: 'linear' as const, factor: 3 } };
    const tensors = randomHFTensors(config, { seed: 8, std: 0.3 });
    const rows = [randomTokens(4, config.vocabSize, 9)];
    const [a] = referenceForward(config, tensors, rows);
    const [b] = referenceForward(other, tensors, rows);
    expect(b[0]).toEqual(a[0]);
    for (let t = 1; t < 4; t++) expect(maxAbsDiff(a[t], b[t])).toBeGreaterThan(1e-6);
  });

  it('llama3 scaling slows long wavelengths by the factor, keeps short ones and blends between', () => {
    // wavelengths 2 pi / [1, 0.1, 0.01, 0.001] = 6.3, 63, 628, 6283 against the band [16/4, 16/1] = [4, 16].
    const scaling = { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 16 };
    const scaled = ropeInverseFrequencies(8, 10000, scaling);
    const smooth = (16 / (2 * Math.PI) - 1) / 3;
    expect(scaled[0]).toBeCloseTo((1 - smooth) / 8 + smooth, 14);
    [0.1 / 8, 0.01 / 8, 0.001 / 8].forEach((f, i) => expect(scaled[i + 1]).toBeCloseTo(f, 15));
    // A long original context puts every wavelength below the band (kept), a short one above it (slowed).
    expect(ropeInverseFrequencies(8, 10000, { ...scaling, originalMaxPositions: 1e6 })).toEqual(ropeInverseFrequencies(8, 10000, null));
    expect(ropeInverseFrequencies(8, 10000, { ...scaling, originalMaxPositions: 1 })).toEqual(ropeInverseFrequencies(8, 10000, null).map((f) => f / 8));
    expect(Array.from(ropeInverseFrequencies(4, 100, { type: 'linear', factor: 2 }))).toEqual([0.5, 0.05]);
  });

  it('gpt2, one layer: a logit matches a direct computation', () => {
    const config = tiny({ family: 'gpt2', hiddenSize: 4, numHeads: 2, intermediateSize: 8, numLayers: 1, vocabSize: 5, maxPositions: 4 });
    const w = randomHFTensors(config, { seed: 11, std: 0.5 });
    const p = (name: string) => w.get(name) as Float64Array;
    const tokens = [3, 1];
    const D = 4;
    const hd = 2;
    const layerNorm = (x: number[], name: string) => {
      const mean = x.reduce((s, v) => s + v, 0) / D;
      const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / D;
      return x.map((v, j) => ((v - mean) / Math.sqrt(variance + 1e-5)) * p(`${name}.weight`)[j] + p(`${name}.bias`)[j]);
    };
    const conv = (x: number[], name: string, outDim: number) =>
      Array.from({ length: outDim }, (_, o) => x.reduce((s, v, i) => s + v * p(`${name}.weight`)[i * outDim + o], p(`${name}.bias`)[o]));
    const x = tokens.map((token, t) => Array.from({ length: D }, (_, j) => p('transformer.wte.weight')[token * D + j] + p('transformer.wpe.weight')[t * D + j]));
    const qkv = x.map((row) => conv(layerNorm(row, 'transformer.h.0.ln_1'), 'transformer.h.0.attn.c_attn', 3 * D));
    const attended: number[] = [];
    for (let h = 0; h < 2; h++) {
      const scores = [0, 1].map((s) => (qkv[1][h * hd] * qkv[s][D + h * hd] + qkv[1][h * hd + 1] * qkv[s][D + h * hd + 1]) / Math.sqrt(hd));
      const e = scores.map((s) => Math.exp(s));
      for (let j = 0; j < hd; j++) attended.push((e[0] * qkv[0][2 * D + h * hd + j] + e[1] * qkv[1][2 * D + h * hd + j]) / (e[0] + e[1]));
    }
    const afterAttention = conv(attended, 'transformer.h.0.attn.c_proj', D).map((v, j) => v + x[1][j]);
    const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(0.7978845608028654 * (v + 0.044715 * v ** 3)));
    const hidden = conv(layerNorm(afterAttention, 'transformer.h.0.ln_2'), 'transformer.h.0.mlp.c_fc', 8).map(gelu);
    const afterMlp = conv(hidden, 'transformer.h.0.mlp.c_proj', D).map((v, j) => v + afterAttention[j]);
    const final = layerNorm(afterMlp, 'transformer.ln_f');
    const logit = final.reduce((s, v, j) => s + v * p('transformer.wte.weight')[2 * D + j], 0);

    const [logits] = referenceForward(config, w, [tokens]);
    expect(logits[1][2]).toBeCloseTo(logit, 12);
    expect(geluTanh(1.5)).toBeCloseTo(gelu(1.5), 15);
  });

  it('qwen3, one layer: a logit matches a direct computation (q/k norm, rotate_half RoPE, GQA, SwiGLU)', () => {
    const config = tiny({ family: 'qwen3', hiddenSize: 8, numHeads: 4, numKvHeads: 2, headDim: 4, intermediateSize: 6, numLayers: 1, vocabSize: 7, ropeTheta: 3 });
    const w = randomHFTensors(config, { seed: 12, std: 0.5 });
    const p = (name: string) => w.get(name) as Float64Array;
    const tokens = [6, 0, 4];
    const [D, hd, I, eps] = [8, 4, 6, 1e-6];
    const rms = (x: number[], weight: Float64Array) => {
      const r = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + eps);
      return x.map((v, j) => (v / r) * weight[j]);
    };
    const matvec = (x: number[], name: string, outDim: number) =>
      Array.from({ length: outDim }, (_, o) => x.reduce((s, v, i) => s + p(name)[o * x.length + i] * v, 0));
    // Per head: RMS norm over the head, then rotate dimension i with i + 2 by position * theta^(-i/2).
    const headsOf = (v: number[], count: number, norm: string, t: number) =>
      Array.from({ length: count }, (_, h) => {
        const y = rms(v.slice(h * hd, h * hd + hd), p(norm));
        const out = [...y];
        for (let i = 0; i < 2; i++) {
          const angle = t * 3 ** (-(2 * i) / hd);
          out[i] = y[i] * Math.cos(angle) - y[i + 2] * Math.sin(angle);
          out[i + 2] = y[i + 2] * Math.cos(angle) + y[i] * Math.sin(angle);
        }
        return out;
      });
    const L = 'model.layers.0';
    const x = tokens.map((token) => Array.from(p('model.embed_tokens.weight').slice(token * D, token * D + D)));
    const normed = x.map((row) => rms(row, p(`${L}.input_layernorm.weight`)));
    const q = headsOf(matvec(normed[2], `${L}.self_attn.q_proj.weight`, 4 * hd), 4, `${L}.self_attn.q_norm.weight`, 2);
    const k = normed.map((row, t) => headsOf(matvec(row, `${L}.self_attn.k_proj.weight`, 2 * hd), 2, `${L}.self_attn.k_norm.weight`, t));
    const v = normed.map((row) => matvec(row, `${L}.self_attn.v_proj.weight`, 2 * hd));
    const attended: number[] = [];
    for (let h = 0; h < 4; h++) {
      const kv = h < 2 ? 0 : 1;
      const e = [0, 1, 2].map((s) => Math.exp(q[h].reduce((acc, qi, i) => acc + qi * k[s][kv][i], 0) / 2));
      const total = e[0] + e[1] + e[2];
      for (let j = 0; j < hd; j++) attended.push([0, 1, 2].reduce((acc, s) => acc + e[s] * v[s][kv * hd + j], 0) / total);
    }
    const afterAttention = matvec(attended, `${L}.self_attn.o_proj.weight`, D).map((value, j) => value + x[2][j]);
    const m = rms(afterAttention, p(`${L}.post_attention_layernorm.weight`));
    const gate = matvec(m, `${L}.mlp.gate_proj.weight`, I);
    const up = matvec(m, `${L}.mlp.up_proj.weight`, I);
    const swiglu = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
    const afterMlp = matvec(swiglu, `${L}.mlp.down_proj.weight`, D).map((value, j) => value + afterAttention[j]);
    const final = rms(afterMlp, p('model.norm.weight'));
    const logit = final.reduce((s, value, j) => s + value * p('lm_head.weight')[5 * D + j], 0);

    const [logits] = referenceForward(config, w, [tokens]);
    expect(logits[2][5]).toBeCloseTo(logit, 12);
  });

  it('names a missing tensor, a wrong size and a bad token', () => {
    const config = families.qwen2;
    const tensors = randomHFTensors(config);
    const without = new Map(tensors);
    without.delete('model.layers.1.self_attn.k_proj.bias');
    expect(() => referenceForward(config, without, [[1]])).toThrow(RangeError);
    expect(() => referenceForward(config, without, [[1]])).toThrow(/model\.layers\.1\.self_attn\.k_proj\.bias \[4\] is missing/);
    const wrong = new Map(tensors).set('model.norm.weight', new Float64Array(15));
    expect(() => referenceForward(config, wrong, [[1]])).toThrow(/model\.norm\.weight has 15 values; its shape \[16\] has 16/);
    expect(() => referenceForward(config, tensors, [[1], [13]])).toThrow(/row 1 has token 13 outside \[0, 13\)/);
    expect(() => referenceForward(families.gpt2, randomHFTensors(families.gpt2), [new Array(17).fill(0)])).toThrow(/17 tokens/);
  });
});

describe('hf checkpoint helper', () => {
  const dirs: string[] = [];
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'napo-hf-'));
    dirs.push(dir);
    return dir;
  };
  afterAll(async () => {
    await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it('writes sharded bfloat16 files with an index as save_pretrained does, holding the returned values', async () => {
    const config = families.qwen3;
    const dir = await tempDir();
    const written = await writeHFCheckpoint(dir, config, { dtype: 'bfloat16', shards: 3, seed: 4 });
    const shapes = hfTensorShapes(config);
    expect([...written.tensors.keys()]).toEqual([...shapes.keys()]);
    expect(shapes.has('lm_head.weight')).toBe(false);
    const files = (await readdir(dir)).sort();
    expect(files).toEqual([
      'config.json',
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      'model.safetensors.index.json',
    ]);
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    expect(Object.keys(index.weight_map)).toEqual([...shapes.keys()].sort());
    let bytes = 0;
    for (const file of files.filter((name) => name.startsWith('model-'))) {
      const { tensors, metadata } = await readSafetensors(join(dir, file));
      expect(metadata).toEqual({ format: 'pt' });
      expect(tensors.size).toBeGreaterThan(0);
      for (const [name, tensor] of tensors) {
        expect(index.weight_map[name]).toBe(file);
        expect(tensor.dtype).toBe('BF16');
        expect(tensor.shape).toEqual(shapes.get(name));
        expect(Array.from(tensor.data, fromBfloat16Bits)).toEqual(Array.from(written.tensors.get(name) as Float64Array));
        bytes += tensor.data.byteLength;
      }
    }
    expect(index.metadata.total_size).toBe(bytes);
    const json = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(json).toEqual(written.hfConfig);
    expect(configFromHF(json)).toEqual(config);
    const norm = written.tensors.get('model.layers.0.self_attn.q_norm.weight') as Float64Array;
    expect(norm.every((value) => Math.abs(value - 1) < 0.5)).toBe(true);
    expect(norm.some((value) => value !== 1)).toBe(true);
  });

  it('writes gpt2 in one float16 file, without the transformer. prefix when asked', async () => {
    const config = families['gpt2 untied'];
    const dir = await tempDir();
    const written = await writeHFCheckpoint(dir, config, { dtype: 'float16', omitPrefix: true, seed: 2 });
    const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
    expect([...tensors.keys()]).toContain('h.1.attn.c_attn.weight');
    expect([...tensors.keys()]).toContain('lm_head.weight');
    expect([...tensors.keys()].some((name) => name.startsWith('transformer.'))).toBe(false);
    expect(tensors.get('h.0.mlp.c_fc.weight')?.shape).toEqual([16, 24]);
    expect(Array.from(tensors.get('wte.weight')?.data ?? [], fromFloat16Bits)).toEqual(Array.from(written.tensors.get('transformer.wte.weight') as Float64Array));
    // Same seed, other dtype: the same draws, rounded differently.
    const float32 = randomHFTensors(config, { seed: 2 }).get('transformer.wte.weight') as Float64Array;
    expect(maxAbsDiff(float32, written.tensors.get('transformer.wte.weight') as Float64Array)).toBeLessThan(1e-3);
  });

  it('randomTokens is deterministic and in range', () => {
    const tokens = randomTokens(200, 7, 3);
    expect(tokens).toEqual(randomTokens(200, 7, 3));
    expect(tokens.every((t) => Number.isInteger(t) && t >= 0 && t < 7)).toBe(true);
    expect(new Set(tokens).size).toBe(7);
  });
});

describe('bfloat16 and float16 conversion', () => {
  it('bfloat16 edge values', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3f80],
      [-2, 0xc000],
      [3.3895313892515355e38, 0x7f7f], // largest finite
      [2 ** -133, 0x0001], // smallest subnormal
      [2 ** -126, 0x0080], // smallest normal
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
      [1 + 2 ** -8, 0x3f80], // tie, rounds to even (down)
      [1 + 3 * 2 ** -8, 0x3f82], // tie, rounds to even (up)
      [1 + 2 ** -8 + 2 ** -40, 0x3f81], // just past the tie: rounded from the exact value, not from float32
      [2 ** -134, 0x0000], // half the smallest subnormal: tie to even zero
      [3 * 2 ** -134, 0x0002],
      [3.4e38, 0x7f80], // past max + half an ulp
    ];
    for (const [value, bits] of cases) expect([value, toBfloat16Bits(value)]).toEqual([value, bits]);
    expect(toBfloat16Bits(NaN)).toBe(0x7fc0);
    expect(fromBfloat16Bits(0x7fc0)).toBeNaN();
    expect(Object.is(fromBfloat16Bits(0x8000), -0)).toBe(true);
    expect(Object.is(fromBfloat16Bits(toBfloat16Bits(-1e-50)), -0)).toBe(true);
  });

  it('float16 edge values', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [65504, 0x7bff], // largest finite
      [65519, 0x7bff],
      [65520, 0x7c00], // max + half an ulp ties to even: infinity
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -14 - 2 ** -24, 0x03ff], // largest subnormal
      [2 ** -14, 0x0400],
      [2 ** -25, 0x0000], // tie to even zero
      [3 * 2 ** -25, 0x0002],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [1 + 2 ** -11, 0x3c00],
      [1 + 3 * 2 ** -11, 0x3c02],
      [-1 / 3, 0xb555],
    ];
    for (const [value, bits] of cases) expect([value, toFloat16Bits(value)]).toEqual([value, bits]);
    expect(toFloat16Bits(NaN)).toBe(0x7e00);
    expect(fromFloat16Bits(0x7e00)).toBeNaN();
    expect(fromFloat16Bits(0x3555)).toBeCloseTo(1 / 3, 3);
  });

  it('every non-NaN bit pattern round-trips, and float32 agrees with Math.fround on bfloat16 values', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const bf = fromBfloat16Bits(bits);
      if (!Number.isNaN(bf)) {
        expect(toBfloat16Bits(bf)).toBe(bits);
        expect(Math.fround(bf)).toBe(bf);
      }
      const half = fromFloat16Bits(bits);
      if (!Number.isNaN(half) && toFloat16Bits(half) !== bits) expect.fail(`float16 ${bits.toString(16)}`);
    }
  });
});

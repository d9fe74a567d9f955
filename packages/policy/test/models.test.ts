/**
 * napo's native causal LMs (gpt2, llama, qwen2, qwen3) against the float64 reference and the
 * Hugging Face directory layout: forward, score, KV-cache decoding, gradients (by finite
 * differences of the reference), checkpoints in and out, bad checkpoints and bad inputs.
 */
import { copyFile, mkdir, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { backendInfo, tensor, type Tensor } from '@napo/kernels';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { configFromHF, type ModelConfig } from '../src/config.js';
import { CausalLM } from '../src/model.js';
import { fromPretrained } from '../src/pretrained.js';
import { referenceForward } from '../src/reference/causal-lm.js';
import { SafetensorsReader, encodeSafetensors, readSafetensors, type SafetensorsTensor } from '../src/safetensors.js';
import { CharTokenizer } from '../src/tokenizer.js';
import { fromBfloat16Bits, randomTokens, toBfloat16Bits, writeHFCheckpoint, type WrittenCheckpoint } from './hf-checkpoint.js';
import { checkpointIndex, escapeRegExp, logSoftmax, rng, sameBits, smallConfig, temporaryDirectory, toModelLayout, weightsOf } from './helpers.js';

/** One of each family, covering between them GQA, biases, head_dim != hidden / heads, tied and untied heads, RoPE scaling. */
const families: { label: string; config: ModelConfig }[] = [
  { label: 'gpt2 (untied lm_head)', config: smallConfig({ family: 'gpt2', tieWordEmbeddings: false }) },
  {
    label: 'llama (GQA 4:2, tied embeddings, llama3 rope_scaling)',
    config: smallConfig({
      family: 'llama',
      numKvHeads: 2,
      tieWordEmbeddings: true,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8 },
    }),
  },
  { label: 'qwen2 (q/k/v biases, GQA 4:1, rope_theta 1e6)', config: smallConfig({ family: 'qwen2', numKvHeads: 1, ropeTheta: 1e6 }) },
  { label: 'qwen3 (head_dim 6 != 16 / 4, GQA 4:2, q/k norms)', config: smallConfig({ family: 'qwen3', numKvHeads: 2, headDim: 6 }) },
];

/** 35 characters + pad + eos = the configs' vocabulary of 37. */
const alphabet = 'abcdefghijklmnopqrstuvwxyz012345678';

/** A ragged batch: rows of 7, 3 and 5 tokens. */
function raggedRows(vocab: number, seed: number, lengths: readonly number[] = [7, 3, 5]): number[][] {
  return lengths.map((length, b) => randomTokens(length, vocab, seed * 100 + b));
}

/** [B, T] targets: -1 at each row's first position, past its length and at a few random positions; else a random token. */
function randomTargets(rows: readonly (readonly number[])[], vocab: number, seed: number): { targets: Int32Array; time: number } {
  const next = rng(seed);
  const time = Math.max(...rows.map((row) => row.length));
  const targets = new Int32Array(rows.length * time).fill(-1);
  rows.forEach((row, b) => {
    for (let t = 1; t < row.length; t++) if (next() > 0.2) targets[b * time + t] = Math.min(vocab - 1, Math.floor(next() * vocab));
  });
  return { targets, time };
}

/** max |got - want| over the valid positions / max |want|; positions past a row's length must be exactly 0. */
function logitsRelativeError(got: Float32Array, want: Float64Array[][], rows: readonly (readonly number[])[], vocab: number): number {
  const time = Math.max(...rows.map((row) => row.length));
  let maxError = 0;
  let maxLogit = 0;
  rows.forEach((row, b) => {
    for (let t = 0; t < time; t++) {
      for (let v = 0; v < vocab; v++) {
        const value = got[(b * time + t) * vocab + v] as number;
        if (t >= row.length) {
          if (value !== 0) throw new Error(`logits[${b}, ${t}, ${v}] = ${value} past the row's length ${row.length}`);
          continue;
        }
        const expected = want[b][t][v];
        maxError = Math.max(maxError, Math.abs(value - expected));
        maxLogit = Math.max(maxLogit, Math.abs(expected));
      }
    }
  });
  expect(maxLogit).toBeGreaterThan(0.1);
  return maxError / maxLogit;
}

async function forwardArray(model: CausalLM, rows: readonly (readonly number[])[]): Promise<Float32Array> {
  const logits = await model.forward(rows);
  const data = logits.toArray() as Float32Array;
  logits.dispose();
  return data;
}

function toFloat32(t: Tensor): Float32Array {
  const data = t.toArray() as Float32Array;
  t.dispose();
  return data;
}

/** A copy of a model directory with edits: tensors of model.safetensors replaced, config.json fields changed. */
async function editedCopy(
  source: string,
  target: string,
  edit: { tensors?: (tensors: Map<string, SafetensorsTensor>) => void; config?: (json: Record<string, unknown>) => void },
): Promise<void> {
  await mkdir(target, { recursive: true });
  for (const file of await readdir(source)) await copyFile(join(source, file), join(target, file));
  if (edit.tensors) {
    const file = await readSafetensors(join(source, 'model.safetensors'));
    edit.tensors(file.tensors);
    await writeFile(join(target, 'model.safetensors'), encodeSafetensors(file.tensors, file.metadata));
  }
  if (edit.config) {
    const json = JSON.parse(await readFile(join(source, 'config.json'), 'utf8')) as Record<string, unknown>;
    edit.config(json);
    await writeFile(join(target, 'config.json'), JSON.stringify(json));
  }
}


let root: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir: root, cleanup } = await temporaryDirectory('napo-models-'));
});
afterAll(async () => {
  await cleanup();
});

for (const [familyIndex, { label, config }] of families.entries()) {
  describe(label, () => {
    const V = config.vocabSize;
    const tokenizer = new CharTokenizer(alphabet);
    let dir: string;
    let written: WrittenCheckpoint;
    let model: CausalLM;

    beforeAll(async () => {
      dir = join(root, `${config.family}-f32`);
      written = await writeHFCheckpoint(dir, config, { seed: 3 + familyIndex, std: 0.3 });
      await tokenizer.save(dir);
      ({ model } = await fromPretrained(dir));
    });
    afterAll(() => {
      model.dispose();
    });

    it('fromPretrained reads the config.json the checkpoint carries', () => {
      expect(model.config).toEqual(config);
      expect(model.checkpointDtype).toBe('float32');
      expect(model.parameters().some((p) => p.name === 'lm_head.weight')).toBe(!config.tieWordEmbeddings);
    });

    it('forward matches the float64 reference on a ragged batch (relative error <= 1e-4)', async () => {
      const rows = raggedRows(V, 1);
      const logits = await model.forward(rows);
      expect(logits.shape).toEqual([3, 7, V]);
      const got = toFloat32(logits);
      expect(logitsRelativeError(got, referenceForward(config, written.tensors, rows), rows, V)).toBeLessThanOrEqual(1e-4);
    });

    it('score: log-probs and entropies of log_softmax(forward logits / temperature), 0 where not scored', async () => {
      const rows = raggedRows(V, 2);
      const { targets, time } = randomTargets(rows, V, 5);
      const logits = await forwardArray(model, rows);
      for (const temperature of [1, 0.7, 1.6]) {
        const scores = await model.score(rows, targets, { temperature, entropy: true });
        expect(scores.logprobs.shape).toEqual([3, time]);
        expect(scores.entropy?.shape).toEqual([3, time]);
        const logprobs = toFloat32(scores.logprobs);
        const entropy = toFloat32(scores.entropy as Tensor);
        let maxError = 0;
        let scored = 0;
        for (let b = 0; b < rows.length; b++) {
          for (let t = 0; t < time; t++) {
            const at = b * time + t;
            const target = targets[at] as number;
            if (target < 0) {
              expect(logprobs[at]).toBe(0);
              expect(entropy[at]).toBe(0);
              continue;
            }
            scored++;
            const want = logSoftmax(logits.subarray(at * V, (at + 1) * V), temperature);
            maxError = Math.max(maxError, Math.abs((logprobs[at] as number) - want.logp[target]), Math.abs((entropy[at] as number) - want.entropy));
          }
        }
        expect(scored).toBeGreaterThan(5);
        expect(maxError, `temperature ${temperature}`).toBeLessThanOrEqual(1e-4);
      }
      const plain = await model.score(rows, targets);
      expect(plain.entropy).toBeUndefined();
      plain.logprobs.dispose();
    });

    it('KV-cache decoding equals the full forward: ragged prompts, an inactive row, the cache filled to capacity', async () => {
      const prompts = raggedRows(V, 3, [3, 1, 4]);
      const fed = [randomTokens(4, V, 31), randomTokens(4, V, 32), randomTokens(4, V, 33)];
      // Row 1 sits out step 1: that token is not part of its sequence.
      const active = [
        [true, true, true, true],
        [true, false, true, true],
        [true, true, true, true],
      ];
      const sequences = prompts.map((prompt, b) => [...prompt, ...fed[b].filter((_, s) => active[b][s])]);
      const full = await forwardArray(model, sequences);
      const T = Math.max(...sequences.map((s) => s.length));
      let maxError = 0;
      let maxLogit = 0;
      const compare = (logits: Float32Array, b: number, t: number) => {
        for (let v = 0; v < V; v++) {
          const want = full[(b * T + t) * V + v] as number;
          maxError = Math.max(maxError, Math.abs((logits[b * V + v] as number) - want));
          maxLogit = Math.max(maxLogit, Math.abs(want));
        }
      };
      // Exactly the room the four steps need: the longest prompt plus four tokens.
      const capacity = 4 + 4;
      const first = await model.prefill(prompts, { capacity });
      expect(first.shape).toEqual([3, V]);
      const firstData = toFloat32(first);
      prompts.forEach((prompt, b) => compare(firstData, b, prompt.length - 1));
      const positions = prompts.map((p) => p.length);
      positions.forEach((p, b) => expect(model.cachePosition(b)).toBe(p));
      for (let step = 0; step < 4; step++) {
        const mask = active.map((row) => row[step]);
        const logits = toFloat32(await model.decodeStep(fed.map((row) => row[step]), { active: mask }));
        prompts.forEach((_, b) => {
          if (!mask[b]) {
            expect(logits.subarray(b * V, (b + 1) * V).every((v) => v === 0)).toBe(true);
            return;
          }
          compare(logits, b, positions[b]);
          positions[b]++;
        });
      }
      positions.forEach((p, b) => expect(model.cachePosition(b)).toBe(p));
      expect(model.cachePosition(3)).toBe(-1);
      expect(maxError / maxLogit).toBeLessThanOrEqual(1e-4);
      // Row 2 (4 + 4 tokens) is full; the next step is refused and the cache is left as it was.
      await expect(model.decodeStep([1, 1, 1])).rejects.toThrow(/decodeStep: row 2 already holds 8 tokens, the cache's capacity/);
      positions.forEach((p, b) => expect(model.cachePosition(b)).toBe(p));
    });

    it('gradients of score -> scoreBackward match central differences of the float64 reference, and forward -> backward agrees', async () => {
      const rows = raggedRows(V, 4, [5, 3]);
      const { targets, time } = randomTargets(rows, V, 6);
      const next = rng(40 + familyIndex);
      // loss = sum c * logprob + sum e * entropy over the scored positions; c and e are garbage elsewhere (ignored).
      const c = new Float32Array(targets.length).map(() => 2 * next() - 1);
      const e = new Float32Array(targets.length).map(() => next() - 0.5);
      const temperature = 0.8;
      const trained = await model.clone();
      const scores = await trained.score(rows, targets, { temperature, entropy: true });
      scores.logprobs.dispose();
      scores.entropy?.dispose();
      await trained.scoreBackward(tensor(c, [rows.length, time]), tensor(e, [rows.length, time]));
      const scoreGrads = new Map(trained.parameters().map(({ name }) => [name, trained.getGradient(name)]));

      const tensors = new Map([...written.tensors].map(([name, values]) => [name, Float64Array.from(values)]));
      const loss = (): number => {
        const out = referenceForward(config, tensors, rows);
        let total = 0;
        rows.forEach((row, b) => {
          for (let t = 0; t < row.length; t++) {
            const at = b * time + t;
            const target = targets[at] as number;
            if (target < 0) continue;
            const { logp, entropy } = logSoftmax(out[b][t], temperature);
            total += (c[at] as number) * logp[target] + (e[at] as number) * entropy;
          }
        });
        return total;
      };
      const h = 1e-5;
      let checked = 0;
      let worst = { rel: 0, where: '' };
      for (const info of trained.parameters()) {
        const grad = scoreGrads.get(info.name) as Float32Array;
        expect(grad.some((g) => g !== 0), `${info.name} has a gradient`).toBe(true);
        const values = tensors.get(info.name) as Float64Array;
        expect(values, info.name).toBeDefined();
        let largest = 0;
        grad.forEach((g, i) => {
          if (Math.abs(g) > Math.abs(grad[largest] as number)) largest = i;
        });
        // Entries far below the parameter's largest are compared against a floor of 5% of it (float32 noise).
        const floor = Math.max(0.05 * Math.abs(grad[largest] as number), 1e-6);
        for (const index of [largest, Math.floor(next() * grad.length), Math.floor(next() * grad.length)]) {
          const at = checkpointIndex(info, index);
          const saved = values[at];
          values[at] = saved + h;
          const up = loss();
          values[at] = saved - h;
          const down = loss();
          values[at] = saved;
          const numeric = (up - down) / (2 * h);
          const analytic = grad[index] as number;
          const rel = Math.abs(numeric - analytic) / Math.max(Math.abs(numeric), Math.abs(analytic), floor);
          if (rel > worst.rel) worst = { rel, where: `${info.name}[${index}]: native ${analytic}, numeric ${numeric}` };
          checked++;
        }
      }
      expect(checked).toBe(3 * trained.parameters().length);
      expect(worst.rel, worst.where).toBeLessThanOrEqual(1e-3);

      // The unfused path: d loss / d logits by hand, then backward.
      trained.zeroGrad();
      const logits = await trained.forward(rows);
      const z = logits.toArray() as Float32Array;
      logits.dispose();
      const gradLogits = new Float32Array(z.length);
      rows.forEach((row, b) => {
        for (let t = 0; t < row.length; t++) {
          const at = b * time + t;
          const target = targets[at] as number;
          if (target < 0) continue;
          const { logp, entropy } = logSoftmax(z.subarray(at * V, (at + 1) * V), temperature);
          for (let v = 0; v < V; v++) {
            const p = Math.exp(logp[v]);
            const dLogprob = ((v === target ? 1 : 0) - p) / temperature;
            const dEntropy = (-p * (logp[v] + entropy)) / temperature;
            gradLogits[at * V + v] = (c[at] as number) * dLogprob + (e[at] as number) * dEntropy;
          }
        }
      });
      await trained.backward(tensor(gradLogits, [rows.length, time, V]));
      for (const { name } of trained.parameters()) {
        const want = scoreGrads.get(name) as Float32Array;
        const got = trained.getGradient(name);
        const scale = want.reduce((m, g) => Math.max(m, Math.abs(g)), 0);
        const diff = got.reduce((m, g, i) => Math.max(m, Math.abs(g - (want[i] as number))), 0);
        expect(diff, name).toBeLessThanOrEqual(1e-4 * scale + 1e-7);
      }
      trained.dispose();
    });

    for (const dtype of ['bfloat16', 'float16'] as const) {
      it(`loads a ${dtype} checkpoint in 3 shards with an index, holding the stored values`, async () => {
        const shardDir = join(root, `${config.family}-${dtype}-sharded`);
        const stored = await writeHFCheckpoint(shardDir, config, { dtype, shards: 3, seed: 10 + familyIndex, std: 0.3 });
        await tokenizer.save(shardDir);
        const files = await readdir(shardDir);
        expect(files.filter((f) => /^model-0000[1-3]-of-00003\.safetensors$/.test(f))).toHaveLength(3);
        expect(files).toContain('model.safetensors.index.json');
        const { model: loaded } = await fromPretrained(shardDir);
        expect(loaded.checkpointDtype).toBe(dtype);
        for (const info of loaded.parameters()) {
          const want = toModelLayout(info, stored.tensors.get(info.name) as Float64Array);
          expect(Array.from(loaded.getParameter(info.name)), info.name).toEqual(Array.from(want));
        }
        const rows = raggedRows(V, 7);
        const got = await forwardArray(loaded, rows);
        expect(logitsRelativeError(got, referenceForward(config, stored.tensors, rows), rows, V)).toBeLessThanOrEqual(1e-4);
        loaded.dispose();
      });
    }

    it('save -> fromPretrained: identical logits, a config.json configFromHF reads, shards with an index when maxShardBytes asks', async () => {
      const rows = raggedRows(V, 8);
      const want = await forwardArray(model, rows);
      const saved = join(root, `${config.family}-saved`);
      await model.save(saved, { tokenizer });
      const hfConfig = JSON.parse(await readFile(join(saved, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(configFromHF(hfConfig)).toEqual(config);
      expect(hfConfig.torch_dtype).toBe('float32');
      expect(hfConfig.eos_token_id).toBe(tokenizer.eos);
      expect(await readdir(saved)).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'napo_tokenizer.json', 'generation_config.json']));
      const reader = await SafetensorsReader.open(join(saved, 'model.safetensors'));
      expect(reader.names().sort()).toEqual([...written.tensors.keys()].sort());
      expect(reader.metadata.format).toBe('pt');
      await reader.close();
      const { model: reloaded, tokenizer: reloadedTokenizer } = await fromPretrained(saved);
      expect(reloadedTokenizer.decode(reloadedTokenizer.encode('abc'))).toBe('abc');
      expect(sameBits(await forwardArray(reloaded, rows), want)).toBe(true);
      reloaded.dispose();

      const sharded = join(root, `${config.family}-saved-sharded`);
      await model.save(sharded, { tokenizer, maxShardBytes: 4096 });
      const files = await readdir(sharded);
      expect(files).not.toContain('model.safetensors');
      const shardFiles = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
      expect(shardFiles.length).toBeGreaterThan(1);
      const index = JSON.parse(await readFile(join(sharded, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
      expect(Object.keys(index.weight_map).sort()).toEqual(model.parameters().map((p) => p.name).sort());
      expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shardFiles));
      const fresh = CausalLM.create(config, { initialize: false });
      await fresh.load(sharded);
      expect(sameBits(await forwardArray(fresh, rows), want)).toBe(true);
      fresh.dispose();
    });

    it('save({ dtype: bfloat16 }) writes BF16 tensors that load back as the rounded weights', async () => {
      const saved = join(root, `${config.family}-saved-bf16`);
      await model.save(saved, { dtype: 'bfloat16', tokenizer });
      const hfConfig = JSON.parse(await readFile(join(saved, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(hfConfig.torch_dtype).toBe('bfloat16');
      const file = await readSafetensors(join(saved, 'model.safetensors'));
      expect([...file.tensors.values()].every((t) => t.dtype === 'BF16')).toBe(true);
      const { model: reloaded } = await fromPretrained(saved);
      expect(reloaded.checkpointDtype).toBe('bfloat16');
      for (const { name } of model.parameters()) {
        const rounded = Array.from(model.getParameter(name), (x) => fromBfloat16Bits(toBfloat16Bits(x)));
        expect(Array.from(reloaded.getParameter(name)), name).toEqual(rounded);
      }
      reloaded.dispose();
    });

    it('step({ gradScale }): the accumulated gradients scaled before the norm and the clip, as halving them would', async () => {
      const rows = raggedRows(V, 5);
      const { targets, time } = randomTargets(rows, V, 5);
      const next = rng(21);
      const grad = new Float32Array(targets.length).map(() => next() - 0.5);
      const stepWith = async (factor: number, gradScale: number) => {
        const m = await model.clone();
        const scores = await m.score(rows, targets);
        scores.logprobs.dispose();
        m.zeroGrad();
        await m.scoreBackward(tensor(grad.map((g) => g * factor), [rows.length, time]));
        const result = await m.step({ lr: 1e-2, maxGradNorm: 0.05, gradScale });
        const weights = m.parameters().map(({ name }) => m.getParameter(name));
        m.dispose();
        return { result, weights };
      };
      const scaled = await stepWith(1, 0.5);
      const halved = await stepWith(0.5, 1);
      expect(scaled.result.gradNorm).toBeCloseTo(halved.result.gradNorm, 6);
      scaled.weights.forEach((w, i) => w.forEach((v, j) => expect(v).toBeCloseTo(halved.weights[i]![j]!, 6)));
      await expect(model.step({ lr: 1e-3, gradScale: -1 })).rejects.toThrow(/gradScale = -1 must be > 0/);
    });

    it('blendFrom: w = alpha * source + (1 - alpha) * w per parameter; alpha 1 copies; a different shape is refused', async () => {
      const source = await model.clone();
      const target = await model.clone();
      const name = (source.parameters().at(-1) as { name: string }).name;
      const shifted = source.getParameter(name).map((w) => w + 1);
      source.setParameter(name, shifted);
      const before = target.getParameter(name);
      await target.blendFrom(source, 0.25);
      const blended = target.getParameter(name);
      blended.forEach((w, i) => expect(w).toBeCloseTo(0.25 * (shifted[i] as number) + 0.75 * (before[i] as number), 6));
      await target.blendFrom(source, 1);
      expect(sameBits(target.getParameter(name), shifted)).toBe(true);
      await expect(target.blendFrom(source, 0)).rejects.toThrow(/blendFrom: alpha = 0 must be in \(0, 1\]/);
      const other = CausalLM.create({ ...config, numLayers: 1 });
      await expect(target.blendFrom(other, 0.5)).rejects.toThrow(/blendFrom: the source's parameters .* do not match/);
      [source, target, other].forEach((m) => m.dispose());
    });

    it('save({ optimizer: true }) after a step resumes exactly: the next step gives identical parameters', async () => {
      const run = await model.clone();
      const rows = raggedRows(V, 9);
      const { targets, time } = randomTargets(rows, V, 9);
      const step = async (m: CausalLM, seed: number) => {
        const next = rng(seed);
        const scores = await m.score(rows, targets);
        scores.logprobs.dispose();
        m.zeroGrad();
        await m.scoreBackward(tensor(new Float32Array(targets.length).map(() => next() - 0.5), [rows.length, time]));
        return m.step({ lr: 1e-2, weightDecay: 0.1, maxGradNorm: 0.5 });
      };
      expect((await step(run, 1)).step).toBe(1);
      const saved = join(root, `${config.family}-saved-optimizer`);
      await run.save(saved, { optimizer: true });
      expect(await readdir(saved)).toContain('optimizer.safetensors');
      const resumed = CausalLM.create(config, { initialize: false });
      await resumed.load(saved);
      expect(resumed.optimizerSteps).toBe(1);
      expect((await step(run, 2)).step).toBe(2);
      expect((await step(resumed, 2)).step).toBe(2);
      const want = weightsOf(run);
      for (const [name, values] of weightsOf(resumed)) expect(sameBits(values, want.get(name) as Float32Array), name).toBe(true);
      run.dispose();
      resumed.dispose();
    });

    it('bad checkpoints: the error names the file and the tensor or field', async () => {
      const names = [...written.tensors.keys()];
      // A tensor particular to each config.
      const victim = {
        gpt2: 'lm_head.weight',
        llama: 'model.layers.1.mlp.down_proj.weight',
        qwen2: 'model.layers.1.self_attn.k_proj.bias',
        qwen3: 'model.layers.1.self_attn.k_norm.weight',
      }[config.family];
      expect(names).toContain(victim);
      const target = CausalLM.create(config, { initialize: false });
      const bad = (name: string) => join(root, `${config.family}-bad-${name}`);

      await editedCopy(dir, bad('missing'), { tensors: (t) => t.delete(victim) });
      await expect(target.load(bad('missing'))).rejects.toThrow(new RegExp(`${escapeRegExp(join(bad('missing'), 'model.safetensors'))}: .*no tensor ${escapeRegExp(victim)}`));
      await expect(fromPretrained(bad('missing'))).rejects.toThrow(new RegExp(`model\\.safetensors: .*no tensor ${escapeRegExp(victim)}`));

      await editedCopy(dir, bad('shape'), {
        tensors: (t) => {
          const original = t.get(victim) as SafetensorsTensor;
          const shape = [...original.shape];
          shape[0]++;
          const count = shape.reduce((a, b) => a * b, 1);
          t.set(victim, { dtype: 'F32', shape, data: new Float32Array(count) });
        },
      });
      await expect(target.load(bad('shape'))).rejects.toThrow(
        new RegExp(`${escapeRegExp(join(bad('shape'), 'model.safetensors'))}: ${escapeRegExp(victim)} has shape \\[.*\\], the model expects \\[`),
      );

      await editedCopy(dir, bad('extra'), {
        tensors: (t) => t.set('model.layers.7.mlp.surprise.weight', { dtype: 'F32', shape: [2], data: new Float32Array(2) }),
      });
      await expect(target.load(bad('extra'))).rejects.toThrow(
        new RegExp(`${escapeRegExp(join(bad('extra'), 'model.safetensors'))}: tensors this ${config.family} model does not have: model\\.layers\\.7\\.mlp\\.surprise\\.weight \\(model\\.safetensors\\)`),
      );

      await editedCopy(dir, bad('truncated'), {});
      const weights = join(bad('truncated'), 'model.safetensors');
      const size = (await readFile(weights)).length;
      await truncate(weights, size - 10);
      // The tensor stored last (the file orders them by name) is the one cut short.
      const last = names.slice().sort().pop() as string;
      await expect(target.load(bad('truncated'))).rejects.toThrow(new RegExp(`${escapeRegExp(weights)}: ${escapeRegExp(last)} .*truncated`));

      await editedCopy(dir, bad('model-type'), { config: (json) => (json.model_type = 'mamba') });
      await expect(fromPretrained(bad('model-type'))).rejects.toThrow(/config\.json: model_type = "mamba" is not supported/);
      await expect(target.load(bad('model-type'))).rejects.toThrow(/config\.json: model_type = "mamba"/);

      await editedCopy(dir, bad('no-config'), {});
      await writeFile(join(bad('no-config'), 'config.json'), '');
      await expect(fromPretrained(bad('no-config'))).rejects.toThrow(new RegExp(`${escapeRegExp(join(bad('no-config'), 'config.json'))}: not valid JSON`));
      await rm(join(bad('no-config'), 'config.json'));
      await expect(fromPretrained(bad('no-config'))).rejects.toThrow(new RegExp(`${escapeRegExp(join(bad('no-config'), 'config.json'))}: cannot be read \\(ENOENT\\)`));
      await expect(target.load(bad('no-config'))).rejects.toThrow(/config\.json: cannot be read/);

      await editedCopy(dir, bad('field'), { config: (json) => (json.vocab_size = 'many') });
      await expect(fromPretrained(bad('field'))).rejects.toThrow(/config\.json: vocab_size = "many" must be a number/);

      // A checkpoint of another shape is refused before any weight is read.
      await editedCopy(dir, bad('wider'), { config: (json) => (json.vocab_size = 41) });
      await expect(target.load(bad('wider'))).rejects.toThrow(/another shape: vocabSize = 41, this model has 37/);

      // None of these left a half-loaded model behind: the target still loads the good checkpoint.
      await target.load(dir);
      const rows = raggedRows(V, 11);
      expect(sameBits(await forwardArray(target, rows), await forwardArray(model, rows))).toBe(true);
      target.dispose();
    });

    it('bad inputs give clear errors, and the model keeps working', async () => {
      const m = await model.clone();
      await expect(m.forward([[1, V]])).rejects.toThrow(new RegExp(`tokens\\[0, 1\\] = ${V} is out of range for vocab ${V}`));
      await expect(m.forward([[1, -1]])).rejects.toThrow(/tokens\[0, 1\] = -1 is out of range/);
      await expect(m.forward([[1, 2.5]])).rejects.toThrow(/tokens\[0\]\[1\] = 2.5 is not an integer/);
      await expect(m.forward([Array.from({ length: config.maxPositions + 1 }, () => 1)])).rejects.toThrow(
        new RegExp(`sequence length ${config.maxPositions + 1} is longer than maxPositions ${config.maxPositions}`),
      );
      await expect(m.forward([])).rejects.toThrow(/the batch is empty/);
      await expect(m.forward([[]])).rejects.toThrow(/tokens\[0\] is empty/);
      await expect(m.score([], new Int32Array(0))).rejects.toThrow(/score: the batch is empty/);
      await expect(m.forward(tensor(new Int32Array([1, 2]), [1, 2]), { lengths: [3] })).rejects.toThrow(/lengths\[0\] = 3 must be in \[1, 2\]/);
      // A target at position 3 of a row of 3 tokens: there is no such position to score.
      await expect(m.score([[1, 2, 3, 4], [1, 2, 3]], Int32Array.from([1, 2, 3, 4, -1, -1, -1, 5]))).rejects.toThrow(
        /targets\[1, 3\] = 5 is past the row's length 3/,
      );
      await expect(m.score([[1, 2]], Int32Array.from([1, V]))).rejects.toThrow(new RegExp(`targets\\[0, 1\\] = ${V} must be -1 \\(not scored\\) or in \\[0, ${V}\\)`));
      await expect(m.score([[1, 2]], Int32Array.from([1]))).rejects.toThrow(/targets has 1 values/);
      await expect(m.score([[1, 2]], Int32Array.from([1, 2]), { temperature: 0 })).rejects.toThrow(/temperature = 0 must be > 0/);
      await expect(m.scoreBackward(tensor(new Float32Array(2), [1, 2]))).rejects.toThrow(/no scores to differentiate; call score first/);
      await expect(m.backward(tensor(new Float32Array(V), [1, 1, V]))).rejects.toThrow(/no logits to differentiate; call forward first/);
      await expect(m.decodeStep([1])).rejects.toThrow(/the KV cache is empty; call prefill first/);

      (await m.forward([[1, 2]])).dispose();
      await expect(m.backward(tensor(new Float32Array(V), [1, 1, V]))).rejects.toThrow(new RegExp(`gradLogits has shape \\[1, 1, ${V}\\], expected \\[1, 2, ${V}\\]`));
      await m.backward(tensor(new Float32Array(2 * V), [1, 2, V]));
      await expect(m.backward(tensor(new Float32Array(2 * V), [1, 2, V]))).rejects.toThrow(/call forward first/);
      (await m.score([[1, 2]], Int32Array.from([-1, 3]))).logprobs.dispose();
      await expect(m.scoreBackward(tensor(new Float32Array(2), [1, 2]), tensor(new Float32Array(2), [1, 2]))).rejects.toThrow(
        /gradEntropy needs a score that computed the entropy/,
      );

      await expect(m.prefill([[1, 2, 3]], { capacity: 2 })).rejects.toThrow(/capacity = 2 must be in \[3 \(the prompts' length\)/);
      await expect(m.prefill([[1, 2, 3]], { capacity: config.maxPositions + 1 })).rejects.toThrow(/capacity = \d+ must be in/);
      (await m.prefill([[1, 2, 3]], { capacity: 4 })).dispose();
      await expect(m.decodeStep([1, 2])).rejects.toThrow(/tokens must be \[1\] \(the prefilled batch\), got \[2\]/);
      await expect(m.decodeStep([V])).rejects.toThrow(/tokens\[0\] = 37 is out of range/);
      await expect(m.decodeStep([1], { active: [true, false] })).rejects.toThrow(/active has 2 entries, tokens 1/);
      (await m.decodeStep([1])).dispose();
      await expect(m.decodeStep([1])).rejects.toThrow(/row 0 already holds 4 tokens, the cache's capacity/);

      await expect(m.step({ lr: -1 })).rejects.toThrow(/lr = -1 must be >= 0/);
      await expect(m.step({ lr: 1, beta1: 1 })).rejects.toThrow(/beta1 = 1 must be in \[0, 1\)/);
      expect(() => m.getParameter('nope')).toThrow(/no parameter named "nope"/);
      const first = m.parameters()[0];
      expect(() => m.setParameter(first.name, new Float32Array(3))).toThrow(/data has 12 bytes/);
      const poisoned = m.getParameter(first.name);
      poisoned[5] = Number.NaN;
      expect(() => m.setParameter(first.name, poisoned)).toThrow(new RegExp(`${escapeRegExp(first.name)}\\[5\\] = nan is not finite`));

      // One call at a time.
      const pending = m.forward([[1, 2]]);
      expect(() => m.zeroGrad()).toThrow(/busy/);
      await expect(m.forward([[1]])).rejects.toThrow(/busy/);
      (await pending).dispose();

      // Still a working model, with its weights untouched by the refused calls.
      const rows = raggedRows(V, 12);
      expect(sameBits(await forwardArray(m, rows), await forwardArray(model, rows))).toBe(true);
      m.dispose();
      await expect(m.forward([[1]])).rejects.toThrow(/the model was disposed/);
      m.dispose();
    });
  });
}

describe('gpt2 checkpoints without the transformer. prefix', () => {
  it('load (tied lm_head, float16) and match the reference', async () => {
    const config = smallConfig({ family: 'gpt2' });
    const dir = join(root, 'gpt2-no-prefix');
    const written = await writeHFCheckpoint(dir, config, { omitPrefix: true, dtype: 'float16', seed: 21, std: 0.3 });
    await new CharTokenizer(alphabet).save(dir);
    const stored = await SafetensorsReader.open(join(dir, 'model.safetensors'));
    const names = stored.names();
    await stored.close();
    expect(names).toContain('wte.weight');
    expect(names.some((name) => name.startsWith('transformer.'))).toBe(false);
    const { model } = await fromPretrained(dir);
    expect(model.config.tieWordEmbeddings).toBe(true);
    const rows = raggedRows(config.vocabSize, 13);
    const got = await forwardArray(model, rows);
    expect(logitsRelativeError(got, referenceForward(config, written.tensors, rows), rows, config.vocabSize)).toBeLessThanOrEqual(1e-4);
    // Saved back with the full names, as transformers writes them.
    await model.save(join(dir, 'resaved'));
    const reader = await SafetensorsReader.open(join(dir, 'resaved', 'model.safetensors'));
    expect(reader.names()).toContain('transformer.wte.weight');
    expect(reader.info('transformer.h.0.attn.c_attn.weight')?.shape).toEqual([16, 48]);
    await reader.close();
    model.dispose();
  });
});

describe('bad sharded checkpoints', () => {
  it('name the index or the shard and the tensor', async () => {
    const config = smallConfig({ family: 'qwen2', numKvHeads: 2 });
    const dir = join(root, 'qwen2-bad-shards');
    await writeHFCheckpoint(dir, config, { shards: 3, seed: 30 });
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(await readFile(indexPath, 'utf8')) as { weight_map: Record<string, string> };
    const model = CausalLM.create(config, { initialize: false });
    await model.load(dir);

    // The index points a tensor at a shard that does not hold it.
    const victim = 'model.layers.0.self_attn.q_proj.bias';
    const home = index.weight_map[victim];
    const elsewhere = Object.values(index.weight_map).find((file) => file !== home) as string;
    await writeFile(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, [victim]: elsewhere } }));
    await expect(model.load(dir)).rejects.toThrow(new RegExp(`${escapeRegExp(join(dir, elsewhere))}: no tensor ${escapeRegExp(victim)} \\(the index names this file\\)`));
    // The index lacks it.
    const { [victim]: _, ...rest } = index.weight_map;
    await writeFile(indexPath, JSON.stringify({ ...index, weight_map: rest }));
    await expect(model.load(dir)).rejects.toThrow(new RegExp(`${escapeRegExp(indexPath)}: the checkpoint has no tensor ${escapeRegExp(victim)}`));
    // The index names a shard that is not there.
    await writeFile(indexPath, JSON.stringify({ ...index, weight_map: { ...index.weight_map, [victim]: 'model-00009-of-00009.safetensors' } }));
    await expect(model.load(dir)).rejects.toThrow(/model-00009-of-00009\.safetensors/);
    await writeFile(indexPath, JSON.stringify({ metadata: {} }));
    await expect(model.load(dir)).rejects.toThrow(new RegExp(`${escapeRegExp(indexPath)}: weight_map is missing`));
    await writeFile(indexPath, JSON.stringify(index));
    await model.load(dir);
    model.dispose();
  });
});

describe('config errors', () => {
  it('name the field and the value', () => {
    const llama = smallConfig({ family: 'llama' });
    expect(() => CausalLM.create({ ...llama, numKvHeads: 3 })).toThrow(/numKvHeads = 3 must divide numHeads = 4/);
    expect(() => CausalLM.create({ ...llama, numKvHeads: 8 })).toThrow(/numKvHeads = 8 must be in \[1, 4\]/);
    expect(() => CausalLM.create({ ...llama, headDim: 5 })).toThrow(/headDim = 5 must be even for RoPE/);
    expect(() => CausalLM.create({ ...llama, vocabSize: 0 })).toThrow(/vocabSize = 0 must be in/);
    expect(() => CausalLM.create({ ...llama, normEps: 0 })).toThrow(/normEps = 0 must be > 0/);
    expect(() => CausalLM.create({ family: 'gpt2', vocabSize: 5, hiddenSize: 16, numHeads: 3 })).toThrow(/gpt2 needs hiddenSize \(16\) divisible by numHeads \(3\)/);
    if (backendInfo().cuda.available) {
      expect(() => CausalLM.create({ ...llama, hiddenSize: 512, numHeads: 2, numKvHeads: 1, headDim: 256, device: 'cuda:0' })).toThrow(
        /headDim = 256 is above 128, the most the CUDA attention kernel holds/,
      );
    } else {
      expect(() => CausalLM.create({ ...llama, device: 'cuda:0' })).toThrow(/model: cuda:0 is not available \(0 CUDA devices: .*\); create the model on 'cpu'/);
    }
    expect(() => CausalLM.create({ ...llama, family: 'mamba' as ModelConfig['family'] })).toThrow(/family = "mamba" must be one of gpt2, llama, qwen2, qwen3/);
    const { vocab_size: _, ...noVocab } = configFromHFBase();
    expect(() => configFromHF(noVocab)).toThrow(/config\.json: vocab_size is missing/);
    expect(() => configFromHF({ ...configFromHFBase(), hidden_act: 'gelu' })).toThrow(/hidden_act = "gelu"/);
    expect(() => configFromHF({ ...configFromHFBase(), rope_scaling: { rope_type: 'yarn', factor: 2 } })).toThrow(/rope_scaling type "yarn" is not supported/);
  });
});

function configFromHFBase(): Record<string, unknown> {
  return { model_type: 'llama', vocab_size: 37, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 4, max_position_embeddings: 32 };
}

describe('GRPO-style smoke test', () => {
  it('a few optimizer steps raising the log-probs of a fixed completion lower the loss', async () => {
    const config = smallConfig({ family: 'llama', numKvHeads: 2, initializerRange: 0.1, seed: 7 });
    const model = CausalLM.create(config);
    const prompt = [3, 9, 4];
    const completion = [17, 2, 30, 11, 5];
    const row = [...prompt, ...completion];
    // Four copies of the group with advantages +1: the completion's tokens are the targets after the prompt.
    const rows = Array.from({ length: 4 }, () => row.slice(0, -1));
    const time = row.length - 1;
    const targets = new Int32Array(rows.length * time).fill(-1);
    for (let b = 0; b < rows.length; b++) for (let t = prompt.length - 1; t < time; t++) targets[b * time + t] = row[t + 1];
    const scored = targets.filter((t) => t >= 0).length;
    const losses: number[] = [];
    for (let step = 0; step < 8; step++) {
      const { logprobs } = await model.score(rows, targets);
      const lp = toFloat32(logprobs);
      losses.push(-lp.reduce((a, b) => a + b, 0) / scored);
      // loss = -mean logprob over the scored tokens.
      const grad = Float32Array.from(targets, (t) => (t >= 0 ? -1 / scored : 0));
      model.zeroGrad();
      await model.scoreBackward(tensor(grad, [rows.length, time]));
      const result = await model.step({ lr: 2e-2, weightDecay: 0 });
      expect(result.step).toBe(step + 1);
      expect(Number.isFinite(result.gradNorm)).toBe(true);
    }
    expect(losses[0]).toBeGreaterThan(Math.log(config.vocabSize) - 1);
    expect(losses[7]).toBeLessThan(0.5 * losses[0]);
    expect(Math.max(...losses.slice(1))).toBeLessThan(losses[0]);
    model.dispose();
  });
});

/**
 * Hugging Face model directories in and out: config.json, model.safetensors (or shards with
 * model.safetensors.index.json), generation_config.json and the tokenizer's files; napo adds
 * optimizer.safetensors when a save carries the optimizer state. Weights are read one tensor at a
 * time and written one tensor at a time, so neither direction holds a whole checkpoint in JS.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';

import { configFromHF, configToHF, type CheckpointDtype, type ModelConfig } from './config.js';
import type { CausalLM } from './model.js';
import { storageDtypeCodes, type NativeModelHandle } from './native.js';
import type { SaveOptions } from './policy.js';
import { SafetensorsReader, writeSafetensors, type LazyTensor, type SafetensorsDtype, type SafetensorsTensor } from './safetensors.js';

const weightsFile = 'model.safetensors';
const indexFile = 'model.safetensors.index.json';
const optimizerFile = 'optimizer.safetensors';
const optimizerKeys = { expAvg: 'exp_avg', expAvgSq: 'exp_avg_sq', steps: 'napo.optimizer_steps' } as const;
const defaultMaxShardBytes = 5e9;

type WeightDtype = Exclude<SafetensorsDtype, 'I32'>;
const safetensorsDtypes: Record<CheckpointDtype, WeightDtype> = { float32: 'F32', bfloat16: 'BF16', float16: 'F16' };
const storageOf: Record<WeightDtype, keyof typeof storageDtypeCodes> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' };

/** Buffers some checkpoints carry that are not parameters (recomputed by the model). */
function isBuffer(name: string): boolean {
  return /\.attn\.(masked_)?bias$/.test(name) || name.endsWith('rotary_emb.inv_freq');
}

export async function readJsonFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new RangeError(`${path}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new RangeError(`${path}: not valid JSON (${(error as Error).message})`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new RangeError(`${path}: must hold a JSON object`);
  return value as Record<string, unknown>;
}

/** The weight files of a directory, which tensor lives in which, and the file that lists the tensors (the index or the single file). */
async function weightFiles(dir: string): Promise<{ files: Map<string, string>; listing: string }> {
  const indexPath = join(dir, indexFile);
  if (existsSync(indexPath)) {
    const index = await readJsonFile(indexPath);
    const map = index.weight_map;
    if (!map || typeof map !== 'object') throw new RangeError(`${indexPath}: weight_map is missing`);
    const files = new Map<string, string>();
    for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
      if (typeof file !== 'string') throw new RangeError(`${indexPath}: weight_map.${name} must be a file name`);
      files.set(name, join(dir, file));
    }
    return { files, listing: indexPath };
  }
  const single = join(dir, weightsFile);
  if (!existsSync(single)) throw new RangeError(`${dir}: no ${weightsFile} or ${indexFile}`);
  const reader = await SafetensorsReader.open(single);
  await reader.close();
  return { files: new Map(reader.names().map((name) => [name, single])), listing: single };
}

/** The checkpoint name of a parameter: its own, or without the base model's prefix (gpt2 on the hub has no `transformer.`). */
function checkpointName(name: string, files: ReadonlyMap<string, string>): string | undefined {
  if (files.has(name)) return name;
  const bare = name.replace(/^(transformer|model)\./, '');
  return files.has(bare) ? bare : undefined;
}

async function withReaders<T>(work: (open: (path: string) => Promise<SafetensorsReader>) => Promise<T>): Promise<T> {
  const readers = new Map<string, SafetensorsReader>();
  try {
    return await work(async (path) => {
      let reader = readers.get(path);
      if (!reader) {
        reader = await SafetensorsReader.open(path);
        readers.set(path, reader);
      }
      return reader;
    });
  } finally {
    await Promise.all([...readers.values()].map((reader) => reader.close()));
  }
}

/** Writes every parameter of the directory's weights into the model; errors name the file and tensor. */
async function loadWeights(dir: string, model: CausalLM, native: NativeModelHandle): Promise<void> {
  const { files, listing } = await weightFiles(dir);
  const used = new Set<string>();
  // Names, shapes and dtypes are checked before any weight is written.
  const plan = await withReaders(async (open) => {
    const entries: { index: number; name: string; path: string }[] = [];
    for (const [index, info] of model.parameters().entries()) {
      const name = checkpointName(info.name, files);
      if (name === undefined) throw new RangeError(`${listing}: the checkpoint has no tensor ${info.name}`);
      const path = files.get(name) as string;
      const stored = (await open(path)).info(name);
      if (!stored) throw new RangeError(`${path}: no tensor ${name} (the index names this file)`);
      const expected = info.checkpointTransposed ? [...info.shape].reverse() : info.shape;
      if (stored.shape.length !== expected.length || stored.shape.some((dim, i) => dim !== expected[i])) {
        throw new RangeError(`${path}: ${name} has shape [${stored.shape.join(', ')}], the model expects [${expected.join(', ')}]`);
      }
      if (stored.dtype === 'I32') throw new TypeError(`${path}: ${name} is I32; weights must be F32, BF16 or F16`);
      used.add(name);
      entries.push({ index, name, path });
    }
    return entries;
  });
  const tied = model.config.tieWordEmbeddings;
  const unexpected = [...files.keys()].filter((name) => !used.has(name) && !isBuffer(name) && !(tied && name === 'lm_head.weight'));
  if (unexpected.length > 0) {
    const named = unexpected.slice(0, 5).map((name) => `${name} (${basename(files.get(name) as string)})`);
    throw new RangeError(`${listing}: tensors this ${model.config.family} model does not have: ${named.join(', ')}${unexpected.length > 5 ? ', ...' : ''}`);
  }
  await withReaders(async (open) => {
    for (const { index, name, path } of plan) {
      const tensor = await (await open(path)).read(name);
      const storage = storageOf[tensor.dtype as WeightDtype];
      try {
        native.setParameter(index, tensor.data as Float32Array | Uint16Array, storageDtypeCodes[storage], true);
      } catch (error) {
        throw new RangeError(`${path}: ${(error as Error).message}`);
      }
    }
  });
}

async function loadOptimizer(dir: string, native: NativeModelHandle): Promise<void> {
  const path = join(dir, optimizerFile);
  if (!existsSync(path)) return;
  const reader = await SafetensorsReader.open(path);
  try {
    const moment = async (name: string) => (reader.info(name) ? (await reader.read(name)).data : undefined);
    const expAvg = await moment(optimizerKeys.expAvg);
    const expAvgSq = await moment(optimizerKeys.expAvgSq);
    const stepsText = reader.metadata[optimizerKeys.steps];
    const steps = stepsText !== undefined && /^\d+$/.test(stepsText) ? Number(stepsText) : Number.NaN;
    if (!(expAvg instanceof Float32Array) || !(expAvgSq instanceof Float32Array) || !Number.isSafeInteger(steps)) {
      throw new RangeError(`${path}: expected F32 tensors ${optimizerKeys.expAvg} and ${optimizerKeys.expAvgSq} and a ${optimizerKeys.steps} step count`);
    }
    try {
      native.setOptimizerState(expAvg, expAvgSq, steps);
    } catch (error) {
      throw new RangeError(`${path}: ${(error as Error).message}`);
    }
  } finally {
    await reader.close();
  }
}

/** The shape-defining fields of a directory's config must match the model's. */
function checkSameShape(dir: string, saved: ModelConfig, model: ModelConfig): void {
  const keys = ['family', 'vocabSize', 'hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'maxPositions', 'tieWordEmbeddings'] as const;
  for (const key of keys) {
    if (saved[key] !== model[key]) {
      throw new RangeError(`${dir}: a checkpoint of another shape: ${key} = ${String(saved[key])}, this model has ${String(model[key])}`);
    }
  }
}

export async function loadModelDirectory(dir: string, model: CausalLM, native: NativeModelHandle): Promise<void> {
  const saved = configFromHF(await readJsonFile(join(dir, 'config.json')));
  checkSameShape(dir, saved, model.config);
  await loadWeights(dir, model, native);
  await loadOptimizer(dir, native);
}

/** Shards of at most maxShardBytes (a tensor larger than that gets a shard of its own). */
function planShards(sizes: readonly number[], maxShardBytes: number): number[][] {
  const shards: number[][] = [[]];
  let bytes = 0;
  sizes.forEach((size, index) => {
    const current = shards[shards.length - 1] as number[];
    if (current.length > 0 && bytes + size > maxShardBytes) {
      shards.push([index]);
      bytes = size;
    } else {
      current.push(index);
      bytes += size;
    }
  });
  return shards;
}

export async function saveModelDirectory(dir: string, model: CausalLM, native: NativeModelHandle, options: SaveOptions): Promise<void> {
  const op = 'save';
  const dtype = options.dtype ?? model.checkpointDtype;
  if (!(dtype in safetensorsDtypes)) throw new RangeError(`${op}: dtype = ${String(dtype)} must be float32, bfloat16 or float16`);
  const maxShardBytes = options.maxShardBytes ?? defaultMaxShardBytes;
  if (!(maxShardBytes > 0)) throw new RangeError(`${op}: maxShardBytes = ${maxShardBytes} must be > 0`);
  await mkdir(dir, { recursive: true });
  const tokenizer = options.tokenizer;
  const eos = tokenizer ? (tokenizer.eosIds ?? [tokenizer.eos]) : undefined;
  const config = configToHF(model.config, dtype, eos ? { eos: eos[0] as number } : {});
  await writeFile(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  const generation = { ...model.generationConfig, ...(eos ? { eos_token_id: eos.length === 1 ? eos[0] : eos, pad_token_id: tokenizer?.pad } : {}) };
  if (Object.keys(generation).length > 0) await writeFile(join(dir, 'generation_config.json'), `${JSON.stringify(generation, null, 2)}\n`);
  await writeWeights(dir, model, native, safetensorsDtypes[dtype], maxShardBytes, { ...options.metadata, format: 'pt' });
  if (tokenizer) await tokenizer.save(dir);
  const optimizerPath = join(dir, optimizerFile);
  if (options.optimizer) {
    const state = native.getOptimizerState();
    const tensors = new Map<string, SafetensorsTensor>([
      [optimizerKeys.expAvg, { dtype: 'F32', shape: [state.expAvg.length], data: state.expAvg }],
      [optimizerKeys.expAvgSq, { dtype: 'F32', shape: [state.expAvgSq.length], data: state.expAvgSq }],
    ]);
    await writeSafetensors(optimizerPath, tensors, { [optimizerKeys.steps]: String(state.steps) });
  } else {
    await rm(optimizerPath, { force: true });
  }
}

async function writeWeights(
  dir: string,
  model: CausalLM,
  native: NativeModelHandle,
  dtype: WeightDtype,
  maxShardBytes: number,
  metadata: Record<string, string>,
): Promise<void> {
  const infos = model.parameters();
  const elementBytes = dtype === 'F32' ? 4 : 2;
  const sizes = infos.map((info) => info.shape.reduce((n, d) => n * d, 1) * elementBytes);
  const shards = planShards(sizes, maxShardBytes);
  const code = storageDtypeCodes[storageOf[dtype]];
  const fileName = (s: number) => (shards.length === 1 ? weightsFile : `model-${String(s + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  const weightMap: Record<string, string> = {};
  for (const [s, indices] of shards.entries()) {
    const tensors = new Map<string, LazyTensor>();
    for (const index of indices) {
      const info = infos[index] as (typeof infos)[number];
      const shape = info.checkpointTransposed ? [...info.shape].reverse() : [...info.shape];
      tensors.set(info.name, { dtype, shape, load: () => native.getParameter(index, code, true) });
      weightMap[info.name] = fileName(s);
    }
    await writeSafetensors(join(dir, fileName(s)), tensors, metadata);
  }
  const indexPath = join(dir, indexFile);
  if (shards.length > 1) {
    const index = { metadata: { total_size: sizes.reduce((a, b) => a + b, 0) }, weight_map: weightMap };
    await writeFile(indexPath, `${JSON.stringify(index, null, 2)}\n`);
    await rm(join(dir, weightsFile), { force: true });
  } else {
    await rm(indexPath, { force: true });
  }
}

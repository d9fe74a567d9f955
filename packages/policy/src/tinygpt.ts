/** TinyGPT: the built-in native policy (GPT-2 style; see native/include/napo/model.h). */
import { Tensor, type DeviceName } from '@napo/kernels';

import { modelAddon, type NativeModelHandle } from './native.js';
import type {
  DecodeOptions,
  ForwardOptions,
  OptimizerOptions,
  OptimizerState,
  Policy,
  RaggedTokens,
  SaveOptions,
  StepResult,
  Tokenizer,
} from './policy.js';
import { readSafetensors, writeSafetensors, type SafetensorsTensor } from './safetensors.js';
import { tokenizerFromJSON } from './tokenizer.js';

export interface TinyGPTConfig {
  vocabSize: number;
  contextLength: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
  /** Seeds the deterministic initialisation. */
  seed: number;
  device: DeviceName;
}

export type TinyGPTConfigInput = Pick<TinyGPTConfig, 'vocabSize'> & Partial<TinyGPTConfig>;

export const tinyGPTDefaults: Omit<TinyGPTConfig, 'vocabSize'> = {
  contextLength: 128,
  dModel: 128,
  nLayers: 4,
  nHeads: 4,
  seed: 0,
  device: 'cpu',
};

function positiveInteger(name: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new RangeError(`TinyGPT: ${name} = ${String(value)} must be an integer in [1, ${max}]`);
  }
  return value;
}

/** Fills defaults and checks every field; errors name the field. */
export function resolveTinyGPTConfig(input: TinyGPTConfigInput): TinyGPTConfig {
  if (!input || typeof input !== 'object') throw new TypeError('TinyGPT: config must be an object');
  const merged = { ...tinyGPTDefaults, ...input };
  const config: TinyGPTConfig = {
    vocabSize: positiveInteger('vocabSize', merged.vocabSize, 1 << 24),
    contextLength: positiveInteger('contextLength', merged.contextLength, 65536),
    dModel: positiveInteger('dModel', merged.dModel, 65536),
    nLayers: positiveInteger('nLayers', merged.nLayers, 1024),
    nHeads: positiveInteger('nHeads', merged.nHeads, 65536),
    seed: merged.seed,
    device: merged.device,
  };
  if (!Number.isSafeInteger(config.seed) || config.seed < 0) throw new RangeError(`TinyGPT: seed = ${config.seed} must be a non-negative safe integer`);
  if (config.dModel % config.nHeads !== 0) {
    throw new RangeError(`TinyGPT: dModel must be divisible by nHeads (dModel = ${config.dModel}, nHeads = ${config.nHeads})`);
  }
  if (typeof config.device !== 'string' || !/^(cpu|cuda:\d+)$/.test(config.device)) {
    throw new TypeError(`TinyGPT: device = ${String(config.device)} must be 'cpu' or 'cuda:N'`);
  }
  return config;
}

/** Checkpoint tensors and metadata of the optimizer state (`save(path, { optimizer: true })`). */
export const optimizerCheckpointKeys = {
  expAvg: 'optimizer.exp_avg',
  expAvgSq: 'optimizer.exp_avg_sq',
  steps: 'napo.optimizer_steps',
} as const;

export const optimizerDefaults: Required<Omit<OptimizerOptions, 'lr'>> = {
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.01,
  maxGradNorm: 1,
};

interface PackedBatch {
  tokens: Int32Array;
  batch: number;
  time: number;
  lengths: Int32Array;
}

function packRagged(op: string, rows: RaggedTokens): PackedBatch {
  if (!Array.isArray(rows)) throw new TypeError(`${op}: tokens must be an array of token arrays or an int32 Tensor`);
  if (rows.length === 0) throw new RangeError(`${op}: the batch is empty`);
  let time = 0;
  for (const [index, row] of rows.entries()) {
    if (!Array.isArray(row) && !(row instanceof Int32Array)) throw new TypeError(`${op}: tokens[${index}] must be an array of token ids`);
    if (row.length === 0) throw new RangeError(`${op}: tokens[${index}] is empty`);
    time = Math.max(time, row.length);
  }
  const tokens = new Int32Array(rows.length * time);
  const lengths = new Int32Array(rows.length);
  for (const [b, row] of rows.entries()) {
    lengths[b] = row.length;
    for (let t = 0; t < row.length; t++) {
      const id = row[t] as number;
      if (!Number.isInteger(id)) throw new RangeError(`${op}: tokens[${b}][${t}] = ${id} is not an integer token id`);
      tokens[b * time + t] = id;
    }
  }
  return { tokens, batch: rows.length, time, lengths };
}

function lengthsFromMask(op: string, mask: RaggedTokens | Tensor, batch: number, time: number): Int32Array {
  let values: ArrayLike<number>;
  if (mask instanceof Tensor) {
    if (mask.shape.length !== 2 || mask.shape[0] !== batch || mask.shape[1] !== time) {
      throw new RangeError(`${op}: mask must be [${batch}, ${time}], got [${mask.shape.join(', ')}]`);
    }
    values = mask.toArray();
  } else {
    if (mask.length !== batch || mask.some((row) => row.length !== time)) throw new RangeError(`${op}: mask must be [${batch}, ${time}]`);
    values = mask.flat();
  }
  const lengths = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    let length = 0;
    while (length < time && values[b * time + length] !== 0) length++;
    for (let t = length; t < time; t++) {
      if (values[b * time + t] !== 0) throw new RangeError(`${op}: mask row ${b} is not a prefix of ones (mask[${b}, ${t}] is set after a 0)`);
    }
    lengths[b] = length;
  }
  return lengths;
}

function packInput(op: string, tokens: RaggedTokens | Tensor, options: ForwardOptions = {}): PackedBatch {
  if (!(tokens instanceof Tensor)) {
    if (options.lengths || options.mask) {
      const packed = packRagged(op, tokens);
      if (options.lengths) packed.lengths = Int32Array.from(options.lengths);
      if (options.mask) packed.lengths = lengthsFromMask(op, options.mask, packed.batch, packed.time);
      return packed;
    }
    return packRagged(op, tokens);
  }
  if (tokens.dtype !== 'int32') throw new TypeError(`${op}: tokens must be int32, got ${tokens.dtype}`);
  if (tokens.shape.length !== 2) throw new RangeError(`${op}: tokens must be [batch, time], got [${tokens.shape.join(', ')}]`);
  const [batch, time] = tokens.shape as [number, number];
  if (batch === 0) throw new RangeError(`${op}: the batch is empty`);
  let lengths: Int32Array;
  if (options.lengths && options.mask) throw new TypeError(`${op}: give lengths or mask, not both`);
  if (options.lengths) {
    if (options.lengths.length !== batch) throw new RangeError(`${op}: lengths has ${options.lengths.length} entries, the batch ${batch}`);
    lengths = Int32Array.from(options.lengths);
  } else if (options.mask) {
    lengths = lengthsFromMask(op, options.mask, batch, time);
  } else {
    lengths = new Int32Array(batch).fill(time);
  }
  return { tokens: tokens.toArray() as Int32Array, batch, time, lengths };
}

export class TinyGPT implements Policy {
  readonly config: TinyGPTConfig;
  private native: NativeModelHandle | null;
  private readonly names: Map<string, number>;
  private readonly shapes: { name: string; shape: number[] }[];

  private constructor(config: TinyGPTConfig, native: NativeModelHandle) {
    this.config = Object.freeze({ ...config });
    this.native = native;
    this.shapes = native.parameters();
    this.names = new Map(this.shapes.map((entry, index) => [entry.name, index]));
  }

  /** A freshly initialised model (deterministic from `seed`). */
  static create(config: TinyGPTConfigInput): TinyGPT {
    const resolved = resolveTinyGPTConfig(config);
    const { ModelHandle } = modelAddon();
    return new TinyGPT(resolved, new ModelHandle({ ...resolved, seed: BigInt(resolved.seed) }));
  }

  /** A model built from a checkpoint's config and weights, with its tokenizer if it has one. */
  static async fromCheckpoint(path: string): Promise<{ model: TinyGPT; tokenizer?: Tokenizer; metadata: Record<string, string> }> {
    const file = await readSafetensors(path);
    const configText = file.metadata['napo.config'];
    if (!configText) throw new RangeError(`TinyGPT.fromCheckpoint: ${path} has no napo.config metadata`);
    const model = TinyGPT.create(JSON.parse(configText) as TinyGPTConfigInput);
    model.loadTensors(path, file.tensors, file.metadata);
    const tokenizerText = file.metadata['napo.tokenizer'];
    const tokenizer = tokenizerText ? tokenizerFromJSON(JSON.parse(tokenizerText)) : undefined;
    return tokenizer ? { model, tokenizer, metadata: file.metadata } : { model, metadata: file.metadata };
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  get contextLength(): number {
    return this.config.contextLength;
  }

  get device(): DeviceName {
    return this.config.device;
  }

  get optimizerSteps(): number {
    return this.handle('optimizerSteps').optimizerSteps;
  }

  /** Parameter names (Hugging Face GPT-2 naming) and shapes, in storage order. */
  parameters(): { name: string; shape: number[] }[] {
    return this.shapes.map((entry) => ({ name: entry.name, shape: [...entry.shape] }));
  }

  /** Number of scalar parameters. */
  get parameterCount(): number {
    return this.shapes.reduce((sum, entry) => sum + entry.shape.reduce((p, d) => p * d, 1), 0);
  }

  getParameter(name: string): Float32Array {
    return this.handle('getParameter').getParameter(this.indexOf('getParameter', name));
  }

  setParameter(name: string, data: Float32Array): void {
    this.handle('setParameter').setParameter(this.indexOf('setParameter', name), data);
  }

  /** The accumulated gradient of a parameter (zeros before the first backward). */
  getGradient(name: string): Float32Array {
    return this.handle('getGradient').getGradient(this.indexOf('getGradient', name));
  }

  /** Copies of the AdamW state: moments packed in parameter order (zeros before the first step). */
  getOptimizerState(): OptimizerState {
    return this.handle('TinyGPT.getOptimizerState').getOptimizerState();
  }

  /** Replaces the AdamW state (e.g. to resume a run); the next step is `state.steps + 1`. */
  setOptimizerState(state: OptimizerState): void {
    const op = 'TinyGPT.setOptimizerState';
    if (!state || typeof state !== 'object') throw new TypeError(`${op}: state must be an object`);
    this.handle(op).setOptimizerState(state.expAvg, state.expAvgSq, state.steps);
  }

  async forward(tokens: RaggedTokens | Tensor, options?: ForwardOptions): Promise<Tensor<'float32'>> {
    const op = 'TinyGPT.forward';
    const packed = packInput(op, tokens, options);
    const handle = await this.handle(op).forward(packed.tokens, packed.batch, packed.time, packed.lengths);
    return Tensor.fromHandle<'float32'>(handle);
  }

  async backward(gradLogits: Tensor): Promise<void> {
    const op = 'TinyGPT.backward';
    if (!(gradLogits instanceof Tensor)) throw new TypeError(`${op}: gradLogits must be a Tensor`);
    await this.handle(op).backward(gradLogits.handle);
  }

  async step(optimizer: OptimizerOptions): Promise<StepResult> {
    const op = 'TinyGPT.step';
    if (!optimizer || typeof optimizer !== 'object') throw new TypeError(`${op}: optimizer options must be an object`);
    const options = { ...optimizerDefaults, ...optimizer };
    for (const key of ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'maxGradNorm'] as const) {
      if (typeof options[key] !== 'number' || !Number.isFinite(options[key])) throw new RangeError(`${op}: ${key} = ${String(options[key])} must be a finite number`);
    }
    return this.handle(op).step(options);
  }

  zeroGrad(): void {
    this.handle('TinyGPT.zeroGrad').zeroGrad();
  }

  async prefill(prompts: RaggedTokens): Promise<Tensor<'float32'>> {
    const op = 'TinyGPT.prefill';
    const packed = packRagged(op, prompts);
    const handle = await this.handle(op).prefill(packed.tokens, packed.batch, packed.time, packed.lengths);
    return Tensor.fromHandle<'float32'>(handle);
  }

  async decodeStep(tokens: readonly number[] | Int32Array, options: DecodeOptions = {}): Promise<Tensor<'float32'>> {
    const op = 'TinyGPT.decodeStep';
    const ids = Int32Array.from(tokens);
    if (ids.length === 0) throw new RangeError(`${op}: the batch is empty`);
    for (const [index, id] of Array.from(tokens).entries()) {
      if (!Number.isInteger(id) || id < 0) throw new RangeError(`${op}: tokens[${index}] = ${id} is out of range for vocab ${this.vocabSize}`);
    }
    if (options.active) {
      if (options.active.length !== ids.length) throw new RangeError(`${op}: active has ${options.active.length} entries, tokens ${ids.length}`);
      options.active.forEach((on, index) => {
        if (!on) ids[index] = -1;
      });
    }
    return Tensor.fromHandle<'float32'>(await this.handle(op).decodeStep(ids));
  }

  /** Tokens held in the KV cache for a row (prompt + decoded so far). */
  cachePosition(row: number): number {
    return this.handle('cachePosition').cachePosition(row);
  }

  async clone(): Promise<TinyGPT> {
    return new TinyGPT(this.config, this.handle('TinyGPT.clone').clone());
  }

  /**
   * Weights as safetensors, config (and tokenizer) in the metadata; written atomically. With
   * `optimizer: true` also the AdamW state: tensors `optimizer.exp_avg` and `optimizer.exp_avg_sq`
   * (F32 [parameter total], packed in parameter order) and metadata `napo.optimizer_steps`.
   */
  async save(path: string, options: SaveOptions = {}): Promise<void> {
    const op = 'TinyGPT.save';
    if (options.optimizer !== undefined && typeof options.optimizer !== 'boolean') {
      throw new TypeError(`${op}: optimizer = ${String(options.optimizer)} must be a boolean`);
    }
    const native = this.handle(op);
    const tensors = new Map<string, SafetensorsTensor>();
    this.shapes.forEach((entry, index) => {
      tensors.set(entry.name, { dtype: 'F32', shape: [...entry.shape], data: native.getParameter(index) });
    });
    const metadata: Record<string, string> = {
      ...options.metadata,
      format: 'pt',
      'napo.model': 'TinyGPT',
      'napo.config': JSON.stringify(this.config),
    };
    delete metadata[optimizerCheckpointKeys.steps];
    if (options.optimizer) {
      const state = native.getOptimizerState();
      tensors.set(optimizerCheckpointKeys.expAvg, { dtype: 'F32', shape: [state.expAvg.length], data: state.expAvg });
      tensors.set(optimizerCheckpointKeys.expAvgSq, { dtype: 'F32', shape: [state.expAvgSq.length], data: state.expAvgSq });
      metadata[optimizerCheckpointKeys.steps] = String(state.steps);
    }
    if (options.tokenizer) metadata['napo.tokenizer'] = JSON.stringify(options.tokenizer.toJSON());
    await writeSafetensors(path, tensors, metadata);
  }

  /**
   * Loads weights saved from a model of the same shape; names and shapes are checked first. When
   * the checkpoint carries optimizer state (`save(path, { optimizer: true })`) it is restored too;
   * a weights-only checkpoint leaves the optimizer state as it is.
   */
  async load(path: string): Promise<void> {
    const file = await readSafetensors(path);
    const configText = file.metadata['napo.config'];
    if (configText) {
      const saved = JSON.parse(configText) as Partial<TinyGPTConfig>;
      for (const key of ['vocabSize', 'contextLength', 'dModel', 'nLayers', 'nHeads'] as const) {
        if (saved[key] !== this.config[key]) {
          throw new RangeError(`TinyGPT.load: ${path} is a checkpoint of another shape: ${key} = ${String(saved[key])}, this model has ${this.config[key]}`);
        }
      }
    }
    this.loadTensors(path, file.tensors, file.metadata);
  }

  /** Frees the native model (parameters, gradients, optimizer state, cache). */
  dispose(): void {
    if (this.native && !this.native.disposed) this.native.dispose();
    this.native = null;
  }

  private loadTensors(path: string, tensors: ReadonlyMap<string, SafetensorsTensor>, metadata: Record<string, string>): void {
    const op = 'TinyGPT.load';
    const { expAvg: avgName, expAvgSq: avgSqName, steps: stepsKey } = optimizerCheckpointKeys;
    const expected = new Set([...this.shapes.map((entry) => entry.name), avgName, avgSqName]);
    const unexpected = [...tensors.keys()].filter((name) => !expected.has(name));
    if (unexpected.length > 0) throw new RangeError(`${op}: ${path} has unexpected tensors: ${unexpected.slice(0, 5).join(', ')}`);
    // Optimizer state: both moments or neither, each F32 [parameter total], plus the step count.
    const expAvg = tensors.get(avgName);
    const expAvgSq = tensors.get(avgSqName);
    let optimizer: OptimizerState | undefined;
    if (expAvg || expAvgSq) {
      if (!expAvg || !expAvgSq) {
        const [present, absent] = expAvg ? [avgName, avgSqName] : [avgSqName, avgName];
        throw new RangeError(`${op}: ${path} has ${present} but not ${absent}; optimizer state needs both tensors`);
      }
      const total = this.parameterCount;
      for (const [name, tensor] of [[avgName, expAvg], [avgSqName, expAvgSq]] as const) {
        if (tensor.dtype !== 'F32') throw new TypeError(`${op}: ${name} is ${tensor.dtype}, expected F32`);
        if (tensor.shape.length !== 1 || tensor.shape[0] !== total) {
          throw new RangeError(`${op}: ${name} has shape [${tensor.shape.join(', ')}], this model's optimizer state is [${total}]`);
        }
      }
      const stepsText = metadata[stepsKey];
      const steps = stepsText !== undefined && /^\d+$/.test(stepsText) ? Number(stepsText) : Number.NaN;
      if (!Number.isSafeInteger(steps)) {
        throw new RangeError(`${op}: ${path} has optimizer tensors but its ${stepsKey} metadata is ${stepsText === undefined ? 'missing' : JSON.stringify(stepsText)}; expected a step count >= 0`);
      }
      optimizer = { expAvg: expAvg.data as Float32Array, expAvgSq: expAvgSq.data as Float32Array, steps };
    }
    for (const entry of this.shapes) {
      const tensor = tensors.get(entry.name);
      if (!tensor) throw new RangeError(`${op}: ${path} is missing ${entry.name}`);
      if (tensor.dtype !== 'F32') throw new TypeError(`${op}: ${entry.name} is ${tensor.dtype}, expected F32`);
      if (tensor.shape.length !== entry.shape.length || tensor.shape.some((dim, i) => dim !== entry.shape[i])) {
        throw new RangeError(`${op}: ${entry.name} has shape [${tensor.shape.join(', ')}], this model [${entry.shape.join(', ')}]`);
      }
    }
    const native = this.handle(op);
    // The native side checks every optimizer value before writing any, so a bad state leaves the
    // model as it was.
    if (optimizer) native.setOptimizerState(optimizer.expAvg, optimizer.expAvgSq, optimizer.steps);
    this.shapes.forEach((entry, index) => native.setParameter(index, (tensors.get(entry.name) as SafetensorsTensor).data as Float32Array));
  }

  private indexOf(op: string, name: string): number {
    const index = this.names.get(name);
    if (index === undefined) throw new RangeError(`TinyGPT.${op}: no parameter named ${JSON.stringify(name)}`);
    return index;
  }

  private handle(op: string): NativeModelHandle {
    if (!this.native) throw new TypeError(`${op}: the model was disposed`);
    return this.native;
  }
}

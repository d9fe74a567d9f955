/**
 * CausalLM: napo's native decoder-only language model (gpt2, llama, qwen2, qwen3; see
 * native/include/napo/model.h), as a `Policy`. Float32 master weights and AdamW state live in
 * native memory; every compound call runs off the JS thread.
 */
import { Tensor, type DeviceName } from '@napo/kernels';

import { packInput, packRagged } from './batch.js';
import { resolveModelConfig, type CheckpointDtype, type ModelConfig, type ModelConfigInput } from './config.js';
import { loadModelDirectory, saveModelDirectory } from './directory.js';
import { modelAddon, storageDtypeCodes, type NativeModelConfig, type NativeModelHandle, type NativeParameterInfo } from './native.js';
import type {
  DecodeOptions,
  ForwardOptions,
  OptimizerOptions,
  OptimizerState,
  Policy,
  PrefillOptions,
  RaggedTokens,
  SaveOptions,
  ScoreOptions,
  Scores,
  StepResult,
} from './policy.js';

export const optimizerDefaults: Required<Omit<OptimizerOptions, 'lr'>> = {
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.01,
  maxGradNorm: 1,
  gradScale: 1,
};

const familyCodes = { gpt2: 0, llama: 1, qwen2: 2, qwen3: 3 } as const;

/** The C ABI's config; `initialize: false` skips the random draw (weights are about to be loaded). */
export function nativeConfig(config: ModelConfig, initialize: boolean): NativeModelConfig {
  const scaling = config.ropeScaling;
  return {
    familyCode: familyCodes[config.family],
    vocabSize: config.vocabSize,
    hiddenSize: config.hiddenSize,
    intermediateSize: config.intermediateSize,
    numLayers: config.numLayers,
    numHeads: config.numHeads,
    numKvHeads: config.numKvHeads,
    headDim: config.headDim,
    maxPositions: config.maxPositions,
    normEps: config.normEps,
    ropeTheta: config.ropeTheta,
    ropeScalingCode: scaling === null ? 0 : scaling.type === 'linear' ? 1 : 2,
    ropeFactor: scaling?.factor ?? 1,
    ropeLowFreqFactor: scaling?.type === 'llama3' ? scaling.lowFreqFactor : 1,
    ropeHighFreqFactor: scaling?.type === 'llama3' ? scaling.highFreqFactor : 4,
    ropeOriginalMaxPositions: scaling?.type === 'llama3' ? scaling.originalMaxPositions : 1,
    qkvBias: config.qkvBias,
    outputBias: config.outputBias,
    mlpBias: config.mlpBias,
    tieWordEmbeddings: config.tieWordEmbeddings,
    initializerRange: initialize ? config.initializerRange : 0,
    seed: BigInt(config.seed),
    device: config.device,
  };
}

export interface CreateOptions {
  /** Draw random weights from the seed (default). false: zeros, for weights loaded next. */
  initialize?: boolean;
  /** The dtype `save` writes by default. Default float32. */
  checkpointDtype?: CheckpointDtype;
  /** generation_config.json's content, written back by `save`. */
  generationConfig?: Record<string, unknown>;
}

export class CausalLM implements Policy {
  readonly config: Readonly<ModelConfig>;
  /** The dtype `save` writes unless told otherwise: the checkpoint's own. */
  readonly checkpointDtype: CheckpointDtype;
  readonly generationConfig: Readonly<Record<string, unknown>> | undefined;
  private native: NativeModelHandle | null;
  private readonly infos: NativeParameterInfo[];
  private readonly names: Map<string, number>;

  private constructor(config: ModelConfig, native: NativeModelHandle, options: CreateOptions) {
    this.config = Object.freeze({ ...config });
    this.native = native;
    this.checkpointDtype = options.checkpointDtype ?? 'float32';
    this.generationConfig = options.generationConfig;
    this.infos = native.parameters();
    this.names = new Map(this.infos.map((entry, index) => [entry.name, index]));
  }

  /** A new model; its config is checked in native code (errors name the field). */
  static create(input: ModelConfigInput, options: CreateOptions = {}): CausalLM {
    const config = resolveModelConfig(input);
    const { ModelHandle } = modelAddon();
    return new CausalLM(config, new ModelHandle(nativeConfig(config, options.initialize ?? true)), options);
  }

  get vocabSize(): number {
    return this.config.vocabSize;
  }

  get contextLength(): number {
    return this.config.maxPositions;
  }

  get device(): DeviceName {
    return this.config.device;
  }

  get optimizerSteps(): number {
    return this.handle('optimizerSteps').optimizerSteps;
  }

  /** Parameters in registry order: Hugging Face names, the model's shapes (nn.Linear [out, in]). */
  parameters(): readonly Readonly<NativeParameterInfo>[] {
    return this.infos;
  }

  /** Scalars in all parameters. */
  get parameterCount(): number {
    return this.infos.reduce((total, entry) => total + entry.shape.reduce((n, d) => n * d, 1), 0);
  }

  /** A copy of one parameter, float32 in the model's layout. */
  getParameter(name: string): Float32Array {
    return this.handle('getParameter').getParameter(this.indexOf('getParameter', name), storageDtypeCodes.float32, false) as Float32Array;
  }

  setParameter(name: string, data: Float32Array): void {
    this.handle('setParameter').setParameter(this.indexOf('setParameter', name), data, storageDtypeCodes.float32, false);
  }

  /** A copy of one parameter's gradient (zeros before the first backward). */
  getGradient(name: string): Float32Array {
    return this.handle('getGradient').getGradient(this.indexOf('getGradient', name));
  }

  /** Copies of the AdamW state: moments packed in parameter order (zeros before the first step). */
  getOptimizerState(): OptimizerState {
    return this.handle('getOptimizerState').getOptimizerState();
  }

  /** Replaces the AdamW state (e.g. to resume a run); the next step is `state.steps + 1`. */
  setOptimizerState(state: OptimizerState): void {
    const op = 'setOptimizerState';
    if (!state || typeof state !== 'object') throw new TypeError(`${op}: state must be an object`);
    this.handle(op).setOptimizerState(state.expAvg, state.expAvgSq, state.steps);
  }

  async score(tokens: RaggedTokens, targets: Int32Array, options: ScoreOptions = {}): Promise<Scores> {
    const op = 'score';
    const packed = packRagged(op, tokens);
    if (!(targets instanceof Int32Array)) throw new TypeError(`${op}: targets must be an Int32Array [batch * time]`);
    const result = await this.handle(op).score(
      packed.tokens,
      packed.batch,
      packed.time,
      packed.lengths,
      targets,
      options.temperature ?? 1,
      options.entropy ?? false,
      options.keepActivations ?? true,
    );
    const scores: Scores = { logprobs: Tensor.fromHandle<'float32'>(result.logprobs) };
    if (result.entropy) scores.entropy = Tensor.fromHandle<'float32'>(result.entropy);
    return scores;
  }

  async scoreBackward(gradLogprobs: Tensor, gradEntropy?: Tensor): Promise<void> {
    const op = 'scoreBackward';
    if (!(gradLogprobs instanceof Tensor)) throw new TypeError(`${op}: gradLogprobs must be a Tensor`);
    if (gradEntropy !== undefined && !(gradEntropy instanceof Tensor)) throw new TypeError(`${op}: gradEntropy must be a Tensor`);
    await this.handle(op).scoreBackward(gradLogprobs.handle, gradEntropy?.handle ?? null);
  }

  async forward(tokens: RaggedTokens | Tensor, options?: ForwardOptions): Promise<Tensor<'float32'>> {
    const op = 'forward';
    const packed = packInput(op, tokens, options);
    return Tensor.fromHandle<'float32'>(await this.handle(op).forward(packed.tokens, packed.batch, packed.time, packed.lengths));
  }

  async backward(gradLogits: Tensor): Promise<void> {
    const op = 'backward';
    if (!(gradLogits instanceof Tensor)) throw new TypeError(`${op}: gradLogits must be a Tensor`);
    await this.handle(op).backward(gradLogits.handle);
  }

  async step(optimizer: OptimizerOptions): Promise<StepResult> {
    const op = 'step';
    if (!optimizer || typeof optimizer !== 'object') throw new TypeError(`${op}: optimizer options must be an object`);
    return this.handle(op).step({ ...optimizerDefaults, ...optimizer });
  }

  zeroGrad(): void {
    this.handle('zeroGrad').zeroGrad();
  }

  async prefill(prompts: RaggedTokens, options: PrefillOptions = {}): Promise<Tensor<'float32'>> {
    const op = 'prefill';
    const packed = packRagged(op, prompts);
    const capacity = options.capacity ?? this.config.maxPositions;
    return Tensor.fromHandle<'float32'>(await this.handle(op).prefill(packed.tokens, packed.batch, packed.time, packed.lengths, capacity));
  }

  async decodeStep(tokens: readonly number[] | Int32Array, options: DecodeOptions = {}): Promise<Tensor<'float32'>> {
    const op = 'decodeStep';
    const ids = Int32Array.from(tokens);
    if (options.active) {
      if (options.active.length !== ids.length) throw new RangeError(`${op}: active has ${options.active.length} entries, tokens ${ids.length}`);
      options.active.forEach((on, index) => {
        if (!on) ids[index] = -1;
      });
    }
    return Tensor.fromHandle<'float32'>(await this.handle(op).decodeStep(ids));
  }

  releaseCache(): void {
    this.handle('releaseCache').releaseCache();
  }

  /** Tokens held in the KV cache for a row (prompt + decoded so far). */
  cachePosition(row: number): number {
    return this.handle('cachePosition').cachePosition(row);
  }

  async clone(): Promise<CausalLM> {
    const options: CreateOptions = { checkpointDtype: this.checkpointDtype };
    if (this.generationConfig) options.generationConfig = { ...this.generationConfig };
    return new CausalLM(this.config, this.handle('clone').clone(), options);
  }

  async blendFrom(source: Policy, alpha: number): Promise<void> {
    const op = 'blendFrom';
    if (!(source instanceof CausalLM)) throw new TypeError(`${op}: source must be a CausalLM`);
    if (!(alpha > 0 && alpha <= 1)) throw new RangeError(`${op}: alpha = ${alpha} must be in (0, 1]`);
    const mismatch = (a: Readonly<NativeParameterInfo>, b: Readonly<NativeParameterInfo> | undefined) =>
      !b || a.name !== b.name || a.shape.join() !== b.shape.join();
    const theirs = source.parameters();
    if (theirs.length !== this.infos.length || this.infos.some((info, i) => mismatch(info, theirs[i]))) {
      throw new RangeError(`${op}: the source's parameters (${theirs.length}) do not match this model's (${this.infos.length}) by name and shape`);
    }
    for (const { name } of this.infos) {
      const from = source.getParameter(name);
      const mine = alpha === 1 ? from : this.getParameter(name).map((w, i) => alpha * (from[i] as number) + (1 - alpha) * w);
      this.setParameter(name, mine);
    }
  }

  async save(dir: string, options: SaveOptions = {}): Promise<void> {
    await saveModelDirectory(dir, this, this.handle('save'), options);
  }

  async load(dir: string): Promise<void> {
    await loadModelDirectory(dir, this, this.handle('load'));
  }

  /** Frees the native model (parameters, gradients, optimizer state, cache). */
  dispose(): void {
    if (this.native && !this.native.disposed) this.native.dispose();
    this.native = null;
  }

  private indexOf(op: string, name: string): number {
    const index = this.names.get(name);
    if (index === undefined) throw new RangeError(`${op}: no parameter named ${JSON.stringify(name)}`);
    return index;
  }

  private handle(op: string): NativeModelHandle {
    if (!this.native) throw new TypeError(`${op}: the model was disposed`);
    return this.native;
  }
}

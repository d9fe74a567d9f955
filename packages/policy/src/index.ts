/**
 * @napo/policy: the Policy and Tokenizer interfaces, napo's native causal LMs (gpt2, llama,
 * qwen2, qwen3) loaded from and saved to Hugging Face directories, tokenizers, generate(),
 * safetensors and learning-rate schedules.
 */
export type {
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
  Tokenizer,
  TokenizerJSON,
} from './policy.js';
export {
  checkpointDtypeFromHF,
  configFromHF,
  configToHF,
  modelFamilies,
  resolveModelConfig,
  type CheckpointDtype,
  type ModelConfig,
  type ModelConfigInput,
  type ModelFamily,
  type RopeScaling,
} from './config.js';
export { CausalLM, optimizerDefaults, type CreateOptions } from './model.js';
export { planModelMemory, type ModelMemoryQuery, type ModelPass } from './memory-plan.js';
export { readJsonFile } from './directory.js';
export { fromPretrained, loadTokenizer, type FromPretrainedOptions, type Pretrained } from './pretrained.js';
export { CharTokenizer, charTokenizerFile, tokenizerFromJSON, type CharTokenizerJSON } from './tokenizer.js';
export { HFTokenizer, type ChatMessage, type ChatTemplateOptions, type HFTokenizerJSON } from './hf-tokenizer.js';
export { generate, type FinishReason, type GenerateOptions, type GenerateResult } from './generate.js';
export {
  SafetensorsReader,
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensors,
  type LazyTensor,
  type SafetensorsDtype,
  type SafetensorsFile,
  type SafetensorsTensor,
} from './safetensors.js';
export { constantSchedule, warmupCosineSchedule, type LrSchedule, type WarmupCosineOptions } from './schedule.js';
export { modelAddon, type NativeModelAddon, type NativeModelHandle, type NativeParameterInfo } from './native.js';
export * as reference from './reference/index.js';

/**
 * @napo/policy: the Policy and Tokenizer interfaces, the native TinyGPT, generate(), safetensors
 * checkpoints and learning-rate schedules.
 */
export type {
  DecodeOptions,
  ForwardOptions,
  OptimizerOptions,
  OptimizerState,
  Policy,
  RaggedTokens,
  SaveOptions,
  StepResult,
  Tokenizer,
  TokenizerJSON,
} from './policy.js';
export { CharTokenizer, tokenizerFromJSON, type CharTokenizerJSON } from './tokenizer.js';
export {
  TinyGPT,
  optimizerDefaults,
  resolveTinyGPTConfig,
  tinyGPTDefaults,
  type TinyGPTConfig,
  type TinyGPTConfigInput,
} from './tinygpt.js';
export { generate, type FinishReason, type GenerateOptions, type GenerateResult } from './generate.js';
export {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensors,
  type SafetensorsDtype,
  type SafetensorsFile,
  type SafetensorsTensor,
} from './safetensors.js';
export { constantSchedule, warmupCosineSchedule, type LrSchedule, type WarmupCosineOptions } from './schedule.js';
export { modelAddon, type NativeModelAddon, type NativeModelHandle } from './native.js';
export * as reference from './reference/index.js';

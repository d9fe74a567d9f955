import { memoryStats, reference as kernelsReference } from '@napo/kernels';
import { describe, expect, it } from 'vitest';

import { CausalLM, CharTokenizer, generate, type Tokenizer } from '../src/index.js';
import { randomizeParameters, tinyGPT } from './helpers.js';

const V = tinyGPT.vocabSize;

function tinyModel(seed: number, maxPositions = 8): CausalLM {
  const model = CausalLM.create({ ...tinyGPT, maxPositions });
  randomizeParameters(model, seed, 0.5);
  return model;
}

/** A tokenizer that ends generations at any of several ids (eosIds), delegating the rest. */
function withEosIds(base: CharTokenizer, eosIds: number[]): Tokenizer {
  return {
    vocabSize: base.vocabSize,
    eos: eosIds[0] as number,
    eosIds,
    pad: base.pad,
    encode: (text) => base.encode(text),
    decode: (ids) => base.decode(ids),
    toJSON: () => base.toJSON(),
    save: (dir) => base.save(dir),
  };
}

describe('generate', () => {
  it('is deterministic per seed, ragged, and reports temperature-scaled logprobs', async () => {
    const model = tinyModel(6, 16);
    const prompts = [[1, 2, 3], [4], [5, 6, 7, 8, 9]];
    const options = { maxNewTokens: 6, temperature: 0.8, topK: 5, seed: 42 };
    const a = await generate(model, prompts, options);
    const b = await generate(model, prompts, options);
    expect(a.tokens).toEqual(b.tokens);
    expect(a.logprobs).toEqual(b.logprobs);
    expect(a.lengths).toEqual([6, 6, 6]);
    expect(a.finishReasons).toEqual(['length', 'length', 'length']);
    expect(a.texts).toBeUndefined();
    const c = await generate(model, prompts, { ...options, seed: 43 });
    expect(c.tokens).not.toEqual(a.tokens);
    const bigSeed = await generate(model, prompts, { ...options, seed: 42n });
    expect(bigSeed.tokens).toEqual(a.tokens);
    // Each logprob is log softmax(z / T)[token] of the full-forward logits at that position.
    const sequences = prompts.map((p, r) => [...p, ...a.tokens[r]]);
    const T = Math.max(...sequences.map((s) => s.length));
    const logits = await model.forward(sequences);
    const data = logits.toArray();
    logits.dispose();
    let maxError = 0;
    prompts.forEach((p, r) => {
      a.tokens[r].forEach((token, s) => {
        const t = p.length - 1 + s;
        const z = Array.from(data.subarray((r * T + t) * V, (r * T + t + 1) * V), (v) => v / 0.8);
        const max = Math.max(...z);
        const lse = max + Math.log(z.reduce((acc, v) => acc + Math.exp(v - max), 0));
        maxError = Math.max(maxError, Math.abs(a.logprobs[r][s] - (z[token] - lse)));
      });
    });
    expect(maxError).toBeLessThan(1e-4);
    model.dispose();
  });

  it("matches the reference sampler's distribution (chi-square)", async () => {
    const model = tinyModel(8);
    const rows = 4000;
    const prompt = [3, 1, 4];
    const opts = { temperature: 0.9, topK: 6, topP: 0.95 };
    const result = await generate(model, Array.from({ length: rows }, () => prompt), { ...opts, maxNewTokens: 1, seed: 5 });
    const prefill = await model.prefill([prompt]);
    const logits = prefill.toArray();
    prefill.dispose();
    const p = kernelsReference.filteredDistribution(logits, opts);
    const counts = new Array<number>(V).fill(0);
    for (const row of result.tokens) counts[row[0]] += 1;
    let chi = 0;
    let cells = 0;
    for (let v = 0; v < V; v++) {
      const expected = p[v] * rows;
      if (expected === 0) {
        expect(counts[v]).toBe(0);
        continue;
      }
      chi += (counts[v] - expected) ** 2 / expected;
      cells++;
    }
    expect(cells).toBeGreaterThan(2);
    // 99.9th percentile of chi-square with up to 5 degrees of freedom.
    expect(chi).toBeLessThan(20.5);
    model.dispose();
  });

  it('stops per row at an EOS id, at any id of an EOS list (or the tokenizer eosIds), and at a stop string', async () => {
    const tokenizer = new CharTokenizer('abcdefghi');
    const model = tinyModel(9, 10);
    const prompts = ['ab', 'cde', 'fa'];
    const greedy = await generate(model, prompts, { maxNewTokens: 4, temperature: 0, tokenizer, eos: null });
    expect(greedy.finishReasons).toEqual(['length', 'length', 'length']);
    const first = greedy.tokens.map((row) => row[0]);
    // EOS = the first greedy token of row 0: row 0 stops after one token, the rest run on (unless they draw it too).
    const withEos = await generate(model, prompts, { maxNewTokens: 4, temperature: 0, tokenizer, eos: first[0] });
    expect(withEos.tokens[0]).toEqual([first[0]]);
    expect(withEos.finishReasons[0]).toBe('eos');
    withEos.tokens.forEach((row, r) => {
      const cut = greedy.tokens[r].indexOf(first[0]);
      expect(row).toEqual(cut < 0 ? greedy.tokens[r] : greedy.tokens[r].slice(0, cut + 1));
      expect(withEos.finishReasons[r]).toBe(cut < 0 ? 'length' : 'eos');
    });
    // A list: every row stops at the first token it draws that is in the list.
    const list = [first[1], first[2]];
    for (const eos of [{ eos: list }, { tokenizer: withEosIds(tokenizer, list) }]) {
      const stopped = await generate(model, prompts.map((p) => tokenizer.encode(p)), { maxNewTokens: 4, temperature: 0, ...eos });
      stopped.tokens.forEach((row, r) => {
        const cut = greedy.tokens[r].findIndex((id) => list.includes(id));
        expect(row).toEqual(cut < 0 ? greedy.tokens[r] : greedy.tokens[r].slice(0, cut + 1));
        expect(stopped.finishReasons[r]).toBe(cut < 0 ? 'length' : 'eos');
      });
      expect(stopped.finishReasons.slice(1)).toEqual(['eos', 'eos']);
    }
    // A stop string: the first character row 1 writes.
    const text = greedy.texts?.[1] ?? '';
    expect(text.length).toBeGreaterThan(0);
    const stopAt = await generate(model, prompts, { maxNewTokens: 4, temperature: 0, tokenizer, eos: null, stop: [text.slice(0, 1)] });
    expect(stopAt.finishReasons[1]).toBe('stop');
    expect(stopAt.texts?.[1]?.endsWith(text.slice(0, 1))).toBe(true);
    expect(stopAt.tokens[1]).toEqual(greedy.tokens[1].slice(0, stopAt.tokens[1].length));
    model.dispose();
  });

  it('repetitionPenalty: every step samples from the logits with the prompt and the completion so far penalised', async () => {
    const model = tinyModel(6, 16);
    const prompts = [[1, 2, 3], [4]];
    const penalty = 5;
    const result = await generate(model, prompts, { maxNewTokens: 5, temperature: 0, repetitionPenalty: penalty });
    const plain = await generate(model, prompts, { maxNewTokens: 5, temperature: 0 });
    expect(result.tokens).not.toEqual(plain.tokens);
    // Greedy: each token is the argmax of its step's full-forward logits, penalised by hand.
    const sequences = prompts.map((p, r) => [...p, ...result.tokens[r]]);
    const T = Math.max(...sequences.map((seq) => seq.length));
    const logits = await model.forward(sequences);
    const data = logits.toArray();
    logits.dispose();
    prompts.forEach((p, r) => {
      result.tokens[r].forEach((token, s) => {
        const t = p.length - 1 + s;
        const seen = new Set(sequences[r].slice(0, t + 1));
        const z = Array.from(data.subarray((r * T + t) * V, (r * T + t + 1) * V), (v, id) => (seen.has(id) ? (v < 0 ? v * penalty : v / penalty) : v));
        expect(token).toBe(z.indexOf(Math.max(...z)));
      });
    });
    await expect(generate(model, prompts, { maxNewTokens: 2, repetitionPenalty: 0 })).rejects.toThrow(/repetitionPenalty: penalty = 0 must be > 0/);
    model.dispose();
  });

  it('sizes the KV cache for the longest prompt plus maxNewTokens, cut at the context length', async () => {
    const model = tinyModel(10, 8);
    // Ragged: the 6-token prompt has room for 2 new tokens, the 2-token prompt for 6.
    const ragged = await generate(model, [[2, 3], [2, 3, 4, 5, 6, 7]], { maxNewTokens: 10, eos: null, seed: 1 });
    expect(ragged.lengths).toEqual([6, 2]);
    expect(ragged.finishReasons).toEqual(['length', 'length']);
    // Generation over, the KV cache is handed back to the allocator.
    expect([model.cachePosition(0), model.cachePosition(1)]).toEqual([-1, -1]);
    expect(memoryStats('cpu').byCategory.kvCache).toBe(0);
    const long = await generate(model, [[2, 3, 4, 5, 6, 7, 8]], { maxNewTokens: 10, eos: null });
    expect(long.lengths).toEqual([1]);
    expect(long.finishReasons).toEqual(['length']);
    // Exactly the room asked for: 3 + 2 positions of 8, filled to the end of the completion.
    const short = await generate(model, [[1, 2, 3]], { maxNewTokens: 2, eos: null });
    expect(short.lengths).toEqual([2]);
    const none = await generate(model, [[1, 2, 3]], { maxNewTokens: 0 });
    expect(none).toEqual({ tokens: [[]], logprobs: [new Float32Array(0)], lengths: [0], finishReasons: ['length'] });
    await expect(generate(model, [[1, 2, 3, 4, 5, 6, 7, 8]], { maxNewTokens: 1 })).rejects.toThrow(/prompts\[0\] has 8 tokens; contextLength 8 leaves no room/);
    await expect(generate(model, [], { maxNewTokens: 1 })).rejects.toThrow(/prompts is empty/);
    await expect(generate(model, [[1], []], { maxNewTokens: 1 })).rejects.toThrow(/prompts\[1\] is empty/);
    await expect(generate(model, [[1]], { maxNewTokens: -1 })).rejects.toThrow(/maxNewTokens = -1/);
    await expect(generate(model, ['ab'], { maxNewTokens: 1 })).rejects.toThrow(/prompts\[0\] is a string; pass a tokenizer/);
    await expect(generate(model, [[1]], { maxNewTokens: 1, stop: ['x'] })).rejects.toThrow(/stop strings need a tokenizer/);
    await expect(generate(model, [[1, 20]], { maxNewTokens: 1 })).rejects.toThrow(/tokens\[0, 1\] = 20 is out of range for vocab 11/);
    // Still usable after the refused calls.
    expect((await generate(model, [[1, 2]], { maxNewTokens: 2, eos: null })).lengths).toEqual([2]);
    model.dispose();
  });
});

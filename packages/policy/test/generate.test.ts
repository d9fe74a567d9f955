import { reference as kernelsReference } from '@napo/kernels';
import { describe, expect, it } from 'vitest';

import { CharTokenizer, TinyGPT, generate } from '../src/index.js';
import { randomizeParameters, tiny } from './helpers.js';

describe('generate', () => {
  it('is deterministic per seed, ragged, and reports temperature-scaled logprobs', async () => {
    const model = TinyGPT.create({ ...tiny, contextLength: 16 });
    randomizeParameters(model, 6, 0.5);
    const prompts = [[1, 2, 3], [4], [5, 6, 7, 8, 9]];
    const options = { maxNewTokens: 6, temperature: 0.8, topK: 5, seed: 42 };
    const a = await generate(model, prompts, options);
    const b = await generate(model, prompts, options);
    expect(a.tokens).toEqual(b.tokens);
    expect(a.logprobs).toEqual(b.logprobs);
    expect(a.lengths).toEqual([6, 6, 6]);
    expect(a.finishReasons).toEqual(['length', 'length', 'length']);
    const c = await generate(model, prompts, { ...options, seed: 43 });
    expect(c.tokens).not.toEqual(a.tokens);
    // Each logprob is log softmax(z / T)[token] of the full-forward logits at that position.
    const sequences = prompts.map((p, r) => [...p, ...(a.tokens[r] as number[])]);
    const T = Math.max(...sequences.map((s) => s.length));
    const logits = (await model.forward(sequences)).toArray();
    prompts.forEach((p, r) => {
      (a.tokens[r] as number[]).forEach((token, s) => {
        const t = p.length - 1 + s;
        const z = Array.from(logits.subarray((r * T + t) * 11, (r * T + t + 1) * 11), (v) => v / 0.8);
        const max = Math.max(...z);
        const lse = max + Math.log(z.reduce((acc, v) => acc + Math.exp(v - max), 0));
        expect(Math.abs((a.logprobs[r] as Float32Array)[s]! - ((z[token] as number) - lse))).toBeLessThan(1e-4);
      });
    });
    model.dispose();
  });

  it("matches the reference sampler's distribution (chi-square)", async () => {
    const model = TinyGPT.create(tiny);
    randomizeParameters(model, 8, 0.5);
    const rows = 4000;
    const prompt = [3, 1, 4];
    const opts = { temperature: 0.9, topK: 6, topP: 0.95 };
    const result = await generate(model, Array.from({ length: rows }, () => prompt), { ...opts, maxNewTokens: 1, seed: 5 });
    const logits = (await model.prefill([prompt])).toArray();
    const p = kernelsReference.filteredDistribution(logits, opts);
    const counts = new Array<number>(11).fill(0);
    for (const row of result.tokens) counts[row[0] as number]! += 1;
    let chi = 0;
    let cells = 0;
    for (let v = 0; v < 11; v++) {
      const expected = (p[v] as number) * rows;
      if (expected === 0) {
        expect(counts[v]).toBe(0);
        continue;
      }
      chi += ((counts[v] as number) - expected) ** 2 / expected;
      cells++;
    }
    expect(cells).toBeGreaterThan(2);
    // 99.9th percentile of chi-square with up to 5 degrees of freedom.
    expect(chi).toBeLessThan(20.5);
    model.dispose();
  });

  it('stops per row at EOS, at a stop string, and at the context length', async () => {
    const tokenizer = new CharTokenizer('abcdefghi');
    const model = TinyGPT.create({ ...tiny, contextLength: 10 });
    randomizeParameters(model, 9, 0.5);
    const greedy = await generate(model, ['ab', 'cde'], { maxNewTokens: 4, temperature: 0, tokenizer, eos: null });
    const first = greedy.tokens.map((row) => row[0] as number);
    // EOS = the first greedy token of row 0: row 0 stops after one token.
    const withEos = await generate(model, ['ab', 'cde'], { maxNewTokens: 4, temperature: 0, tokenizer, eos: first[0] as number });
    expect(withEos.tokens[0]).toEqual([first[0]]);
    expect(withEos.finishReasons[0]).toBe('eos');
    const text = greedy.texts?.[1] ?? '';
    if (text.length > 0) {
      const stopAt = await generate(model, ['ab', 'cde'], { maxNewTokens: 4, temperature: 0, tokenizer, eos: null, stop: [text.slice(0, 1)] });
      expect(stopAt.finishReasons[1]).toBe('stop');
      expect(stopAt.texts?.[1]?.includes(text.slice(0, 1))).toBe(true);
    }
    const long = await generate(model, [[2, 3, 4, 5, 6, 7, 8]], { maxNewTokens: 10, eos: null });
    expect(long.lengths).toEqual([3]);
    expect(long.finishReasons).toEqual(['length']);
    await expect(generate(model, [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], { maxNewTokens: 1 })).rejects.toThrow(/no room/);
    await expect(generate(model, [], { maxNewTokens: 1 })).rejects.toThrow(/prompts is empty/);
    await expect(generate(model, [[1, 20]], { maxNewTokens: 1 })).rejects.toThrow(/out of range for vocab 11/);
    model.dispose();
  });
});

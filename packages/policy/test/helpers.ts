import { TinyGPT, type TinyGPTConfigInput } from '../src/index.js';

export const tiny: TinyGPTConfigInput = { vocabSize: 11, contextLength: 8, dModel: 16, nLayers: 2, nHeads: 2, seed: 3 };

/** mulberry32: a small seeded PRNG for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every parameter perturbed (biases and LayerNorm too), so no gradient is trivially zero. */
export function randomizeParameters(model: TinyGPT, seed: number, scale = 0.3): void {
  const next = rng(seed);
  for (const { name } of model.parameters()) {
    const data = model.getParameter(name);
    const isLnWeight = /ln_.*\.weight$/.test(name);
    for (let i = 0; i < data.length; i++) data[i] = (isLnWeight ? 1 : 0) + scale * (2 * next() - 1);
    model.setParameter(name, data);
  }
}

export function parameterMap(model: TinyGPT): Map<string, Float64Array> {
  return new Map(model.parameters().map(({ name }) => [name, Float64Array.from(model.getParameter(name))]));
}

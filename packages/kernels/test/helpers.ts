/** Test data and statistics shared by the native-op tests. */
import { float32ToBf16 } from '../src/reference/bf16.js';

/** Deterministic test data (mulberry32), so a failure reproduces. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform logits in [-spread, spread]. */
export function randomLogits(rows: number, vocab: number, spread: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: rows * vocab }, () => (random() * 2 - 1) * spread);
}

export function randomTokens(rows: number, vocab: number, seed: number): Int32Array {
  const random = seededRandom(seed);
  return Int32Array.from({ length: rows }, () => Math.floor(random() * vocab));
}

export function toBf16(values: Float32Array): Uint16Array {
  return Uint16Array.from(values, float32ToBf16);
}

/**
 * Pearson's chi-square of observed counts against expected probabilities, pooling cells whose
 * expected count is under 5 (the usual validity rule) into one.
 */
export function chiSquare(counts: readonly number[], probabilities: ArrayLike<number>, draws: number): { statistic: number; degrees: number } {
  let statistic = 0;
  let cells = 0;
  let pooledObserved = 0;
  let pooledExpected = 0;
  for (let i = 0; i < counts.length; i++) {
    const expected = (probabilities[i] ?? 0) * draws;
    const observed = counts[i] ?? 0;
    if (expected === 0) {
      if (observed > 0) return { statistic: Infinity, degrees: 1 };
      continue;
    }
    if (expected < 5) {
      pooledObserved += observed;
      pooledExpected += expected;
      continue;
    }
    statistic += (observed - expected) ** 2 / expected;
    cells++;
  }
  if (pooledExpected > 0) {
    statistic += (pooledObserved - pooledExpected) ** 2 / pooledExpected;
    cells++;
  }
  return { statistic, degrees: Math.max(1, cells - 1) };
}

/**
 * An upper critical value of chi-square with `degrees` degrees of freedom at about p = 1e-6
 * (Wilson-Hilferty): a correct sampler fails it once in a million runs.
 */
export function chiSquareCritical(degrees: number): number {
  const z = 4.75;
  const term = 1 - 2 / (9 * degrees) + z * Math.sqrt(2 / (9 * degrees));
  return degrees * term ** 3;
}

export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    if (x === y) continue;
    worst = Math.max(worst, Math.abs(x - y));
  }
  return worst;
}

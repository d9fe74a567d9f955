/**
 * Philox4x32-10 (Salmon et al., SC11), exactly as docs/ops.md defines it and as
 * native/src/core/philox.h computes it, so a draw depends only on (seed, offset, row) and the
 * reference picks the same token as every native backend.
 */

const MULTIPLIER_0 = 0xd2511f53;
const MULTIPLIER_1 = 0xcd9e8d57;
const KEY_BUMP_0 = 0x9e3779b9;
const KEY_BUMP_1 = 0xbb67ae85;
const ROUNDS = 10;

const TWO_POW_16 = 0x10000;
const TWO_POW_32 = 0x100000000;
const UINT64_LIMIT = 1n << 64n;
/** 2^-24: the draw keeps the top 24 bits of a word, so it is exact in float32 as well. */
const UNIFORM_SCALE = 1 / 16777216;

/**
 * High 32 bits of the 64-bit product of two uint32 values. A double holds 53 bits, so `b` is
 * split into 16-bit halves; every partial product then stays below 2^49 and is exact.
 */
function mulHi32(a: number, b: number): number {
  const lowPartial = a * (b & 0xffff);
  const highPartial = a * (b >>> 16);
  const carryWindow = (highPartial % TWO_POW_16) * TWO_POW_16 + lowPartial;
  return (Math.floor(highPartial / TWO_POW_16) + Math.floor(carryWindow / TWO_POW_32)) >>> 0;
}

/**
 * Philox4x32-10 of one 128-bit counter under a 64-bit key.
 *
 * @param counter four uint32 words `(c0, c1, c2, c3)`
 * @param key two uint32 words `(k0, k1)`
 * @returns the four uint32 output words
 */
export function philox4x32(
  counter: readonly [number, number, number, number],
  key: readonly [number, number],
): [number, number, number, number] {
  let c0 = counter[0] >>> 0;
  let c1 = counter[1] >>> 0;
  let c2 = counter[2] >>> 0;
  let c3 = counter[3] >>> 0;
  let k0 = key[0] >>> 0;
  let k1 = key[1] >>> 0;
  for (let round = 0; round < ROUNDS; round++) {
    if (round > 0) {
      k0 = (k0 + KEY_BUMP_0) >>> 0;
      k1 = (k1 + KEY_BUMP_1) >>> 0;
    }
    const hi0 = mulHi32(MULTIPLIER_0, c0);
    const lo0 = Math.imul(MULTIPLIER_0, c0) >>> 0;
    const hi1 = mulHi32(MULTIPLIER_1, c2);
    const lo1 = Math.imul(MULTIPLIER_1, c2) >>> 0;
    const next0 = (hi1 ^ c1 ^ k0) >>> 0;
    const next2 = (hi0 ^ c3 ^ k1) >>> 0;
    c0 = next0;
    c1 = lo1;
    c2 = next2;
    c3 = lo0;
  }
  return [c0, c1, c2, c3];
}

/** A uint64 as its (low, high) uint32 words, the order Philox's key and counter take them in. */
export type Uint64Words = readonly [low: number, high: number];

/** Splits a uint64 into its low and high uint32 words. */
export function splitUint64(value: bigint): Uint64Words {
  return [Number(value & 0xffffffffn), Number((value >> 32n) & 0xffffffffn)];
}

/**
 * Normalises a seed or offset given as a number or a bigint to a uint64 bigint.
 *
 * @param label what the value is, for the message, e.g. `sample: seed`
 * @throws RangeError when the value is negative, not an integer, or not below 2^64
 */
export function toUint64(value: number | bigint, label: string): bigint {
  const given: unknown = value;
  if (typeof given !== 'number' && typeof given !== 'bigint') {
    throw new TypeError(`${label} must be a number or a bigint, got ${given === null ? 'null' : typeof given}`);
  }
  if (typeof value === 'number' && !Number.isInteger(value)) {
    throw new RangeError(`${label} = ${value} must be an integer in [0, 2^64)`);
  }
  const asBigInt = typeof value === 'bigint' ? value : BigInt(value);
  if (asBigInt < 0n || asBigInt >= UINT64_LIMIT) {
    throw new RangeError(`${label} = ${value} must be an integer in [0, 2^64)`);
  }
  return asBigInt;
}

/**
 * The uniform draw of one row from pre-split seed and offset words; `sample` splits once per
 * call so the per-row work stays in plain numbers.
 */
export function philoxUniformFromWords(seed: Uint64Words, offset: Uint64Words, row: number): number {
  const [word] = philox4x32([offset[0], offset[1], row >>> 0, 0], seed);
  return (word >>> 8) * UNIFORM_SCALE;
}

/**
 * The uniform in [0, 1) that drives row `row`'s draw: key = seed, counter = (offset, row, 0),
 * 24 bits of the first output word.
 *
 * @param seed uint64 Philox key
 * @param offset uint64 counter base, e.g. the decoding step
 * @param row uint32 row of the batch
 */
export function philoxUniform(seed: bigint, offset: bigint, row: number): number {
  return philoxUniformFromWords(
    splitUint64(toUint64(seed, 'philoxUniform: seed')),
    splitUint64(toUint64(offset, 'philoxUniform: offset')),
    row,
  );
}

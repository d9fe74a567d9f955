/**
 * bfloat16 <-> float32 conversions with the bit-exact behaviour of native/src/core/math.h, and a
 * row reader that widens logits of either dtype to float64 for the references.
 */
import type { HostTensor } from '../types.js';

// One shared word viewed both ways: reinterpreting bits without allocating per value.
const scratchWord = new ArrayBuffer(4);
const scratchBits = new Uint32Array(scratchWord);
const scratchFloat = new Float32Array(scratchWord);

const BF16_QUIET_BIT = 0x40;
const FLOAT32_ABS_MASK = 0x7fffffff;
const FLOAT32_INFINITY_BITS = 0x7f800000;

/**
 * Widens bfloat16 bits to the float32 value they stand for (exact: the 16 bits become the high
 * half of the float32).
 */
export function bf16ToFloat32(bits: number): number {
  scratchBits[0] = (bits & 0xffff) << 16;
  return scratchFloat[0] as number;
}

/**
 * Rounds a number to bfloat16 bits: first to float32, then to nearest even. NaN stays NaN (a
 * quiet bit is forced, since dropping the low payload bits could otherwise leave Infinity).
 */
export function float32ToBf16(x: number): number {
  scratchFloat[0] = x;
  const bits = scratchBits[0] as number;
  if ((bits & FLOAT32_ABS_MASK) > FLOAT32_INFINITY_BITS) {
    return ((bits >>> 16) | BF16_QUIET_BIT) & 0xffff;
  }
  // Below 2^32 for every non-NaN pattern, so plain double arithmetic is exact here.
  const roundingBias = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + roundingBias) >>> 16) & 0xffff;
}

/** Logits as the references take them: float32, or bfloat16 carried as raw bits. */
export type LogitsTensor = HostTensor<'float32' | 'bfloat16'>;

/**
 * Reads row `row` of a `[rows, vocab]` logits tensor into `out` as float64, widening bfloat16.
 * The caller has validated the tensor (see validate.ts).
 *
 * @returns `out`, for chaining
 */
export function widenRow(
  logits: LogitsTensor,
  row: number,
  vocab: number,
  out: Float64Array = new Float64Array(vocab),
): Float64Array {
  const start = row * vocab;
  const data = logits.data;
  if (data instanceof Uint16Array) {
    for (let column = 0; column < vocab; column++) {
      out[column] = bf16ToFloat32(data[start + column] as number);
    }
  } else {
    for (let column = 0; column < vocab; column++) {
      out[column] = data[start + column] as number;
    }
  }
  return out;
}

/**
 * Reference maskedRowSum (docs/ops.md, "maskedRowSum"): each row's sum over its masked positions,
 * in float64, and its gradient, the mask scaled by each row's incoming gradient.
 */
import type { HostTensor, MaskDType } from '../types.js';
import { checkFiniteEntry, checkFloat32Tensor, checkMaskTensor, checkMatrixShape, opRangeError } from './validate.js';

/** The mask's 0s and 1s, checked in row-major order. */
function checkMaskValues(op: string, mask: ArrayLike<number>, width: number): void {
  for (let index = 0; index < mask.length; index++) {
    const value = mask[index] as number;
    if (value !== 0 && value !== 1) {
      throw opRangeError(op, `mask[${Math.floor(index / width)}, ${index % width}] = ${value} must be 0 or 1`);
    }
  }
}

/**
 * `values` [R, W] float32, `mask` [R, W] -> [R]: `sum_t mask * values`, positions with mask 0
 * never read (they may hold anything, even -Infinity).
 *
 * @throws TypeError when values is not float32 or the mask not a mask dtype
 * @throws RangeError on mismatched shapes, a mask value other than 0 or 1, a non-finite masked value
 */
export function maskedRowSum(values: HostTensor<'float32'>, mask: HostTensor<MaskDType>): Float32Array {
  const op = 'maskedRowSum';
  const data = checkFloat32Tensor(op, 'values', values);
  const { rows, columns: width } = checkMatrixShape(op, 'values', values.shape, data.length);
  const maskData = checkMaskTensor(op, mask, [rows, width]);
  checkMaskValues(op, maskData, width);
  const sums = new Float32Array(rows);
  for (let row = 0; row < rows; row++) {
    let sum = 0;
    for (let index = row * width; index < (row + 1) * width; index++) {
      if (maskData[index] === 0) continue;
      checkFiniteEntry(op, `values[${row}, ${index - row * width}]`, data[index] as number);
      sum += data[index] as number;
    }
    sums[row] = sum;
  }
  return sums;
}

/**
 * maskedRowSum's gradient: `mask` [R, W], `gradSums` [R] -> [R, W] with `mask * gradSums[row]`.
 *
 * @throws RangeError on a mask value other than 0 or 1 or a non-finite gradSums entry
 */
export function maskedRowSumBackward(mask: HostTensor<MaskDType>, gradSums: Float32Array): Float32Array {
  const op = 'maskedRowSumBackward';
  if (mask.shape.length !== 2) throw opRangeError(op, `mask must have shape [R, W], got [${mask.shape.join(', ')}]`);
  const [rows, width] = mask.shape as [number, number];
  const maskData = checkMaskTensor(op, mask, [rows, width]);
  if (gradSums.length !== rows) throw opRangeError(op, `gradSums has shape [${gradSums.length}], expected [${rows}]`);
  checkMaskValues(op, maskData, width);
  gradSums.forEach((value, row) => checkFiniteEntry(op, `gradSums[${row}]`, value));
  return Float32Array.from(maskData, (m, index) => (m === 0 ? 0 : (gradSums[Math.floor(index / width)] as number)));
}

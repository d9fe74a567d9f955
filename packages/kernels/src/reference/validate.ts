/**
 * Argument checks shared by the reference ops. Messages name the op, the argument, the index and
 * the value in the same forms the native backends use, so a test can expect the same text from
 * every backend. Wrong dtypes are TypeErrors; everything else (shapes, ranges, NaN) RangeErrors.
 */
import type { HostTensor, MaskDType, PerRow } from '../types.js';
import type { LogitsTensor } from './bf16.js';

/** The two dimensions of a rank-2 tensor. */
export interface MatrixShape {
  readonly rows: number;
  readonly columns: number;
}

/** `[2, 3]`, the way every message writes a shape. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function opRangeError(op: string, message: string): RangeError {
  return new RangeError(`${op}: ${message}`);
}

export function opTypeError(op: string, message: string): TypeError {
  return new TypeError(`${op}: ${message}`);
}

/** A name for what a caller passed, for TypeErrors: the dtype of a tensor, else its class. */
function describeKind(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  return value.constructor?.name ?? 'object';
}

interface TensorLike {
  readonly dtype: unknown;
  readonly shape: readonly number[];
  readonly data: unknown;
}

function isTensorLike(value: unknown): value is TensorLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    'dtype' in value &&
    'shape' in value &&
    Array.isArray((value as { shape: unknown }).shape) &&
    'data' in value
  );
}

function isCount(value: number): boolean {
  return Number.isInteger(value) && value >= 0;
}

/** Checks rank 2, sane dimensions and that the data holds exactly rows * columns values. */
export function checkMatrixShape(
  op: string,
  name: string,
  shape: readonly number[],
  length: number,
): MatrixShape {
  if (shape.length !== 2) {
    throw opRangeError(op, `${name} must have rank 2, got shape ${formatShape(shape)}`);
  }
  const rows = shape[0] as number;
  const columns = shape[1] as number;
  if (!isCount(rows) || !isCount(columns)) {
    throw opRangeError(op, `${name} has shape ${formatShape(shape)}; dimensions must be integers >= 0`);
  }
  if (rows * columns !== length) {
    throw opRangeError(op, `${name} has ${length} values for shape ${formatShape(shape)}`);
  }
  return { rows, columns };
}

/** Checks the dtype (TypeError) and shape of a `[rows, vocab]` logits tensor. */
export function checkLogitsTensor(op: string, logits: LogitsTensor): MatrixShape {
  const dtype: unknown = logits.dtype;
  if (dtype !== 'float32' && dtype !== 'bfloat16') {
    throw opTypeError(op, `logits must be float32 or bfloat16, got ${String(dtype)}`);
  }
  const expectedStorage = dtype === 'float32' ? Float32Array : Uint16Array;
  if (!(logits.data instanceof expectedStorage)) {
    throw opTypeError(
      op,
      `logits is ${dtype}, so its data must be a ${expectedStorage.name}, got ${describeKind(logits.data)}`,
    );
  }
  return checkMatrixShape(op, 'logits', logits.shape, logits.data.length);
}

/**
 * Checks one widened logits row: no NaN, no +Infinity, at least one finite value (-Infinity is
 * allowed: it is how callers mask tokens out).
 */
export function checkLogitsRow(op: string, row: number, values: Float64Array): void {
  let hasFiniteValue = false;
  for (let column = 0; column < values.length; column++) {
    const value = values[column] as number;
    if (Number.isNaN(value)) throw opRangeError(op, `logits[${row}, ${column}] is NaN`);
    if (value === Infinity) throw opRangeError(op, `logits[${row}, ${column}] is Infinity`);
    if (value !== -Infinity) hasFiniteValue = true;
  }
  if (!hasFiniteValue) throw opRangeError(op, `logits row ${row} has no finite value`);
}

/** Token ids as the references take them. */
export type TokensInput = Int32Array | HostTensor<'int32'>;

function tokenIds(op: string, tokens: TokensInput): Int32Array {
  const given: unknown = tokens;
  if (given instanceof Int32Array) return given;
  if (!isTensorLike(given)) {
    throw opTypeError(op, `tokens must be int32, got ${describeKind(given)}`);
  }
  if (given.dtype !== 'int32' || !(given.data instanceof Int32Array)) {
    throw opTypeError(op, `tokens must be int32, got ${String(given.dtype)}`);
  }
  if (given.shape.length !== 1) {
    throw opRangeError(op, `tokens must have rank 1, got shape ${formatShape(given.shape)}`);
  }
  return given.data;
}

/** Checks one token id per row, each in `[0, vocab)`, and returns the ids. */
export function checkTokens(
  op: string,
  tokens: TokensInput,
  rows: number,
  vocab: number,
): Int32Array {
  const ids = tokenIds(op, tokens);
  if (ids.length !== rows) throw opRangeError(op, `tokens has ${ids.length} entries for ${rows} rows`);
  for (let row = 0; row < rows; row++) {
    const id = ids[row] as number;
    if (id < 0 || id >= vocab) {
      throw opRangeError(op, `tokens[${row}] = ${id} is out of range for vocab ${vocab}`);
    }
  }
  return ids;
}

/** Checks a float32 tensor's dtype (TypeError) and, when given, its exact shape. */
export function checkFloat32Tensor(
  op: string,
  name: string,
  tensor: HostTensor<'float32'>,
  expectedShape?: readonly number[],
): Float32Array {
  const given: unknown = tensor;
  if (!isTensorLike(given)) throw opTypeError(op, `${name} must be float32, got ${describeKind(given)}`);
  if (given.dtype !== 'float32' || !(given.data instanceof Float32Array)) {
    throw opTypeError(op, `${name} must be float32, got ${String(given.dtype)}`);
  }
  if (expectedShape !== undefined && !sameShape(given.shape, expectedShape)) {
    throw opRangeError(
      op,
      `${name} has shape ${formatShape(given.shape)}, expected ${formatShape(expectedShape)}`,
    );
  }
  const expectedLength = given.shape.reduce((product, dimension) => product * dimension, 1);
  if (given.data.length !== expectedLength) {
    throw opRangeError(op, `${name} has ${given.data.length} values for shape ${formatShape(given.shape)}`);
  }
  return given.data;
}

const maskStorage = { float32: Float32Array, int32: Int32Array, uint8: Uint8Array, bool: Uint8Array } as const;

/** Checks a mask's dtype (float32, int32, uint8 or bool: a TypeError otherwise) and exact shape. */
export function checkMaskTensor(op: string, mask: HostTensor<MaskDType>, expectedShape: readonly number[]): ArrayLike<number> {
  const given: unknown = mask;
  if (!isTensorLike(given)) throw opTypeError(op, `mask must be float32, int32, uint8 or bool, got ${describeKind(given)}`);
  const storage = maskStorage[given.dtype as MaskDType] as (typeof maskStorage)[MaskDType] | undefined;
  if (storage === undefined || !(given.data instanceof storage)) {
    throw opTypeError(op, `mask must be float32, int32, uint8 or bool, got ${String(given.dtype)}`);
  }
  if (!sameShape(given.shape, expectedShape)) {
    throw opRangeError(op, `mask has shape ${formatShape(given.shape)}, expected ${formatShape(expectedShape)}`);
  }
  if (given.data.length !== expectedShape.reduce((product, dimension) => product * dimension, 1)) {
    throw opRangeError(op, `mask has ${given.data.length} values for shape ${formatShape(given.shape)}`);
  }
  return given.data;
}

function sameShape(actual: readonly number[], expected: readonly number[]): boolean {
  return actual.length === expected.length && actual.every((dimension, axis) => dimension === expected[axis]);
}

/** Checks a plain Float32Array argument's class (TypeError) and length. */
export function checkFloat32Vector(
  op: string,
  name: string,
  values: Float32Array,
  length: number,
  unit: string,
): Float32Array {
  const given: unknown = values;
  if (!(given instanceof Float32Array)) {
    throw opTypeError(op, `${name} must be a Float32Array, got ${describeKind(given)}`);
  }
  if (given.length !== length) throw opRangeError(op, `${name} has ${given.length} entries for ${length} ${unit}`);
  return given;
}

/** Throws unless `value` is finite, naming `label` (e.g. `rewards[3]`) and what it is instead. */
export function checkFiniteEntry(op: string, label: string, value: number): void {
  if (!Number.isFinite(value)) throw opRangeError(op, `${label} is ${value}`);
}

/** A check of one parameter value; `label` is e.g. `temperature[2]`. */
export type ParameterCheck = (op: string, label: string, value: number) => void;

/**
 * Resolves a per-row parameter (a scalar or one value per row) to one value per row. A scalar
 * counts as a one-value array, so its messages say `topP[0]`, exactly as the C ABI, which only
 * ever sees arrays, reports it.
 */
export function resolvePerRow(
  op: string,
  name: string,
  value: PerRow | undefined,
  rows: number,
  fallback: number,
  check: ParameterCheck,
): Float64Array {
  const given: ArrayLike<number> =
    value === undefined ? [fallback] : typeof value === 'number' ? [value] : value;
  if (given.length !== 1 && given.length !== rows) {
    throw opRangeError(op, `${name} has ${given.length} values for ${rows} rows (give 1 or ${rows})`);
  }
  for (let index = 0; index < given.length; index++) check(op, `${name}[${index}]`, given[index] as number);
  const perRow = new Float64Array(rows);
  for (let row = 0; row < rows; row++) perRow[row] = given[given.length === 1 ? 0 : row] as number;
  return perRow;
}

/** Finite and >= 0 (sampling temperature, clip ranges, eps, beta); NaN is reported as not finite. */
export const checkNonNegative: ParameterCheck = (op, label, value) => {
  if (value < 0) throw opRangeError(op, `${label} = ${value} must be >= 0`);
  if (!Number.isFinite(value)) throw opRangeError(op, `${label} = ${value} must be finite`);
};

/** Finite and > 0 (the temperature of tokenLogprobs, the loss normalisers). */
export const checkPositive: ParameterCheck = (op, label, value) => {
  if (value <= 0) throw opRangeError(op, `${label} = ${value} must be > 0`);
  if (!Number.isFinite(value)) throw opRangeError(op, `${label} = ${value} must be finite`);
};

export const checkTopK: ParameterCheck = (op, label, value) => {
  if (!Number.isInteger(value)) throw opRangeError(op, `${label} = ${value} must be an integer`);
  if (value < 0) throw opRangeError(op, `${label} = ${value} must be >= 0`);
};

export const checkTopP: ParameterCheck = (op, label, value) => {
  if (!(value > 0 && value <= 1)) throw opRangeError(op, `${label} = ${value} must be in (0, 1]`);
};

export const checkMinP: ParameterCheck = (op, label, value) => {
  if (!(value >= 0 && value <= 1)) throw opRangeError(op, `${label} = ${value} must be in [0, 1]`);
};

/** Checks that `value` is one of `allowed`, e.g. a loss type. */
export function checkChoice<Choice extends string>(
  op: string,
  name: string,
  value: string,
  allowed: readonly Choice[],
): Choice {
  const match = allowed.find((choice) => choice === value);
  if (match === undefined) {
    throw opRangeError(op, `${name} '${value}' is not one of ${allowed.join(', ')}`);
  }
  return match;
}

/**
 * Tensor: a napo allocation on a device (or a caller's CPU buffer, wrapped without a copy),
 * created from TypedArrays and read back to them.
 */
import { float32ToBf16 } from './reference/bf16.js';
import { addon, type NativeTensorHandle } from './native.js';
import type { AnyTypedArray, DType, DTypeArray, DeviceName, HostTensor } from './types.js';

export interface TensorOptions<D extends DType = DType> {
  /**
   * Default: from the data (Float32Array -> float32, Int32Array -> int32, Uint16Array ->
   * bfloat16 bits, Uint8Array -> uint8, boolean[] -> bool), else float32.
   */
  dtype?: D;
  /** Default 'cpu'. */
  device?: DeviceName;
  /**
   * Default true. `false` wraps `data` itself (a TypedArray of the dtype's storage type, on the
   * CPU): no copy, a change to either shows in the other, and the tensor keeps the buffer alive.
   * Do not transfer (postMessage) a wrapped buffer: napo rejects a tensor whose buffer was detached.
   */
  copy?: boolean;
}

export interface ReadOptions {
  /**
   * Default true: a copy. `false` (CPU tensors only) gives a TypedArray over the tensor's own
   * memory: writes show in the tensor, and the memory stays alive while the array does, even
   * after dispose(), so memoryStats counts it until the array is collected.
   */
  copy?: boolean;
}

/** Anything a tensor can be made from. */
export type TensorData = AnyTypedArray | readonly number[] | readonly boolean[];

const dtypes: readonly DType[] = ['float32', 'bfloat16', 'int32', 'uint8', 'bool'];

/** The TypedArray each dtype is stored in (bfloat16 as its raw 16 bits, bool as bytes). */
const storageTypes = {
  float32: Float32Array,
  bfloat16: Uint16Array,
  int32: Int32Array,
  uint8: Uint8Array,
  bool: Uint8Array,
} as const;

/**
 * A contiguous row-major tensor held by napo's caching allocator, so `memoryStats` counts it.
 * `dispose()` frees it at once; otherwise the garbage collector's finalizer does (napo tells V8
 * how much native memory its tensors hold, so collection keeps up in loops that never dispose).
 */
export class Tensor<D extends DType = DType> {
  readonly handle: NativeTensorHandle;
  readonly shape: readonly number[];

  private constructor(handle: NativeTensorHandle) {
    this.handle = handle;
    this.shape = Object.freeze(handle.shape.slice());
  }

  /** Wraps a handle returned by the addon (for sibling packages' native calls). */
  static fromHandle<D extends DType = DType>(handle: NativeTensorHandle): Tensor<D> {
    return new Tensor<D>(handle);
  }

  get dtype(): D {
    return this.handle.dtype as D;
  }

  get device(): DeviceName {
    return this.handle.device;
  }

  get disposed(): boolean {
    return this.handle.disposed;
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((count, dim) => count * dim, 1);
  }

  get byteLength(): number {
    return this.handle.byteLength;
  }

  /**
   * The data on the host (bfloat16 as raw Uint16 bits): a copy (blocking for a device copy), or
   * with `{ copy: false }` a view of a CPU tensor's memory.
   */
  toArray(options: ReadOptions = {}): DTypeArray[D] {
    if (typeof options !== 'object' || options === null) throw new TypeError('Tensor.toArray: options must be an object');
    const copy = options.copy ?? true;
    if (typeof copy !== 'boolean') throw new TypeError('Tensor.toArray: copy must be a boolean');
    try {
      return (copy ? this.handle.toArray() : this.handle.arrayView()) as DTypeArray[D];
    } catch (error) {
      // V8's own refusal (an ArrayBuffer too large for the JS heap) does not say who asked.
      if (error instanceof RangeError && !error.message.startsWith('Tensor.')) {
        throw new RangeError(`Tensor.toArray: ${this.byteLength} bytes do not fit in a JS array (${error.message})`);
      }
      throw error;
    }
  }

  /** Like toArray(), as a Promise, for code that is written to overlap reads with other work. */
  async read(): Promise<DTypeArray[D]> {
    return this.toArray();
  }

  /** The data as a plain HostTensor, the input form of the `reference` ops. */
  toHost(): HostTensor<D> {
    return { dtype: this.dtype, shape: this.shape, data: this.toArray() };
  }

  /** A copy on another device. */
  to(device: DeviceName): Tensor<D> {
    return new Tensor<D>(this.handle.to(device));
  }

  /**
   * A view of the same memory in another shape with as many elements (no copy). The memory is
   * freed when every view of it is disposed or collected.
   */
  reshape(shape: readonly number[]): Tensor<D> {
    return new Tensor<D>(this.handle.reshape(checkShapeArray('Tensor.reshape', shape)));
  }

  /**
   * Rows [begin, end) of the first dimension: a view of the same memory (no copy), on the same
   * device, as `torch.Tensor.narrow(0, begin, end - begin)`. Writes through either show in both.
   */
  rows(begin: number, end: number): Tensor<D> {
    return new Tensor<D>(this.handle.rows(begin, end));
  }

  /**
   * Overwrites this tensor with another of the same dtype and element count, on any device
   * (a device-to-device copy stays on the device), e.g. into a `rows()` view of a larger tensor.
   */
  copyFrom(source: Tensor<D>): void {
    this.handle.copyFrom(checkTensorArgument('Tensor.copyFrom', 'source', source).handle);
  }

  /** Frees the memory now (once no view of it is alive); the tensor cannot be used afterwards. */
  dispose(): void {
    this.handle.dispose();
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return value.constructor?.name ?? 'an object';
  return typeof value;
}

/** Throws unless `value` is a live Tensor: what every op checks its tensor arguments with. */
export function checkTensorArgument(op: string, name: string, value: unknown): Tensor {
  if (!(value instanceof Tensor)) throw new TypeError(`${op}: ${name} must be a Tensor, got ${describe(value)}`);
  return value;
}

/** Shapes are arrays of integers; napo checks their range (>= 0, the size limit) natively. */
function checkShapeArray(op: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${op}: shape must be an array of integers, got ${describe(shape)}`);
  return shape.map((dim: unknown, index) => {
    if (typeof dim !== 'number' || !Number.isInteger(dim)) {
      throw new TypeError(`${op}: shape[${index}] = ${String(dim)} must be an integer`);
    }
    return dim;
  });
}

function checkDtype(op: string, dtype: unknown): DType {
  const match = dtypes.find((name) => name === dtype);
  if (match === undefined) throw new TypeError(`${op}: dtype '${String(dtype)}' is not one of ${dtypes.join(', ')}`);
  return match;
}

function inferDtype(data: TensorData): DType {
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint16Array) return 'bfloat16';
  if (data instanceof Uint8Array) return 'uint8';
  if (Array.isArray(data) && data.length > 0 && typeof data[0] === 'boolean') return 'bool';
  return 'float32';
}

/** Plain JS values: numbers, or booleans for a bool tensor; no nesting, no strings. */
function checkElements(data: readonly unknown[], dtype: DType): readonly number[] {
  return data.map((value, index) => {
    if (typeof value === 'boolean' && dtype === 'bool') return value ? 1 : 0;
    if (typeof value !== 'number') {
      throw new TypeError(`tensor: data[${index}] is ${describe(value)}, not a number (flatten nested arrays and give a shape)`);
    }
    return value;
  });
}

/** Integer dtypes hold integers in their range; bool holds 0 or 1. */
function checkIntegerRange(values: ArrayLike<number>, dtype: DType): void {
  const [low, high] = dtype === 'int32' ? [-(2 ** 31), 2 ** 31 - 1] : dtype === 'uint8' ? [0, 255] : [0, 1];
  for (let index = 0; index < values.length; index++) {
    const value = values[index] as number;
    if (!Number.isInteger(value) || value < low || value > high) {
      throw new RangeError(`tensor: data[${index}] = ${value} is not ${dtype === 'bool' ? '0 or 1' : `an ${dtype}`}`);
    }
  }
}

/** The data in the storage array of `dtype`: bfloat16 from numbers is rounded to nearest even. */
function toStorage(data: AnyTypedArray | readonly number[], dtype: DType): AnyTypedArray {
  const Storage = storageTypes[dtype];
  if (dtype === 'bfloat16') return data instanceof Uint16Array ? data : Uint16Array.from(data, (value) => float32ToBf16(value));
  if (dtype !== 'float32' && !(data instanceof Storage && dtype !== 'bool')) checkIntegerRange(data, dtype);
  return data instanceof Storage ? data : Storage.from(data);
}

function isTypedArray(data: unknown): data is AnyTypedArray {
  return (
    data instanceof Float32Array || data instanceof Int32Array || data instanceof Uint16Array || data instanceof Uint8Array
  );
}

/**
 * Creates a tensor from host data: copied into napo memory, or with `{ copy: false }` wrapping
 * the caller's TypedArray (CPU only).
 * @example tensor(new Float32Array([1, 2, 3, 4]), [2, 2])
 * @example tensor([0.5, 1.5], [2], { dtype: 'bfloat16' })
 * @example tensor(mask, [S, T], { copy: false })   // a Uint8Array mask, no copy
 */
export function tensor<D extends DType = DType>(
  data: TensorData,
  shape?: readonly number[],
  options: TensorOptions<D> = {},
): Tensor<D> {
  if (!isTypedArray(data) && !Array.isArray(data)) {
    throw new TypeError(`tensor: data must be a TypedArray or an array of numbers, got ${describe(data)}`);
  }
  if (typeof options !== 'object' || options === null) throw new TypeError('tensor: options must be an object');
  const dtype = checkDtype('tensor', options.dtype ?? inferDtype(data)) as D;
  const dims = shape === undefined ? [data.length] : checkShapeArray('tensor', shape);
  const device = options.device ?? 'cpu';
  if ((options.copy ?? true) === false) {
    if (!(data instanceof storageTypes[dtype])) {
      throw new TypeError(`tensor: { copy: false } needs data as a ${storageTypes[dtype].name} for ${dtype}, got ${describe(data)}`);
    }
    if (device !== 'cpu') throw new TypeError(`tensor: { copy: false } wraps CPU memory; device is '${String(device)}'`);
    if (dtype === 'bool') checkIntegerRange(data, dtype);
    return Tensor.fromHandle<D>(addon().wrap(data, dtype, dims));
  }
  const values = isTypedArray(data) ? data : checkElements(data, dtype);
  const count = dims.reduce((product, dim) => product * dim, 1);
  if (count !== values.length) {
    throw new RangeError(`tensor: shape [${dims.join(', ')}] holds ${count} elements, data has ${values.length}`);
  }
  const storage = toStorage(values, dtype);
  const handle = addon().empty(dtype, dims, device);
  try {
    handle.copyFrom(storage);
  } catch (error) {
    handle.dispose();
    throw error;
  }
  return Tensor.fromHandle<D>(handle);
}

/** An uninitialised tensor. */
export function empty<D extends DType = 'float32'>(shape: readonly number[], options: TensorOptions<D> = {}): Tensor<D> {
  const dims = checkShapeArray('empty', shape);
  const dtype = checkDtype('empty', options.dtype ?? 'float32');
  return Tensor.fromHandle<D>(addon().empty(dtype, dims, options.device ?? 'cpu', 'empty'));
}

/** Tensor: a napo allocation on a device, created from TypedArrays and read back to them. */
import { float32ToBf16 } from './reference/bf16.js';
import { addon, type NativeTensorHandle } from './native.js';
import type { AnyTypedArray, DType, DTypeArray, DeviceName, HostTensor } from './types.js';

export interface TensorOptions<D extends DType = DType> {
  /** Default: from the array (Float32Array -> float32, Int32Array -> int32, Uint16Array -> bfloat16), else float32. */
  dtype?: D;
  /** Default 'cpu'. */
  device?: DeviceName;
}

/**
 * A contiguous row-major tensor held by napo's caching allocator, so `memoryStats` counts it.
 * `dispose()` frees it at once; otherwise the garbage collector's finalizer does.
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

  /** A copy of the data on the host (bfloat16 as raw Uint16 bits). Blocks for a device copy. */
  toArray(): DTypeArray[D] {
    return this.handle.toArray() as DTypeArray[D];
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
    return new Tensor<D>(this.handle.reshape(shape));
  }

  /** Frees the memory now; the tensor cannot be used afterwards. */
  dispose(): void {
    this.handle.dispose();
  }
}

function inferDtype(data: AnyTypedArray | readonly number[]): DType {
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint16Array) return 'bfloat16';
  return 'float32';
}

function checkShape(shape: readonly number[], length: number): void {
  for (const [index, dim] of shape.entries()) {
    if (!Number.isInteger(dim) || dim < 0) {
      throw new RangeError(`tensor: shape[${index}] = ${dim} must be a non-negative integer`);
    }
  }
  const count = shape.reduce((product, dim) => product * dim, 1);
  if (count !== length) {
    throw new RangeError(`tensor: shape [${shape.join(', ')}] holds ${count} elements, data has ${length}`);
  }
}

/** The data in the storage array of `dtype`: bfloat16 from numbers is rounded to nearest even. */
function toStorage(data: AnyTypedArray | readonly number[], dtype: DType): AnyTypedArray {
  if (dtype === 'float32') return data instanceof Float32Array ? data : Float32Array.from(data);
  if (dtype === 'int32') {
    if (data instanceof Int32Array) return data;
    for (const [index, value] of Array.from(data).entries()) {
      if (!Number.isInteger(value)) throw new RangeError(`tensor: data[${index}] = ${value} is not an int32`);
    }
    return Int32Array.from(data);
  }
  if (data instanceof Uint16Array) return data;
  return Uint16Array.from(data, (value) => float32ToBf16(value));
}

/**
 * Creates a tensor from host data (copied into napo memory).
 * @example tensor(new Float32Array([1, 2, 3, 4]), [2, 2])
 * @example tensor([0.5, 1.5], [2], { dtype: 'bfloat16' })
 */
export function tensor<D extends DType = DType>(
  data: AnyTypedArray | readonly number[],
  shape?: readonly number[],
  options: TensorOptions<D> = {},
): Tensor<D> {
  const dtype = options.dtype ?? (inferDtype(data) as D);
  const dims = shape ?? [data.length];
  checkShape(dims, data.length);
  const handle = addon().empty(dtype, dims, options.device ?? 'cpu');
  try {
    handle.copyFrom(toStorage(data, dtype));
  } catch (error) {
    handle.dispose();
    throw error;
  }
  return Tensor.fromHandle<D>(handle);
}

/** An uninitialised tensor. */
export function empty<D extends DType = 'float32'>(shape: readonly number[], options: TensorOptions<D> = {}): Tensor<D> {
  const dims = shape.slice();
  for (const [index, dim] of dims.entries()) {
    if (!Number.isInteger(dim) || dim < 0) {
      throw new RangeError(`empty: shape[${index}] = ${dim} must be a non-negative integer`);
    }
  }
  return Tensor.fromHandle<D>(addon().empty(options.dtype ?? 'float32', dims, options.device ?? 'cpu'));
}

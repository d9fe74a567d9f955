/** Wrapping the caller's buffer and reading a CPU tensor without a copy, with their lifetime rules. */
import { describe, expect, it } from 'vitest';

import { empty, memoryStats, tensor, tokenLogprobs } from '../src/index.js';

describe('zero-copy', () => {
  it('tensor(data, shape, { copy: false }) is the caller\'s buffer: writes show both ways', () => {
    const data = new Float32Array([0, 0, 0, 0, 0, 0]);
    const wrapped = tensor(data, [2, 3], { copy: false });
    data[4] = 50; // row 1 now puts its mass on token 1
    const { logprobs } = tokenLogprobs(wrapped, tensor(Int32Array.of(0, 1)));
    expect(logprobs.toArray()[1]).toBeCloseTo(0, 5);
    const view = wrapped.toArray({ copy: false });
    view[0] = 9;
    expect(data[0]).toBe(9);
    expect(wrapped.byteLength).toBe(24);
  });

  it('wraps every dtype from its own storage type, and only that', () => {
    expect(tensor(new Int32Array(4), [4], { copy: false }).dtype).toBe('int32');
    expect(tensor(new Uint16Array(4), [2, 2], { copy: false, dtype: 'bfloat16' }).dtype).toBe('bfloat16');
    expect(tensor(new Uint8Array([1, 0]), [2], { copy: false, dtype: 'bool' }).dtype).toBe('bool');
    expect(() => tensor(new Float32Array(4), [4], { copy: false, dtype: 'int32' })).toThrow(
      /tensor: \{ copy: false \} needs data as a Int32Array for int32/,
    );
    expect(() => tensor([1, 2], [2], { copy: false })).toThrow(TypeError);
    expect(() => tensor(new Float32Array(4), [5], { copy: false })).toThrow(/tensor: shape holds 20 bytes of float32, data has 16/);
    expect(() => tensor(new Uint8Array([2]), [1], { copy: false, dtype: 'bool' })).toThrow(/data\[0\] = 2 is not 0 or 1/);
  });

  it('a wrapped buffer that was transferred away is an error, not a read of freed memory', () => {
    const data = new Float32Array(4);
    const wrapped = tensor(data, [2, 2], { copy: false });
    structuredClone(data.buffer, { transfer: [data.buffer] });
    expect(() => tokenLogprobs(wrapped, tensor(Int32Array.of(0, 0)))).toThrow(
      /tokenLogprobs: the buffer this tensor wraps was detached/,
    );
  });

  it('toArray({ copy: false }) keeps the memory alive after dispose() until the array is gone', () => {
    const source = tensor(Float32Array.from({ length: 1024 }, (_, i) => i));
    const view = source.toArray({ copy: false });
    source.dispose();
    // A tensor of the same size must not land on the viewed memory.
    const other = empty([1024]);
    other.handle.copyFrom(new Float32Array(1024).fill(-1));
    expect(view[1000]).toBe(1000);
    expect(() => empty([1], { device: 'cpu' }).toArray({ copy: 'no' as never })).toThrow(TypeError);
  });

  it('wrapped memory is the caller\'s: the allocator does not count it', () => {
    const before = memoryStats('cpu').allocatedBytes;
    const wrapped = tensor(new Float32Array(1 << 20), [1 << 20], { copy: false });
    expect(memoryStats('cpu').allocatedBytes).toBe(before);
    wrapped.dispose();
  });
});

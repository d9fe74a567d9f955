import { describe, expect, it } from 'vitest';

import {
  backendInfo,
  devices,
  emptyCache,
  memoryCategories,
  memoryHistory,
  memoryStats,
  recordMemoryHistory,
  resetPeakMemoryStats,
  setMemoryPhase,
  tensor,
  tokenLogprobs,
  tokenLogprobsBackward,
  type BytesByCategory,
  type Tensor,
} from '../src/index.js';

const sum = (bytes: BytesByCategory) => memoryCategories.reduce((total, category) => total + bytes[category], 0);

describe('memory counters (torch.cuda.memory_* conventions)', () => {
  it('return to the baseline after dispose; reserved keeps the cache until emptyCache', () => {
    const before = memoryStats('cpu');
    const a = tensor(new Float32Array(1000), [10, 100]);
    const b = tensor(new Int32Array(10));
    const during = memoryStats('cpu');
    expect(during.allocatedBytes - before.allocatedBytes).toBeGreaterThanOrEqual(4000 + 40);
    expect(during.allocations - before.allocations).toBe(2);
    expect(during.reservedBytes).toBeGreaterThanOrEqual(during.allocatedBytes);
    const out = tokenLogprobs(a, b, { entropy: true });
    expect(memoryStats('cpu').allocations - before.allocations).toBe(5);
    for (const t of [a, b, out.logprobs, out.lse, out.entropy!]) t.dispose();
    const after = memoryStats('cpu');
    expect(after.allocatedBytes).toBe(before.allocatedBytes);
    expect(after.allocations).toBe(before.allocations);
    emptyCache('cpu');
    expect(memoryStats('cpu').reservedBytes).toBe(memoryStats('cpu').allocatedBytes);
  });

  it('track the peak of a phase and reset it', () => {
    resetPeakMemoryStats('cpu');
    const base = memoryStats('cpu');
    expect(base.peakAllocatedBytes).toBe(base.allocatedBytes);
    const big = tensor(new Float32Array(1 << 20));
    big.dispose();
    const afterPhase = memoryStats('cpu');
    expect(afterPhase.peakAllocatedBytes - base.allocatedBytes).toBeGreaterThanOrEqual(4 << 20);
    expect(afterPhase.allocatedBytes).toBe(base.allocatedBytes);
    resetPeakMemoryStats('cpu');
    expect(memoryStats('cpu').peakAllocatedBytes).toBe(base.allocatedBytes);
  });

  it('share the storage between a tensor and its reshaped views, freed with the last of them', () => {
    const before = memoryStats('cpu');
    const matrix = tensor(Float32Array.from({ length: 12 }, (_, i) => i), [3, 4]);
    const flat = matrix.reshape([12]);
    expect(flat.shape).toEqual([12]);
    expect(Array.from(flat.toArray())).toEqual(Array.from(matrix.toArray()));
    expect(memoryStats('cpu').allocations - before.allocations).toBe(1);
    expect(() => matrix.reshape([5])).toThrow(/12 elements cannot take a shape of 5/);
    matrix.dispose();
    expect(flat.toArray()[11]).toBe(11);
    flat.dispose();
    expect(memoryStats('cpu').allocatedBytes).toBe(before.allocatedBytes);
  });

  it('rows(): a view of a row range of the same storage; copyFrom() writes a tensor into it', () => {
    const before = memoryStats('cpu');
    const matrix = tensor(Float32Array.from({ length: 12 }, (_, i) => i), [3, 4]);
    const middle = matrix.rows(1, 3);
    expect(middle.shape).toEqual([2, 4]);
    expect(middle.byteLength).toBe(32);
    expect(Array.from(middle.toArray())).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    const views = [middle.rows(1, 2), middle.reshape([8]), matrix.rows(3, 3)] as const;
    expect(Array.from(views[0].toArray())).toEqual([8, 9, 10, 11]);
    expect(Array.from(views[1].toArray())).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    expect(views[2].shape).toEqual([0, 4]);
    views.forEach((view) => view.dispose());
    expect(memoryStats('cpu').allocations - before.allocations).toBe(1);
    const source = tensor(Float32Array.of(-1, -2, -3, -4), [1, 4]);
    const firstRow = middle.rows(0, 1);
    firstRow.copyFrom(source);
    firstRow.dispose();
    expect(Array.from(matrix.toArray())).toEqual([0, 1, 2, 3, -1, -2, -3, -4, 8, 9, 10, 11]);
    // An op reads a view's rows only.
    const logprobOf = (logits: Tensor<'float32'>): number => {
      const target = tensor(Int32Array.of(3));
      const { logprobs, lse } = tokenLogprobs(logits, target);
      const value = logprobs.toArray()[0]!;
      [target, logprobs, lse, logits].forEach((t) => t.dispose());
      return value;
    };
    expect(logprobOf(matrix.rows(2, 3))).toBe(logprobOf(tensor(Float32Array.of(8, 9, 10, 11), [1, 4])));
    expect(() => matrix.rows(2, 4)).toThrow(/Tensor.rows: \[2, 4\) is not within the 3 rows/);
    expect(() => middle.copyFrom(source)).toThrow(/Tensor.copyFrom: the source \(float32, 4 elements\) does not match the tensor \(float32, 8 elements\)/);
    matrix.dispose();
    source.dispose();
    expect(middle.toArray()[7]).toBe(11);
    middle.dispose();
    expect(memoryStats('cpu').allocatedBytes).toBe(before.allocatedBytes);
  });

  it('reuse a cached block for a tensor of the same size', () => {
    const first = tensor(new Float32Array(4096));
    first.dispose();
    const reserved = memoryStats('cpu').reservedBytes;
    const second = tensor(new Float32Array(4096));
    expect(memoryStats('cpu').reservedBytes).toBe(reserved);
    second.dispose();
  });
});

describe('memory by category', () => {
  it('adds up to the allocator\'s total, now and at the peak, and names what each allocation is for', () => {
    resetPeakMemoryStats('cpu');
    const before = memoryStats('cpu');
    expect(sum(before.byCategory)).toBe(before.allocatedBytes);
    const logits = tensor(new Float32Array(8 * 1000), [8, 1000]);
    const tokens = tensor(new Int32Array(8));
    const out = tokenLogprobs(logits, tokens);
    const gradLogprobs = tensor(new Float32Array(8).fill(1));
    const grad = tokenLogprobsBackward(logits, tokens, out.lse, gradLogprobs);
    const during = memoryStats('cpu');
    expect(sum(during.byCategory)).toBe(during.allocatedBytes);
    expect(sum(during.atPeakByCategory)).toBe(during.peakAllocatedBytes);
    // Tensors made from data are inputs; the op's outputs temporaries; a [N, V] gradient logits.
    expect(during.byCategory.input - before.byCategory.input).toBeGreaterThanOrEqual(8 * 1000 * 4);
    expect(during.byCategory.temporary - before.byCategory.temporary).toBeGreaterThanOrEqual(2 * 8 * 4);
    // Counted as the allocator does: in 512-byte blocks.
    expect(during.byCategory.logits - before.byCategory.logits).toBe(Math.ceil((8 * 1000 * 4) / 512) * 512);
    for (const category of memoryCategories) expect(during.peakByCategory[category]).toBeGreaterThanOrEqual(during.byCategory[category]);
    expect(during.torch['allocated_bytes.all.current']).toBe(during.allocatedBytes);
    expect(during.torch['allocated_bytes.all.peak']).toBe(during.peakAllocatedBytes);
    expect(during.torch['reserved_bytes.all.current']).toBe(during.reservedBytes);
    expect(during.torch.num_ooms).toBe(0);
    for (const t of [logits, tokens, out.logprobs, out.lse, gradLogprobs, grad]) t.dispose();
    const after = memoryStats('cpu');
    expect(after.byCategory).toEqual(before.byCategory);
  });

  it('shows no new peak in a phase that allocates nothing new', () => {
    const held = tensor(new Float32Array(1 << 16));
    resetPeakMemoryStats('cpu');
    const start = memoryStats('cpu');
    const view = held.reshape([256, 256]);
    view.toArray();
    const end = memoryStats('cpu');
    expect(end.peakAllocatedBytes).toBe(start.allocatedBytes);
    expect(end.atPeakByCategory).toEqual(start.byCategory);
    held.dispose();
  });
});

describe('memory history', () => {
  it('records allocations and frees with their category and phase, bounded, oldest first', () => {
    recordMemoryHistory('cpu', { maxEvents: 16 });
    setMemoryPhase('cpu', 'fill');
    for (let i = 0; i < 20; i++) tensor(new Float32Array(128)).dispose();
    setMemoryPhase('cpu', 'one more');
    const last = tensor(new Float32Array(256));
    const { events, dropped } = memoryHistory('cpu');
    expect(events).toHaveLength(16);
    expect(dropped).toBe(41 - 16);
    expect(events.every((e, i) => i === 0 || e.timeMs >= (events[i - 1] as (typeof events)[number]).timeMs)).toBe(true);
    const newest = events[events.length - 1] as (typeof events)[number];
    expect(newest).toMatchObject({ bytes: 1024, category: 'input', phase: 'one more' });
    expect(events.filter((e) => e.phase === 'fill').every((e) => Math.abs(e.bytes) === 512)).toBe(true);
    last.dispose();
    recordMemoryHistory('cpu', { maxEvents: 0 });
    tensor(new Float32Array(4)).dispose();
    expect(memoryHistory('cpu').events).toHaveLength(0);
    expect(() => recordMemoryHistory('cpu', { maxEvents: -1 })).toThrow(/maxEvents = -1/);
  });
});

describe('backends', () => {
  it('report CUDA as compiled-but-unavailable with a reason, or available with devices', () => {
    const info = backendInfo();
    expect(info.cpu.threads).toBeGreaterThanOrEqual(1);
    if (info.cuda.available) {
      expect(devices()).toContain('cuda:0');
    } else {
      expect(info.cuda.reason).toBeTruthy();
      expect(devices()).toEqual(['cpu']);
      expect(() => tensor(new Float32Array(4), [4], { device: 'cuda:0' })).toThrow(/cuda:0 is not available/);
      expect(() => memoryStats('cuda:0')).toThrow(/not available/);
    }
  });

  it('reject a device name that is not cpu or cuda:N', () => {
    expect(() => tensor(new Float32Array(4), [4], { device: 'tpu:0' as 'cpu' })).toThrow(RangeError);
  });
});

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

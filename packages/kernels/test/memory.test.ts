import { describe, expect, it } from 'vitest';

import { backendInfo, devices, emptyCache, memoryStats, resetPeakMemoryStats, tensor, tokenLogprobs } from '../src/index.js';

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

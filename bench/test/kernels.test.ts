import { describe, expect, it } from 'vitest';

import { runKernelBench } from '../src/kernels.js';
import { kernelTable } from '../src/report.js';

describe('the kernel bench (a smoke pass on a tiny shape, so the suite cannot rot)', () => {
  it('measures every op against its yardsticks and prints the table', () => {
    const result = runKernelBench({ rows: 8, vocab: 1000, iterations: 5, referenceRows: 2, bandwidthBytes: 64 << 20 });
    expect(result.readBandwidthBytesPerSecond).toBeGreaterThan(1e8);
    expect(result.figures.map((f) => `${f.op} ${f.dtype}`)).toEqual([
      'tokenLogprobs float32',
      'tokenLogprobs+entropy float32',
      'sample top-k 50 top-p 0.9 float32',
      'tokenLogprobs bfloat16',
      'tokenLogprobs+entropy bfloat16',
      'sample top-k 50 top-p 0.9 bfloat16',
    ]);
    for (const figure of result.figures) {
      expect(figure.timing.samples).toBeGreaterThanOrEqual(5);
      expect(figure.timing.minMs).toBeLessThanOrEqual(figure.timing.medianMs);
      expect(figure.timing.medianMs).toBeLessThanOrEqual(figure.timing.maxMs);
      for (const value of [figure.bytesPerSecond, figure.fractionOfBandwidth, figure.baseline.speedup, figure.reference.speedup]) {
        expect(Number.isFinite(value) && value > 0).toBe(true);
      }
    }
    const table = kernelTable(result);
    expect(table).toContain('measured read bandwidth');
    expect(table).toContain('sample top-k 50 top-p 0.9');
  });
});

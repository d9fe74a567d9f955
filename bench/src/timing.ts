/** Timing one function in-process with tinybench: median and spread over fixed repetitions. */
import { synchronize, type DeviceName } from '@napo/kernels';
import { Bench } from 'tinybench';

import type { Timing } from './results.js';

export type { Timing };

export interface TimingOptions {
  /** Timed calls (>= 5 for a median worth quoting). */
  iterations: number;
  /** Untimed calls first: caches, page faults, the allocator's first blocks. */
  warmup: number;
  /** Waited for after every call, so a CUDA call is timed to its end, not to its enqueue. */
  device?: DeviceName;
}

export function timeCall(name: string, call: () => void, options: TimingOptions): Timing {
  const device = options.device;
  const body = device && device !== 'cpu' ? () => (call(), synchronize(device)) : call;
  const bench = new Bench({
    iterations: Math.max(5, options.iterations),
    time: 0,
    warmupIterations: options.warmup,
    warmupTime: 0,
    throws: true,
  });
  bench.add(name, body);
  bench.runSync();
  const result = bench.getTask(name)?.result;
  if (!result || result.state !== 'completed') throw new Error(`bench: ${name} did not complete`);
  return {
    medianMs: result.latency.p50,
    minMs: result.latency.min,
    maxMs: result.latency.max,
    repetitions: result.latency.samplesCount,
  };
}

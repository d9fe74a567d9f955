/** Timing one function in-process with tinybench: median and spread over fixed iterations. */
import { Bench } from 'tinybench';

export interface Timing {
  /** Milliseconds per call. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  samples: number;
}

export interface TimingOptions {
  /** Timed calls (>= 5 for a median worth quoting). */
  iterations: number;
  /** Untimed calls first: caches, page faults, the allocator's first blocks. */
  warmup: number;
}

export function timeCall(name: string, call: () => void, options: TimingOptions): Timing {
  const bench = new Bench({
    iterations: options.iterations,
    time: 0,
    warmupIterations: options.warmup,
    warmupTime: 0,
    throws: true,
  });
  bench.add(name, call);
  bench.runSync();
  const result = bench.getTask(name)?.result;
  if (!result || result.state !== 'completed') throw new Error(`bench: ${name} did not complete`);
  return {
    medianMs: result.latency.p50,
    minMs: result.latency.min,
    maxMs: result.latency.max,
    samples: result.latency.samplesCount,
  };
}

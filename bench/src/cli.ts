#!/usr/bin/env node
/** `npm run bench -- <suite>`: runs a benchmark suite, prints a table, optionally writes JSON. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import { Command, InvalidArgumentError } from 'commander';

import { defaultKernelBenchOptions, runKernelBench } from './kernels.js';
import { runPolicyBench } from './policy.js';
import { kernelTable } from './report.js';

function positiveInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError('must be a positive integer');
  return parsed;
}

function writeJson(path: string | undefined, result: unknown): void {
  if (!path) return;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${path}`);
}

const program = new Command('napo-bench').description('napo benchmarks: every figure a ratio measured in one run');

program
  .command('kernels', { isDefault: true })
  .description('tokenLogprobs and sample against read bandwidth, the unfused composition and the TS reference')
  .option('--rows <n>', 'rows (tokens) N', positiveInteger, defaultKernelBenchOptions.rows)
  .option('--vocab <n>', 'vocabulary V', positiveInteger, defaultKernelBenchOptions.vocab)
  .option('--iterations <n>', 'timed calls per op (>= 5)', positiveInteger, defaultKernelBenchOptions.iterations)
  .option('--json <file>', 'also write the result as JSON')
  .action((options: { rows: number; vocab: number; iterations: number; json?: string }) => {
    const result = runKernelBench({
      ...defaultKernelBenchOptions,
      rows: options.rows,
      vocab: options.vocab,
      iterations: Math.max(5, options.iterations),
      referenceRows: Math.min(defaultKernelBenchOptions.referenceRows, options.rows),
    });
    console.log(kernelTable(result));
    writeJson(options.json, result);
  });

program
  .command('policy')
  .description('TinyGPT forward+backward and decode tokens/s on 1 and 2 threads, matmul GFLOP/s against measured peak FMA')
  .option('--json <file>', 'also write the result as JSON')
  .action(async (options: { json?: string }) => {
    writeJson(options.json, await runPolicyBench());
  });

await program.parseAsync();

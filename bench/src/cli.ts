#!/usr/bin/env node
/**
 * `npm run bench -- [all|kernels|trainer|policy|page] [--full] [--device cpu|cuda:0] [--out dir]`
 * (`policy` also takes `--quick`, the default, spelled out), or `random-model SHAPE DIR`:
 * runs suites, prints their tables, writes one JSON per run and the page comparing every run.
 * The default (`all`, quick mode) fits in about 5 minutes on a 2-core machine.
 */
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Command, InvalidArgumentError, Option } from 'commander';

import { benchDevices } from './machine.js';
import { writePage } from './page.js';
import { kernelTable, policyTable, trainerTable } from './report.js';
import { writeResult, type BenchMode } from './results.js';
import { kernelSuitePresets, runKernelSuiteOn, type KernelSuiteOptions } from './suites/kernels.js';
import { writeRandomModel } from './random-model.js';
import { modelShapes, policySuitePresets, runPolicySuite } from './suites/policy.js';

const defaultOut = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

interface CommonOptions {
  quick?: boolean;
  full?: boolean;
  smoke?: boolean;
  device?: string;
  out: string;
}

function positiveIntegers(value: string): number[] {
  const parsed = value.split(',').map((part) => Number(part.trim()));
  if (parsed.some((n) => !Number.isInteger(n) || n < 1)) throw new InvalidArgumentError('must be positive integers, comma-separated');
  return parsed;
}

function modeOf(options: CommonOptions): BenchMode {
  if (options.quick && options.full) throw new RangeError('--quick and --full are exclusive');
  return options.smoke ? 'smoke' : options.full ? 'full' : 'quick';
}

const shown = (path: string) => relative(process.cwd(), path) || path;

function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function kernels(options: CommonOptions & { rows?: number[]; vocab?: number[] }): Promise<void> {
  const preset = kernelSuitePresets[modeOf(options)];
  const suite: KernelSuiteOptions = { ...preset, ...(options.rows ? { rows: options.rows } : {}), ...(options.vocab ? { vocabs: options.vocab } : {}) };
  for (const device of benchDevices(options.device)) {
    note(`kernels (${suite.mode}) on ${device}: N ${suite.rows.join(', ')} x V ${suite.vocabs.join(', ')}, ${suite.dtypes.join(' and ')}`);
    const started = performance.now();
    const result = runKernelSuiteOn(device, suite, (entry) => note(`  ${entry.op} ${entry.variant} ${entry.dtype} ${entry.shape.join('x')}: ${entry.timing.medianMs.toFixed(3)} ms`));
    console.log(kernelTable(result));
    console.log(`wrote ${shown(writeResult(options.out, result))} (${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
  }
}

async function trainer(options: CommonOptions): Promise<void> {
  // Loaded when asked for: the other suites run whatever state @napo/trainer is in.
  const { runTrainerSuite, trainerSuitePresets } = await import('./suites/trainer.js');
  const suite = trainerSuitePresets[modeOf(options)];
  note(`trainer (${suite.mode}): ${suite.algorithms.join(', ')}, ${suite.steps} steps each`);
  const started = performance.now();
  const result = await runTrainerSuite(suite, {
    onWarmup: (step, total) => {
      if (step === 1 || step === total || step % 100 === 0) note(`  warm-up ${step}/${total}`);
    },
    onStep: (algorithm, record) => {
      // A line per tenth of the run: enough to see it move, few enough to read the table.
      if (record.step % Math.max(1, Math.round(suite.steps / 10)) === 0) {
        note(`  ${algorithm} step ${record.step}/${suite.steps}: ${record.stepSeconds.toFixed(2)} s`);
      }
    },
  });
  console.log(trainerTable(result));
  console.log(`wrote ${shown(writeResult(options.out, result))} (${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
}

async function policy(options: CommonOptions): Promise<void> {
  const suite = policySuitePresets[modeOf(options)];
  if (options.device !== undefined && options.device !== 'cpu') note(`policy: napo's models run on the CPU backend; measuring on cpu, not ${options.device}`);
  const shapes = suite.models.map((m) => `${m.shape.name} (${m.layers} layers)`).join(', ');
  note(`policy (${suite.mode}) on cpu: ${shapes}, random weights`);
  const started = performance.now();
  const result = await runPolicySuite(suite, { onNote: note });
  console.log(policyTable(result));
  console.log(`wrote ${shown(writeResult(options.out, result))} (${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
}

function page(options: Pick<CommonOptions, 'out'>): void {
  console.log(`page: ${shown(writePage(options.out))}`);
}

const program = new Command('napo-bench').description('napo benchmarks: every figure a ratio measured in one run, one JSON per run, one page for all');

function withCommon(command: Command): Command {
  return command
    .option('--full', 'the full grid and 200 trainer steps (default: quick)')
    .addOption(new Option('--smoke', 'one tiny shape per op, 2 trainer steps (CI)').hideHelp())
    .option('--device <name>', 'cpu or cuda:N (default: every device present)')
    .option('--out <dir>', 'results folder', defaultOut);
}

withCommon(program.command('all', { isDefault: true }).description('every suite (quick unless --full), then the page')).action(async (options: CommonOptions) => {
  const started = performance.now();
  await kernels(options);
  await trainer(options);
  await policy(options);
  page(options);
  note(`all suites: ${((performance.now() - started) / 1000).toFixed(0)} s`);
});

withCommon(program.command('kernels').description('every op and backward over N x V x dtype, against bandwidth, the unfused composition and the TS reference'))
  .option('--rows <list>', 'override N, e.g. 256,2048', positiveIntegers)
  .option('--vocab <list>', 'override V, e.g. 32000,151936', positiveIntegers)
  .action(async (options: CommonOptions & { rows?: number[]; vocab?: number[] }) => {
    await kernels(options);
    page(options);
  });

withCommon(program.command('trainer').description('GRPO vs GRPO+SFT vs ExP-GRPO: throughput, time and peak memory per phase, allocated bytes per step')).action(
  async (options: CommonOptions) => {
    await trainer(options);
    page(options);
  },
);

withCommon(
  program
    .command('policy')
    .description('SmolLM2-135M and Qwen2.5-0.5B shapes (random weights): prefill, decode and training tokens/s against the measured peak FMA; one GRPO step, fused vs unfused scoring, time and peak per phase'),
)
  .option('--quick', 'quick mode, the default: fewer layers and new tokens, the real vocabularies and widths (about a minute on 2 cores)')
  .action(async (options: CommonOptions) => {
    await policy(options);
    page(options);
  });

program
  .command('random-model')
  .description('write a Hugging Face directory with random weights in a published shape and the Qwen tokenizer (for napo profile / napo memory --model)')
  .argument('<shape>', `one of ${Object.keys(modelShapes).join(', ')}`)
  .argument('<dir>', 'the directory to write')
  .option('--layers <n>', 'fewer layers than the published model', (value) => positiveIntegers(value)[0])
  .action(async (name: string, dir: string, options: { layers?: number }) => {
    const shape = modelShapes[name];
    if (!shape) throw new RangeError(`unknown shape ${JSON.stringify(name)}: one of ${Object.keys(modelShapes).join(', ')}`);
    console.log(await writeRandomModel(shape, dir, options.layers));
  });

program
  .command('page')
  .description('render the page from every JSON in the results folder')
  .option('--out <dir>', 'results folder', defaultOut)
  .action((options: { out: string }) => page({ out: resolve(options.out) }));

program.parseAsync().catch((error: unknown) => {
  console.error(error instanceof Error ? `napo-bench: ${error.message}` : error);
  process.exitCode = 1;
});

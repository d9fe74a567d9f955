/**
 * Checkpoints a trainer can resume from: the policy with its optimizer state, the frozen
 * frozen policy (KL / DPO) when there is one, and the trainer's state (step, RNG, offline explanations).
 * Each is written into a fresh `step-N` folder that is renamed into place only when complete, and
 * `latest` names the last complete one: a crash mid-save leaves the previous checkpoint intact.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { Tokenizer } from '@napo/policy';

import { writeFileAtomic } from './report.js';
import type { Trainer, TrainerState } from './trainer.js';

interface CheckpointManifest {
  step: number;
  state: TrainerState;
  hasFrozenPolicy: boolean;
}

export async function saveCheckpoint(directory: string, trainer: Trainer, tokenizer: Tokenizer): Promise<string> {
  const frozen = trainer.frozenPolicy;
  mkdirSync(directory, { recursive: true });
  const name = `step-${trainer.step}`;
  const staging = join(directory, `${name}.partial`);
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging);
  await trainer.policy.save(join(staging, 'policy'), { tokenizer, optimizer: true });
  if (frozen) await frozen.save(join(staging, 'frozen-policy'), { tokenizer });
  const manifest: CheckpointManifest = { step: trainer.step, state: trainer.state(), hasFrozenPolicy: frozen !== undefined };
  writeFileSync(join(staging, 'trainer.json'), `${JSON.stringify(manifest)}\n`);
  const final = join(directory, name);
  rmSync(final, { recursive: true, force: true });
  renameSync(staging, final);
  const previous = latestCheckpoint(directory);
  writeFileAtomic(join(directory, 'latest'), `${name}\n`);
  if (previous && previous !== final) rmSync(previous, { recursive: true, force: true });
  return final;
}

/** The folder `latest` names, or undefined when the directory holds no complete checkpoint. */
export function latestCheckpoint(directory: string): string | undefined {
  const pointer = join(directory, 'latest');
  if (!existsSync(pointer)) return undefined;
  const folder = join(directory, readFileSync(pointer, 'utf8').trim());
  return existsSync(join(folder, 'trainer.json')) ? folder : undefined;
}

/** Loads the checkpoint into the trainer's policy (and frozen policy), and restores its state. */
export async function loadCheckpoint(directory: string, trainer: Trainer): Promise<number> {
  const folder = latestCheckpoint(directory);
  if (!folder) throw new RangeError(`resume: ${directory} has no complete checkpoint (no 'latest')`);
  const manifest = JSON.parse(readFileSync(join(folder, 'trainer.json'), 'utf8')) as CheckpointManifest;
  await trainer.policy.load(join(folder, 'policy'));
  // The frozen policy is the one the run started from, not the one it resumes with.
  if (manifest.hasFrozenPolicy) await (await trainer.frozenPolicyModel()).load(join(folder, 'frozen-policy'));
  trainer.restore(manifest.state);
  return manifest.step;
}

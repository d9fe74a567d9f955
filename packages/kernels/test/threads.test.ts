/** The CPU thread pool: resizing between calls, and the settings it is given. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const distIndex = fileURLToPath(new URL('../dist/index.js', import.meta.url));

function runChild(script: string, env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
}

describe('the CPU thread pool', () => {
  it('never hangs when its size changes between calls (workers start at the current job)', () => {
    const child = runChild(`
      import { sample, setCpuThreads, tensor } from '${distIndex}';
      const logits = tensor(Float32Array.from({ length: 64 * 5000 }, (_, i) => Math.sin(i)), [64, 5000]);
      for (let i = 0; i < 300; i++) {
        setCpuThreads(1 + (i % 3));
        sample(logits, { temperature: 0.7, seed: i });
      }
      console.log('done');
    `);
    expect(child.signal, 'the child was killed: a deadlock').toBeNull();
    expect(child.stdout.trim()).toBe('done');
  });

  it('ignores a NAPO_NUM_THREADS it cannot honour, with a warning and backendInfo().cpu.note', () => {
    const child = runChild(
      `import { backendInfo, cpuThreads } from '${distIndex}';
       console.log(JSON.stringify({ threads: cpuThreads(), note: backendInfo().cpu.note }));`,
      { NAPO_NUM_THREADS: '3000' },
    );
    expect(child.status, child.stderr).toBe(0);
    const seen = JSON.parse(child.stdout) as { threads: number; note: string };
    expect(seen.threads).toBeLessThanOrEqual(1024);
    expect(seen.note).toMatch(/NAPO_NUM_THREADS=3000 is not an integer in \[1, 1024\]/);
    expect(child.stderr).toMatch(/NAPO_SETTING_IGNORED|NAPO_NUM_THREADS=3000/);
  });
});

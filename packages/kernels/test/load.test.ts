import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

const distIndex = fileURLToPath(new URL('../dist/index.js', import.meta.url));

describe('loading the addon', () => {
  it('fails with one clear error that lists fixes when the binary is broken', () => {
    // A child process, so the broken path cannot affect this one's loaded addon.
    const script = `import('${distIndex}').then((k) => { try { k.backendInfo(); } catch (e) { console.log(e.message); process.exit(3); } })`;
    const child = spawnSync(process.execPath, ['-e', script], {
      env: { ...process.env, NAPO_ADDON_PATH: fileURLToPath(new URL('./load.test.ts', import.meta.url)) },
      encoding: 'utf8',
    });
    expect(child.status).toBe(3);
    expect(child.stdout).toMatch(/could not load the native addon/);
    expect(child.stdout).toMatch(/Looked for napo.node in:\n  - .*load\.test\.ts/);
    expect(child.stdout).toMatch(/npm rebuild @napo\/kernels/);
    expect(child.stdout).toMatch(/NAPO_ADDON_PATH/);
    expect(child.stdout).toMatch(/reference/);
  });
});

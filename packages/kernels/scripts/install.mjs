// @napo/kernels' install step. The addon comes, in order, from:
//   1. NAPO_ADDON_PATH, when set (nothing to do here);
//   2. the prebuilt platform package (@napo/kernels-linux-x64), when npm installed it and it loads
//      here: tried in a child process, so a binary that cannot load (an older glibc, say) never
//      takes this process down;
//   3. a source build of the native/ folder this package ships, with cmake-js (CMake >= 3.20 and a
//      C++17 compiler; nvcc, when on the PATH, adds the CUDA backend).
// Inside the napo repository there is no native/ folder here: the root build makes the addon.
// Settings: NAPO_FORCE_BUILD=1 builds from source even when a prebuilt binary loads;
// NAPO_CUDA=OFF skips the CUDA backend; NAPO_CUDA_ARCHS=80;90 picks the architectures.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const say = (message) => console.log(`@napo/kernels: ${message}`);

function prebuiltBinary() {
  try {
    const manifest = require.resolve(`@napo/kernels-${process.platform}-${process.arch}/package.json`);
    const binary = resolve(dirname(manifest), 'napo.node');
    return existsSync(binary) ? binary : undefined;
  } catch {
    return undefined;
  }
}

function loads(binary) {
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(binary)}).backendInfo()`], {
    encoding: 'utf8',
  });
  return { ok: probe.status === 0, reason: (probe.stderr || '').trim().split('\n')[0] };
}

function buildFromSource() {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const args = [cmakeJs, 'compile', '--log-level', 'warn', '--CDNAPO_BUILD_TESTS=OFF'];
  if (process.env.NAPO_CUDA) args.push(`--CDNAPO_CUDA=${process.env.NAPO_CUDA}`);
  if (process.env.NAPO_CUDA_ARCHS) args.push(`--CDNAPO_CUDA_ARCHS=${process.env.NAPO_CUDA_ARCHS}`);
  say('building napo.node from source (CMake, a C++17 compiler; nvcc adds CUDA when present)...');
  const build = spawnSync(process.execPath, args, { cwd: packageDir, stdio: 'inherit' });
  if (build.status !== 0) {
    console.error(
      [
        '@napo/kernels: the source build failed, and no prebuilt binary fits this machine.',
        '  - install CMake >= 3.20 and a C++17 compiler (Debian: apt-get install cmake g++), then `npm rebuild @napo/kernels`;',
        '  - or set NAPO_ADDON_PATH to a napo.node built for this platform and install again;',
        '  - the pure-TS reference ops work without the addon: set NAPO_SKIP_BUILD=1 to install without it.',
      ].join('\n'),
    );
    process.exit(1);
  }
  say(`built ${resolve(packageDir, 'build', 'Release', 'napo.node')}`);
}

function main() {
  if (!existsSync(resolve(packageDir, 'native'))) return; // the napo repository: its root build makes the addon
  if (process.env.NAPO_ADDON_PATH) return say(`using NAPO_ADDON_PATH=${process.env.NAPO_ADDON_PATH}`);
  if (process.env.NAPO_SKIP_BUILD === '1') return say('NAPO_SKIP_BUILD=1: no addon; only the reference ops will work');
  const prebuilt = prebuiltBinary();
  if (prebuilt && process.env.NAPO_FORCE_BUILD !== '1') {
    const probe = loads(prebuilt);
    if (probe.ok) return say(`using the prebuilt ${prebuilt}`);
    say(`the prebuilt binary does not load here (${probe.reason}); building from source instead`);
  }
  buildFromSource();
}

main();

// npm's prepack / postpack hook of the published packages (cwd: the package's folder): puts in
// the package what it ships from elsewhere in the repository, and takes it out again (--clean).
//   @napo/kernels            the native sources and CMakeLists.txt, for a source build on install
//   @napo/kernels-linux-x64  the prebuilt napo.node from the repository's build
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';

const packageDir = process.cwd();
const repository = resolve(packageDir, '..', '..');
const { name } = JSON.parse(readFileSync(resolve(packageDir, 'package.json'), 'utf8'));
const clean = process.argv.includes('--clean');

const staged = {
  '@napo/kernels': [
    ['CMakeLists.txt', 'CMakeLists.txt'],
    ['native/include', 'native/include'],
    ['native/src', 'native/src'],
    ['native/addon', 'native/addon'],
  ],
  '@napo/kernels-linux-x64': [['build/Release/napo.node', 'napo.node']],
}[name];
if (!staged) throw new Error(`stage-package: nothing to stage for ${name}`);

for (const [from, to] of staged) {
  const target = resolve(packageDir, to);
  rmSync(target, { recursive: true, force: true });
  if (clean) continue;
  const source = resolve(repository, from);
  if (!existsSync(source)) {
    throw new Error(`stage-package: ${source} is missing; build it first (npm run build:native at the repository root)`);
  }
  cpSync(source, target, { recursive: true });
}
if (clean) rmSync(resolve(packageDir, 'native'), { recursive: true, force: true });

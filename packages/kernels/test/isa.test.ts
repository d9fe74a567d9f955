/**
 * The CPU kernels are compiled once per instruction set and picked at run time: what backendInfo()
 * reports, and, in the binary, that no code outside the AVX-512 and AVX2 copies uses their
 * instructions (so the addon runs on any x86-64).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { addonCandidates, backendInfo } from '../src/index.js';

describe('CPU instruction sets', () => {
  it('reports the copy in use and the copies this CPU runs', () => {
    const { cpu } = backendInfo();
    const supported = cpu.isaSupported.split(',');
    expect(supported.at(-1)).toBe('generic');
    const requested = process.env.NAPO_CPU_ISA;
    expect(cpu.isa).toBe(requested && supported.includes(requested) ? requested : supported[0]);
  });

  const binary = addonCandidates().find((path) => existsSync(path));
  const objdump = spawnSync('objdump', ['--version']).status === 0;
  it.skipIf(process.arch !== 'x64' || !objdump || !binary)(
    'has no AVX instruction outside the avx512 and avx2 copies, in any function the copies could share',
    () => {
      // Functions the linker may share between copies (not local); their code must be baseline.
      const symbols = spawnSync('objdump', ['-t', '-C', binary!], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout;
      const shared = new Set<string>();
      for (const line of symbols.split('\n')) {
        const fields = line.split(/\s+/);
        if (line.includes(' F .text') && fields[1] !== 'l') shared.add(fields[0]!);
      }
      const code = spawnSync('objdump', ['-d', '--no-show-raw-insn', '-C', binary!], { encoding: 'utf8', maxBuffer: 1 << 30 }).stdout;
      const offenders = new Set<string>();
      let address = '';
      let name = '';
      for (const line of code.split('\n')) {
        const header = /^([0-9a-f]+) <(.*)>:$/.exec(line);
        if (header) {
          [, address, name] = header as unknown as [string, string, string];
          continue;
        }
        if (!shared.has(address) || /avx512::|avx2::/.test(name)) continue;
        if (/^\s+[0-9a-f]+:\s+(v[a-z0-9]+|kmov[a-z]|andn|shlx|shrx|sarx|bzhi|pdep|pext|tzcnt|lzcnt|popcnt)\s/.test(line)) {
          offenders.add(name);
        }
      }
      expect([...offenders]).toEqual([]);
    },
  );
});

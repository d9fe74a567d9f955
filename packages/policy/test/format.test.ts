import { readFile, readdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  CharTokenizer,
  SafetensorsReader,
  constantSchedule,
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  tokenizerFromJSON,
  warmupCosineSchedule,
  writeSafetensors,
  type LazyTensor,
  type SafetensorsTensor,
} from '../src/index.js';
import { escapeRegExp, temporaryDirectory } from './helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ dir, cleanup } = await temporaryDirectory('napo-format-'));
});
afterAll(async () => {
  await cleanup();
});


describe('safetensors', () => {
  it('round-trips tensors and metadata in the documented layout', () => {
    const tensors = new Map<string, SafetensorsTensor>([
      ['a', { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }],
      ['b', { dtype: 'I32', shape: [1], data: Int32Array.from([-7]) }],
      ['c', { dtype: 'BF16', shape: [3], data: Uint16Array.from([0x3f80, 0x4000, 0]) }],
    ]);
    const bytes = encodeSafetensors(tensors, { format: 'pt' });
    const headerLength = Number(bytes.readBigUInt64LE(0));
    expect(headerLength % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString()) as Record<string, { data_offsets: number[] }>;
    expect(header.a?.data_offsets).toEqual([0, 24]);
    expect(header.b?.data_offsets).toEqual([24, 28]);
    expect(header.__metadata__).toEqual({ format: 'pt' });
    expect(bytes.length).toBe(8 + headerLength + 34);
    const decoded = decodeSafetensors(bytes);
    expect(decoded.metadata).toEqual({ format: 'pt' });
    expect(decoded.tensors.get('a')).toEqual(tensors.get('a'));
    expect(decoded.tensors.get('b')).toEqual(tensors.get('b'));
    expect(decoded.tensors.get('c')).toEqual(tensors.get('c'));
  });

  it('rejects malformed files with clear errors', () => {
    expect(() => decodeSafetensors(new Uint8Array(4))).toThrow(/no header/);
    const bad = (header: unknown, data = 0) => {
      const json = Buffer.from(JSON.stringify(header));
      const out = Buffer.alloc(8 + json.length + data);
      out.writeBigUInt64LE(BigInt(json.length));
      json.copy(out, 8);
      return out;
    };
    expect(() => decodeSafetensors(bad({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 4))).toThrow(/run past the data/);
    expect(() => decodeSafetensors(bad({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8))).toThrow(/8 bytes for shape \[3\]/);
    expect(() => decodeSafetensors(bad({ x: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } }, 8))).toThrow(/unsupported dtype F64/);
    expect(() =>
      decodeSafetensors(bad({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8)),
    ).toThrow(/overlap/);
    expect(() => encodeSafetensors(new Map([['x', { dtype: 'F32', shape: [2], data: new Float32Array(3) }]]))).toThrow(/3 values/);
  });
});

describe('writeSafetensors and SafetensorsReader', () => {
  // A 3-value BF16 tensor first, so the F32 data after it starts at an odd multiple of 2 bytes.
  const tensors = new Map<string, SafetensorsTensor | LazyTensor>([
    ['h', { dtype: 'BF16', shape: [3], data: Uint16Array.from([0x3f80, 0xc000, 0x7f80]) }],
    ['w', { dtype: 'F32', shape: [2, 2], load: () => Float32Array.from([1.5, -2, 0, 1e-3]) }],
    ['i', { dtype: 'I32', shape: [2], data: Int32Array.from([7, -7]) }],
    ['f', { dtype: 'F16', shape: [1], load: () => Uint16Array.from([0x3c00]) }],
  ]);

  it('writes atomically (no temporary file left) and reads one tensor at a time, unaligned data included', async () => {
    const path = join(dir, 'a.safetensors');
    await writeSafetensors(path, tensors, { format: 'pt', note: 'n' });
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const reader = await SafetensorsReader.open(path);
    expect(reader.path).toBe(path);
    expect(reader.names()).toEqual(['h', 'w', 'i', 'f']);
    expect(reader.metadata).toEqual({ format: 'pt', note: 'n' });
    expect(reader.info('w')).toEqual({ dtype: 'F32', shape: [2, 2] });
    expect(reader.info('nope')).toBeUndefined();
    expect(await reader.read('w')).toEqual({ dtype: 'F32', shape: [2, 2], data: Float32Array.from([1.5, -2, 0, 1e-3]) });
    expect(await reader.read('h')).toEqual({ dtype: 'BF16', shape: [3], data: Uint16Array.from([0x3f80, 0xc000, 0x7f80]) });
    expect(await reader.read('i')).toEqual({ dtype: 'I32', shape: [2], data: Int32Array.from([7, -7]) });
    expect(await reader.read('f')).toEqual({ dtype: 'F16', shape: [1], data: Uint16Array.from([0x3c00]) });
    await expect(reader.read('nope')).rejects.toThrow(new RegExp(`${escapeRegExp(path)}: no tensor named nope`));
    await reader.close();
    // The whole-file reader and the in-memory decoder agree with it.
    const whole = await readSafetensors(path);
    expect([...whole.tensors.keys()]).toEqual(['h', 'w', 'i', 'f']);
    expect(whole.tensors.get('w')?.data).toEqual(Float32Array.from([1.5, -2, 0, 1e-3]));
  });

  it('a lazy tensor of the wrong size fails the write and leaves neither the file nor a temporary', async () => {
    const path = join(dir, 'bad-lazy.safetensors');
    const bad = new Map<string, LazyTensor>([['x', { dtype: 'F32', shape: [3], load: () => new Float32Array(2) }]]);
    await expect(writeSafetensors(path, bad)).rejects.toThrow(/x has shape \[3\] \(3 values\) but 2 values/);
    expect((await readdir(dir)).filter((f) => f.startsWith('.bad-lazy') || f === 'bad-lazy.safetensors')).toEqual([]);
  });

  it('a truncated file is refused at open, naming the file and the tensor that runs past the end', async () => {
    const path = join(dir, 'truncated.safetensors');
    await writeSafetensors(path, tensors);
    await truncate(path, (await readFile(path)).length - 1);
    await expect(SafetensorsReader.open(path)).rejects.toThrow(
      new RegExp(`${escapeRegExp(path)}: f data_offsets \\[30, 32\\] run past the data \\(31 bytes; is the file truncated\\?\\)`),
    );
    await expect(readSafetensors(path)).rejects.toThrow(new RegExp(`${escapeRegExp(path)}: f data_offsets .* truncated`));
    const stub = join(dir, 'stub.safetensors');
    await writeFile(stub, Buffer.from([1, 2, 3]));
    await expect(SafetensorsReader.open(stub)).rejects.toThrow(new RegExp(`${escapeRegExp(stub)}: not a safetensors file \\(3 bytes, no header\\)`));
    await writeFile(stub, Buffer.from([200, 0, 0, 0, 0, 0, 0, 0, 123]));
    await expect(SafetensorsReader.open(stub)).rejects.toThrow(new RegExp(`${escapeRegExp(stub)}: header length 200 runs past the end of the file \\(9 bytes\\)`));
    await expect(SafetensorsReader.open(join(dir, 'missing.safetensors'))).rejects.toThrow(/ENOENT/);
  });

  it('a file cut short after it was opened fails the read of that tensor, naming file and tensor', async () => {
    const path = join(dir, 'shrinking.safetensors');
    await writeSafetensors(path, tensors);
    const reader = await SafetensorsReader.open(path);
    await truncate(path, (await readFile(path)).length - 6);
    expect((await reader.read('h')).data).toEqual(Uint16Array.from([0x3f80, 0xc000, 0x7f80]));
    await expect(reader.read('i')).rejects.toThrow(new RegExp(`${escapeRegExp(path)}: i is cut short \\(4 of 8 bytes\\)`));
    await reader.close();
  });
});

describe('CharTokenizer', () => {
  it('encodes, decodes, skips specials and rejects unknown input', () => {
    const tok = CharTokenizer.fromText('hello world');
    expect(tok.pad).toBe(0);
    expect(tok.eos).toBe(1);
    expect(tok.vocabSize).toBe(8 + 2);
    const ids = tok.encode('hello');
    expect(tok.decode([...ids, tok.eos, tok.pad])).toBe('hello');
    expect(() => tok.encode('hex')).toThrow(/"x" at position 2 is not in the alphabet/);
    expect(() => tok.decode([99])).toThrow(/ids\[0\] = 99 is out of range/);
    expect(CharTokenizer.fromJSON(JSON.parse(JSON.stringify(tok.toJSON()))).encode('world')).toEqual(tok.encode('world'));
    expect(() => new CharTokenizer('aa')).toThrow(/twice/);
    expect(() => new CharTokenizer('')).toThrow(/the alphabet is empty/);
    expect(tokenizerFromJSON(tok.toJSON()).decode(tok.encode('low'))).toBe('low');
    expect(() => tokenizerFromJSON({ type: 'bpe' })).toThrow(/unknown tokenizer type "bpe"/);
  });

  it('saves napo_tokenizer.json into a model directory', async () => {
    const tok = new CharTokenizer('xyz');
    await tok.save(join(dir, 'tok'));
    expect(JSON.parse(await readFile(join(dir, 'tok', 'napo_tokenizer.json'), 'utf8'))).toEqual({ type: 'char', alphabet: ['x', 'y', 'z'] });
  });
});

describe('schedules', () => {
  it('warms up linearly then decays by a cosine to minLr', () => {
    const lr = warmupCosineSchedule({ peakLr: 1, warmupSteps: 10, totalSteps: 110, minLr: 0.1 });
    expect(lr(0)).toBeCloseTo(0.1);
    expect(lr(9)).toBeCloseTo(1);
    expect(lr(10)).toBeCloseTo(1);
    expect(lr(60)).toBeCloseTo(0.55);
    expect(lr(110)).toBeCloseTo(0.1);
    expect(lr(500)).toBeCloseTo(0.1);
    expect(constantSchedule(0.3)(7)).toBe(0.3);
    expect(() => warmupCosineSchedule({ peakLr: 1, warmupSteps: 10, totalSteps: 10 })).toThrow(/totalSteps/);
  });
});

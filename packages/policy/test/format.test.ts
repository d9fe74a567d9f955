import { describe, expect, it } from 'vitest';

import { CharTokenizer, constantSchedule, decodeSafetensors, encodeSafetensors, warmupCosineSchedule, type SafetensorsTensor } from '../src/index.js';

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

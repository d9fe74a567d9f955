/**
 * A small safetensors reader/writer (https://huggingface.co/docs/safetensors): an 8-byte
 * little-endian header length, a JSON header `{name: {dtype, shape, data_offsets}, __metadata__}`
 * padded with spaces to 8 bytes, then the raw little-endian data. Writes are atomic: a temporary
 * file in the same directory, fsync, then rename, so a crash never leaves half a checkpoint.
 * (No maintained, typed ESM package for the format was available in the registry.)
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export type SafetensorsDtype = 'F32' | 'I32' | 'BF16';

export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Int32Array | Uint16Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

const elementBytes: Record<SafetensorsDtype, number> = { F32: 4, I32: 4, BF16: 2 };
const maxHeaderBytes = 100 * 1024 * 1024;

function checkTensor(name: string, tensor: SafetensorsTensor): void {
  if (!(tensor.dtype in elementBytes)) throw new TypeError(`safetensors: ${name} has unsupported dtype ${tensor.dtype}`);
  const count = tensor.shape.reduce((product, dim) => {
    if (!Number.isInteger(dim) || dim < 0) throw new RangeError(`safetensors: ${name} has a bad shape [${tensor.shape.join(', ')}]`);
    return product * dim;
  }, 1);
  if (count !== tensor.data.length) {
    throw new RangeError(`safetensors: ${name} has shape [${tensor.shape.join(', ')}] (${count} values) but ${tensor.data.length} values`);
  }
  const expected = tensor.dtype === 'F32' ? Float32Array : tensor.dtype === 'I32' ? Int32Array : Uint16Array;
  if (!(tensor.data instanceof expected)) throw new TypeError(`safetensors: ${name} is ${tensor.dtype} but its data is a ${tensor.data.constructor.name}`);
}

/** The file's bytes. */
export function encodeSafetensors(tensors: ReadonlyMap<string, SafetensorsTensor>, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') throw new TypeError(`safetensors: metadata ${key} must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, tensor] of tensors) {
    if (name === '__metadata__') throw new RangeError('safetensors: "__metadata__" is not a tensor name');
    checkTensor(name, tensor);
    const bytes = tensor.data.byteLength;
    header[name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let at = 8 + json.length;
  for (const tensor of tensors.values()) {
    Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength).copy(out, at);
    at += tensor.data.byteLength;
  }
  return out;
}

export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors'): SafetensorsFile {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < 8) throw new RangeError(`${source}: not a safetensors file (${buffer.length} bytes, no header)`);
  const headerBytes = buffer.readBigUInt64LE(0);
  if (headerBytes > BigInt(Math.min(maxHeaderBytes, buffer.length - 8))) {
    throw new RangeError(`${source}: header length ${headerBytes} runs past the end of the file (${buffer.length} bytes)`);
  }
  const headerEnd = 8 + Number(headerBytes);
  let header: unknown;
  try {
    header = JSON.parse(buffer.subarray(8, headerEnd).toString('utf8'));
  } catch (error) {
    throw new RangeError(`${source}: the header is not valid JSON (${(error as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw new RangeError(`${source}: the header is not a JSON object`);
  const dataBytes = buffer.length - headerEnd;
  const tensors = new Map<string, SafetensorsTensor>();
  let metadata: Record<string, string> = {};
  const ranges: [number, number, string][] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!entry || typeof entry !== 'object') throw new RangeError(`${source}: __metadata__ must be an object`);
      for (const [key, value] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof value !== 'string') throw new RangeError(`${source}: __metadata__.${key} must be a string`);
      }
      metadata = { ...(entry as Record<string, string>) };
      continue;
    }
    const info = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = info?.dtype;
    if (dtype !== 'F32' && dtype !== 'I32' && dtype !== 'BF16') throw new TypeError(`${source}: ${name} has unsupported dtype ${String(dtype)}`);
    const shape = info.shape;
    const offsets = info.data_offsets;
    if (!Array.isArray(shape) || !shape.every((dim) => Number.isInteger(dim) && dim >= 0)) throw new RangeError(`${source}: ${name} has a bad shape`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
      throw new RangeError(`${source}: ${name} has bad data_offsets`);
    }
    const [begin, end] = offsets as [number, number];
    const count = (shape as number[]).reduce((product, dim) => product * dim, 1);
    if (end < begin || end > dataBytes) throw new RangeError(`${source}: ${name} data_offsets [${begin}, ${end}] run past the data (${dataBytes} bytes)`);
    if (end - begin !== count * elementBytes[dtype]) {
      throw new RangeError(`${source}: ${name} has ${end - begin} bytes for shape [${(shape as number[]).join(', ')}] of ${dtype}`);
    }
    ranges.push([begin, end, name]);
    // Copy into an aligned buffer (the data section need not be 4-byte aligned in memory).
    const raw = new Uint8Array(end - begin);
    raw.set(buffer.subarray(headerEnd + begin, headerEnd + end));
    const data = dtype === 'F32' ? new Float32Array(raw.buffer) : dtype === 'I32' ? new Int32Array(raw.buffer) : new Uint16Array(raw.buffer);
    tensors.set(name, { dtype, shape: shape as number[], data });
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    const previous = ranges[i - 1] as [number, number, string];
    const current = ranges[i] as [number, number, string];
    if (current[0] < previous[1]) throw new RangeError(`${source}: tensors ${previous[2]} and ${current[2]} overlap`);
  }
  return { tensors, metadata };
}

/** Writes atomically: temp file beside `path`, fsync, rename. */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, SafetensorsTensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const bytes = encodeSafetensors(tensors, metadata);
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temporary, 'wx');
  try {
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return decodeSafetensors(await readFile(path), path);
}

/**
 * A small safetensors reader/writer (https://huggingface.co/docs/safetensors): an 8-byte
 * little-endian header length, a JSON header `{name: {dtype, shape, data_offsets}, __metadata__}`
 * padded with spaces to 8 bytes, then the raw little-endian data. Writes are atomic (a temporary
 * file in the same directory, fsync, then rename, so a crash never leaves half a checkpoint) and
 * streamed; SafetensorsReader reads one tensor at a time.
 * (No maintained, typed ESM package for the format was available in the registry.)
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export type SafetensorsDtype = 'F32' | 'I32' | 'BF16' | 'F16';

export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Int32Array | Uint16Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

const elementBytes: Record<SafetensorsDtype, number> = { F32: 4, I32: 4, BF16: 2, F16: 2 };
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

function headerStart(metadata: Record<string, string>): Record<string, unknown> {
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') throw new TypeError(`safetensors: metadata ${key} must be a string`);
  }
  return Object.keys(metadata).length > 0 ? { __metadata__: metadata } : {};
}

/** The file's bytes. */
export function encodeSafetensors(tensors: ReadonlyMap<string, SafetensorsTensor>, metadata: Record<string, string> = {}): Buffer {
  const header = headerStart(metadata);
  let offset = 0;
  for (const [name, tensor] of tensors) {
    if (name === '__metadata__') throw new RangeError('safetensors: "__metadata__" is not a tensor name');
    checkTensor(name, tensor);
    const bytes = tensor.data.byteLength;
    header[name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = paddedHeader(header);
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

interface HeaderEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range in the data section. */
  begin: number;
  end: number;
}

interface ParsedHeader {
  entries: Map<string, HeaderEntry>;
  metadata: Record<string, string>;
}

/** Checks a header against the data section's size: dtypes, shapes, ranges, no overlaps. */
function parseHeader(json: string, dataBytes: number, source: string): ParsedHeader {
  let header: unknown;
  try {
    header = JSON.parse(json);
  } catch (error) {
    throw new RangeError(`${source}: the header is not valid JSON (${(error as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw new RangeError(`${source}: the header is not a JSON object`);
  const entries = new Map<string, HeaderEntry>();
  let metadata: Record<string, string> = {};
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
    if (dtype !== 'F32' && dtype !== 'I32' && dtype !== 'BF16' && dtype !== 'F16') throw new TypeError(`${source}: ${name} has unsupported dtype ${String(dtype)}`);
    const shape = info.shape;
    const offsets = info.data_offsets;
    if (!Array.isArray(shape) || !shape.every((dim) => Number.isInteger(dim) && dim >= 0)) throw new RangeError(`${source}: ${name} has a bad shape`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
      throw new RangeError(`${source}: ${name} has bad data_offsets`);
    }
    const [begin, end] = offsets as [number, number];
    const count = (shape as number[]).reduce((product, dim) => product * dim, 1);
    if (end < begin || end > dataBytes) {
      throw new RangeError(`${source}: ${name} data_offsets [${begin}, ${end}] run past the data (${dataBytes} bytes; is the file truncated?)`);
    }
    if (end - begin !== count * elementBytes[dtype]) {
      throw new RangeError(`${source}: ${name} has ${end - begin} bytes for shape [${(shape as number[]).join(', ')}] of ${dtype}`);
    }
    entries.set(name, { dtype, shape: shape as number[], begin, end });
  }
  const ranges = [...entries].sort((a, b) => a[1].begin - b[1].begin);
  for (let i = 1; i < ranges.length; i++) {
    const [previousName, previous] = ranges[i - 1] as [string, HeaderEntry];
    const [currentName, current] = ranges[i] as [string, HeaderEntry];
    if (current.begin < previous.end) throw new RangeError(`${source}: tensors ${previousName} and ${currentName} overlap`);
  }
  return { entries, metadata };
}

/** Copies bytes into an aligned typed array of the dtype (the data section need not be aligned). */
function typedData(dtype: SafetensorsDtype, bytes: Uint8Array): SafetensorsTensor['data'] {
  const raw = new Uint8Array(bytes.byteLength);
  raw.set(bytes);
  return dtype === 'F32' ? new Float32Array(raw.buffer) : dtype === 'I32' ? new Int32Array(raw.buffer) : new Uint16Array(raw.buffer);
}

function headerLength(prefix: Buffer, fileBytes: number, source: string): number {
  if (fileBytes < 8) throw new RangeError(`${source}: not a safetensors file (${fileBytes} bytes, no header)`);
  const length = prefix.readBigUInt64LE(0);
  if (length > BigInt(Math.min(maxHeaderBytes, fileBytes - 8))) {
    throw new RangeError(`${source}: header length ${length} runs past the end of the file (${fileBytes} bytes)`);
  }
  return Number(length);
}

export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors'): SafetensorsFile {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = headerLength(buffer, buffer.length, source);
  const headerEnd = 8 + length;
  const { entries, metadata } = parseHeader(buffer.subarray(8, headerEnd).toString('utf8'), buffer.length - headerEnd, source);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, entry] of entries) {
    tensors.set(name, { dtype: entry.dtype, shape: entry.shape, data: typedData(entry.dtype, buffer.subarray(headerEnd + entry.begin, headerEnd + entry.end)) });
  }
  return { tensors, metadata };
}

/**
 * A safetensors file opened for reading one tensor at a time: the header is read and checked
 * against the file's size at open, each tensor's bytes only when asked for, so a checkpoint
 * larger than memory loads tensor by tensor.
 */
export class SafetensorsReader {
  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    private readonly dataStart: number,
    private readonly entries: Map<string, HeaderEntry>,
    readonly metadata: Record<string, string>,
  ) {}

  static async open(path: string): Promise<SafetensorsReader> {
    const handle = await open(path, 'r');
    try {
      const size = (await handle.stat()).size;
      const prefix = Buffer.alloc(8);
      await handle.read(prefix, 0, Math.min(8, size), 0);
      const length = headerLength(prefix, size, path);
      const json = Buffer.alloc(length);
      await handle.read(json, 0, length, 8);
      const { entries, metadata } = parseHeader(json.toString('utf8'), size - 8 - length, path);
      return new SafetensorsReader(path, handle, 8 + length, entries, metadata);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  info(name: string): { dtype: SafetensorsDtype; shape: number[] } | undefined {
    const entry = this.entries.get(name);
    return entry && { dtype: entry.dtype, shape: entry.shape };
  }

  async read(name: string): Promise<SafetensorsTensor> {
    const entry = this.entries.get(name);
    if (!entry) throw new RangeError(`${this.path}: no tensor named ${name}`);
    const bytes = new Uint8Array(entry.end - entry.begin);
    const { bytesRead } = await this.handle.read(bytes, 0, bytes.byteLength, this.dataStart + entry.begin);
    if (bytesRead !== bytes.byteLength) throw new RangeError(`${this.path}: ${name} is cut short (${bytesRead} of ${bytes.byteLength} bytes)`);
    return { dtype: entry.dtype, shape: entry.shape, data: typedData(entry.dtype, bytes) };
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** A tensor to write whose data is produced when its turn comes (so a save holds one at a time). */
export interface LazyTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  load(): SafetensorsTensor['data'];
}

/** Where a file goes while it is written: beside `path`, renamed into place when complete. */
function temporaryPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Writes atomically (a temporary file beside `path`, fsync, rename) and streams: the header, then
 * each tensor's bytes as its turn comes.
 */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, SafetensorsTensor | LazyTensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const header = headerStart(metadata);
  let offset = 0;
  for (const [name, tensor] of tensors) {
    if (name === '__metadata__') throw new RangeError('safetensors: "__metadata__" is not a tensor name');
    const count = tensor.shape.reduce((product, dim) => product * dim, 1);
    const bytes = count * elementBytes[tensor.dtype];
    header[name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = paddedHeader(header);
  const temporary = temporaryPath(path);
  const handle = await open(temporary, 'wx');
  try {
    try {
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(json.length), 0);
      await handle.write(prefix);
      await handle.write(json);
      for (const [name, tensor] of tensors) {
        const full = 'load' in tensor ? { dtype: tensor.dtype, shape: tensor.shape, data: tensor.load() } : tensor;
        checkTensor(name, full);
        await handle.write(new Uint8Array(full.data.buffer, full.data.byteOffset, full.data.byteLength));
      }
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

function paddedHeader(header: Record<string, unknown>): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  return padded === json.length ? json : Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return decodeSafetensors(await readFile(path), path);
}

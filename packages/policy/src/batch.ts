/** Token batches as the native model takes them: rows padded to the longest, with their lengths. */
import { Tensor } from '@napo/kernels';

import type { ForwardOptions, RaggedTokens } from './policy.js';

export interface PackedBatch {
  tokens: Int32Array;
  batch: number;
  time: number;
  lengths: Int32Array;
}

export function packRagged(op: string, rows: RaggedTokens): PackedBatch {
  if (!Array.isArray(rows)) throw new TypeError(`${op}: tokens must be an array of token arrays or an int32 Tensor`);
  if (rows.length === 0) throw new RangeError(`${op}: the batch is empty`);
  let time = 0;
  for (const [index, row] of rows.entries()) {
    if (!Array.isArray(row) && !(row instanceof Int32Array)) throw new TypeError(`${op}: tokens[${index}] must be an array of token ids`);
    if (row.length === 0) throw new RangeError(`${op}: tokens[${index}] is empty`);
    time = Math.max(time, row.length);
  }
  const tokens = new Int32Array(rows.length * time);
  const lengths = new Int32Array(rows.length);
  for (const [b, row] of rows.entries()) {
    lengths[b] = row.length;
    for (let t = 0; t < row.length; t++) {
      const id = row[t] as number;
      if (!Number.isInteger(id)) throw new RangeError(`${op}: tokens[${b}][${t}] = ${id} is not an integer token id`);
      tokens[b * time + t] = id;
    }
  }
  return { tokens, batch: rows.length, time, lengths };
}

function lengthsFromMask(op: string, mask: RaggedTokens | Tensor, batch: number, time: number): Int32Array {
  let values: ArrayLike<number>;
  if (mask instanceof Tensor) {
    if (mask.shape.length !== 2 || mask.shape[0] !== batch || mask.shape[1] !== time) {
      throw new RangeError(`${op}: mask must be [${batch}, ${time}], got [${mask.shape.join(', ')}]`);
    }
    values = mask.toArray();
  } else {
    if (mask.length !== batch || mask.some((row) => row.length !== time)) throw new RangeError(`${op}: mask must be [${batch}, ${time}]`);
    values = mask.flat();
  }
  const lengths = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    let length = 0;
    while (length < time && values[b * time + length] !== 0) length++;
    for (let t = length; t < time; t++) {
      if (values[b * time + t] !== 0) throw new RangeError(`${op}: mask row ${b} is not a prefix of ones (mask[${b}, ${t}] is set after a 0)`);
    }
    lengths[b] = length;
  }
  return lengths;
}

export function packInput(op: string, tokens: RaggedTokens | Tensor, options: ForwardOptions = {}): PackedBatch {
  if (!(tokens instanceof Tensor)) {
    if (options.lengths || options.mask) {
      const packed = packRagged(op, tokens);
      if (options.lengths) packed.lengths = Int32Array.from(options.lengths);
      if (options.mask) packed.lengths = lengthsFromMask(op, options.mask, packed.batch, packed.time);
      return packed;
    }
    return packRagged(op, tokens);
  }
  if (tokens.dtype !== 'int32') throw new TypeError(`${op}: tokens must be int32, got ${tokens.dtype}`);
  if (tokens.shape.length !== 2) throw new RangeError(`${op}: tokens must be [batch, time], got [${tokens.shape.join(', ')}]`);
  const [batch, time] = tokens.shape as [number, number];
  if (batch === 0) throw new RangeError(`${op}: the batch is empty`);
  let lengths: Int32Array;
  if (options.lengths && options.mask) throw new TypeError(`${op}: give lengths or mask, not both`);
  if (options.lengths) {
    if (options.lengths.length !== batch) throw new RangeError(`${op}: lengths has ${options.lengths.length} entries, the batch ${batch}`);
    lengths = Int32Array.from(options.lengths);
  } else if (options.mask) {
    lengths = lengthsFromMask(op, options.mask, batch, time);
  } else {
    lengths = new Int32Array(batch).fill(time);
  }
  return { tokens: tokens.toArray() as Int32Array, batch, time, lengths };
}

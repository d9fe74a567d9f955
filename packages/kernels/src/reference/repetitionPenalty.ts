/**
 * Reference repetitionPenalty (docs/ops.md, "repetitionPenalty"): Hugging Face's
 * RepetitionPenaltyLogitsProcessor over a row's history of tokens, in float32 as the native
 * backends compute it (bfloat16 results rounded to bfloat16).
 */
import type { HostTensor } from '../types.js';
import { bf16ToFloat32, float32ToBf16, type LogitsTensor } from './bf16.js';
import { checkLogitsTensor, opRangeError, opTypeError } from './validate.js';

const OP = 'repetitionPenalty';

/**
 * `logits` [B, V], `history` int32 [B, L] (-1: none) -> a copy of the logits with the logit z of
 * each history token made `z * penalty` (z < 0) or `z / penalty` (otherwise), once per token.
 *
 * @throws RangeError on a history entry that is neither -1 nor a token id, a bad shape or penalty
 */
export function repetitionPenalty(logits: LogitsTensor, history: HostTensor<'int32'>, penalty: number): LogitsTensor {
  const { rows, columns: vocab } = checkLogitsTensor(OP, logits);
  if (history.dtype !== 'int32' || !(history.data instanceof Int32Array)) throw opTypeError(OP, `history must be int32, got ${String(history.dtype)}`);
  const length = history.shape[1] ?? 0;
  if (history.shape.length !== 2 || history.shape[0] !== rows || length < 1) {
    throw opRangeError(OP, `history must have shape [${rows}, L] with L >= 1, got [${history.shape.join(', ')}]`);
  }
  if (!(penalty > 0 && Number.isFinite(penalty))) throw opRangeError(OP, `penalty = ${penalty} must be > 0 and finite`);
  history.data.forEach((token, i) => {
    if (token < -1 || token >= vocab) {
      throw opRangeError(OP, `history[${Math.floor(i / length)}, ${i % length}] = ${token} is out of range for vocab ${vocab} (-1: none)`);
    }
  });
  const p = Math.fround(penalty);
  const penalise = (z: number) => Math.fround(z < 0 ? Math.fround(z * p) : Math.fround(z / p));
  if (logits.dtype === 'bfloat16') {
    const out = Uint16Array.from(logits.data);
    history.data.forEach((token, i) => {
      const at = Math.floor(i / length) * vocab + token;
      if (token >= 0) out[at] = float32ToBf16(penalise(bf16ToFloat32(logits.data[at] as number)));
    });
    return { dtype: 'bfloat16', shape: logits.shape, data: out };
  }
  const out = Float32Array.from(logits.data);
  history.data.forEach((token, i) => {
    const at = Math.floor(i / length) * vocab + token;
    if (token >= 0) out[at] = penalise(logits.data[at] as number);
  });
  return { dtype: 'float32', shape: logits.shape, data: out };
}

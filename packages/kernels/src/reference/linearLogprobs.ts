/**
 * Reference linearLogprobs and its backward (docs/ops.md, "linearLogprobs"), in float64: the
 * [N, V] logits hidden weight^T are formed outright (the native kernels never hold them), then
 * treated as tokenLogprobs treats logits.
 */
import { widenRow, type LogitsTensor } from './bf16.js';
import { expectedScaledLogit, resolveTemperature, rowStatistics } from './logprobs.js';
import {
  checkFiniteEntry,
  checkFloat32Vector,
  checkLogitsTensor,
  checkTokens,
  opRangeError,
  opTypeError,
  type TokensInput,
} from './validate.js';

interface Linear {
  readonly rows: number;
  readonly width: number;
  readonly vocab: number;
  readonly hidden: Float64Array;
  readonly weight: Float64Array;
  readonly ids: Int32Array;
}

function widenMatrix(tensor: LogitsTensor, rows: number, columns: number): Float64Array {
  const out = new Float64Array(rows * columns);
  const row = new Float64Array(columns);
  for (let r = 0; r < rows; r++) {
    widenRow(tensor, r, columns, row);
    out.set(row, r * columns);
  }
  return out;
}

function checkFiniteMatrix(op: string, name: string, values: Float64Array, columns: number): void {
  for (let i = 0; i < values.length; i++) {
    checkFiniteEntry(op, `${name}[${Math.floor(i / columns)}, ${i % columns}]`, values[i] as number);
  }
}

function checkLinear(op: string, hidden: LogitsTensor, weight: LogitsTensor, tokens: TokensInput): Linear {
  const { rows, columns: width } = checkLogitsTensor(op, hidden);
  const { rows: vocab, columns: weightWidth } = checkLogitsTensor(op, weight);
  if (weight.dtype !== hidden.dtype) throw opTypeError(op, `weight is ${weight.dtype} but hidden is ${hidden.dtype}`);
  if (weightWidth !== width) {
    throw opRangeError(op, `weight has shape [${vocab}, ${weightWidth}], expected [V, ${width}]`);
  }
  const ids = checkTokens(op, tokens, rows, vocab);
  const linear = { rows, width, vocab, hidden: widenMatrix(hidden, rows, width), weight: widenMatrix(weight, vocab, width), ids };
  checkFiniteMatrix(op, 'hidden', linear.hidden, width);
  checkFiniteMatrix(op, 'weight', linear.weight, width);
  return linear;
}

/** Row `row` of hidden weight^T (unscaled). */
function logitsRow(linear: Linear, row: number, out: Float64Array): void {
  const { width, vocab, hidden, weight } = linear;
  for (let v = 0; v < vocab; v++) {
    let dot = 0;
    for (let h = 0; h < width; h++) dot += (hidden[row * width + h] as number) * (weight[v * width + h] as number);
    out[v] = dot;
  }
}

/**
 * log p(tokens[n]) under softmax(hidden[n] weight^T / T), with the row's log-sum-exp and,
 * optionally, its entropy. hidden [N, H] and weight [V, H] (nn.Linear's layout) share a dtype.
 */
export function linearLogprobs(
  hidden: LogitsTensor,
  weight: LogitsTensor,
  tokens: TokensInput,
  options: { temperature?: number; entropy?: boolean } = {},
): { logprobs: Float32Array; lse: Float32Array; entropy?: Float32Array } {
  const op = 'linearLogprobs';
  const linear = checkLinear(op, hidden, weight, tokens);
  const temperature = resolveTemperature(op, options.temperature);
  const { rows, vocab, ids } = linear;
  const logprobs = new Float32Array(rows);
  const lse = new Float32Array(rows);
  const entropy = options.entropy === true ? new Float32Array(rows) : undefined;
  const row = new Float64Array(vocab);
  for (let r = 0; r < rows; r++) {
    logitsRow(linear, r, row);
    const statistics = rowStatistics(row, temperature);
    logprobs[r] = (row[ids[r] as number] as number) / temperature - statistics.logSumExp;
    lse[r] = statistics.logSumExp;
    if (entropy !== undefined) entropy[r] = statistics.entropy;
  }
  return entropy === undefined ? { logprobs, lse } : { logprobs, lse, entropy };
}

/**
 * d/dhidden and d/dweight of sum(gradLogprobs * logprobs + gradEntropy * entropy):
 * dz = g_lp (onehot - p) - g_ent p (z - sum p z), dlogits = dz / T, gradHidden = dlogits weight,
 * gradWeight = dlogits^T hidden, with p = exp(z - lse) from the forward's lse.
 */
export function linearLogprobsBackward(
  hidden: LogitsTensor,
  weight: LogitsTensor,
  tokens: TokensInput,
  lse: Float32Array,
  gradLogprobs: Float32Array,
  gradEntropy?: Float32Array,
  options: { temperature?: number } = {},
): { gradHidden: Float32Array; gradWeight: Float32Array } {
  const op = 'linearLogprobsBackward';
  const linear = checkLinear(op, hidden, weight, tokens);
  const { rows, width, vocab, ids } = linear;
  checkFloat32Vector(op, 'lse', lse, rows, 'rows');
  checkFloat32Vector(op, 'gradLogprobs', gradLogprobs, rows, 'rows');
  if (gradEntropy !== undefined) checkFloat32Vector(op, 'gradEntropy', gradEntropy, rows, 'rows');
  for (let r = 0; r < rows; r++) checkFiniteEntry(op, `lse[${r}]`, lse[r] as number);
  for (let r = 0; r < rows; r++) checkFiniteEntry(op, `gradLogprobs[${r}]`, gradLogprobs[r] as number);
  for (let r = 0; gradEntropy !== undefined && r < rows; r++) {
    checkFiniteEntry(op, `gradEntropy[${r}]`, gradEntropy[r] as number);
  }
  const temperature = resolveTemperature(op, options.temperature);
  const gradHidden = new Float64Array(rows * width);
  const gradWeight = new Float64Array(vocab * width);
  const row = new Float64Array(vocab);
  for (let r = 0; r < rows; r++) {
    logitsRow(linear, r, row);
    const logSumExp = lse[r] as number;
    const gradLp = gradLogprobs[r] as number;
    const gradEnt = gradEntropy === undefined ? 0 : (gradEntropy[r] as number);
    const expectation = gradEnt === 0 ? 0 : expectedScaledLogit(row, temperature, logSumExp);
    for (let v = 0; v < vocab; v++) {
      const scaled = (row[v] as number) / temperature;
      const p = Math.exp(scaled - logSumExp);
      const dz = gradLp * ((v === ids[r] ? 1 : 0) - p) - gradEnt * p * (scaled - expectation);
      const dlogit = dz / temperature;
      if (dlogit === 0) continue;
      for (let h = 0; h < width; h++) {
        gradHidden[r * width + h] += dlogit * (linear.weight[v * width + h] as number);
        gradWeight[v * width + h] += dlogit * (linear.hidden[r * width + h] as number);
      }
    }
  }
  return { gradHidden: Float32Array.from(gradHidden), gradWeight: Float32Array.from(gradWeight) };
}

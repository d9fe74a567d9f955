/**
 * A pure-TS float64 forward of TinyGPT, written from the definition (GPT-2: pre-LayerNorm,
 * learned positions, causal attention, tanh-GELU MLP, tied embeddings), for tests of the native
 * model. Slow; for tiny configs only.
 */

export interface ReferenceConfig {
  vocabSize: number;
  contextLength: number;
  dModel: number;
  nLayers: number;
  nHeads: number;
}

export type ReferenceParameters = ReadonlyMap<string, ArrayLike<number>>;

function param(params: ReferenceParameters, name: string): ArrayLike<number> {
  const value = params.get(name);
  if (!value) throw new RangeError(`referenceForward: missing parameter ${name}`);
  return value;
}

function layerNorm(x: Float64Array[], w: ArrayLike<number>, b: ArrayLike<number>): Float64Array[] {
  return x.map((row) => {
    const d = row.length;
    let mean = 0;
    for (const v of row) mean += v;
    mean /= d;
    let variance = 0;
    for (const v of row) variance += (v - mean) * (v - mean);
    variance /= d;
    const rstd = 1 / Math.sqrt(variance + 1e-5);
    return row.map((v, j) => (v - mean) * rstd * (w[j] as number) + (b[j] as number));
  });
}

/** y = x W + b with W stored [in, out]. */
function linear(x: Float64Array[], w: ArrayLike<number>, b: ArrayLike<number>, outDim: number): Float64Array[] {
  return x.map((row) => {
    const out = new Float64Array(outDim);
    for (let j = 0; j < outDim; j++) out[j] = b[j] as number;
    for (let i = 0; i < row.length; i++) {
      const v = row[i] as number;
      for (let j = 0; j < outDim; j++) out[j] = (out[j] as number) + v * (w[i * outDim + j] as number);
    }
    return out;
  });
}

export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/** Logits [T][V] of one sequence (every position attends causally). */
export function referenceForwardRow(config: ReferenceConfig, params: ReferenceParameters, tokens: readonly number[]): Float64Array[] {
  const { vocabSize: V, dModel: D, nLayers: L, nHeads: H } = config;
  const T = tokens.length;
  const hd = D / H;
  const wte = param(params, 'wte.weight');
  const wpe = param(params, 'wpe.weight');
  let x: Float64Array[] = tokens.map((token, t) => {
    const row = new Float64Array(D);
    for (let j = 0; j < D; j++) row[j] = (wte[token * D + j] as number) + (wpe[t * D + j] as number);
    return row;
  });
  for (let l = 0; l < L; l++) {
    const p = (name: string) => param(params, `h.${l}.${name}`);
    const ln1 = layerNorm(x, p('ln_1.weight'), p('ln_1.bias'));
    const qkv = linear(ln1, p('attn.c_attn.weight'), p('attn.c_attn.bias'), 3 * D);
    const att = x.map(() => new Float64Array(D));
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const scores: number[] = [];
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let j = 0; j < hd; j++) dot += ((qkv[t] as Float64Array)[h * hd + j] as number) * ((qkv[s] as Float64Array)[D + h * hd + j] as number);
          scores.push(dot / Math.sqrt(hd));
        }
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const sum = exps.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) {
          const weight = (exps[s] as number) / sum;
          for (let j = 0; j < hd; j++) {
            (att[t] as Float64Array)[h * hd + j] = ((att[t] as Float64Array)[h * hd + j] as number) + weight * ((qkv[s] as Float64Array)[2 * D + h * hd + j] as number);
          }
        }
      }
    }
    const proj = linear(att, p('attn.c_proj.weight'), p('attn.c_proj.bias'), D);
    x = x.map((row, t) => row.map((v, j) => v + ((proj[t] as Float64Array)[j] as number)));
    const ln2 = layerNorm(x, p('ln_2.weight'), p('ln_2.bias'));
    const fc = linear(ln2, p('mlp.c_fc.weight'), p('mlp.c_fc.bias'), 4 * D).map((row) => row.map(geluTanh));
    const out = linear(fc, p('mlp.c_proj.weight'), p('mlp.c_proj.bias'), D);
    x = x.map((row, t) => row.map((v, j) => v + ((out[t] as Float64Array)[j] as number)));
  }
  const lnf = layerNorm(x, param(params, 'ln_f.weight'), param(params, 'ln_f.bias'));
  return lnf.map((row) => {
    const logits = new Float64Array(V);
    for (let v = 0; v < V; v++) {
      let dot = 0;
      for (let j = 0; j < D; j++) dot += (row[j] as number) * (wte[v * D + j] as number);
      logits[v] = dot;
    }
    return logits;
  });
}

/** Logits of ragged rows: result[b][t] for t < rows[b].length. */
export function referenceForward(config: ReferenceConfig, params: ReferenceParameters, rows: readonly (readonly number[])[]): Float64Array[][] {
  return rows.map((row) => referenceForwardRow(config, params, row));
}

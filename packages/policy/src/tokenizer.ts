/** A character-level tokenizer: pad = 0, eos = 1, then one id per character of the alphabet. */
import { HFTokenizer } from './hf-tokenizer.js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { Tokenizer, TokenizerJSON } from './policy.js';

/** The file a CharTokenizer saves into a model directory. */
export const charTokenizerFile = 'napo_tokenizer.json';

export interface CharTokenizerJSON extends TokenizerJSON {
  type: 'char';
  alphabet: string[];
}

export class CharTokenizer implements Tokenizer {
  readonly pad = 0;
  readonly eos = 1;
  readonly alphabet: readonly string[];
  private readonly ids: Map<string, number>;

  /** @param alphabet the characters (code points), in id order; duplicates are an error */
  constructor(alphabet: string | readonly string[]) {
    const chars = typeof alphabet === 'string' ? Array.from(alphabet) : [...alphabet];
    if (chars.length === 0) throw new RangeError('CharTokenizer: the alphabet is empty');
    this.ids = new Map();
    for (const [index, char] of chars.entries()) {
      if (Array.from(char).length !== 1) {
        throw new RangeError(`CharTokenizer: alphabet[${index}] = ${JSON.stringify(char)} is not one character`);
      }
      if (this.ids.has(char)) throw new RangeError(`CharTokenizer: ${JSON.stringify(char)} appears twice in the alphabet`);
      this.ids.set(char, index + 2);
    }
    this.alphabet = Object.freeze(chars);
  }

  /** The sorted set of characters of `corpus`. */
  static fromText(corpus: string): CharTokenizer {
    return new CharTokenizer([...new Set(Array.from(corpus))].sort());
  }

  static fromJSON(json: unknown): CharTokenizer {
    const value = json as Partial<CharTokenizerJSON> | null;
    if (!value || value.type !== 'char' || !Array.isArray(value.alphabet)) {
      throw new TypeError('CharTokenizer.fromJSON: expected {type: "char", alphabet: string[]}');
    }
    return new CharTokenizer(value.alphabet);
  }

  get vocabSize(): number {
    return this.alphabet.length + 2;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    let position = 0;
    for (const char of text) {
      const id = this.ids.get(char);
      if (id === undefined) {
        throw new RangeError(`CharTokenizer.encode: ${JSON.stringify(char)} at position ${position} is not in the alphabet`);
      }
      out.push(id);
      position++;
    }
    return out;
  }

  decode(ids: readonly number[] | Int32Array): string {
    let text = '';
    for (const [index, id] of Array.from(ids).entries()) {
      if (id === this.pad || id === this.eos) continue;
      const char = this.alphabet[id - 2];
      if (!Number.isInteger(id) || char === undefined) {
        throw new RangeError(`CharTokenizer.decode: ids[${index}] = ${id} is out of range for vocab ${this.vocabSize}`);
      }
      text += char;
    }
    return text;
  }

  toJSON(): CharTokenizerJSON {
    return { type: 'char', alphabet: [...this.alphabet] };
  }

  /** napo_tokenizer.json in a model directory (`loadTokenizer` reads it back). */
  async save(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, charTokenizerFile), `${JSON.stringify(this.toJSON())}\n`);
  }
}

/** A tokenizer from its JSON (checkpoint metadata). */
export function tokenizerFromJSON(json: unknown): Tokenizer {
  const type = (json as { type?: unknown } | null)?.type;
  if (type === 'char') return CharTokenizer.fromJSON(json);
  if (type === 'huggingface') return HFTokenizer.fromSerialized(json);
  throw new TypeError(`tokenizerFromJSON: unknown tokenizer type ${JSON.stringify(type)}`);
}

/**
 * A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) behind napo's `Tokenizer`
 * interface. Tokenization is done by `@huggingface/tokenizers` and chat templates are rendered by
 * `@huggingface/jinja`; this file only wires them to napo and decides the conventions:
 *
 * - `encode(text)` matches transformers' `tokenizer(text, add_special_tokens=False)`: the
 *   post-processor's special tokens (a BOS a template adds, BERT's [CLS]/[SEP], ...) are NOT added,
 *   because prompts are built by the chat template, which already writes them out as text. Special
 *   tokens written in the text itself (`<|im_start|>`, `<|im_end|>`, ...) ARE recognised and map to
 *   their single ids, as transformers does with `split_special_tokens=False` (the default; a
 *   tokenizer_config.json with `split_special_tokens: true` is refused rather than mis-tokenized).
 * - `decode(ids)` skips special tokens (`skip_special_tokens=True`): added tokens marked special,
 *   the config's bos/eos/pad/unk/... and additional special tokens, and every eos id. Ids that no
 *   token has (a model's embedding rows past the tokenizer's vocab) decode to nothing, as in HF's
 *   tokenizers; non-integer or negative ids are an error.
 */
import { readFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { Template } from '@huggingface/jinja';
import { Tokenizer as CoreTokenizer } from '@huggingface/tokenizers';

import type { Tokenizer, TokenizerJSON } from './policy.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
}

export interface ChatTemplateOptions {
  /** Append the header of an assistant turn (transformers' `add_generation_prompt`). Default false. */
  addGenerationPrompt?: boolean;
  /** Tool schemas, passed to the template as `tools` (and choosing a "tool_use" template, if any). */
  tools?: unknown;
  /** More template variables, e.g. `{ enable_thinking: false }` for Qwen3. */
  extra?: Record<string, unknown>;
}

/** What `HFTokenizer.toJSON` returns: the three JSON files, as read. */
export interface HFTokenizerJSON extends TokenizerJSON {
  type: 'huggingface';
  /** tokenizer.json */
  tokenizer: Record<string, unknown>;
  /** tokenizer_config.json */
  config: Record<string, unknown>;
  /** generation_config.json, when there was one */
  generation?: Record<string, unknown>;
}

type JSONObject = Record<string, unknown>;

/** The special-token fields of tokenizer_config.json, in transformers' order. */
const SPECIAL_TOKEN_FIELDS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

/** The tokenizer.json model types (all of HF tokenizers'). */
const MODEL_TYPES = new Set(['BPE', 'WordPiece', 'WordLevel', 'Unigram']);

/** Template variables `applyChatTemplate` sets itself; `extra` may not set them. */
const RESERVED_TEMPLATE_KEYS = new Set(['messages', 'add_generation_prompt', 'tools', 'raise_exception', 'strftime_now', 'namespace']);

function isObject(value: unknown): value is JSONObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

/**
 * A special-token field of tokenizer_config.json: a string, an AddedToken object
 * (`{content: string, ...}`, with or without `__type: "AddedToken"`), or null/absent.
 */
function tokenContent(value: unknown, field: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (isObject(value) && typeof value.content === 'string') return value.content;
  throw new TypeError(`HFTokenizer: tokenizer_config.json ${field} must be a string or {content: string}, not ${kindOf(value)}`);
}

async function readJSONFile(path: string, required: boolean): Promise<JSONObject | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      if (!required) return undefined;
      throw new Error(`HFTokenizer.fromDirectory: ${path} is missing`);
    }
    throw new Error(`HFTokenizer.fromDirectory: cannot read ${path}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`HFTokenizer.fromDirectory: ${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(value)) throw new Error(`HFTokenizer.fromDirectory: ${path} must hold a JSON object, not ${kindOf(value)}`);
  return value;
}

async function readOptionalText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`HFTokenizer.fromDirectory: cannot read ${path}: ${(error as Error).message}`);
  }
}

export class HFTokenizer implements Tokenizer {
  /** Highest token id + 1, over the model's vocabulary and the added tokens. */
  readonly vocabSize: number;
  /** The first of `eosIds`. */
  readonly eos: number;
  /** Every id that ends generation: tokenizer_config.json's eos_token, then generation_config.json's eos_token_id(s). */
  readonly eosIds: readonly number[];
  /** pad_token's id, else `eos`. */
  readonly pad: number;
  /** bos_token's id, or null when the tokenizer has none (Qwen). */
  readonly bos: number | null;

  private readonly core: CoreTokenizer;
  private readonly tokenizerJson: JSONObject;
  private readonly config: JSONObject;
  private readonly generation: JSONObject | undefined;
  /** Ids that `decode` leaves out. */
  private readonly skipIds: ReadonlySet<number>;
  /** The special tokens as strings, for the chat template (`bos_token`, `eos_token`, ...). */
  private readonly specialTokens: Readonly<Record<string, string | string[]>>;
  private readonly templates = new Map<string, Template>();

  private constructor(tokenizerJson: JSONObject, config: JSONObject, generation: JSONObject | undefined) {
    this.tokenizerJson = tokenizerJson;
    this.config = config;
    this.generation = generation;

    if (config.split_special_tokens === true) {
      throw new Error('HFTokenizer: tokenizer_config.json split_special_tokens = true is not supported');
    }

    // @huggingface/tokenizers compares the config's special tokens as strings, and wants every
    // top-level component key present (HF always writes them, possibly null): give it both.
    const specialTokens: Record<string, string | string[]> = {};
    const coreConfig: JSONObject = { ...config };
    for (const field of SPECIAL_TOKEN_FIELDS) {
      const content = tokenContent(config[field], field);
      if (content === null) delete coreConfig[field];
      else coreConfig[field] = specialTokens[field] = content;
    }
    const additional = config.additional_special_tokens;
    let additionalTokens: string[] = [];
    if (additional !== undefined && additional !== null) {
      if (!Array.isArray(additional)) {
        throw new TypeError(`HFTokenizer: tokenizer_config.json additional_special_tokens must be a list, not ${kindOf(additional)}`);
      }
      additionalTokens = additional.map((token, index) => {
        const content = tokenContent(token, `additional_special_tokens[${index}]`);
        if (content === null) throw new TypeError(`HFTokenizer: tokenizer_config.json additional_special_tokens[${index}] is null`);
        return content;
      });
      coreConfig.additional_special_tokens = additionalTokens;
      specialTokens.additional_special_tokens = additionalTokens;
    }
    this.specialTokens = specialTokens;

    // @huggingface/tokenizers has no WordLevel model: it runs a vocab-only model as its "Legacy"
    // one, which is WordLevel, except that it takes the unk token from the config.
    const model = tokenizerJson.model as JSONObject;
    if (typeof model.type === 'string' && !MODEL_TYPES.has(model.type)) {
      throw new Error(`HFTokenizer: tokenizer.json model type ${JSON.stringify(model.type)} is not supported (${[...MODEL_TYPES].join(', ')})`);
    }
    if (model.type === 'WordLevel' && typeof model.unk_token === 'string') coreConfig.unk_token = model.unk_token;

    const coreJson: JSONObject = {
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      ...tokenizerJson,
    };
    try {
      this.core = new CoreTokenizer(coreJson, coreConfig);
    } catch (error) {
      throw new Error(`HFTokenizer: cannot build the tokenizer from tokenizer.json: ${(error as Error).message}`);
    }

    let maxId = -1;
    for (const id of this.core.get_vocab(true).values()) if (id > maxId) maxId = id;
    if (maxId < 0) throw new Error('HFTokenizer: tokenizer.json has an empty vocabulary');
    this.vocabSize = maxId + 1;

    const idOf = (field: string, content: string): number => {
      const id = this.core.token_to_id(content);
      if (id === undefined) {
        throw new Error(`HFTokenizer: tokenizer_config.json ${field} ${JSON.stringify(content)} is not in the vocabulary of tokenizer.json`);
      }
      return id;
    };

    const eosIds: number[] = [];
    const eosToken = specialTokens.eos_token;
    if (typeof eosToken === 'string') eosIds.push(idOf('eos_token', eosToken));
    if (generation !== undefined) {
      const value = generation.eos_token_id;
      if (value !== undefined && value !== null) {
        const ids: unknown[] = Array.isArray(value) ? value : [value];
        for (const id of ids) {
          if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
            throw new RangeError(`HFTokenizer: generation_config.json eos_token_id ${JSON.stringify(value)} holds ${JSON.stringify(id)}, not a token id below ${this.vocabSize}`);
          }
          if (!eosIds.includes(id)) eosIds.push(id);
        }
      }
    }
    if (eosIds.length === 0) {
      throw new Error('HFTokenizer: no eos token: tokenizer_config.json has no eos_token and there is no generation_config.json eos_token_id');
    }
    this.eosIds = Object.freeze(eosIds);
    this.eos = eosIds[0];

    const padToken = specialTokens.pad_token;
    this.pad = typeof padToken === 'string' ? idOf('pad_token', padToken) : this.eos;
    const bosToken = specialTokens.bos_token;
    this.bos = typeof bosToken === 'string' ? idOf('bos_token', bosToken) : null;

    const skip = new Set<number>([...eosIds, this.pad]);
    for (const [id, token] of this.core.get_added_tokens_decoder()) if (token.special) skip.add(id);
    for (const field of SPECIAL_TOKEN_FIELDS) {
      const content = specialTokens[field];
      const id = typeof content === 'string' ? this.core.token_to_id(content) : undefined;
      if (id !== undefined) skip.add(id);
    }
    for (const content of additionalTokens) {
      const id = this.core.token_to_id(content);
      if (id !== undefined) skip.add(id);
    }
    this.skipIds = skip;
  }

  /**
   * Loads `dir/tokenizer.json` and `dir/tokenizer_config.json` (both required) and
   * `dir/generation_config.json` (optional: its eos_token_id adds to the eos ids). When
   * tokenizer_config.json has no chat_template and `dir/chat_template.jinja` exists (newer
   * transformers save it apart), that file is the chat template.
   */
  static async fromDirectory(dir: string): Promise<HFTokenizer> {
    const [tokenizerJson, config, generation, chatTemplate] = await Promise.all([
      readJSONFile(join(dir, 'tokenizer.json'), true),
      readJSONFile(join(dir, 'tokenizer_config.json'), true),
      readJSONFile(join(dir, 'generation_config.json'), false),
      readOptionalText(join(dir, 'chat_template.jinja')),
    ]);
    let tokenizerConfig = config!;
    if (chatTemplate !== undefined && (tokenizerConfig.chat_template === undefined || tokenizerConfig.chat_template === null)) {
      tokenizerConfig = { ...tokenizerConfig, chat_template: chatTemplate };
    }
    return HFTokenizer.fromJSON(tokenizerJson!, tokenizerConfig, generation);
  }

  /**
   * A tokenizer from the parsed JSON files. The objects are kept (not copied) and returned by
   * `toJSON`: do not mutate them afterwards.
   */
  static fromJSON(tokenizerJson: object, tokenizerConfig: object, generationConfig?: object): HFTokenizer {
    if (!isObject(tokenizerJson) || !isObject(tokenizerJson.model)) {
      throw new TypeError('HFTokenizer.fromJSON: tokenizer.json must be an object with a "model" object');
    }
    if (!isObject(tokenizerConfig)) throw new TypeError(`HFTokenizer.fromJSON: tokenizer_config.json must be an object, not ${kindOf(tokenizerConfig)}`);
    if (generationConfig !== undefined && !isObject(generationConfig)) {
      throw new TypeError(`HFTokenizer.fromJSON: generation_config.json must be an object, not ${kindOf(generationConfig)}`);
    }
    return new HFTokenizer(tokenizerJson, tokenizerConfig, generationConfig);
  }

  /** The inverse of `toJSON`: `{type: 'huggingface', tokenizer, config, generation?}`. */
  static fromSerialized(json: unknown): HFTokenizer {
    if (!isObject(json) || json.type !== 'huggingface' || !isObject(json.tokenizer) || !isObject(json.config)) {
      throw new TypeError('HFTokenizer.fromSerialized: expected {type: "huggingface", tokenizer: object, config: object, generation?: object}');
    }
    const generation = json.generation;
    if (generation !== undefined && !isObject(generation)) {
      throw new TypeError(`HFTokenizer.fromSerialized: generation must be an object, not ${kindOf(generation)}`);
    }
    return HFTokenizer.fromJSON(json.tokenizer, json.config, generation);
  }

  /** The id of a token string (added tokens included), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.core.token_to_id(token);
  }

  /** The token string of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.core.id_to_token(id);
  }

  /** Like transformers' `tokenizer(text, add_special_tokens=False).input_ids`: see the file comment. */
  encode(text: string): number[] {
    const { ids, tokens } = this.core.encode(text, { add_special_tokens: false });
    for (const [index, id] of ids.entries()) {
      if (typeof id !== 'number') {
        throw new RangeError(`HFTokenizer.encode: token ${JSON.stringify(tokens[index])} is not in the vocabulary and the tokenizer has no unk token`);
      }
    }
    return ids;
  }

  /** Special tokens (pad, eos, bos, ... every token marked special) are left out. */
  decode(ids: readonly number[] | Int32Array): string {
    const kept: number[] = [];
    for (const [index, id] of Array.from(ids).entries()) {
      if (!Number.isInteger(id) || id < 0) throw new RangeError(`HFTokenizer.decode: ids[${index}] = ${id} is not a token id`);
      if (this.skipIds.has(id) || this.core.id_to_token(id) === undefined) continue;
      kept.push(id);
    }
    if (kept.length === 0) return '';
    return this.core.decode(kept, { skip_special_tokens: true });
  }

  /**
   * Renders tokenizer_config.json's chat_template (a string, or a list of {name, template}: the one
   * named "tool_use" when tools are given and there is one, else "default"), with the variables
   * transformers passes: messages, add_generation_prompt, tools, the special tokens (bos_token,
   * eos_token, pad_token, ... as strings), then `extra`.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    const source = this.chatTemplateSource(options.tools !== undefined);
    let template = this.templates.get(source);
    if (template === undefined) {
      try {
        template = new Template(source);
      } catch (error) {
        throw new Error(`HFTokenizer.applyChatTemplate: cannot parse the chat template: ${(error as Error).message}`);
      }
      this.templates.set(source, template);
    }
    const context: Record<string, unknown> = { ...this.specialTokens };
    for (const [key, value] of Object.entries(options.extra ?? {})) {
      if (RESERVED_TEMPLATE_KEYS.has(key)) throw new TypeError(`HFTokenizer.applyChatTemplate: extra.${key} is set by applyChatTemplate itself`);
      context[key] = value;
    }
    context.messages = messages.map((message) => ({ ...message }));
    context.add_generation_prompt = options.addGenerationPrompt ?? false;
    if (options.tools !== undefined) context.tools = options.tools;
    try {
      return template.render(context);
    } catch (error) {
      throw new Error(`HFTokenizer.applyChatTemplate: rendering the chat template failed: ${(error as Error).message}`);
    }
  }

  /** tokenizer_config.json has a chat template. */
  get hasChatTemplate(): boolean {
    return this.config.chat_template !== undefined && this.config.chat_template !== null;
  }

  private chatTemplateSource(withTools: boolean): string {
    const value = this.config.chat_template;
    if (value === undefined || value === null) {
      throw new Error('HFTokenizer.applyChatTemplate: this tokenizer has no chat template (tokenizer_config.json has no chat_template)');
    }
    if (typeof value === 'string') return value;
    if (Array.isArray(value)) {
      const named = new Map<string, string>();
      for (const entry of value) {
        if (isObject(entry) && typeof entry.name === 'string' && typeof entry.template === 'string') named.set(entry.name, entry.template);
      }
      const chosen = (withTools ? named.get('tool_use') : undefined) ?? named.get('default');
      if (chosen === undefined) {
        throw new Error(`HFTokenizer.applyChatTemplate: tokenizer_config.json chat_template has no "default" template (it has ${JSON.stringify([...named.keys()])})`);
      }
      return chosen;
    }
    throw new TypeError(`HFTokenizer.applyChatTemplate: tokenizer_config.json chat_template must be a string or a list of {name, template}, not ${kindOf(value)}`);
  }

  toJSON(): HFTokenizerJSON {
    const json: HFTokenizerJSON = { type: 'huggingface', tokenizer: this.tokenizerJson, config: this.config };
    if (this.generation !== undefined) json.generation = this.generation;
    return json;
  }

  /**
   * Writes tokenizer.json and tokenizer_config.json (and generation_config.json, when there was
   * one) into `dir`, creating it: the same content as loaded, so transformers'
   * `AutoTokenizer.from_pretrained(dir)` reads it.
   */
  async save(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    const writes = [
      writeFile(join(dir, 'tokenizer.json'), JSON.stringify(this.tokenizerJson)),
      writeFile(join(dir, 'tokenizer_config.json'), `${JSON.stringify(this.config, null, 2)}\n`),
    ];
    if (this.generation !== undefined) {
      writes.push(writeFile(join(dir, 'generation_config.json'), `${JSON.stringify(this.generation, null, 2)}\n`));
    }
    await Promise.all(writes);
  }
}

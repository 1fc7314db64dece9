/**
 * Tokenizers. Any Hugging Face `tokenizer.json` (BPE, WordPiece, Unigram, with their normalizers,
 * pre-tokenizers and decoders) is read by the `@huggingface/tokenizers` library; the built-in
 * model's byte-level tokenizer is itself written as a `tokenizer.json` (one token per byte, no
 * merges), so the files ignis saves load in Python's `tokenizers`/`transformers` too.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { fail } from '../errors';
import { isPlainObject } from '../optim/optimizer';
import { readJson, writeJsonAtomic } from '../io/files';

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Put the beginning-of-sequence token first (default false). */
  addBos?: boolean;
  /** Put the end-of-sequence token last (default false). */
  addEos?: boolean;
}

/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Leave out special tokens such as BOS and EOS (default true). */
  skipSpecialTokens?: boolean;
}

/** The special tokens' texts, as `tokenizer_config.json` names them. */
interface SpecialTokens {
  bos_token?: string;
  eos_token?: string;
  pad_token?: string;
}

/** The bytes in the order GPT-2's byte-level alphabet gives them printable characters. */
function byteAlphabet(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const chars: string[] = [];
  let shifted = 0;
  for (let b = 0; b < 256; b++) chars.push(String.fromCodePoint(printable(b) ? b : 256 + shifted++));
  return chars;
}

/** A special token entry of tokenizer.json's `added_tokens`. */
function addedToken(id: number, content: string) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** A tokenizer: text to token ids and back, with the model's special tokens. */
export class Tokenizer {
  readonly #hf: HfTokenizer;
  readonly #json: Record<string, unknown>;
  readonly #config: SpecialTokens & Record<string, unknown>;
  /** The number of token ids (the largest id + 1), added tokens included. */
  readonly vocabSize: number;
  /** The beginning-of-sequence token's id, or null when the tokenizer has none. */
  readonly bosId: number | null;
  /** The end-of-sequence token's id, or null when the tokenizer has none. */
  readonly eosId: number | null;
  /** The padding token's id: the pad token, else EOS, else 0. */
  readonly padId: number;

  /**
   * A tokenizer from the parsed contents of `tokenizer.json` and `tokenizer_config.json`
   * (whose `bos_token`, `eos_token` and `pad_token` name the special tokens). A malformed
   * tokenizer.json is ERR_IO.
   */
  constructor(tokenizerJson: unknown, tokenizerConfig: unknown = {}) {
    if (!isPlainObject(tokenizerJson) || !isPlainObject(tokenizerJson.model)) {
      fail('ERR_IO', 'Tokenizer: tokenizer.json must be an object with a "model"');
    }
    if (!isPlainObject(tokenizerConfig)) fail('ERR_IO', 'Tokenizer: tokenizer_config.json must be an object');
    this.#json = tokenizerJson;
    this.#config = { ...tokenizerConfig };
    try {
      this.#hf = new HfTokenizer(tokenizerJson, tokenizerConfig);
    } catch (e) {
      fail('ERR_IO', `Tokenizer: cannot build the tokenizer from tokenizer.json: ${(e as Error).message}`);
    }
    let largest = -1;
    for (const id of this.#hf.get_vocab(true).values()) largest = Math.max(largest, id);
    this.vocabSize = largest + 1;
    this.bosId = this.#specialId('bos_token');
    this.eosId = this.#specialId('eos_token');
    this.padId = this.#specialId('pad_token') ?? this.eosId ?? 0;
  }

  /** The id of the special token named by `key` in tokenizer_config.json (a string or `{content}`). */
  #specialId(key: keyof SpecialTokens): number | null {
    const entry: unknown = this.#config[key];
    const text = isPlainObject(entry) ? entry.content : entry;
    if (text === undefined || text === null) return null;
    if (typeof text !== 'string') fail('ERR_IO', `Tokenizer: tokenizer_config.json's ${key} must be a string`);
    const id = this.#hf.token_to_id(text);
    if (id === undefined) fail('ERR_IO', `Tokenizer: the ${key} ${JSON.stringify(text)} is not in the vocabulary`);
    return id;
  }

  /**
   * Reads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json`. A missing or
   * malformed file is ERR_IO naming it.
   */
  static fromDir(dir: string): Tokenizer {
    const json = readJson('Tokenizer.fromDir', path.join(dir, 'tokenizer.json'));
    const configFile = path.join(dir, 'tokenizer_config.json');
    const config = fs.existsSync(configFile) ? readJson('Tokenizer.fromDir', configFile) : {};
    return new Tokenizer(json, config);
  }

  /**
   * The byte-level tokenizer of the built-in model: ids 0..255 are the bytes of the UTF-8 text,
   * 256 is `<s>` (BOS) and 257 is `</s>` (EOS, also used for padding). Any text round-trips.
   */
  static byteLevel(): Tokenizer {
    const vocab = Object.fromEntries(byteAlphabet().map((ch, b) => [ch, b]));
    const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
    const json = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [addedToken(256, '<s>'), addedToken(257, '</s>')],
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: null,
      decoder: byteLevel,
      model: {
        type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
        fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [],
      },
    };
    const config = {
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: '<s>',
      eos_token: '</s>',
      pad_token: '</s>',
      add_bos_token: false,
      add_eos_token: false,
      clean_up_tokenization_spaces: false,
      model_max_length: 1e30,
    };
    return new Tokenizer(json, config);
  }

  /**
   * The token ids of `text`; BOS and EOS are added only when asked for. As in Hugging Face's
   * tokenizers, a special token's text inside `text` (such as `</s>`) is read as that token.
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') fail('ERR_ARG', `Tokenizer.encode: expected a string, got ${typeof text}`);
    const ids = this.#hf.encode(text, { add_special_tokens: false }).ids;
    if (opts.addBos) ids.unshift(this.#need(this.bosId, 'BOS'));
    if (opts.addEos) ids.push(this.#need(this.eosId, 'EOS'));
    return ids;
  }

  #need(id: number | null, what: string): number {
    if (id === null) fail('ERR_ARG', `Tokenizer: this tokenizer has no ${what} token`);
    return id;
  }

  /** The text of token ids; ids outside [0, vocabSize) are ERR_INDEX. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        fail('ERR_INDEX', `Tokenizer.decode: token id ${id} is outside [0, ${this.vocabSize})`);
      }
    }
    if (ids.length === 0) return '';
    return this.#hf.decode(ids.slice(), { skip_special_tokens: opts.skipSpecialTokens ?? true, clean_up_tokenization_spaces: false });
  }

  /**
   * A decoder for tokens arriving one at a time: each call takes the next id and returns the
   * text it completes ('' while a multi-byte character or a word piece is still incomplete).
   * Concatenated, the pieces equal `decode` of all the ids.
   */
  streamDecoder(opts: DecodeOptions = {}): (id: number) => string {
    // Decoding a token alone can drop a leading space or split a character, so each piece is
    // the text of (context + new ids) past the text of the context alone.
    const context: number[] = [];
    const pending: number[] = [];
    return (id: number) => {
      pending.push(id);
      const before = this.decode(context, opts);
      const after = this.decode([...context, ...pending], opts);
      if (after.endsWith('\uFFFD') && pending.length < 4) return '';
      context.push(...pending);
      pending.length = 0;
      context.splice(0, Math.max(0, context.length - 4));
      return after.slice(before.length);
    };
  }

  /** Writes `dir/tokenizer.json` and `dir/tokenizer_config.json` (each atomically). */
  save(dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
    writeJsonAtomic('Tokenizer.save', path.join(dir, 'tokenizer.json'), this.#json);
    writeJsonAtomic('Tokenizer.save', path.join(dir, 'tokenizer_config.json'), this.#config);
  }
}

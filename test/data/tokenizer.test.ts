/**
 * Tokenizer: the byte-level tokenizer round-trips any text, loads back from its tokenizer.json,
 * a BPE tokenizer.json with merges works through the same class, streaming decoding equals
 * whole decoding, and bad files or ids give clear errors.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tokenizer } from '../../lib/data/tokenizer';
import { Rng, assertCode } from '../helpers';

const TEXTS = ['', 'Hello, world!', 'tabs\tand\nnewlines\r\n', 'ünïcödé — 日本語 🙂', '\u0000\u0001 control'];

function randomText(rng: Rng, n: number): string {
  const pool = 'abc xyz\n\té€😀';
  return Array.from({ length: n }, () => [...pool][Math.floor(rng.next() * [...pool].length)]).join('');
}

test('the byte-level tokenizer maps text to its UTF-8 bytes and back', (t) => {
  const tok = Tokenizer.byteLevel();
  t.is(tok.vocabSize, 258);
  t.is(tok.bosId, 256);
  t.is(tok.eosId, 257);
  t.is(tok.padId, 257);
  const rng = new Rng(3);
  for (const text of [...TEXTS, ...Array.from({ length: 20 }, () => randomText(rng, 40))]) {
    const ids = tok.encode(text);
    t.deepEqual(ids, Array.from(Buffer.from(text, 'utf8')), JSON.stringify(text));
    t.is(tok.decode(ids), text);
  }
  t.deepEqual(tok.encode('a', { addBos: true, addEos: true }), [256, 97, 257]);
  // as in Hugging Face's tokenizers, a special token's text in the input is that token
  t.deepEqual(tok.encode('x</s>'), [120, 257]);
  t.is(tok.decode([256, 104, 105, 257]), 'hi');
  t.is(tok.decode([256, 104, 105, 257], { skipSpecialTokens: false }), '<s>hi</s>');
});

test('a saved tokenizer loads back and encodes the same', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-tok-'));
  try {
    Tokenizer.byteLevel().save(dir);
    const back = Tokenizer.fromDir(dir);
    for (const text of TEXTS) t.deepEqual(back.encode(text), Tokenizer.byteLevel().encode(text));
    t.is(back.eosId, 257);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a BPE tokenizer.json with merges and a pad token works through the same class', (t) => {
  const vocab: Record<string, number> = { '[PAD]': 0, '<eos>': 1, h: 2, e: 3, l: 4, o: 5, he: 6, ll: 7, hell: 8, hello: 9, ' ': 10 };
  const json = {
    version: '1.0', added_tokens: [
      { id: 0, content: '[PAD]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 1, content: '<eos>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null,
    model: { type: 'BPE', vocab, merges: ['h e', 'l l', 'he ll', 'hell o'], dropout: null, unk_token: null, fuse_unk: false, byte_fallback: false },
  };
  const tok = new Tokenizer(json, { eos_token: '<eos>', pad_token: '[PAD]' });
  t.deepEqual(tok.encode('hello'), [9]);
  t.deepEqual(tok.encode('hell'), [8]);
  t.deepEqual(tok.encode('hello', { addEos: true }), [9, 1]);
  t.is(tok.bosId, null);
  t.is(tok.padId, 0);
  t.is(tok.decode([9]), 'hello');
  assertCode(t, () => tok.encode('x', { addBos: true }), 'ERR_ARG');
});

test('streaming decoding, piece by piece, equals decoding everything', (t) => {
  const tok = Tokenizer.byteLevel();
  const rng = new Rng(5);
  for (let trial = 0; trial < 10; trial++) {
    const text = randomText(rng, 30);
    const next = tok.streamDecoder();
    const pieces = tok.encode(text).map(next);
    t.is(pieces.join(''), text);
    // a multi-byte character comes out whole, once its last byte arrives
    t.false(pieces.some((p) => p.includes('\uFFFD')));
  }
});

test('bad tokenizer files and ids give clear errors', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-tok-'));
  try {
    assertCode(t, () => Tokenizer.fromDir(dir), 'ERR_IO', /tokenizer\.json.*no such file/);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": ');
    assertCode(t, () => Tokenizer.fromDir(dir), 'ERR_IO', /not valid JSON/);
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), '[1, 2]');
    assertCode(t, () => Tokenizer.fromDir(dir), 'ERR_IO', /"model"/);
    Tokenizer.byteLevel().save(dir);
    fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), '{"eos_token": "<nope>"}');
    assertCode(t, () => Tokenizer.fromDir(dir), 'ERR_IO', /not in the vocabulary/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const tok = Tokenizer.byteLevel();
  assertCode(t, () => tok.decode([258]), 'ERR_INDEX');
  assertCode(t, () => tok.decode([-1]), 'ERR_INDEX');
  assertCode(t, () => tok.encode(5 as unknown as string), 'ERR_ARG');
});

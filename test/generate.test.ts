/**
 * Generation: cached and uncached decoding give the same tokens (greedy and sampled), the same
 * seed gives the same text, streaming pieces add up to the text, stopping at EOS / a budget /
 * stop strings / the model's length, and the sampling filters (temperature, top-k, top-p).
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ig from '../lib';
import { Tokenizer } from '../lib/data/tokenizer';
import { generate, pickToken } from '../lib/generate';
import { seededRandom } from '../lib/data/dataset';
import { assertCode, tempDir } from './helpers';

const tokenizer = Tokenizer.byteLevel();

function model(dtype: ig.DType = 'float32', maxPositionEmbeddings = 64): ig.LlamaForCausalLM {
  ig.manualSeed(3);
  const m = new ig.LlamaForCausalLM({
    vocabSize: tokenizer.vocabSize, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2,
    numAttentionHeads: 4, numKeyValueHeads: 2, maxPositionEmbeddings,
  }, { dtype });
  // a random model is nearly uniform: sharpen its logits so that greedy choices are clear
  ig.noGrad(() => {
    const w = m.lm_head.weight;
    m.loadStateDict(new Map([['lm_head.weight', ig.mul(ig.randn(w.shape.slice(), { dtype }), 3)]]), { strict: false });
  });
  return m;
}

test('cached and uncached decoding give the same tokens', (t) => {
  for (const dtype of ['float32', 'float64'] as const) {
    const m = model(dtype);
    for (const opts of [{ temperature: 0 }, { temperature: 0.9, seed: 4 }, { temperature: 1.2, topK: 20, topP: 0.9, seed: 9 }]) {
      const cached = generate(m, tokenizer, 'Hello', { maxNewTokens: 20, stopAtEos: false, ...opts });
      const uncached = generate(m, tokenizer, 'Hello', { maxNewTokens: 20, stopAtEos: false, useCache: false, ...opts });
      t.deepEqual(cached.tokens, uncached.tokens, `${dtype} ${JSON.stringify(opts)}`);
      t.is(cached.tokens.length, 20);
      t.is(cached.finishReason, 'length');
    }
    m.dispose();
  }
});

test('the same seed gives the same text, pieces stream in order, and memory is returned', (t) => {
  const m = model();
  generate(m, tokenizer, 'The', { maxNewTokens: 30 });  // fills the rotary tables (module buffers) once
  const before = ig.memory().tensors;
  const pieces: string[] = [];
  const ids: number[] = [];
  const a = generate(m, tokenizer, 'The', { maxNewTokens: 30, temperature: 1, seed: 7, stopAtEos: false, onText: (p) => pieces.push(p), onToken: (id) => ids.push(id) });
  const b = generate(m, tokenizer, 'The', { maxNewTokens: 30, temperature: 1, seed: 7, stopAtEos: false });
  const c = generate(m, tokenizer, 'The', { maxNewTokens: 30, temperature: 1, seed: 8, stopAtEos: false });
  t.deepEqual(a.tokens, b.tokens);
  t.notDeepEqual(a.tokens, c.tokens);
  t.is(pieces.join(''), a.text);
  t.deepEqual(ids, a.tokens);
  t.is(a.text, tokenizer.decode(a.tokens));
  t.is(ig.memory().tensors, before);
  t.true(m.training === true);  // the mode is put back
  m.dispose();
});

test('generation stops at EOS, stop strings and the model length', (t) => {
  const m = model('float32', 16);
  const greedy = generate(m, tokenizer, 'ab', { maxNewTokens: 8, temperature: 0, stopAtEos: false });
  // a tokenizer whose EOS is the token the model picks first stops at once
  const first = greedy.tokens[0];
  const json = tokenizerJson(t);
  const firstToken = Object.keys(json.model.vocab).find((token) => json.model.vocab[token] === first);
  const eosTok = new Tokenizer(json, { eos_token: firstToken });
  const stopped = generate(m, eosTok, 'ab', { maxNewTokens: 8, temperature: 0, addBos: false });
  t.is(stopped.finishReason, 'eos');
  t.deepEqual(stopped.tokens, []);
  const text = greedy.text;
  if (text.length > 2) {
    const stop = text.slice(1, 2);
    const cut = generate(m, tokenizer, 'ab', { maxNewTokens: 8, temperature: 0, stopAtEos: false, stop: [stop] });
    t.is(cut.finishReason, 'stop');
    t.is(cut.text, text.slice(0, text.indexOf(stop)));
  }
  // BOS + 2 prompt tokens + at most 13 new: the model takes 16 positions
  t.is(generate(m, tokenizer, 'ab', { maxNewTokens: 100, temperature: 0, stopAtEos: false }).tokens.length, 13);
  assertCode(t, () => generate(m, tokenizer, 'x'.repeat(20), {}), 'ERR_ARG', /above the model's maximum of 16/);
  for (const bad of [{ maxNewTokens: -1 }, { temperature: -1 }, { topK: 1.5 }, { topP: 0 }, { topP: 1.5 }, { seed: 0.5 }]) {
    assertCode(t, () => generate(m, tokenizer, 'a', bad), 'ERR_ARG', undefined);
  }
  m.dispose();
});

/** The byte-level tokenizer's tokenizer.json contents. */
function tokenizerJson(t: ExecutionContext): { model: { vocab: Record<string, number> } } {
  const dir = tempDir(t);
  tokenizer.save(dir);
  return JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
}

test('sampling follows temperature, top-k and top-p', (t) => {
  const logits = Float32Array.from([2, 1, 0, -1, 3]);
  t.is(pickToken(logits, 0, 0, 1, Math.random), 4);
  const counts = (temperature: number, topK: number, topP: number) => {
    const random = seededRandom(1);
    const n = new Array(5).fill(0);
    for (let i = 0; i < 20000; i++) n[pickToken(logits, temperature, topK, topP, random)]++;
    return n.map((c) => c / 20000);
  };
  const p = (temperature: number, keep: number[]) => {
    const w = Array.from(logits, (l, i) => (keep.includes(i) ? Math.exp(l / temperature) : 0));
    const total = w.reduce((a, b) => a + b, 0);
    return w.map((x) => x / total);
  };
  const close = (got: number[], want: number[]) => got.every((g, i) => Math.abs(g - want[i]) < 0.015);
  t.true(close(counts(1, 0, 1), p(1, [0, 1, 2, 3, 4])));
  t.true(close(counts(0.5, 0, 1), p(0.5, [0, 1, 2, 3, 4])));
  t.true(close(counts(1, 2, 1), p(1, [4, 0])));
  // probabilities 0.64, 0.24, 0.09, ...: top-p 0.8 keeps the first two (0.64 < 0.8 <= 0.88)
  t.true(close(counts(1, 0, 0.8), p(1, [4, 0])));
  t.true(close(counts(1, 0, 0.5), p(1, [4])));
});

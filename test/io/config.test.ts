/**
 * config.json: transformers' LlamaConfig keys and defaults, the checks on required keys, types,
 * architecture and rope settings, and the file written back.
 */
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';
import { io } from '../../lib';
import { assertCode, tempDir } from '../helpers';

/** A config.json as transformers 4.40 saved SmolLM-135M's (every key written out). */
const SMOL = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 0,
  eos_token_id: 0,
  hidden_act: 'silu',
  hidden_size: 576,
  initializer_range: 0.041666666666666664,
  intermediate_size: 1536,
  is_llama_config: true,
  max_position_embeddings: 2048,
  model_type: 'llama',
  num_attention_heads: 9,
  num_hidden_layers: 30,
  num_key_value_heads: 3,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_interleaved: false,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.40.1',
  use_cache: true,
  vocab_size: 49152,
};

const REQUIRED = { model_type: 'llama', vocab_size: 32, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4 };

function write(dir: string, dict: unknown, name = 'config.json'): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof dict === 'string' ? dict : JSON.stringify(dict));
  return file;
}

test('a transformers config.json is read into camelCase fields', (t) => {
  const dir = tempDir(t);
  write(dir, SMOL);
  const c = io.readConfig(dir);
  t.deepEqual(c, {
    vocabSize: 49152,
    hiddenSize: 576,
    intermediateSize: 1536,
    numHiddenLayers: 30,
    numAttentionHeads: 9,
    numKeyValueHeads: 3,
    headDim: 64,
    maxPositionEmbeddings: 2048,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    attentionBias: false,
    mlpBias: false,
    bosTokenId: 0,
    eosTokenId: 0,
    padTokenId: null,
    torchDtype: 'bfloat16',
    hiddenAct: 'silu',
    initializerRange: 0.041666666666666664,
    useCache: true,
    pretrainingTp: 1,
    attentionDropout: 0,
  });
  t.deepEqual(io.readConfig(path.join(dir, 'config.json')), c, 'the file or its folder');
});

test("missing optional keys take transformers' LlamaConfig defaults", (t) => {
  const dir = tempDir(t);
  const c = io.readConfig(write(dir, REQUIRED));
  t.like(c, {
    numKeyValueHeads: 4,
    headDim: 4,
    maxPositionEmbeddings: 2048,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    tieWordEmbeddings: false,
    attentionBias: false,
    mlpBias: false,
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: null,
    torchDtype: null,
    initializerRange: 0.02,
  });
  // null for the derived sizes, a list of eos ids, an explicit head_dim, transformers 5's spellings
  const v5 = io.readConfig(
    write(dir, { ...REQUIRED, num_key_value_heads: null, head_dim: 8, eos_token_id: [2, 7], dtype: 'float16', rope_parameters: { rope_type: 'default', rope_theta: 500000.0 } }),
  );
  t.like(v5, { numKeyValueHeads: 4, headDim: 8, eosTokenId: [2, 7], torchDtype: 'float16', ropeTheta: 500000 });
  // no model_type, but the architecture
  const { model_type: _, ...noType } = REQUIRED;
  t.is(io.readConfig(write(dir, { ...noType, architectures: ['LlamaForCausalLM'] })).vocabSize, 32);
  t.is(io.readConfig(write(dir, { ...REQUIRED, rope_scaling: { type: 'default' } })).ropeTheta, 10000);
});

test('missing or mistyped keys, other models and unsupported settings are ERR_IO naming the key and the file', (t) => {
  const dir = tempDir(t);
  const cases: [string, unknown, RegExp][] = [
    ['no hidden_size', { ...REQUIRED, hidden_size: undefined }, /the required key hidden_size is missing/],
    ['no vocab_size', { ...REQUIRED, vocab_size: undefined }, /the required key vocab_size is missing/],
    ['string size', { ...REQUIRED, num_hidden_layers: '2' }, /num_hidden_layers must be a non-negative integer, got "2"/],
    ['fractional size', { ...REQUIRED, intermediate_size: 2.5 }, /intermediate_size must be a positive integer/],
    ['zero heads', { ...REQUIRED, num_attention_heads: 0 }, /num_attention_heads must be a positive integer/],
    ['bad eps', { ...REQUIRED, rms_norm_eps: -1 }, /rms_norm_eps must be a finite positive number/],
    ['bad tie', { ...REQUIRED, tie_word_embeddings: 'yes' }, /tie_word_embeddings must be true or false/],
    ['bad eos', { ...REQUIRED, eos_token_id: ['2'] }, /eos_token_id must be a token id, a list of them, or null/],
    ['bad dtype', { ...REQUIRED, torch_dtype: 'int8' }, /torch_dtype must be/],
    ['heads not dividing', { ...REQUIRED, hidden_size: 18 }, /hidden_size \(18\) must be divisible by num_attention_heads \(4\)/],
    ['kv heads', { ...REQUIRED, num_key_value_heads: 3 }, /num_key_value_heads \(3\) must divide num_attention_heads \(4\)/],
    ['odd head_dim', { ...REQUIRED, head_dim: 5 }, /head_dim must be even/],
    ['other model', { ...REQUIRED, model_type: 'mistral' }, /model_type "mistral"; expected a LLaMA model/],
    ['no type', { ...REQUIRED, model_type: undefined, architectures: ['GPT2LMHeadModel'] }, /no model_type and architectures \["GPT2LMHeadModel"\]/],
    ['llama3 rope', { ...REQUIRED, rope_scaling: { rope_type: 'llama3', factor: 8.0 } }, /rope_scaling of type "llama3" is not supported/],
    ['linear rope', { ...REQUIRED, rope_scaling: { type: 'linear', factor: 2.0 } }, /rope_scaling of type "linear" is not supported/],
    ['yarn rope (v5)', { ...REQUIRED, rope_parameters: { rope_type: 'yarn', rope_theta: 1e4 } }, /rope_parameters of type "yarn" is not supported/],
    ['gelu', { ...REQUIRED, hidden_act: 'gelu' }, /hidden_act must be 'silu'/],
    ['attention dropout', { ...REQUIRED, attention_dropout: 0.1 }, /attention_dropout must be 0/],
    ['not an object', [1, 2], /must hold a JSON object/],
    ['not JSON', '{"vocab_size": 3,', /is not valid JSON/],
  ];
  for (const [what, dict, message] of cases) {
    const file = write(dir, dict, `${what.replace(/\W+/g, '-')}.json`);
    assertCode(t, () => io.readConfig(file), 'ERR_IO', message);
    const err = t.throws(() => io.readConfig(file));
    t.true(err?.message.includes(file), `${what}: names the file`);
  }
  assertCode(t, () => io.readConfig(path.join(dir, 'none')), 'ERR_IO', /cannot read .*none/);
  assertCode(t, () => io.readConfig(tempDir(t)), 'ERR_IO', /config\.json/);
});

test('written back with the keys transformers writes, and read again', (t) => {
  const dir = tempDir(t);
  const c = io.readConfig(write(dir, SMOL));
  const out = path.join(dir, 'out.json');
  io.writeConfig(out, c);
  const text = fs.readFileSync(out, 'utf8');
  const dict = JSON.parse(text);
  const expected = { ...SMOL } as Record<string, unknown>;
  for (const key of ['is_llama_config', 'rope_interleaved', 'transformers_version']) delete expected[key];
  t.deepEqual(dict, { ...expected, head_dim: 64, mlp_bias: false });
  t.deepEqual(Object.keys(dict), Object.keys(dict).slice().sort(), 'keys sorted');
  t.regex(text, /"rope_theta": 10000\.0,\n/, 'floats keep a decimal point, as Python writes them');
  t.regex(text, /"attention_dropout": 0\.0,\n/);
  t.true(text.endsWith('}\n'));
  t.deepEqual(io.readConfig(out), c);
  // a different dtype for the saved weights; pad_token_id only when set
  const padded = io.toHfConfig({ ...c, padTokenId: 3 }, 'float32');
  t.is(padded.torch_dtype, 'float32');
  t.is(padded.pad_token_id, 3);
  t.false('pad_token_id' in io.toHfConfig(c));
});

test('llamaConfig fills defaults for code and refuses bad fields with ERR_ARG', (t) => {
  const c = io.llamaConfig({ vocabSize: 10, hiddenSize: 8, intermediateSize: 12, numHiddenLayers: 1, numAttentionHeads: 2 });
  t.like(c, { numKeyValueHeads: 2, headDim: 4, ropeTheta: 10000, rmsNormEps: 1e-6, tieWordEmbeddings: false });
  t.deepEqual(io.llamaConfig(c), c, 'a complete config passes through');
  assertCode(t, () => io.llamaConfig({ ...c, hiddenSize: 0 }), 'ERR_ARG', /hiddenSize must be a positive integer/);
  assertCode(t, () => io.llamaConfig({ ...c, numKeyValueHeads: 3 }), 'ERR_ARG', /numKeyValueHeads \(3\) must divide numAttentionHeads/);
  assertCode(t, () => io.llamaConfig({ ...c, hiddenSze: 3 } as unknown as io.LlamaConfigInput), 'ERR_ARG', /unknown field 'hiddenSze'/);
  assertCode(t, () => io.llamaConfig({ vocabSize: 10 } as io.LlamaConfigInput), 'ERR_ARG', /the required key hiddenSize is missing/);
});

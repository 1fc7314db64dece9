/**
 * Hugging Face LLaMA `config.json` files: read into a typed {@link LlamaConfig} (camelCase
 * fields, transformers' LlamaConfig defaults for the optional keys) and written back with the
 * keys transformers writes.
 */
import * as fs from 'fs';
import * as path from 'path';
import { DType, isFloat } from '../dtype';
import { ErrorCode, fail } from '../errors';
import { pythonJson, readJson, writeTextAtomic } from './files';

/** The configuration of a LLaMA model: transformers' LlamaConfig, camelCased. */
export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  /** The MLP's inner size. */
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** Key/value heads (grouped-query attention); default numAttentionHeads. */
  numKeyValueHeads: number;
  /** Size of a head; default hiddenSize / numAttentionHeads. */
  headDim: number;
  /** Default 2048. */
  maxPositionEmbeddings: number;
  /** The RMSNorms' eps; default 1e-6. */
  rmsNormEps: number;
  /** The rotary embedding's base; default 10000. */
  ropeTheta: number;
  /** Whether lm_head shares the embedding's weight; default false. */
  tieWordEmbeddings: boolean;
  /** Biases on the attention projections; default false. */
  attentionBias: boolean;
  /** Biases on the MLP projections; default false. */
  mlpBias: boolean;
  /** Default 1. */
  bosTokenId: number | null;
  /** One id or several; default 2. */
  eosTokenId: number | number[] | null;
  /** Default null. */
  padTokenId: number | null;
  /** The dtype the weights were saved in (`torch_dtype`), or null. */
  torchDtype: DType | null;
  /** The MLP's activation: only 'silu' (SwiGLU). */
  hiddenAct: 'silu';
  /** The std of the initial weights in transformers; default 0.02. */
  initializerRange: number;
  /** Default true. */
  useCache: boolean;
  /** Default 1. */
  pretrainingTp: number;
  /** Only 0 (ignis' attention has no dropout). */
  attentionDropout: number;
}

/** What {@link llamaConfig} takes: the five sizes, and any other field of {@link LlamaConfig}. */
export type LlamaConfigInput = Pick<LlamaConfig, 'vocabSize' | 'hiddenSize' | 'intermediateSize' | 'numHiddenLayers' | 'numAttentionHeads'> &
  Partial<LlamaConfig>;

type Kind = 'positive' | 'count' | 'number' | 'boolean' | 'tokenId' | 'tokenIds' | 'dtype' | 'act' | 'zero';

interface Field {
  /** The key in config.json. */
  key: string;
  kind: Kind;
  /** The default when the key is absent (none: the key is required). */
  fallback?: unknown;
  /** Absent or null: computed from other fields. */
  derived?: true;
}

/** Every field, in the order of {@link LlamaConfig}; ropeTheta is read separately (two spellings). */
const FIELDS: Record<Exclude<keyof LlamaConfig, 'ropeTheta'>, Field> = {
  vocabSize: { key: 'vocab_size', kind: 'positive' },
  hiddenSize: { key: 'hidden_size', kind: 'positive' },
  intermediateSize: { key: 'intermediate_size', kind: 'positive' },
  numHiddenLayers: { key: 'num_hidden_layers', kind: 'count' },
  numAttentionHeads: { key: 'num_attention_heads', kind: 'positive' },
  numKeyValueHeads: { key: 'num_key_value_heads', kind: 'positive', derived: true },
  headDim: { key: 'head_dim', kind: 'positive', derived: true },
  maxPositionEmbeddings: { key: 'max_position_embeddings', kind: 'positive', fallback: 2048 },
  rmsNormEps: { key: 'rms_norm_eps', kind: 'number', fallback: 1e-6 },
  tieWordEmbeddings: { key: 'tie_word_embeddings', kind: 'boolean', fallback: false },
  attentionBias: { key: 'attention_bias', kind: 'boolean', fallback: false },
  mlpBias: { key: 'mlp_bias', kind: 'boolean', fallback: false },
  bosTokenId: { key: 'bos_token_id', kind: 'tokenId', fallback: 1 },
  eosTokenId: { key: 'eos_token_id', kind: 'tokenIds', fallback: 2 },
  padTokenId: { key: 'pad_token_id', kind: 'tokenId', fallback: null },
  torchDtype: { key: 'torch_dtype', kind: 'dtype', fallback: null },
  hiddenAct: { key: 'hidden_act', kind: 'act', fallback: 'silu' },
  initializerRange: { key: 'initializer_range', kind: 'number', fallback: 0.02 },
  useCache: { key: 'use_cache', kind: 'boolean', fallback: true },
  pretrainingTp: { key: 'pretraining_tp', kind: 'positive', fallback: 1 },
  attentionDropout: { key: 'attention_dropout', kind: 'zero', fallback: 0 },
};
const DEFAULT_ROPE_THETA = 10000;

const isInt = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;

/** Whether `v` is acceptable for `kind` (null: absent/computed for the kinds that allow it). */
function valid(kind: Kind, v: unknown): boolean {
  switch (kind) {
    case 'positive':
      return isInt(v, 1);
    case 'count':
      return isInt(v, 0);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v) && v > 0;
    case 'boolean':
      return typeof v === 'boolean';
    case 'tokenId':
      return v === null || isInt(v, 0);
    case 'tokenIds':
      return v === null || isInt(v, 0) || (Array.isArray(v) && v.every((x) => isInt(x, 0)));
    case 'dtype':
      return v === null || (typeof v === 'string' && ['float32', 'float64', 'bfloat16', 'float16'].includes(v));
    case 'act':
      return v === 'silu';
    case 'zero':
      return v === 0;
  }
}

const EXPECTED: Record<Kind, string> = {
  positive: 'a positive integer',
  count: 'a non-negative integer',
  number: 'a finite positive number',
  boolean: 'true or false',
  tokenId: 'a token id or null',
  tokenIds: 'a token id, a list of them, or null',
  dtype: "'float32', 'float64', 'bfloat16', 'float16' or null",
  act: "'silu' (the only activation of LLaMA's MLP that ignis implements)",
  zero: '0 (ignis has no attention dropout)',
};

/** Where a config comes from, for messages and error codes: a file (ERR_IO, HF keys) or code (ERR_ARG, camelCase). */
interface Source {
  code: ErrorCode;
  where: string;
  name: (field: keyof LlamaConfig, key: string) => string;
}

/** The rope base from `rope_theta` + `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5); only the default rope type. */
function ropeTheta(dict: Record<string, unknown>, src: Source): number {
  const params = dict.rope_parameters;
  const scaling = dict.rope_scaling;
  for (const [key, value] of [['rope_scaling', scaling], ['rope_parameters', params]] as const) {
    if (value === undefined || value === null) continue;
    if (typeof value !== 'object' || Array.isArray(value)) fail(src.code, `${src.where}: ${key} must be an object or null, got ${JSON.stringify(value)}`);
    const type = (value as Record<string, unknown>).rope_type ?? (value as Record<string, unknown>).type ?? 'default';
    if (type !== 'default') {
      fail(src.code, `${src.where}: ${key} of type ${JSON.stringify(type)} is not supported (only the default rotary embedding, rope_scaling null)`);
    }
  }
  const theta = (params as Record<string, unknown> | null | undefined)?.rope_theta ?? dict.rope_theta ?? DEFAULT_ROPE_THETA;
  if (!valid('number', theta)) fail(src.code, `${src.where}: ${src.name('ropeTheta', 'rope_theta')} must be ${EXPECTED.number}, got ${JSON.stringify(theta)}`);
  return theta as number;
}

/** Validates a config dict with Hugging Face's keys and fills the defaults. */
function parseHfDict(dict: Record<string, unknown>, src: Source): LlamaConfig {
  const out: Record<string, unknown> = {};
  for (const [field, { key, kind, fallback, derived }] of Object.entries(FIELDS) as [keyof LlamaConfig, Field][]) {
    // transformers 5 writes the dtype as `dtype`
    let value = key === 'torch_dtype' && dict[key] === undefined ? dict.dtype : dict[key];
    if (kind === 'dtype' && value === 'auto') value = null;
    if (derived && (value === undefined || value === null)) {
      out[field] = null;
      continue;
    }
    if (value === undefined) {
      if (fallback === undefined) fail(src.code, `${src.where}: the required key ${src.name(field, key)} is missing`);
      out[field] = fallback;
      continue;
    }
    if (!valid(kind, value)) fail(src.code, `${src.where}: ${src.name(field, key)} must be ${EXPECTED[kind]}, got ${JSON.stringify(value)}`);
    out[field] = Array.isArray(value) ? value.slice() : value;
  }
  const c = out as unknown as LlamaConfig;
  c.ropeTheta = ropeTheta(dict, src);
  const key = (field: keyof LlamaConfig) => src.name(field, FIELDS[field as Exclude<keyof LlamaConfig, 'ropeTheta'>].key);
  if (c.headDim === null) {
    if (c.hiddenSize % c.numAttentionHeads !== 0) {
      fail(src.code, `${src.where}: ${key('hiddenSize')} (${c.hiddenSize}) must be divisible by ${key('numAttentionHeads')} (${c.numAttentionHeads}), or give ${key('headDim')}`);
    }
    c.headDim = c.hiddenSize / c.numAttentionHeads;
  }
  if (c.headDim % 2 !== 0) fail(src.code, `${src.where}: ${key('headDim')} must be even for the rotary embedding, got ${c.headDim}`);
  c.numKeyValueHeads ??= c.numAttentionHeads;
  if (c.numAttentionHeads % c.numKeyValueHeads !== 0) {
    fail(src.code, `${src.where}: ${key('numKeyValueHeads')} (${c.numKeyValueHeads}) must divide ${key('numAttentionHeads')} (${c.numAttentionHeads})`);
  }
  return c;
}

/** Checks the architecture: `model_type` llama, or no model_type and LlamaForCausalLM among the architectures. */
function checkArchitecture(dict: Record<string, unknown>, where: string): void {
  const type = dict.model_type;
  const archs = dict.architectures;
  if (type === 'llama') return;
  if (type === undefined && Array.isArray(archs) && archs.includes('LlamaForCausalLM')) return;
  const what = type === undefined ? `no model_type and architectures ${JSON.stringify(archs ?? null)}` : `model_type ${JSON.stringify(type)}`;
  fail('ERR_IO', `${where}: ${what}; expected a LLaMA model (model_type "llama")`);
}

/**
 * Reads a Hugging Face LLaMA `config.json` (a path to the file, or to the folder holding it).
 * `model_type` must be `llama` (or absent with `LlamaForCausalLM` in `architectures`); the five
 * sizes (vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads) are
 * required; other keys default as in transformers' LlamaConfig. A missing file, a missing or
 * mistyped key, or an unsupported setting (`rope_scaling` other than the default rope, an
 * activation other than silu, attention dropout) is ERR_IO naming the key and the file.
 * transformers 5's `rope_parameters` and `dtype` are read too.
 */
export function readConfig(file: string): LlamaConfig {
  const op = 'readConfig';
  if (typeof file !== 'string' || file === '') fail('ERR_ARG', `${op}: expected a path to config.json or its folder`);
  const target = fs.statSync(file, { throwIfNoEntry: false })?.isDirectory() ? path.join(file, 'config.json') : file;
  const dict = readJson(op, target);
  if (typeof dict !== 'object' || dict === null || Array.isArray(dict)) fail('ERR_IO', `${op}: ${target} must hold a JSON object`);
  const where = `${op}: ${target}`;
  checkArchitecture(dict as Record<string, unknown>, where);
  return parseHfDict(dict as Record<string, unknown>, { code: 'ERR_IO', where, name: (_, key) => key });
}

/**
 * A complete {@link LlamaConfig} from the five sizes and any other fields, with transformers'
 * defaults for the rest; a bad or unknown field is ERR_ARG.
 */
export function llamaConfig(input: LlamaConfigInput): LlamaConfig {
  const op = 'llamaConfig';
  if (typeof input !== 'object' || input === null) fail('ERR_ARG', `${op}: expected { vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads, ... }`);
  const dict: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(input)) {
    if (field === 'ropeTheta') dict.rope_theta = value;
    else if (field in FIELDS) dict[FIELDS[field as keyof typeof FIELDS].key] = value;
    else fail('ERR_ARG', `${op}: unknown field '${field}'`);
  }
  return parseHfDict(dict, { code: 'ERR_ARG', where: op, name: (field) => field });
}

/**
 * The config as transformers writes a LlamaConfig (keys sorted, as its `to_json_string`):
 * `architectures: ['LlamaForCausalLM']`, `model_type: 'llama'`, every field under its Hugging
 * Face name, `rope_scaling: null`; `pad_token_id` only when set. `torchDtype` may be overridden
 * (the dtype the weights are saved in).
 */
export function toHfConfig(config: LlamaConfig, torchDtype: DType | null = config.torchDtype): Record<string, unknown> {
  const c = llamaConfig(config);
  if (torchDtype !== null && !isFloat(torchDtype)) fail('ERR_DTYPE', `toHfConfig: torchDtype must be a floating-point dtype, got ${String(torchDtype)}`);
  const dict: Record<string, unknown> = { architectures: ['LlamaForCausalLM'], model_type: 'llama', rope_scaling: null, rope_theta: c.ropeTheta };
  for (const [field, { key }] of Object.entries(FIELDS) as [keyof typeof FIELDS, Field][]) {
    if (field === 'padTokenId' && c.padTokenId === null) continue;
    dict[key] = field === 'torchDtype' ? torchDtype : c[field];
  }
  return Object.fromEntries(Object.keys(dict).sort().map((k) => [k, dict[k]]));
}


/**
 * Writes {@link toHfConfig}'s dict as transformers does (indent 2, keys sorted, floats with a
 * decimal point, newline at the end), atomically.
 */
export function writeConfig(file: string, config: LlamaConfig, torchDtype: DType | null = config.torchDtype): void {
  if (typeof file !== 'string' || file === '') fail('ERR_ARG', 'writeConfig: expected a file path');
  const floats = ['rope_theta', 'rms_norm_eps', 'attention_dropout', 'initializer_range'];
  writeTextAtomic('writeConfig', file, pythonJson(toHfConfig(config, torchDtype), floats));
}

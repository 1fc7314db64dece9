/**
 * Training data: text files and JSONL records turned into token sequences with labels, split
 * into training and held-out parts, and batched.
 */
import * as fs from 'node:fs';
import { fail } from '../errors';
import { io } from '../io/files';
import { isPlainObject } from '../optim/optimizer';
import { tensor } from '../ops/creation';
import { Tensor } from '../tensor';
import { Tokenizer } from './tokenizer';

/** The label of a position that the loss skips (PyTorch's and Hugging Face's ignore index). */
export const IGNORE_INDEX = -100;

/** One record of a dataset: free text, or a prompt whose completion alone is learned. */
export type TextRecord = { text: string } | { prompt: string; completion: string };

/** One training sequence: token ids and, for each position, the id to learn there or IGNORE_INDEX. */
export interface Example {
  inputIds: number[];
  /** Labels as Hugging Face's causal LMs take them: aligned with inputIds, shifted by the loss. */
  labels: number[];
}

/**
 * Reads a dataset file. `.jsonl` / `.json` files hold one JSON object per line, either
 * `{"text": ...}` or `{"prompt": ..., "completion": ...}` (the same kind throughout); any
 * other file is plain text, one record. Blank or malformed lines, unknown shapes, empty texts
 * and mixed kinds are ERR_IO with the file and line number; an unreadable file is ERR_IO.
 */
export function readRecords(file: string): TextRecord[] {
  const content = io('readRecords', 'cannot read the dataset', file, () => fs.readFileSync(file, 'utf8'));
  if (!/\.jsonl?$/i.test(file)) {
    if (content.trim() === '') fail('ERR_IO', `the dataset ${file} is empty`);
    return [{ text: content }];
  }
  const lines = content.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) fail('ERR_IO', `the dataset ${file} is empty`);
  let kind: 'text' | 'prompt' | null = null;
  return lines.map((line, i) => {
    const where = `${file}:${i + 1}`;
    if (line.trim() === '') fail('ERR_IO', `${where}: empty line (each line must be one JSON object)`);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      fail('ERR_IO', `${where}: not valid JSON: ${(e as Error).message}`);
    }
    const record = toRecord(value, where);
    const k = 'text' in record ? 'text' : 'prompt';
    if (kind !== null && k !== kind) fail('ERR_IO', `${where}: a {"${k}"} record in a dataset of {"${kind}"} records`);
    kind = k;
    return record;
  });
}

function toRecord(value: unknown, where: string): TextRecord {
  const nonEmpty = (v: unknown, key: string, allowEmpty = false): string => {
    if (typeof v !== 'string') fail('ERR_IO', `${where}: "${key}" must be a string`);
    if (!allowEmpty && v === '') fail('ERR_IO', `${where}: "${key}" is empty`);
    return v;
  };
  if (isPlainObject(value) && 'text' in value && !('prompt' in value) && !('completion' in value)) {
    return { text: nonEmpty(value.text, 'text') };
  }
  if (isPlainObject(value) && 'prompt' in value && 'completion' in value && !('text' in value)) {
    return { prompt: nonEmpty(value.prompt, 'prompt', true), completion: nonEmpty(value.completion, 'completion') };
  }
  fail('ERR_IO', `${where}: expected {"text": ...} or {"prompt": ..., "completion": ...}`);
}

/** Options of {@link tokenizeRecords}. */
export interface TokenizeOptions {
  /** The length of every training sequence (text is packed into blocks of it; longer examples are cut). */
  seqLen: number;
}

/**
 * Token sequences of at most `seqLen` tokens. Text records are joined (each one
 * `<bos> text <eos>`, where the tokenizer has them) and cut into blocks of exactly `seqLen`
 * tokens (the remainder shorter than a block is dropped unless it is all there is), every token
 * learned. Each prompt/completion record is one example `<bos> prompt completion <eos>` whose
 * prompt tokens are not learned (IGNORE_INDEX), cut to `seqLen`; an example whose completion
 * would be cut away entirely is ERR_ARG (raise seqLen).
 */
export function tokenizeRecords(records: TextRecord[], tokenizer: Tokenizer, opts: TokenizeOptions): Example[] {
  const { seqLen } = opts;
  if (!Number.isInteger(seqLen) || seqLen < 2) fail('ERR_ARG', `tokenizeRecords: seqLen must be an integer >= 2, got ${seqLen}`);
  const special = { addBos: tokenizer.bosId !== null, addEos: tokenizer.eosId !== null };
  const examples: Example[] = [];
  const stream: number[] = [];
  for (const [i, record] of records.entries()) {
    if ('text' in record) {
      for (const id of tokenizer.encode(record.text, special)) stream.push(id);
      continue;
    }
    const prompt = tokenizer.encode(record.prompt, { addBos: special.addBos });
    const completion = tokenizer.encode(record.completion, { addEos: special.addEos });
    if (prompt.length >= seqLen) {
      fail('ERR_ARG', `tokenizeRecords: record ${i + 1}'s prompt has ${prompt.length} tokens, leaving none of the completion within seqLen ${seqLen}`);
    }
    const inputIds = [...prompt, ...completion].slice(0, seqLen);
    const labels = inputIds.map((id, p) => (p < prompt.length ? IGNORE_INDEX : id));
    examples.push({ inputIds, labels });
  }
  const blocks = Math.max(stream.length >= 2 ? 1 : 0, Math.floor(stream.length / seqLen));
  for (let b = 0; b < blocks; b++) {
    const inputIds = stream.slice(b * seqLen, (b + 1) * seqLen);
    examples.push({ inputIds, labels: inputIds.slice() });
  }
  return examples;
}

/**
 * Splits examples into a training part and a held-out part of `fraction` of them (at least one
 * each when there are two or more), chosen by a seeded shuffle so the split is reproducible.
 */
export function splitExamples(examples: Example[], fraction: number, seed: number): { train: Example[]; heldOut: Example[] } {
  if (!(fraction >= 0 && fraction < 1)) fail('ERR_ARG', `splitExamples: fraction must be in [0, 1), got ${fraction}`);
  const order = shuffled(examples.length, seed);
  let count = Math.round(examples.length * fraction);
  if (fraction > 0 && examples.length >= 2) count = Math.min(Math.max(count, 1), examples.length - 1);
  return { heldOut: order.slice(0, count).map((i) => examples[i]), train: order.slice(count).map((i) => examples[i]) };
}

/**
 * A generator of uniform numbers in [0, 1) fixed by `seed` (mulberry32: small, and the same on
 * every machine and Node version).
 */
export function seededRandom(seed: number): () => number {
  let state = (seed >>> 0) ^ 0x9e3779b9;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The numbers 0..n-1 in an order fixed by `seed` (Fisher-Yates over {@link seededRandom}). */
export function shuffled(n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  const next = seededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** A batch: `inputIds` and `labels`, int64 [batch, length], padded on the right. */
export interface Batch {
  inputIds: Tensor;
  labels: Tensor;
  /** The number of tokens learned: labels other than IGNORE_INDEX past the first position (the loss shifts by one). */
  tokens: number;
}

/**
 * Stacks examples into one batch padded to the longest: padding takes `padId` as input and
 * IGNORE_INDEX as label. Right padding needs no attention mask with a causal model: real tokens
 * never see the padding after them. With `shape`, the batch is padded to `rows` x `length`
 * instead (rows of padding only), which must hold the examples (ERR_ARG).
 */
export function collate(examples: Example[], padId: number, shape?: { rows: number; length: number }): Batch {
  if (examples.length === 0) fail('ERR_ARG', 'collate: no examples');
  const longest = Math.max(...examples.map((e) => e.inputIds.length));
  const rows = shape?.rows ?? examples.length;
  const length = shape?.length ?? longest;
  if (rows < examples.length || length < longest) {
    fail('ERR_ARG', `collate: ${examples.length} examples of up to ${longest} tokens do not fit in ${rows} x ${length}`);
  }
  const ids = new BigInt64Array(rows * length).fill(BigInt(padId));
  const labels = new BigInt64Array(rows * length).fill(BigInt(IGNORE_INDEX));
  let tokens = 0;
  examples.forEach((e, row) => {
    e.inputIds.forEach((id, p) => (ids[row * length + p] = BigInt(id)));
    e.labels.forEach((label, p) => {
      labels[row * length + p] = BigInt(label);
      if (label !== IGNORE_INDEX && p > 0) tokens++;
    });
  });
  return { inputIds: tensor(ids, { shape: [rows, length] }), labels: tensor(labels, { shape: [rows, length] }), tokens };
}

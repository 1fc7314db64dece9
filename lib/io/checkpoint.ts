/**
 * Hugging Face checkpoint folders of safetensors weights: one `model.safetensors`, or shards
 * `model-0000i-of-0000n.safetensors` listed by `model.safetensors.index.json`. Found, checked
 * against a module's parameters (names, dtypes, shapes) before any tensor is read, loaded shard
 * by shard, and saved sharded as transformers shards them.
 * @internal
 */
import * as fs from 'fs';
import * as path from 'path';
import { DType, dtypeSize, isFloat } from '../dtype';
import { fail } from '../errors';
import { tidy } from '../memory';
import { listNames, Module } from '../nn/module';
import { fmtShape, sameShape } from '../ops/check';
import { Tensor } from '../tensor';
import { checkFile, io, isFile, pythonJson, readJson, writeTextAtomic } from './files';
import { readSafetensors, readSafetensorsHeader, SafetensorsEntry, writeSafetensors } from './safetensors';

/** The weights of an unsharded checkpoint. */
export const WEIGHTS_NAME = 'model.safetensors';
/** The index of a sharded checkpoint: `{ metadata: { total_size }, weight_map: { name: shard } }`. */
export const WEIGHTS_INDEX_NAME = 'model.safetensors.index.json';
/** Every file name a save may leave: the single file, shards and the index. */
const WEIGHT_FILE = /^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$/;
/** transformers' default `max_shard_size`. */
export const DEFAULT_MAX_SHARD_SIZE = '5GB';
/** The metadata transformers writes into (and expects in) its safetensors files. */
export const PT_METADATA = { format: 'pt' };

/** Where one tensor of a checkpoint is. */
export interface CheckpointTensor {
  file: string;
  entry: SafetensorsEntry;
}

/**
 * The tensors of the checkpoint in `dir` by name, from the headers of its weight files
 * (`model.safetensors`, else the shards of `model.safetensors.index.json`, each checked to hold
 * what the index says). A missing or malformed file is ERR_IO naming it; nothing is read but
 * the headers.
 */
export function readCheckpointIndex(op: string, dir: string): Map<string, CheckpointTensor> {
  const single = path.join(dir, WEIGHTS_NAME);
  const indexFile = path.join(dir, WEIGHTS_INDEX_NAME);
  const found = new Map<string, CheckpointTensor>();
  const addFile = (file: string) => {
    for (const [name, entry] of readSafetensorsHeader(file).entries) {
      const other = found.get(name);
      if (other !== undefined) fail('ERR_IO', `${op}: tensor '${name}' is in both ${other.file} and ${file}`);
      found.set(name, { file, entry });
    }
  };
  if (isFile(single)) {
    addFile(single);
    return found;
  }
  if (!isFile(indexFile)) {
    const other = ['pytorch_model.bin', 'pytorch_model.bin.index.json'].find((f) => isFile(path.join(dir, f)));
    fail('ERR_IO', `${op}: no ${WEIGHTS_NAME} or ${WEIGHTS_INDEX_NAME} in ${dir}${other ? ` (found ${other}: only safetensors weights are read)` : ''}`);
  }
  const index = readJson(op, indexFile) as { weight_map?: unknown };
  const map = index?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map) || !Object.values(map).every((f) => typeof f === 'string')) {
    fail('ERR_IO', `${op}: ${indexFile} must hold a weight_map of tensor name -> file name`);
  }
  const weightMap = map as Record<string, string>;
  const shards = [...new Set(Object.values(weightMap))].sort();
  for (const shard of shards) {
    if (path.basename(shard) !== shard || shard === '..' || shard === '.') fail('ERR_IO', `${op}: ${indexFile} names ${JSON.stringify(shard)}, which is not a file name in ${dir}`);
    addFile(checkFile(op, path.join(dir, shard), `shard (listed in ${WEIGHTS_INDEX_NAME})`));
  }
  for (const [name, shard] of Object.entries(weightMap)) {
    const at = found.get(name);
    if (at === undefined || path.basename(at.file) !== shard) {
      fail('ERR_IO', `${op}: ${indexFile} puts tensor '${name}' in ${shard}, but ${at === undefined ? 'no shard holds it' : `it is in ${path.basename(at.file)}`}`);
    }
  }
  return found;
}

/**
 * Checks a checkpoint against the tensors a module expects, before anything is read: missing
 * and unexpected names (ERR_IO listing them; `ignored` names may be present), non-float
 * tensors (ERR_IO), shapes (ERR_SHAPE naming each tensor with both shapes).
 */
export function checkCheckpoint(
  op: string,
  dir: string,
  found: Map<string, CheckpointTensor>,
  expected: [string, Tensor][],
  ignored: (name: string) => boolean = () => false,
): void {
  const wanted = new Map(expected);
  const missing = [...wanted.keys()].filter((n) => !found.has(n));
  const unexpected = [...found.keys()].filter((n) => !wanted.has(n) && !ignored(n));
  if (missing.length > 0 || unexpected.length > 0) {
    const parts = [];
    if (missing.length > 0) parts.push(`missing tensors: ${listNames(missing)}`);
    if (unexpected.length > 0) parts.push(`unexpected tensors: ${listNames(unexpected)}`);
    fail('ERR_IO', `${op}: the weights in ${dir} do not match the model (${parts.join('; ')}); nothing was loaded`);
  }
  const notFloat = expected.filter(([n]) => !isFloat(found.get(n)!.entry.dtype)).map(([n]) => `'${n}' (${found.get(n)!.entry.dtype})`);
  if (notFloat.length > 0) fail('ERR_IO', `${op}: weights in ${dir} must be floating-point: ${listNames(notFloat)}; nothing was loaded`);
  const badShapes = expected
    .filter(([n, t]) => !sameShape(found.get(n)!.entry.shape, t.shape))
    .map(([n, t]) => `'${n}' (file ${fmtShape(found.get(n)!.entry.shape)}, the config needs ${fmtShape(t.shape)})`);
  if (badShapes.length > 0) fail('ERR_SHAPE', `${op}: shape mismatch in ${dir} for ${listNames(badShapes, 5)}; nothing was loaded`);
}

/**
 * Copies the checkpoint's tensors named in `names` into the module (through loadStateDict,
 * converted to `dtype`), one weight file at a time so that at most one file's tensors are held
 * besides the module.
 */
export function loadCheckpoint(module: Module, found: Map<string, CheckpointTensor>, names: string[], dtype: DType): void {
  const byFile = new Map<string, string[]>();
  for (const name of names) {
    const { file } = found.get(name)!;
    byFile.set(file, [...(byFile.get(file) ?? []), name]);
  }
  for (const [file, inFile] of byFile) {
    const { tensors } = readSafetensors(file, { names: inFile, dtype });
    try {
      module.loadStateDict(tensors, { strict: false });
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  }
}

const UNITS: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 };

/** A shard size: a number of bytes, or a string such as '5GB' or '500MiB' (as transformers' max_shard_size). */
export function parseShardSize(op: string, size: unknown): number {
  if (typeof size === 'number' && Number.isSafeInteger(size) && size > 0) return size;
  const m = typeof size === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)\s*$/i.exec(size) : null;
  if (m === null || !(Number(m[1]) > 0)) fail('ERR_ARG', `${op}: maxShardSize must be a positive number of bytes or a size such as '5GB', got ${String(size)}`);
  return Math.floor(Number(m[1]) * UNITS[m[2].toUpperCase()]);
}

/**
 * Saves named tensors as `model.safetensors`, or above `maxShardSize` bytes as shards
 * `model-0000i-of-0000n.safetensors` plus `model.safetensors.index.json`, grouped in order as
 * transformers groups them (a new shard when the next tensor would overflow the current one; a
 * tensor larger than the limit alone). Each file is written atomically; weight files of an
 * earlier save that this one does not write are then removed. Returns the files written.
 */
export function saveCheckpoint(op: string, dir: string, tensors: [string, Tensor][], opts: { dtype?: DType; maxShardSize: number }): string[] {
  const size = ([, t]: [string, Tensor]) => t.numel * dtypeSize(opts.dtype ?? t.dtype);
  const shards: [string, Tensor][][] = [];
  let current = Infinity;
  for (const entry of tensors) {
    const bytes = size(entry);
    if (shards.length === 0 || current + bytes > opts.maxShardSize) {
      shards.push([]);
      current = 0;
    }
    shards[shards.length - 1].push(entry);
    current += bytes;
  }
  if (shards.length === 0) shards.push([]);
  const n = shards.length;
  const names = shards.map((_, i) => (n === 1 ? WEIGHTS_NAME : `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`));
  io(op, 'cannot create the folder', dir, () => fs.mkdirSync(dir, { recursive: true }));
  shards.forEach((shard, i) => {
    tidy(() => {
      const converted = shard.map(([name, t]): [string, Tensor] => [name, opts.dtype === undefined ? t : t.to(opts.dtype)]);
      writeSafetensors(path.join(dir, names[i]), new Map(converted), PT_METADATA);
    });
  });
  if (n > 1) {
    const weightMap: Record<string, string> = {};
    shards.forEach((shard, i) => shard.forEach(([name]) => (weightMap[name] = names[i])));
    const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
    const index = { metadata: { total_size: tensors.reduce((s, e) => s + size(e), 0) }, weight_map: sorted };
    writeTextAtomic(op, path.join(dir, WEIGHTS_INDEX_NAME), pythonJson(index));
    names.push(WEIGHTS_INDEX_NAME);
  }
  for (const stale of fs.readdirSync(dir).filter((f) => WEIGHT_FILE.test(f) && !names.includes(f))) {
    io(op, 'cannot remove the stale weight file', stale, () => fs.rmSync(path.join(dir, stale)));
  }
  return names.map((f) => path.join(dir, f));
}

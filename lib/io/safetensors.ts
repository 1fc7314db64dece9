/**
 * The safetensors format (Hugging Face's weight files): an 8-byte little-endian header length N,
 * N bytes of UTF-8 JSON (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 * ..., "__metadata__": {string: string}}`, padded with spaces), then the byte buffer that the
 * offsets index (little-endian, row-major, no holes). Every header is validated in full before
 * any tensor is allocated.
 */
import * as fs from 'fs';
import * as os from 'os';
import { DType, dtypeCode, dtypeSize, isFloat } from '../dtype';
import { fail } from '../errors';
import { core } from '../native';
import { stateDictEntries } from '../nn/module';
import { fmtShape } from '../ops/check';
import { Tensor, wrap } from '../tensor';
import { io, IO_CHUNK, ioError, writeAll, writeFileAtomic } from './files';

/** The safetensors dtype names ignis reads and writes, to ignis dtypes. */
const FILE_DTYPES: Record<string, DType> = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  BOOL: 'bool',
};
const FILE_NAMES = Object.fromEntries(Object.entries(FILE_DTYPES).map(([name, dtype]) => [dtype, name])) as Record<DType, string>;
/**
 * The order of the reference writer: decreasing alignment (its dtype enum, largest first), then
 * name, so that every tensor starts at a multiple of its element size.
 */
const WRITE_RANK: Record<DType, number> = { int64: 6, float64: 5, float32: 4, int32: 3, bfloat16: 2, float16: 1, bool: 0 };
/** The reference implementation's cap on the header. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

/** One tensor's entry in a safetensors header. */
export interface SafetensorsEntry {
  /** The ignis dtype of the file's dtype (`F32` -> float32, `BF16` -> bfloat16, ...). */
  dtype: DType;
  shape: number[];
  /** [begin, end) in bytes, relative to the start of the data buffer. */
  dataOffsets: [number, number];
}

/** What {@link readSafetensorsHeader} returns. */
export interface SafetensorsHeader {
  /** The tensors' entries by name, in the order of their data in the file. */
  entries: Map<string, SafetensorsEntry>;
  /** The `__metadata__` map (empty when the file has none). */
  metadata: Record<string, string>;
  /** Where the data buffer starts in the file: 8 + the header's length. */
  dataStart: number;
}

/** Options of {@link readSafetensors}. */
export interface ReadSafetensorsOptions {
  /** Converts every floating-point tensor to this floating-point dtype (integer and bool tensors keep theirs). */
  dtype?: DType;
  /** Reads only these tensors (each must be in the file), in this order. Default: all, in file order. */
  names?: string[];
}

/** What {@link readSafetensors} returns. */
export interface SafetensorsContent {
  /** The tensors by name (they belong to the caller: dispose them). */
  tensors: Map<string, Tensor>;
  /** The `__metadata__` map (empty when the file has none). */
  metadata: Record<string, string>;
}

function checkLittleEndian(op: string): void {
  if (os.endianness() !== 'LE') fail('ERR_IO', `${op}: safetensors files are little-endian; this machine is big-endian`);
}

function checkPath(op: string, file: unknown): string {
  if (typeof file !== 'string' || file === '') fail('ERR_ARG', `${op}: expected a file path, got ${String(file)}`);
  return file;
}

/** Reads exactly `length` bytes at `position` into `buf` (ERR_IO if the file ends first). */
function readExactly(op: string, file: string, fd: number, buf: Uint8Array, length: number, position: number): void {
  let done = 0;
  while (done < length) {
    const n = io(op, 'cannot read', file, () => fs.readSync(fd, buf, done, Math.min(length - done, IO_CHUNK), position + done));
    if (n === 0) fail('ERR_IO', `${op}: ${file} ended after ${position + done} bytes while reading ${length} bytes at ${position}`);
    done += n;
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** One header entry, checked: known dtype, a shape of sizes, two offsets spanning exactly its bytes. */
function parseEntry(op: string, file: string, name: string, value: unknown): SafetensorsEntry {
  const bad = (what: string): never => fail('ERR_IO', `${op}: ${file}: tensor '${name}' ${what}`);
  if (!isRecord(value)) bad('has no {dtype, shape, data_offsets} entry');
  const { dtype: fileDtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof fileDtype !== 'string') bad(`has no dtype (got ${JSON.stringify(fileDtype)})`);
  const dtype = FILE_DTYPES[fileDtype as string];
  if (dtype === undefined) {
    bad(`has dtype ${String(fileDtype)}, which ignis does not support (supported: ${Object.keys(FILE_DTYPES).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) bad(`has an invalid shape ${JSON.stringify(shape)}: expected an array of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    bad(`has invalid data_offsets ${JSON.stringify(offsets)}: expected two non-negative integers [begin, end]`);
  }
  const dims = shape as number[];
  const [begin, end] = offsets as number[];
  let numel = 1;
  for (const d of dims) {
    numel *= d;
    if (!Number.isSafeInteger(numel)) bad(`has a shape ${fmtShape(dims)} too large to address`);
  }
  const nbytes = numel * dtypeSize(dtype);
  if (end < begin || end - begin !== nbytes) {
    bad(`spans bytes [${begin}, ${end}) but shape ${fmtShape(dims)} of ${String(fileDtype)} needs ${nbytes} bytes`);
  }
  return { dtype, shape: dims, dataOffsets: [begin, end] };
}

/**
 * The checked header of an open file: length bounds, UTF-8 JSON object, each entry, metadata
 * of strings, and offsets that tile the data buffer exactly (no overlap, no hole, nothing past
 * the end, the file neither truncated nor longer).
 */
function parseHeader(op: string, file: string, fd: number): SafetensorsHeader {
  const size = io(op, 'cannot stat', file, () => fs.fstatSync(fd).size);
  if (size < 8) fail('ERR_IO', `${op}: ${file} is ${size} bytes long: too short for a safetensors file (8-byte header length first)`);
  const prefix = Buffer.alloc(8);
  readExactly(op, file, fd, prefix, 8, 0);
  const declared = prefix.readBigUInt64LE(0);
  if (declared === 0n) fail('ERR_IO', `${op}: ${file}: the header length is 0`);
  if (declared > BigInt(MAX_HEADER_BYTES)) fail('ERR_IO', `${op}: ${file}: the header length ${declared} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  const headerLength = Number(declared);
  if (headerLength > size - 8) fail('ERR_IO', `${op}: ${file}: the header length ${headerLength} exceeds the ${size - 8} bytes after the length (truncated file?)`);
  const raw = Buffer.allocUnsafe(headerLength);
  readExactly(op, file, fd, raw, headerLength, 8);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch (err) {
    fail('ERR_IO', `${op}: ${file}: the header is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (!isRecord(parsed)) fail('ERR_IO', `${op}: ${file}: the header must be a JSON object`);

  let metadata: Record<string, string> = {};
  const list: [string, SafetensorsEntry][] = [];
  for (const [name, value] of Object.entries(parsed)) {
    if (name === METADATA_KEY) {
      if (!isRecord(value) || !Object.values(value).every((v) => typeof v === 'string')) {
        fail('ERR_IO', `${op}: ${file}: ${METADATA_KEY} must be an object of strings`);
      }
      metadata = { ...(value as Record<string, string>) };
    } else {
      list.push([name, parseEntry(op, file, name, value)]);
    }
  }
  list.sort(([na, a], [nb, b]) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1] || (na < nb ? -1 : 1));
  const dataLength = size - 8 - headerLength;
  let covered = 0;
  let previous = '';
  for (const [name, { dataOffsets: [begin, end] }] of list) {
    if (end > dataLength) fail('ERR_IO', `${op}: ${file}: tensor '${name}' at bytes [${begin}, ${end}) runs past the end of the data (${dataLength} bytes; truncated file?)`);
    if (begin < covered) fail('ERR_IO', `${op}: ${file}: tensor '${name}' at bytes [${begin}, ${end}) overlaps tensor '${previous}' (which ends at ${covered})`);
    if (begin > covered) fail('ERR_IO', `${op}: ${file}: the data buffer has a hole at bytes [${covered}, ${begin}) before tensor '${name}'`);
    covered = end;
    previous = name;
  }
  if (covered !== dataLength) {
    fail('ERR_IO', `${op}: ${file}: the tensors cover ${covered} bytes of data but the file holds ${dataLength}: ${dataLength - covered} bytes belong to no tensor`);
  }
  return { entries: new Map(list), metadata, dataStart: 8 + headerLength };
}

/** Opens `file`, runs `fn` on it, closes it. */
function withFile<T>(op: string, file: string, fn: (fd: number) => T): T {
  const fd = io(op, 'cannot open', file, () => fs.openSync(file, 'r'));
  try {
    return fn(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads and validates only the header of a safetensors file: each tensor's dtype, shape and
 * offsets, and the metadata. Any malformed header, unsupported dtype or mismatch between the
 * header and the file's size is ERR_IO naming the file (and the tensor).
 */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const op = 'readSafetensorsHeader';
  checkLittleEndian(op);
  const file = checkPath(op, path);
  return withFile(op, file, (fd) => parseHeader(op, file, fd));
}

/**
 * Reads a safetensors file (or the tensors of `opts.names`) into tensors, after validating the
 * whole header (see {@link readSafetensorsHeader}). Each tensor's bytes are read straight into
 * one reused buffer and copied once into native memory, whatever their alignment; bfloat16 and
 * float16 keep their exact bits. `opts.dtype` converts the floating-point tensors.
 */
export function readSafetensors(path: string, opts: ReadSafetensorsOptions = {}): SafetensorsContent {
  const op = 'readSafetensors';
  checkLittleEndian(op);
  const file = checkPath(op, path);
  if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', `${op}: options must be an object`);
  if (opts.dtype !== undefined && (typeof opts.dtype !== 'string' || !isFloat(opts.dtype as DType))) {
    fail('ERR_DTYPE', `${op}: dtype must be a floating-point dtype, got ${String(opts.dtype)}`);
  }
  if (opts.names !== undefined && (!Array.isArray(opts.names) || !opts.names.every((n) => typeof n === 'string'))) {
    fail('ERR_ARG', `${op}: names must be an array of tensor names`);
  }
  return withFile(op, file, (fd) => {
    const { entries, metadata, dataStart } = parseHeader(op, file, fd);
    const names = opts.names ?? [...entries.keys()];
    const missing = names.filter((n) => !entries.has(n));
    if (missing.length > 0) fail('ERR_IO', `${op}: ${file} has no tensor ${missing.map((n) => `'${n}'`).join(', ')}`);
    const wanted = [...new Set(names)];
    const largest = Math.max(0, ...wanted.map((n) => entries.get(n)!.dataOffsets[1] - entries.get(n)!.dataOffsets[0]));
    const scratch = io(op, `cannot allocate ${largest} bytes to read`, file, () => Buffer.allocUnsafeSlow(largest));
    const read = new Map<string, Tensor>();
    try {
      // in file order, so that the reads are sequential
      for (const name of wanted.slice().sort((a, b) => entries.get(a)!.dataOffsets[0] - entries.get(b)!.dataOffsets[0])) {
        const { dtype, shape, dataOffsets: [begin, end] } = entries.get(name)!;
        readExactly(op, file, fd, scratch, end - begin, dataStart + begin);
        const bytes = new Uint8Array(scratch.buffer, scratch.byteOffset, end - begin);
        let t = wrap(core.fromBuffer(bytes, shape, dtypeCode(dtype)), shape, dtype);
        if (opts.dtype !== undefined && isFloat(dtype) && dtype !== opts.dtype) {
          const converted = t.to(opts.dtype);
          t.dispose();
          t = converted;
        }
        read.set(name, t);
      }
    } catch (err) {
      for (const t of read.values()) t.dispose();
      ioError(op, 'cannot read', file, err);
    }
    return { tensors: new Map(wanted.map((n) => [n, read.get(n)!])), metadata };
  });
}

/** The header's JSON text, keys in the given order (JSON.stringify of an object would move integer-like names first). */
function headerJson(metadata: Record<string, string> | undefined, entries: [string, object][]): string {
  const parts: string[] = [];
  if (metadata !== undefined) {
    const fields = Object.keys(metadata).sort().map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`);
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${fields.join(',')}}`);
  }
  for (const [name, info] of entries) parts.push(`${JSON.stringify(name)}:${JSON.stringify(info)}`);
  return `{${parts.join(',')}}`;
}

/**
 * Writes tensors (a Map or an object of name -> Tensor, any dtype and strides) to a
 * safetensors file, as the reference implementation lays it out: tensors ordered by decreasing
 * alignment then name (so each starts at a multiple of its element size), compact JSON with
 * `__metadata__` first (keys sorted), the header padded with spaces to a multiple of 8, each
 * tensor's elements row-major. The write is atomic: a temporary file in the same folder, synced
 * and renamed; on any error it is removed and no partial file remains. `metadata` values must
 * be strings (ERR_ARG); names must not be `__metadata__`.
 */
export function writeSafetensors(path: string, tensors: Map<string, Tensor> | Record<string, Tensor>, metadata?: Record<string, string>): void {
  const op = 'writeSafetensors';
  checkLittleEndian(op);
  const file = checkPath(op, path);
  const given = stateDictEntries(tensors, op);
  if (metadata !== undefined) {
    if (!isRecord(metadata)) fail('ERR_ARG', `${op}: metadata must be an object of strings`);
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') fail('ERR_ARG', `${op}: metadata values must be strings; '${k}' is ${v === null ? 'null' : typeof v}`);
    }
  }
  const list = [...given].map(([name, t]) => {
    if (name === METADATA_KEY) fail('ERR_ARG', `${op}: '${METADATA_KEY}' is reserved and cannot name a tensor`);
    t.handle(op);
    return { name, t };
  });
  list.sort((a, b) => WRITE_RANK[b.t.dtype] - WRITE_RANK[a.t.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let offset = 0;
  const infos: [string, object][] = list.map(({ name, t }) => {
    const nbytes = t.numel * dtypeSize(t.dtype);
    const info = { dtype: FILE_NAMES[t.dtype], shape: t.shape.slice(), data_offsets: [offset, offset + nbytes] };
    offset += nbytes;
    return [name, info];
  });
  const json = Buffer.from(headerJson(metadata, infos), 'utf8');
  const header = Buffer.alloc(8 + Math.ceil(json.length / 8) * 8, ' ');
  header.writeBigUInt64LE(BigInt(header.length - 8), 0);
  json.copy(header, 8);
  writeFileAtomic(op, file, (fd) => {
    writeAll(fd, header);
    for (const { t } of list) writeAll(fd, new Uint8Array(core.toBuffer(t.handle(op))));
  });
}

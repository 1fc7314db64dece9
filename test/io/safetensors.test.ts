/**
 * safetensors: round trips of every dtype and layout, byte-exact output of the reference
 * layout, files built by hand from the specification, every malformed header refused before
 * anything is allocated, atomic writes, and files exchanged with PyTorch when it is installed.
 */
import test, { ExecutionContext } from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as ig from '../../lib';
import { DType, Tensor, io } from '../../lib';
import { Rng, assertCode, numel, randomShape, randomTensor, tempDir } from '../helpers';

/** A file laid out by the specification: u64 LE header length, the header text, the data. */
function specFile(header: string, data: Buffer = Buffer.alloc(0)): Buffer {
  const text = Buffer.from(header, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([length, text, data]);
}

/** Little-endian bytes of float32 values. */
function f32Bytes(values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeFloatLE(v, 4 * i));
  return b;
}

/** The stored elements' bytes (row-major), whatever the dtype. */
function bytesOf(x: Tensor): Buffer {
  const d = x.data();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

/** A tensor of `dtype` with random values; 16-bit floats from random bit patterns (NaNs, infinities and subnormals included). */
function randomOf(rng: Rng, shape: number[], dtype: DType): Tensor {
  const n = numel(shape);
  switch (dtype) {
    case 'bfloat16':
    case 'float16':
      return ig.tensor(Uint16Array.from({ length: n }, () => rng.int(0, 0xffff)), { shape, dtype });
    case 'int32':
      return ig.tensor(Int32Array.from({ length: n }, () => rng.int(-(2 ** 31), 2 ** 31 - 1)), { shape });
    case 'int64':
      return ig.tensor(BigInt64Array.from({ length: n }, () => BigInt(rng.int(-(2 ** 40), 2 ** 40)) * 4099n), { shape });
    case 'bool':
      return ig.tensor(Uint8Array.from({ length: n }, () => rng.int(0, 1)), { shape, dtype });
    default:
      return randomTensor(rng, shape, dtype).t;
  }
}

const ALL_DTYPES: DType[] = ['float64', 'float32', 'float16', 'bfloat16', 'int64', 'int32', 'bool'];
const SIZES: Record<DType, number> = { float64: 8, float32: 4, float16: 2, bfloat16: 2, int64: 8, int32: 4, bool: 1 };

test('round trip of every dtype, 0-d and empty tensors, bits kept exactly', (t) => {
  const dir = tempDir(t);
  const rng = new Rng(1);
  const tensors = new Map<string, Tensor>();
  for (const dtype of ALL_DTYPES) {
    tensors.set(`${dtype}.random`, randomOf(rng, randomShape(rng, 4, 5, 1), dtype));
    tensors.set(`${dtype}.scalar`, randomOf(rng, [], dtype));
    tensors.set(`${dtype}.empty`, randomOf(rng, [2, 0, 3], dtype));
  }
  const file = path.join(dir, 'all.safetensors');
  io.writeSafetensors(file, tensors, { format: 'pt', note: 'ünïcode' });
  const before = ig.memory().tensors;
  const { tensors: back, metadata } = io.readSafetensors(file);
  t.deepEqual(metadata, { format: 'pt', note: 'ünïcode' });
  t.is(ig.memory().tensors, before + tensors.size);
  t.deepEqual([...back.keys()].sort(), [...tensors.keys()].sort());
  for (const [name, x] of tensors) {
    const y = back.get(name)!;
    t.is(y.dtype, x.dtype, name);
    t.deepEqual(y.shape, x.shape, name);
    t.true(bytesOf(y).equals(bytesOf(x)), `${name}: the same bytes`);
  }
  // the header alone
  const header = io.readSafetensorsHeader(file);
  t.like(header.entries.get('float16.empty'), { dtype: 'float16', shape: [2, 0, 3] });
  t.is(header.dataStart % 8, 0, 'the header is padded to a multiple of 8');
  for (const { dtype, dataOffsets } of header.entries.values()) {
    t.is((header.dataStart + dataOffsets[0]) % SIZES[dtype], 0, 'each tensor is aligned to its element size');
  }
  for (const x of [...tensors.values(), ...back.values()]) x.dispose();
});

test('strided, transposed and broadcast inputs are written row-major', (t) => {
  const dir = tempDir(t);
  const rng = new Rng(2);
  for (const layout of ['transposed', 'strided', 'broadcast'] as const) {
    for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
      const { t: x } = randomTensor(rng, [3, 4, 5], dtype, layout);
      t.false(x.isContiguous());
      const file = path.join(dir, `${layout}-${dtype}.safetensors`);
      io.writeSafetensors(file, { x });
      const { tensors } = io.readSafetensors(file);
      const y = tensors.get('x')!;
      const expected = x.contiguous();
      t.true(bytesOf(y).equals(bytesOf(expected)), `${layout} ${dtype}`);
      for (const z of [x, y, expected]) z.dispose();
    }
  }
});

test('the writer lays files out as the reference implementation does', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'a.safetensors');
  const values = [0, 1, 2, 3, 4, 5];
  // a header of 64 bytes needs no padding
  ig.tidy(() => io.writeSafetensors(file, { 'attn.0': ig.tensor(values).reshape(1, 2, 3) }));
  t.true(fs.readFileSync(file).equals(specFile('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}', f32Bytes(values))));
  // a header of 65 bytes is padded with 7 spaces
  ig.tidy(() => io.writeSafetensors(file, { attn0: ig.tensor(values).reshape(1, 1, 2, 3) }));
  t.true(fs.readFileSync(file).equals(specFile(`{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}${' '.repeat(7)}`, f32Bytes(values))));
  // no tensors; metadata first
  io.writeSafetensors(file, {});
  t.true(fs.readFileSync(file).equals(specFile(`{}${' '.repeat(6)}`)));
  io.writeSafetensors(file, new Map(), { framework: 'pt' });
  t.true(fs.readFileSync(file).equals(specFile(`{"__metadata__":{"framework":"pt"}}${' '.repeat(5)}`)));
  // order: decreasing alignment, then name; integer-like names stay in that order
  ig.tidy(() =>
    io.writeSafetensors(file, {
      b: ig.tensor([true], { dtype: 'bool' }),
      '10': ig.tensor([1], { dtype: 'float16' }),
      '2': ig.tensor([1], { dtype: 'float16' }),
      a: ig.tensor([1], { dtype: 'int32' }),
      z: ig.tensor([1], { dtype: 'float64' }),
      y: ig.tensor([1], { dtype: 'int64' }),
    }),
  );
  const raw = fs.readFileSync(file);
  const header = raw.subarray(8, 8 + Number(raw.readBigUInt64LE(0))).toString('utf8').trimEnd();
  t.deepEqual([...header.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]), ['y', 'z', 'a', '10', '2', 'b']);
});

test('a file written by hand from the specification is read, unaligned data included', (t) => {
  const dir = tempDir(t);
  // keys in any order, a 3-byte bool first so the float32 data starts at an odd offset, padding spaces
  const header = JSON.stringify({
    w: { dtype: 'F32', shape: [2, 2], data_offsets: [3, 19] },
    __metadata__: { format: 'pt' },
    mask: { dtype: 'BOOL', shape: [3], data_offsets: [0, 3] },
    h: { dtype: 'BF16', shape: [2], data_offsets: [19, 23] },
    ids: { dtype: 'I64', shape: [1], data_offsets: [23, 31] },
    none: { dtype: 'F16', shape: [0, 4], data_offsets: [31, 31] },
    s: { dtype: 'F64', shape: [], data_offsets: [31, 39] },
  });
  const bf16 = Buffer.alloc(4);
  bf16.writeUInt16LE(0x3fc0, 0); // 1.5
  bf16.writeUInt16LE(0xc0a0, 2); // -5
  const i64 = Buffer.alloc(8);
  i64.writeBigInt64LE(-(2n ** 40n) - 7n);
  const f64 = Buffer.alloc(8);
  f64.writeDoubleLE(Math.PI);
  const data = Buffer.concat([Buffer.from([1, 0, 1]), f32Bytes([1.25, -2, 3e-3, 4e10]), bf16, i64, f64]);
  const file = path.join(dir, 'hand.safetensors');
  fs.writeFileSync(file, specFile(`${header}   `, data));
  const { tensors, metadata } = io.readSafetensors(file);
  t.deepEqual(metadata, { format: 'pt' });
  t.deepEqual([...tensors.keys()], ['mask', 'w', 'h', 'ids', 'none', 's'], 'in the order of the data');
  t.deepEqual(tensors.get('mask')!.toArray(), [true, false, true]);
  t.deepEqual(tensors.get('w')!.toArray(), [[1.25, -2], [Math.fround(3e-3), 4e10]]);
  t.deepEqual(Array.from(tensors.get('h')!.data() as Uint16Array), [0x3fc0, 0xc0a0]);
  t.deepEqual(tensors.get('h')!.toArray(), [1.5, -5]);
  t.deepEqual(Array.from(tensors.get('ids')!.data() as BigInt64Array), [-(2n ** 40n) - 7n]);
  t.deepEqual(tensors.get('none')!.shape, [0, 4]);
  t.is(tensors.get('s')!.item(), Math.PI);
  for (const x of tensors.values()) x.dispose();

  // names: a subset, in the order asked; dtype: floats converted, ints and bools kept
  const some = io.readSafetensors(file, { names: ['ids', 'w', 'mask'], dtype: 'float64' }).tensors;
  t.deepEqual([...some.keys()], ['ids', 'w', 'mask']);
  t.deepEqual([...some.values()].map((x) => x.dtype), ['int64', 'float64', 'bool']);
  t.deepEqual(some.get('w')!.toArray(), [[1.25, -2], [Math.fround(3e-3), 4e10]]);
  for (const x of some.values()) x.dispose();
  assertCode(t, () => io.readSafetensors(file, { names: ['w', 'nope'] }), 'ERR_IO', /hand\.safetensors has no tensor 'nope'/);
  assertCode(t, () => io.readSafetensors(file, { dtype: 'int32' }), 'ERR_DTYPE');
  assertCode(t, () => io.readSafetensors(file, { names: 'w' as unknown as string[] }), 'ERR_ARG');
});

test('every malformed file is ERR_IO naming the file and the tensor, before any tensor is made', (t) => {
  const dir = tempDir(t);
  const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
  const good = { a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [8, 16]) };
  const data16 = f32Bytes([1, 2, 3, 4]);
  const cases: [string, Buffer, RegExp][] = [
    ['shorter than 8 bytes', Buffer.from([1, 0, 0]), /too short/],
    ['header length 0', specFile(''), /header length is 0/],
    ['header longer than the file', (() => { const b = specFile(JSON.stringify(good), data16); b.writeBigUInt64LE(10_000n); return b; })(), /header length 10000 exceeds/],
    ['header over the cap', (() => { const b = specFile('{}'); b.writeBigUInt64LE(2n ** 62n); return b; })(), /exceeds the limit/],
    ['invalid UTF-8', specFile('{"a":1}').fill(0xff, 10, 11), /not valid UTF-8 JSON/],
    ['bad JSON', specFile('{"a": {"dtype": "F32",'), /not valid UTF-8 JSON/],
    ['not an object', specFile('[1, 2]'), /must be a JSON object/],
    ['unknown dtype', specFile(JSON.stringify({ a: entry('I8', [4], [0, 4]) }), Buffer.alloc(4)), /tensor 'a' has dtype I8, which ignis does not support/],
    ['float8 dtype', specFile(JSON.stringify({ q: entry('F8_E4M3', [4], [0, 4]) }), Buffer.alloc(4)), /tensor 'q' has dtype F8_E4M3/],
    ['no dtype', specFile(JSON.stringify({ a: { shape: [1], data_offsets: [0, 4] } }), Buffer.alloc(4)), /tensor 'a' has no dtype/],
    ['negative size', specFile(JSON.stringify({ a: entry('F32', [-1, 2], [0, 8]) }), Buffer.alloc(8)), /tensor 'a' has an invalid shape/],
    ['fractional size', specFile(JSON.stringify({ a: entry('F32', [1.5], [0, 6]) }), Buffer.alloc(6)), /tensor 'a' has an invalid shape/],
    ['one offset', specFile(JSON.stringify({ a: entry('F32', [2], [8]) }), Buffer.alloc(8)), /tensor 'a' has invalid data_offsets/],
    ['offsets as strings', specFile(JSON.stringify({ a: entry('F32', [2], ['0', '8']) }), Buffer.alloc(8)), /tensor 'a' has invalid data_offsets/],
    ['wrong byte count', specFile(JSON.stringify({ a: entry('F32', [3], [0, 8]) }), Buffer.alloc(8)), /tensor 'a' spans bytes \[0, 8\) but shape \[3\] of F32 needs 12 bytes/],
    ['end before begin', specFile(JSON.stringify({ a: entry('F32', [0], [8, 0]) }), Buffer.alloc(8)), /tensor 'a' spans bytes \[8, 0\)/],
    ['overlapping tensors', specFile(JSON.stringify({ a: entry('F32', [3], [0, 12]), b: entry('F32', [2], [8, 16]) }), data16), /tensor 'b' at bytes \[8, 16\) overlaps tensor 'a'/],
    ['offsets past the data', specFile(JSON.stringify({ a: entry('F32', [2], [0, 8]), b: entry('F32', [4], [8, 24]) }), data16), /tensor 'b' at bytes \[8, 24\) runs past the end/],
    ['a hole in the data', specFile(JSON.stringify({ a: entry('F32', [1], [0, 4]), b: entry('F32', [2], [8, 16]) }), data16), /hole at bytes \[4, 8\) before tensor 'b'/],
    ['bytes after the last tensor', specFile(JSON.stringify(good), Buffer.concat([data16, Buffer.alloc(4)])), /4 bytes belong to no tensor/],
    ['truncated data', specFile(JSON.stringify(good), data16.subarray(0, 12)), /tensor 'b' at bytes \[8, 16\) runs past the end/],
    ['metadata not strings', specFile(JSON.stringify({ __metadata__: { n: 1 }, ...good }), data16), /__metadata__ must be an object of strings/],
  ];
  for (const [what, bytes, message] of cases) {
    const file = path.join(dir, `${what.replace(/ /g, '-')}.safetensors`);
    fs.writeFileSync(file, bytes);
    const before = ig.memory();
    for (const read of [() => io.readSafetensors(file), () => io.readSafetensorsHeader(file)]) {
      const err = t.throws(read, { instanceOf: ig.IgnisError }, what) as ig.IgnisError;
      t.is(err?.code, 'ERR_IO', `${what}: ${err?.message}`);
      t.regex(err?.message ?? '', message, what);
      t.true(err?.message.includes(file), `${what}: the message names the file`);
    }
    t.deepEqual(ig.memory(), before, `${what}: nothing allocated`);
  }
  // the good layout is accepted, so each case fails for its own reason
  const file = path.join(dir, 'good.safetensors');
  fs.writeFileSync(file, specFile(JSON.stringify(good), data16));
  const { tensors } = io.readSafetensors(file);
  t.deepEqual(tensors.get('b')!.toArray(), [3, 4]);
  for (const x of tensors.values()) x.dispose();
  assertCode(t, () => io.readSafetensors(path.join(dir, 'missing.safetensors')), 'ERR_IO', /cannot open .*missing\.safetensors/);
  assertCode(t, () => io.readSafetensors(dir), 'ERR_IO');
});

test('bad arguments to writeSafetensors are refused before anything is written', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'bad.safetensors');
  const x = ig.tensor([1, 2]);
  assertCode(t, () => io.writeSafetensors(file, { x }, { step: 3 as unknown as string }), 'ERR_ARG', /'step' is number/);
  assertCode(t, () => io.writeSafetensors(file, { x }, 'pt' as unknown as Record<string, string>), 'ERR_ARG');
  assertCode(t, () => io.writeSafetensors(file, { __metadata__: x }), 'ERR_ARG', /reserved/);
  assertCode(t, () => io.writeSafetensors(file, { x: [1, 2] as unknown as Tensor }), 'ERR_ARG');
  const gone = ig.tensor([3]);
  gone.dispose();
  assertCode(t, () => io.writeSafetensors(file, { x, gone }), 'ERR_DISPOSED');
  assertCode(t, () => io.writeSafetensors(path.join(dir, 'no', 'such', 'folder.safetensors'), { x }), 'ERR_IO', /folder\.safetensors/);
  t.deepEqual(fs.readdirSync(dir), [], 'no file, no temporary file');
  x.dispose();
});

test('an interrupted write leaves no partial file and keeps the previous one', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'w.safetensors');
  const small = ig.tensor([1, 2, 3]);
  io.writeSafetensors(file, { small });
  const previous = fs.readFileSync(file);
  const big = ig.zeros([1000, 100]);
  // the disk fails after the header is written (patched on the module object that every importer reads)
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nodeFs = require('fs') as { writeSync: unknown };
  const writeSync = fs.writeSync;
  let calls = 0;
  nodeFs.writeSync = (...args: unknown[]) => {
    if (++calls > 1) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return (writeSync as (...a: unknown[]) => number)(...args);
  };
  try {
    assertCode(t, () => io.writeSafetensors(file, { small, big }), 'ERR_IO', /cannot write .*w\.safetensors: ENOSPC/);
  } finally {
    nodeFs.writeSync = writeSync;
  }
  t.true(calls > 1, 'the failure happened during the write');
  t.deepEqual(fs.readdirSync(dir), ['w.safetensors'], 'no temporary file left');
  t.true(fs.readFileSync(file).equals(previous), 'the previous file is intact');
  // and a fresh path stays absent
  const fresh = path.join(dir, 'fresh.safetensors');
  nodeFs.writeSync = () => {
    throw new Error('EIO: i/o error, write');
  };
  try {
    assertCode(t, () => io.writeSafetensors(fresh, { small }), 'ERR_IO');
  } finally {
    nodeFs.writeSync = writeSync;
  }
  t.deepEqual(fs.readdirSync(dir), ['w.safetensors']);
  small.dispose();
  big.dispose();
});

// ---------------------------------------------------------------------------------------------
// Files exchanged with Python

const PYTHON = process.env.IGNIS_BENCH_TORCH_PYTHON || '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
const hasSafetensors = spawnSync(PYTHON, ['-c', 'import safetensors.torch'], { encoding: 'utf8' }).status === 0;

/**
 * Python side: with the safetensors package when installed, otherwise the specification read
 * and written with torch's own bytes (torch.frombuffer, Tensor.view). Each tensor is reported as
 * its dtype, shape and the bit patterns of its elements as signed integers (decimal strings).
 */
const PY_PEER = `
import json, struct, sys, torch
DT = {'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16, 'I64': torch.int64, 'I32': torch.int32, 'BOOL': torch.bool}
BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16}
try:
    from safetensors.torch import load_file, save_file
except ImportError:
    def load_file(path):
        raw = open(path, 'rb').read()
        n = struct.unpack('<Q', raw[:8])[0]
        header = json.loads(raw[8:8 + n].decode('utf-8'))
        header.pop('__metadata__', None)
        out = {}
        for name, e in header.items():
            b, end = e['data_offsets']
            dt = DT[e['dtype']]
            chunk = bytearray(raw[8 + n + b:8 + n + end])
            t = torch.frombuffer(chunk, dtype=dt) if end > b else torch.empty(0, dtype=dt)
            out[name] = t.reshape(e['shape'])
        return out
    def save_file(tensors, path, metadata=None):
        names = {v: k for k, v in DT.items()}
        header, blobs, offset = {}, [], 0
        if metadata: header['__metadata__'] = metadata
        for name in sorted(tensors):
            t = tensors[name].contiguous()
            data = (t.to(torch.uint8) if t.dtype == torch.bool else t.view(BITS.get(t.dtype, t.dtype))).numpy().tobytes()
            header[name] = {'dtype': names[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(data)]}
            blobs.append(data)
            offset += len(data)
        text = json.dumps(header, separators=(',', ':')).encode('utf-8')
        text += b' ' * (-len(text) % 8)
        with open(path, 'wb') as f:
            f.write(struct.pack('<Q', len(text)) + text + b''.join(blobs))
def describe(tensors):
    out = {}
    for name, t in tensors.items():
        bits = t.to(torch.uint8) if t.dtype == torch.bool else t.view(BITS.get(t.dtype, t.dtype))
        out[name] = {'dtype': str(t.dtype).replace('torch.', ''), 'shape': list(t.shape), 'bits': [str(v) for v in bits.flatten().tolist()]}
    return out
mode, path = sys.argv[1], sys.argv[2]
if mode == 'read':
    json.dump(describe(load_file(path)), sys.stdout)
else:
    g = torch.Generator().manual_seed(0)
    t = {
        'f64': torch.randn(3, 4, generator=g, dtype=torch.float64),
        'f32': torch.randn(2, 3, 5, generator=g),
        'f16': torch.randn(7, generator=g).to(torch.float16),
        'bf16': torch.randn(4, 3, generator=g).to(torch.bfloat16),
        'i64': torch.randint(-2**40, 2**40, (5,), generator=g),
        'i32': torch.randint(-2**31, 2**31 - 1, (2, 2), generator=g, dtype=torch.int32),
        'mask': torch.rand(6, generator=g) > 0.5,
        'scalar': torch.tensor(2.5, dtype=torch.bfloat16),
        'empty': torch.zeros(0, 3),
    }
    save_file(t, path, {'format': 'pt'})
    json.dump(describe(t), sys.stdout)
`;

interface Described {
  dtype: string;
  shape: number[];
  bits: string[];
}

/** The bit patterns of a tensor's elements as signed integers, as the Python side reports them. */
function bitsOf(x: Tensor): string[] {
  const d = x.data();
  const view = { 8: BigInt64Array, 4: Int32Array, 2: Int16Array, 1: Uint8Array }[d.BYTES_PER_ELEMENT as 1 | 2 | 4 | 8];
  return Array.from(new view(d.buffer as ArrayBuffer, d.byteOffset, d.length) as ArrayLike<number | bigint>, (v) => String(v));
}

function runPython(t: ExecutionContext, mode: string, file: string): Record<string, Described> {
  const res = spawnSync(PYTHON, ['-c', PY_PEER, mode, file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  t.is(res.status, 0, res.stderr);
  return JSON.parse(res.stdout) as Record<string, Described>;
}

const pythonTitle = !hasTorch
  ? `files exchanged with Python (skipped: ${PYTHON} cannot import torch)`
  : `files exchanged with Python (${hasSafetensors ? 'the safetensors package' : 'torch reading and writing the specification: no safetensors package'})`;
(hasTorch ? test : test.skip)(pythonTitle, (t) => {
  const dir = tempDir(t);
  const rng = new Rng(3);
  // ignis -> Python
  const ours = new Map<string, Tensor>();
  for (const dtype of ALL_DTYPES) {
    ours.set(dtype, randomOf(rng, [3, 5], dtype));
    ours.set(`${dtype}.scalar`, randomOf(rng, [], dtype));
  }
  ours.set('empty', ig.zeros([0, 2]));
  ours.set('transposed', randomTensor(rng, [4, 6], 'bfloat16', 'transposed').t);
  const file = path.join(dir, 'ours.safetensors');
  io.writeSafetensors(file, ours, { format: 'pt' });
  const seen = runPython(t, 'read', file);
  t.deepEqual(Object.keys(seen).sort(), [...ours.keys()].sort());
  for (const [name, x] of ours) {
    t.is(seen[name].dtype, x.dtype, name);
    t.deepEqual(seen[name].shape, x.shape, name);
    t.deepEqual(seen[name].bits, bitsOf(x), name);
    x.dispose();
  }
  // Python -> ignis
  const theirsFile = path.join(dir, 'theirs.safetensors');
  const theirs = runPython(t, 'write', theirsFile);
  const { tensors, metadata } = io.readSafetensors(theirsFile);
  t.deepEqual(metadata, { format: 'pt' });
  t.deepEqual([...tensors.keys()].sort(), Object.keys(theirs).sort());
  for (const [name, x] of tensors) {
    t.is(x.dtype as string, theirs[name].dtype, name);
    t.deepEqual(x.shape, theirs[name].shape, name);
    t.deepEqual(bitsOf(x), theirs[name].bits, name);
    x.dispose();
  }
});

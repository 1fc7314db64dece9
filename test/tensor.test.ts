import test from 'ava';
import { spawnSync } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import * as ig from '../lib';
import { DType, Tensor } from '../lib';
import { Rng, UNAVAILABLE_DEVICE, assertCode, numel, randomShape } from './helpers';

const DTYPES: DType[] = ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'int64', 'bool'];
const LIB = path.join(__dirname, '..', 'lib');

// ---------------------------------------------------------------------------------------------
// Reference rounding, written from the IEEE 754 definitions (not from the native code).

/**
 * x rounded to a binary format with `precision` significand bits, smallest normal exponent
 * `emin` and largest finite value `max`: nearest, ties to even; below 2^emin the spacing stays
 * 2^(emin - precision + 1) (subnormals); beyond `max` the result is infinite.
 */
function roundBinary(x: number, precision: number, emin: number, max: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  const spacing = 2 ** (Math.max(e, emin) - precision + 1);
  const q = a / spacing; // exact: a power-of-two scaling
  let r = Math.floor(q);
  const rest = q - r;
  if (rest > 0.5 || (rest === 0.5 && r % 2 === 1)) r++;
  const v = r * spacing;
  return Math.sign(x) * (v > max ? Infinity : v);
}
const toFloat32 = (x: number) => roundBinary(x, 24, -126, 3.4028234663852886e38);
// 16-bit floats are converted from float32, as PyTorch does (a float64 is rounded twice)
const toBFloat16 = (x: number) => roundBinary(toFloat32(x), 8, -126, 3.3895313892515355e38);
const toFloat16 = (x: number) => roundBinary(toFloat32(x), 11, -14, 65504);

/** The 16-bit pattern of a value exact in bfloat16 / float16. */
function halfBits(v: number, dtype: 'bfloat16' | 'float16'): number {
  if (dtype === 'bfloat16') {
    const f = new Float32Array([v]);
    return new Uint32Array(f.buffer)[0] >>> 16;
  }
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (Number.isNaN(v)) return 0x7e00;
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | (a / 2 ** -24);
  const e = Math.floor(Math.log2(a));
  return sign | ((e + 15) << 10) | (a / 2 ** e - 1) * 1024;
}

/** Decodes 16-bit patterns. */
function fromHalfBits(bits: number, dtype: 'bfloat16' | 'float16'): number {
  if (dtype === 'bfloat16') return new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** -24;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** An int64 rounded to `precision` significand bits, nearest even (what a single int -> float conversion does). */
function roundBigInt(v: bigint, precision: number): number {
  const neg = v < 0n;
  let a = neg ? -v : v;
  const bits = a.toString(2).length;
  if (bits > precision) {
    const shift = BigInt(bits - precision);
    const kept = a >> shift;
    const rest = a - (kept << shift);
    const half = 1n << (shift - 1n);
    let r = kept;
    if (rest > half || (rest === half && (kept & 1n) === 1n)) r++;
    a = r << shift;
  }
  return neg ? -Number(a) : Number(a);
}

/** Every element as it is stored, decoded in TS: numbers, bigints for int64, booleans for bool. */
function stored(t: Tensor): (number | bigint | boolean)[] {
  const data = t.data();
  if (t.dtype === 'bfloat16' || t.dtype === 'float16') {
    const dtype = t.dtype;
    return Array.from(data as Uint16Array, (b) => fromHalfBits(b, dtype));
  }
  if (t.dtype === 'bool') return Array.from(data as Uint8Array, (b) => b !== 0);
  return Array.from(data as ArrayLike<number | bigint>);
}

/** The reference conversion of one stored value to `to`, or undefined where C++ leaves it undefined. */
function convert(v: number | bigint | boolean, to: DType): number | bigint | boolean | undefined {
  if (typeof v === 'boolean') v = v ? 1 : 0;
  if (to === 'bool') return typeof v === 'bigint' ? v !== 0n : v !== 0;
  if (typeof v === 'bigint') {
    if (to === 'int64') return v;
    if (to === 'int32') return Number(BigInt.asIntN(32, v));
    if (to === 'float64') return roundBigInt(v, 53);
    const f = roundBigInt(v, 24);
    return to === 'float32' ? f : to === 'bfloat16' ? toBFloat16(f) : toFloat16(f);
  }
  switch (to) {
    case 'float64': return v;
    case 'float32': return toFloat32(v);
    case 'bfloat16': return toBFloat16(v);
    case 'float16': return toFloat16(v);
    case 'int32': return Number.isFinite(v) && Math.abs(v) < 2 ** 31 ? Math.trunc(v) + 0 : undefined;
    case 'int64': return Number.isFinite(v) && Math.abs(v) < 2 ** 63 ? BigInt(Math.trunc(v)) : undefined;
  }
}

function sameValue(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
  return a === b;
}

// Values that test every rounding rule: ties, subnormals, overflow, NaN, signed zero.
const FLOAT_CASES = [
  0, -0, 1, -1, 0.5, 1 / 3, -2 / 3, NaN, Infinity, -Infinity, 65504, 65519, 65520, 65536, 1e5, -1e5,
  1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -30, 1 + 2 ** -11 + 2 ** -40,
  2 ** -14, 2 ** -15 * 1.5, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0001, 3 * 2 ** -26, 1.5 * 2 ** -24, 6e-8, -6e-8, 1e-40, -1e-45, 1e-46,
  2 ** -126, 2 ** -133, 2 ** -134, 3.4e38, 3.39e38, 3.3895e38, 3.4028235e38, 1e39, -1e39, 1e300, -1e300,
  2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 24 + 1, 2 ** 53 + 2, 2 ** 62, -(2 ** 62) - 2 ** 40, 255.5, 256.5, 257, 2049, 123456.789,
];

function floatSamples(rng: Rng): number[] {
  const out = FLOAT_CASES.slice();
  for (let i = 0; i < 300; i++) out.push((rng.next() < 0.5 ? -1 : 1) * 10 ** rng.uniform(-42, 40));
  for (let i = 0; i < 200; i++) out.push(rng.uniform(-70000, 70000));
  return out;
}

const INT_CASES = [0, 1, -1, 7, -7, 2 ** 31 - 1, -(2 ** 31), 2 ** 24 + 1, 2 ** 24 + 3, 257, 255, 2049, 65519, 65520, 70000, 1e9, -123456789];
const INT64_CASES = [2n ** 53n + 1n, -(2n ** 62n) + 12345n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 31n, 2n ** 32n + 5n, -(2n ** 40n) - 1n, 2n ** 60n + 2n ** 36n + 1n];

/** A source tensor of `dtype` with many interesting values. */
function sourceTensor(dtype: DType, rng: Rng): Tensor {
  if (dtype === 'bool') return ig.tensor(Uint8Array.from([1, 0, 1, 1, 0]), { dtype: 'bool' });
  if (dtype === 'int32' || dtype === 'int64') {
    const ints = [...INT_CASES, ...Array.from({ length: 200 }, () => rng.int(-(2 ** 31), 2 ** 31 - 1))];
    if (dtype === 'int32') return ig.tensor(Int32Array.from(ints));
    return ig.tensor(BigInt64Array.from([...ints.map(BigInt), ...INT64_CASES]));
  }
  const wide = ig.tensor(Float64Array.from(floatSamples(rng)));
  const t = wide.to(dtype);
  wide.dispose();
  return t;
}

test('to(dtype): every pair of the 7 dtypes against reference rounding', (t) => {
  // the reference agrees with the platform where one exists
  const rng0 = new Rng(1);
  for (const x of floatSamples(rng0)) t.true(sameValue(toFloat32(x), Math.fround(x)), `toFloat32(${x})`);
  for (const v of [...INT64_CASES, 2n ** 53n + 3n]) t.is(roundBigInt(v, 53), Number(v));

  const rng = new Rng(2);
  for (const from of DTYPES) {
    const src = sourceTensor(from, rng);
    const values = stored(src);
    for (const to of DTYPES) {
      const out = src.to(to);
      t.is(out.dtype, to);
      t.deepEqual(out.shape, src.shape);
      const got = stored(out);
      let checked = 0;
      for (let i = 0; i < values.length; i++) {
        const expected = convert(values[i], to);
        if (expected === undefined) continue; // NaN / infinite / out-of-range float -> int: undefined in C++ and PyTorch
        checked++;
        if (!sameValue(got[i], expected)) {
          t.fail(`${from} -> ${to}: ${String(values[i])} gave ${String(got[i])}, expected ${String(expected)}`);
          break;
        }
      }
      t.true(checked > 0);
      out.dispose();
    }
    src.dispose();
  }
});

test('bfloat16 / float16 data() returns the raw 16-bit patterns', (t) => {
  const rng = new Rng(3);
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const xs = floatSamples(rng).filter((x) => !Number.isNaN(x));
    const round = dtype === 'bfloat16' ? toBFloat16 : toFloat16;
    const h = ig.tensor(Float64Array.from(xs), { dtype });
    const bits = h.data();
    t.true(bits instanceof Uint16Array);
    t.deepEqual(Array.from(bits as Uint16Array), xs.map((x) => halfBits(round(x), dtype)));
    // and back: a Uint16Array with a 16-bit dtype is taken as patterns
    const again = ig.tensor(bits as Uint16Array, { dtype });
    t.deepEqual(Array.from(again.data() as Uint16Array), Array.from(bits as Uint16Array));
    t.deepEqual(again.toArray(), xs.map((x) => round(x)));
  }
});

/** A random nested array of `shape` from `value`. */
function nested(shape: number[], value: (i: number) => number | boolean): { data: ig.NestedArray; flat: (number | boolean)[] } {
  const flat: (number | boolean)[] = [];
  const build = (d: number): ig.NestedArray => {
    if (d === shape.length) {
      const v = value(flat.length);
      flat.push(v);
      return v;
    }
    return Array.from({ length: shape[d] }, () => build(d + 1));
  };
  return { data: build(0), flat };
}

test('tensor() from nested arrays, scalars and booleans; toArray/data/item round-trip', (t) => {
  const rng = new Rng(4);
  for (let trial = 0; trial < 40; trial++) {
    const shape = randomShape(rng, 4, 4);
    const bools = rng.next() < 0.25;
    const { data, flat } = nested(shape, () => (bools ? rng.next() < 0.5 : Math.round(rng.uniform(-100, 100) * 8) / 8));
    const x = ig.tensor(data as number[]);
    t.deepEqual(x.shape, shape);
    t.is(x.dtype, bools ? 'bool' : 'float32');
    t.deepEqual(x.toArray(), data);
    t.deepEqual(Array.from(x.data() as ArrayLike<number>), flat.map(Number));
    if (flat.length === 1) t.is(x.item(), Number(flat[0]));
  }
  t.deepEqual(ig.tensor(2.5).shape, []);
  t.is(ig.tensor(2.5).item(), 2.5);
  t.is(ig.tensor(true).dtype, 'bool');
  t.is(ig.tensor(true).toArray(), true);
  t.deepEqual(ig.tensor([]).shape, [0]);
  t.deepEqual(ig.tensor([[], []]).shape, [2, 0]);
  t.deepEqual(ig.tensor([[[]]]).shape, [1, 1, 0]);
  t.is(ig.tensor([true, 2]).dtype, 'float32', 'mixed booleans and numbers are numbers');
  t.deepEqual(ig.tensor([true, 2]).toArray(), [1, 2]);
  t.deepEqual(ig.tensor([0, 2, -1], { dtype: 'bool' }).toArray(), [false, true, true]);
  t.deepEqual(ig.tensor([1.7, -1.7, 2 ** 31 - 1], { dtype: 'int32' }).toArray(), [1, -1, 2 ** 31 - 1]);
  t.deepEqual(ig.tensor([1.7, -1.7, -(2 ** 62)], { dtype: 'int64' }).toArray(), [1, -1, -(2 ** 62)]);
  t.deepEqual(ig.tensor([[1, 2], [3, 4]], { dtype: 'float64' }).data(), Float64Array.from([1, 2, 3, 4]));
  t.deepEqual(ig.tensor([0.1], { dtype: 'float32' }).toArray(), [Math.fround(0.1)]);
  t.deepEqual(ig.tensor([0.1], { dtype: 'float64' }).toArray(), [0.1]);
});

test('tensor() from every typed array type, with and without shape', (t) => {
  const cases: [ArrayBufferView & ArrayLike<number | bigint>, DType][] = [
    [Float32Array.from([1.5, -2, 3]), 'float32'],
    [Float64Array.from([1.5, -2, 1 / 3]), 'float64'],
    [Int32Array.from([1, -2, 2 ** 31 - 1]), 'int32'],
    [BigInt64Array.from([1n, -2n, 2n ** 62n]), 'int64'],
    [Int8Array.from([1, -2, 127]), 'float32'],
    [Uint8Array.from([1, 2, 255]), 'float32'],
    [Uint8ClampedArray.from([1, 2, 255]), 'float32'],
    [Int16Array.from([1, -2, 32767]), 'float32'],
    [Uint16Array.from([1, 2, 65535]), 'float32'],
    [Uint32Array.from([1, 2, 2 ** 32 - 1]), 'float32'],
    [BigUint64Array.from([1n, 2n, 3n]), 'float32'],
  ];
  for (const [array, dtype] of cases) {
    const x = ig.tensor(array);
    t.is(x.dtype, dtype, array.constructor.name);
    t.deepEqual(x.shape, [3]);
    const expected = Array.from(array as ArrayLike<number | bigint>, (v) => (dtype === 'float32' ? Math.fround(Number(v)) : Number(v)));
    t.deepEqual(x.toArray(), expected, array.constructor.name);
    for (const to of DTYPES) {
      if ((to === 'bfloat16' || to === 'float16') && array instanceof Uint16Array) continue; // raw patterns, tested above
      const limit = to === 'int32' ? 2 ** 31 : to === 'int64' ? 2 ** 63 : Infinity;
      if (Array.from(array as ArrayLike<number | bigint>).some((v) => Number(v) >= limit)) {
        assertCode(t, () => ig.tensor(array, { dtype: to }), 'ERR_ARG', /overflow/);
        continue;
      }
      const y = ig.tensor(array, { dtype: to, shape: [3, 1] });
      t.deepEqual(y.shape, [3, 1]);
      t.is(y.dtype, to);
      const ref = Array.from(array as ArrayLike<number | bigint>, (v) => {
        if (to === 'int32' || to === 'int64' || to === 'bool') return convert(typeof v === 'bigint' ? v : Number(v), to);
        // a float dtype takes the values as numbers (through float32 for 16-bit floats)
        return convert(Number(v), to);
      });
      const got = stored(y);
      t.true(
        ref.every((r, i) => r === undefined || sameValue(got[i], typeof r === 'bigint' && to === 'int64' ? r : r)),
        `${array.constructor.name} -> ${to}: ${got.map(String)} vs ${ref.map(String)}`,
      );
    }
  }
  // bool from bytes: any non-zero byte is true, stored as 1
  t.deepEqual(Array.from(ig.tensor(Uint8Array.from([0, 1, 2, 255]), { dtype: 'bool' }).data() as Uint8Array), [0, 1, 1, 1]);
  t.deepEqual(ig.tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), { shape: [2, 3] }).toArray(), [[1, 2, 3], [4, 5, 6]]);
  t.deepEqual(ig.tensor(new Float32Array(0), { shape: [0, 4] }).shape, [0, 4]);
  // a view into a larger buffer: only its own bytes
  const buffer = Float32Array.from([9, 1, 2, 3, 9]);
  t.deepEqual(ig.tensor(buffer.subarray(1, 4)).toArray(), [1, 2, 3]);
  // the data is copied
  const source = Float32Array.from([1, 2]);
  const copy = ig.tensor(source);
  source[0] = 100;
  t.deepEqual(copy.toArray(), [1, 2]);
});

test('tensor(): bad data', (t) => {
  assertCode(t, () => ig.tensor([[1, 2], [3]]), 'ERR_SHAPE', /ragged/);
  assertCode(t, () => ig.tensor([1, [2]] as unknown as number[]), 'ERR_SHAPE', /ragged/);
  assertCode(t, () => ig.tensor([[1], 2] as unknown as number[]), 'ERR_SHAPE', /ragged/);
  assertCode(t, () => ig.tensor([[], [1]]), 'ERR_SHAPE');
  assertCode(t, () => ig.tensor(['a'] as unknown as number[]), 'ERR_ARG');
  assertCode(t, () => ig.tensor([null] as unknown as number[]), 'ERR_ARG');
  assertCode(t, () => ig.tensor(undefined as unknown as number), 'ERR_ARG');
  assertCode(t, () => ig.tensor({} as unknown as number), 'ERR_ARG');
  assertCode(t, () => ig.tensor(new DataView(new ArrayBuffer(8))), 'ERR_ARG');
  assertCode(t, () => ig.tensor(Float32Array.from([1, 2, 3]), { shape: [2, 2] }), 'ERR_SHAPE');
  assertCode(t, () => ig.tensor(Float32Array.from([1, 2]), { shape: [-2, -1] }), 'ERR_ARG');
  assertCode(t, () => ig.tensor([NaN], { dtype: 'int64' }), 'ERR_ARG');
  assertCode(t, () => ig.tensor([Infinity], { dtype: 'int32' }), 'ERR_ARG');
  assertCode(t, () => ig.tensor([2 ** 31], { dtype: 'int32' }), 'ERR_ARG');
  assertCode(t, () => ig.tensor([2 ** 63], { dtype: 'int64' }), 'ERR_ARG');
  assertCode(t, () => ig.tensor(BigUint64Array.from([2n ** 63n]), { dtype: 'int64' }), 'ERR_ARG');
  assertCode(t, () => ig.tensor([1], { dtype: 'complex64' as DType }), 'ERR_DTYPE');
  assertCode(t, () => ig.tensor([1], { device: UNAVAILABLE_DEVICE }), 'ERR_DEVICE');
  assertCode(t, () => ig.tensor([1], { device: 'tpu' as ig.Device }), 'ERR_DEVICE');
  assertCode(t, () => ig.tensor(ig.zeros([2]) as unknown as number), 'ERR_ARG');
});

test('data(), toArray() and item() for every dtype, on contiguous and strided tensors', (t) => {
  const kinds: Record<DType, new (n: number) => ArrayLike<unknown>> = {
    float32: Float32Array, float64: Float64Array, bfloat16: Uint16Array, float16: Uint16Array,
    int32: Int32Array, int64: BigInt64Array, bool: Uint8Array,
  };
  const rng = new Rng(5);
  for (const dtype of DTYPES) {
    const raw = Array.from({ length: 12 }, () => (dtype === 'bool' ? rng.int(0, 1) : rng.int(-50, 50) / (dtype.startsWith('int') ? 1 : 4)));
    const base = ig.tensor(raw, { dtype: 'float64' }).to(dtype).reshape(3, 4);
    const expected = raw.map((v) => (dtype === 'bool' ? v !== 0 : v));
    t.true(base.data() instanceof kinds[dtype], dtype);
    t.deepEqual(base.toArray(), [expected.slice(0, 4), expected.slice(4, 8), expected.slice(8)]);
    // a transposed view reads in its own row-major order
    const tr = base.mT;
    t.deepEqual(tr.toArray(), [0, 1, 2, 3].map((j) => [0, 1, 2].map((i) => expected[i * 4 + j])));
    t.is(tr.data().length, 12);
    const one = base.select(0, 2).select(0, 1);
    t.deepEqual(one.shape, []);
    t.is(one.item(), Number(expected[9]));
    t.is(one.toArray(), expected[9]);
    assertCode(t, () => base.item(), 'ERR_SHAPE');
    if (dtype === 'int64') t.deepEqual(Array.from(base.data() as BigInt64Array), raw.map(BigInt));
    if (dtype === 'bfloat16' || dtype === 'float16') t.deepEqual(Array.from(base.data() as Uint16Array), raw.map((v) => halfBits(v, dtype)));
  }
  t.is(ig.zeros([1, 1, 1]).item(), 0);
  assertCode(t, () => ig.zeros([0]).item(), 'ERR_SHAPE');
});

test('copy_: a source overlapping the destination is read in full first; a broadcast destination is ERR_ARG', (t) => {
  const rng = new Rng(31);
  for (const dtype of ['float32', 'int64', 'bfloat16'] as DType[]) {
    const values = Array.from({ length: 24 }, () => rng.int(-100, 100));
    const fresh = () => ig.tensor(values, { dtype }).reshape(4, 6);
    const rows = (data: number[]) => Array.from({ length: 4 }, (_, i) => data.slice(i * 6, i * 6 + 6));
    const expect = (x: Tensor, f: (i: number, j: number) => number, what: string) =>
      t.deepEqual(x.toArray(), rows(values).map((row, i) => row.map((_, j) => f(i, j))), `${dtype}: ${what}`);
    // rows shifted down by one, and up by one
    let x = fresh();
    x.slice(0, 1).copy_(x.slice(0, 0, 3));
    expect(x, (i, j) => values[(i === 0 ? 0 : i - 1) * 6 + j], 'shift down');
    x = fresh();
    x.slice(0, 0, 3).copy_(x.slice(0, 1));
    expect(x, (i, j) => values[(i === 3 ? 3 : i + 1) * 6 + j], 'shift up');
    // a transpose of the square part into itself, and a row broadcast over the rows it belongs to
    x = fresh();
    const square = x.slice(1, 0, 4);
    square.copy_(square.mT);
    expect(x, (i, j) => (j < 4 ? values[j * 6 + i] : values[i * 6 + j]), 'transpose in place');
    x = fresh();
    x.copy_(x.slice(0, 2, 3));
    expect(x, (_, j) => values[2 * 6 + j], 'row broadcast over its own tensor');
    // each element onto itself
    x = fresh();
    x.copy_(x);
    expect(x, (i, j) => values[i * 6 + j], 'onto itself');
  }
  const row = ig.zeros([1, 3]);
  assertCode(t, () => row.expand(4, 3).copy_(ig.ones([4, 3])), 'ERR_ARG', /copy: the destination of shape \[4, 3\]/);
  t.deepEqual(row.toArray(), [[0, 0, 0]]);
});

test('tensor properties: ndim, numel, strides, isContiguous, device, newFull', (t) => {
  const x = ig.zeros([2, 3, 4]);
  t.deepEqual([x.ndim, x.numel, x.strides, x.isContiguous(), x.device], [3, 24, [12, 4, 1], true, 'cpu']);
  const p = x.permute(2, 0, 1);
  t.deepEqual([p.shape, p.strides, p.isContiguous()], [[4, 2, 3], [1, 12, 4], false]);
  t.deepEqual([ig.tensor(3).ndim, ig.tensor(3).numel], [0, 1]);
  const f = x.newFull([2], 7);
  t.deepEqual([f.dtype, f.toArray()], ['float32', [7, 7]]);
  t.is(ig.zeros([1], { dtype: 'int32' }).newFull([1], 3).dtype, 'int32');
});

// ---------------------------------------------------------------------------------------------
// Printing. The expected strings are PyTorch 1.13's str() of the same tensors, with its dtype
// names (torch.float64) written as ignis writes them (float64).

test('printing matches PyTorch for a set of tensors', (t) => {
  const cases: [() => Tensor, string][] = [
    [() => ig.tensor([0, NaN, 1]), 'tensor([0., nan, 1.])'],
    [() => ig.tensor([0, NaN, 1.5]), 'tensor([0.0000,    nan, 1.5000])'],
    [() => ig.tensor([0, Infinity, 1e-5]), 'tensor([0.0000e+00,        inf, 1.0000e-05])'],
    [() => ig.tensor([0.03125, 1.0]), 'tensor([0.0312, 1.0000])'],
    [() => ig.tensor([-0.0, 1.0]), 'tensor([-0., 1.])'],
    [() => ig.arange(2000), 'tensor([   0,    1,    2,  ..., 1997, 1998, 1999])'],
    [() => ig.ones([1001]), 'tensor([1., 1., 1.,  ..., 1., 1., 1.])'],
    [() => ig.zeros([2, 0], { dtype: 'int32' }), 'tensor([], size=(2, 0), dtype=int32)'],
    [() => ig.zeros([0], { dtype: 'float64' }), 'tensor([], dtype=float64)'],
    [() => ig.ones([3, 0, 2], { dtype: 'bool' }), 'tensor([], size=(3, 0, 2), dtype=bool)'],
    [() => ig.tensor(3.5, { dtype: 'float64' }), 'tensor(3.5000, dtype=float64)'],
    [() => ig.tensor(true), 'tensor(True)'],
    [() => ig.tensor(5, { dtype: 'int64' }), 'tensor(5)'],
    [() => ig.tensor(-0.25, { dtype: 'float16' }), 'tensor(-0.2500, dtype=float16)'],
    [() => ig.tensor([1.5, 2.25], { dtype: 'bfloat16' }), 'tensor([1.5000, 2.2500], dtype=bfloat16)'],
    [() => ig.tensor([1e9, 1.0]), 'tensor([1.0000e+09, 1.0000e+00])'],
    [() => ig.tensor([123456789.0, 1.5]), 'tensor([1.2346e+08, 1.5000e+00])'],
    [() => ig.tensor([-1e-5, 3.0, -Infinity], { dtype: 'float64' }), 'tensor([-1.0000e-05,  3.0000e+00,        -inf], dtype=float64)'],
    [() => ig.tensor([[1e-5, 2.0], [3, 4]]), 'tensor([[1.0000e-05, 2.0000e+00],\n        [3.0000e+00, 4.0000e+00]])'],
    [() => ig.tensor([[0.1, -0.25], [1e-3, 2.5]]), 'tensor([[ 1.0000e-01, -2.5000e-01],\n        [ 1.0000e-03,  2.5000e+00]])'],
    [() => ig.tensor([true, false]), 'tensor([ True, False])'],
    [() => ig.tensor([[1, 2], [3, 4]], { dtype: 'int32' }), 'tensor([[1, 2],\n        [3, 4]], dtype=int32)'],
    [() => ig.tensor([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], { dtype: 'int64' }), 'tensor([[[1, 2],\n         [3, 4]],\n\n        [[5, 6],\n         [7, 8]]])'],
    [() => ig.arange(0, 1, 0.1, { dtype: 'bfloat16' }), 'tensor([0.0000, 0.1001, 0.2002, 0.3008, 0.4004, 0.5000, 0.6016, 0.6992, 0.8008,\n        0.8984], dtype=bfloat16)'],
    [
      () => ig.arange(2000, { dtype: 'float32' }).reshape(40, 50),
      'tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 4.7000e+01, 4.8000e+01,\n         4.9000e+01],\n' +
        '        [5.0000e+01, 5.1000e+01, 5.2000e+01,  ..., 9.7000e+01, 9.8000e+01,\n         9.9000e+01],\n' +
        '        [1.0000e+02, 1.0100e+02, 1.0200e+02,  ..., 1.4700e+02, 1.4800e+02,\n         1.4900e+02],\n' +
        '        ...,\n' +
        '        [1.8500e+03, 1.8510e+03, 1.8520e+03,  ..., 1.8970e+03, 1.8980e+03,\n         1.8990e+03],\n' +
        '        [1.9000e+03, 1.9010e+03, 1.9020e+03,  ..., 1.9470e+03, 1.9480e+03,\n         1.9490e+03],\n' +
        '        [1.9500e+03, 1.9510e+03, 1.9520e+03,  ..., 1.9970e+03, 1.9980e+03,\n         1.9990e+03]])',
    ],
  ];
  for (const [make, expected] of cases) {
    const x = make();
    t.is(x.toString(), expected);
  }
  const gone = ig.zeros([2]);
  gone.dispose();
  t.is(gone.toString(), 'tensor(<disposed>, shape=[2], dtype=float32)');
});

test('printing a large or strided tensor reads only what it shows and leaves nothing behind', (t) => {
  const big = ig.tidy(() => ig.arange(4_000_000).reshape(2000, 2000));
  const strided = ig.tidy(() => ig.arange(24000, { dtype: 'float32' }).reshape(2, 3, 4000).slice(2, 0, undefined, 2));
  const before = ig.memory();
  const started = process.hrtime.bigint();
  const text = big.toString();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  // PyTorch 1.13: str(torch.arange(4000000).reshape(2000, 2000)) and of the strided view
  t.is(
    text,
    'tensor([[      0,       1,       2,  ...,    1997,    1998,    1999],\n' +
      '        [   2000,    2001,    2002,  ...,    3997,    3998,    3999],\n' +
      '        [   4000,    4001,    4002,  ...,    5997,    5998,    5999],\n' +
      '        ...,\n' +
      '        [3994000, 3994001, 3994002,  ..., 3995997, 3995998, 3995999],\n' +
      '        [3996000, 3996001, 3996002,  ..., 3997997, 3997998, 3997999],\n' +
      '        [3998000, 3998001, 3998002,  ..., 3999997, 3999998, 3999999]])',
  );
  t.is(
    strided.toString(),
    'tensor([[[0.0000e+00, 2.0000e+00, 4.0000e+00,  ..., 3.9940e+03,\n          3.9960e+03, 3.9980e+03],\n' +
      '         [4.0000e+03, 4.0020e+03, 4.0040e+03,  ..., 7.9940e+03,\n          7.9960e+03, 7.9980e+03],\n' +
      '         [8.0000e+03, 8.0020e+03, 8.0040e+03,  ..., 1.1994e+04,\n          1.1996e+04, 1.1998e+04]],\n\n' +
      '        [[1.2000e+04, 1.2002e+04, 1.2004e+04,  ..., 1.5994e+04,\n          1.5996e+04, 1.5998e+04],\n' +
      '         [1.6000e+04, 1.6002e+04, 1.6004e+04,  ..., 1.9994e+04,\n          1.9996e+04, 1.9998e+04],\n' +
      '         [2.0000e+04, 2.0002e+04, 2.0004e+04,  ..., 2.3994e+04,\n          2.3996e+04, 2.3998e+04]]])',
  );
  t.deepEqual(ig.memory(), before, 'the views it made are gone');
  t.log(`printed a 4M-element tensor in ${ms.toFixed(1)} ms`);
  // and inside tidy, where the scope also sees those views
  t.is(ig.tidy(() => big.toString()), text);
  t.deepEqual(ig.memory(), before);
});

const TORCH_PYTHON = process.env.IGNIS_BENCH_TORCH_PYTHON || '/usr/bin/python3';
const hasTorch = spawnSync(TORCH_PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

// Random tensors printed by ignis and by PyTorch (when PyTorch is installed).
(hasTorch ? test : test.skip)('printing matches PyTorch on random tensors', (t) => {
  const rng = new Rng(6);
  const specs: { shape: number[]; dtype: DType; values: (number | string)[] }[] = [];
  const tensors: Tensor[] = [];
  for (let trial = 0; trial < 150; trial++) {
    const dtype = rng.pick(DTYPES);
    const shape = trial % 10 === 0 ? rng.pick([[1001], [3, 400], [7, 8, 20], [2000, 1], [1, 1200]]) : randomShape(rng, 4, 6);
    const scale = rng.pick(['int', 'small', 'mixed', 'wide', 'tiny', 'huge']);
    const value = (): number => {
      if (dtype === 'bool') return rng.int(0, 1);
      if (rng.next() < 0.05 && dtype !== 'int32' && dtype !== 'int64') return rng.pick([NaN, Infinity, -Infinity, 0, -0]);
      switch (scale) {
        case 'int': return rng.int(-120, 120);
        case 'small': return rng.uniform(-10, 10);
        case 'mixed': return rng.int(-3, 3) + (rng.next() < 0.5 ? 0.5 : 0);
        case 'wide': return rng.uniform(-1, 1) * 10 ** rng.int(-6, 10);
        case 'tiny': return rng.uniform(-1, 1) * 1e-5;
        default: return rng.uniform(-1, 1) * 1e9;
      }
    };
    const n = numel(shape);
    const raw = Float64Array.from({ length: n }, value);
    const wide = ig.tensor(raw, { shape, dtype: 'float64' });
    const x = dtype === 'int32' || dtype === 'int64' ? ig.tensor(Array.from(raw, (v) => Math.max(-1e9, Math.min(1e9, v))), { dtype: 'float64' }).reshape(...shape).to(dtype) : wide.to(dtype);
    // the exact stored values, sent to PyTorch as float64 and converted there (exact)
    const exact = Array.from(x.to('float64').data() as Float64Array, (v) => (Number.isFinite(v) ? (Object.is(v, -0) ? '-0' : v) : String(v)));
    specs.push({ shape, dtype, values: exact });
    tensors.push(x);
  }
  const script = `
import json, sys, torch
# PyTorch's own suffix placement, with ignis' dtype names (float64, not torch.float64)
add_suffixes = torch._tensor_str._add_suffixes
torch._tensor_str._add_suffixes = lambda text, suffixes, *rest, **kw: add_suffixes(text, [s.replace('torch.', '') for s in suffixes], *rest, **kw)
specs = json.load(sys.stdin)
out = []
for s in specs:
    vals = [float(v) if isinstance(v, str) else v for v in s['values']]
    x = torch.tensor(vals, dtype=torch.float64).reshape(s['shape']).to(getattr(torch, s['dtype']))
    out.append(str(x))
json.dump(out, sys.stdout)
`;
  const res = spawnSync(TORCH_PYTHON, ['-c', script], { input: JSON.stringify(specs), encoding: 'utf8', maxBuffer: 64 << 20 });
  t.is(res.status, 0, res.stderr);
  const expected = JSON.parse(res.stdout) as string[];
  let mismatches = 0;
  tensors.forEach((x, i) => {
    if (x.toString() !== expected[i] && mismatches++ < 3) t.is(x.toString(), expected[i], `${specs[i].dtype} [${specs[i].shape}]`);
  });
  t.is(mismatches, 0);
});

// ---------------------------------------------------------------------------------------------
// Threads

test('IGNIS_NUM_THREADS sets the starting thread count; setNumThreads is bounded', (t) => {
  const script = `const ig = require(${JSON.stringify(LIB)}); process.stdout.write(String(ig.getNumThreads()));`;
  const threads = (env: Record<string, string>) => {
    const res = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, ...env } });
    t.is(res.status, 0, res.stderr);
    return Number(res.stdout);
  };
  const cores = os.cpus().length;
  t.is(threads({ IGNIS_NUM_THREADS: '1' }), 1);
  t.is(threads({ IGNIS_NUM_THREADS: String(cores + 8) }), cores, 'capped at the number of cores');
  t.is(threads({ IGNIS_NUM_THREADS: 'many' }), cores, 'an unusable value is ignored');

  const before = ig.getNumThreads();
  ig.setNumThreads(1);
  t.is(ig.getNumThreads(), 1);
  ig.setNumThreads(1000);
  t.is(ig.getNumThreads(), cores);
  assertCode(t, () => ig.setNumThreads(0), 'ERR_ARG');
  assertCode(t, () => ig.setNumThreads(-2), 'ERR_ARG');
  assertCode(t, () => ig.setNumThreads(1.5), 'ERR_ARG');
  assertCode(t, () => ig.setNumThreads('2' as unknown as number), 'ERR_ARG');
  ig.setNumThreads(before);
  t.is(ig.getNumThreads(), before);
});

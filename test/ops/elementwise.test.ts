import test from 'ava';
import * as ig from '../../lib';
import { DType } from '../../lib';
import {
  LAYOUTS,
  Layout,
  Rng,
  assertClose,
  assertCode,
  makeTensor,
  randomShape,
  randomTensor,
  refBroadcast,
  refFromFn,
  refMap,
  refOf,
} from '../helpers';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];

const BINARY: [string, (a: ig.Tensor, b: ig.Tensor) => ig.Tensor, (x: number, y: number) => number][] = [
  ['add', ig.add, (x, y) => x + y],
  ['sub', ig.sub, (x, y) => x - y],
  ['mul', ig.mul, (x, y) => x * y],
  ['div', ig.div, (x, y) => x / y],
  ['maximum', ig.maximum, Math.max],
  ['minimum', ig.minimum, Math.min],
];

/** Shapes that broadcast against `shape`: some dims set to 1, some leading dims dropped. */
function broadcastPartner(rng: Rng, shape: number[]): number[] {
  const drop = rng.int(0, shape.length);
  return shape.slice(drop).map((d) => (rng.next() < 0.3 ? 1 : d));
}

/** A random bool tensor. */
function randomMask(rng: Rng, shape: number[], layout: Layout = 'contiguous') {
  return makeTensor(refFromFn(shape, () => (rng.next() < 0.5 ? 1 : 0)), 'bool', layout);
}

/** v as stored in `dtype`. */
function roundTo(v: number, dtype: DType): number {
  return ig.tidy(() => refOf(ig.tensor([v], { dtype: 'float64' }).to(dtype)).data[0]);
}

for (const [name, op, ref] of BINARY) {
  test(`${name}: random shapes, layouts and dtypes against float64`, (t) => {
    const rng = new Rng(name.length * 7919);
    for (let trial = 0; trial < 24; trial++) {
      const dtype = rng.pick(FLOATS);
      const shape = randomShape(rng, 4, 5);
      const other = rng.next() < 0.5 ? shape : broadcastPartner(rng, shape);
      // keep divisors away from zero
      const a = randomTensor(rng, shape, dtype, rng.pick(LAYOUTS));
      const b = randomTensor(rng, other, dtype, rng.pick(LAYOUTS), name === 'div' ? 0.5 : -1, name === 'div' ? 2 : 1);
      const out = op(a.t, b.t);
      t.is(out.dtype, dtype);
      assertClose(t, out, refBroadcast(a.ref, b.ref, ref), undefined, `${name} ${dtype} ${JSON.stringify(shape)}`);
      for (const x of [a.t, b.t, out]) x.dispose();
    }
  });
}

test('binary ops with scalars, both sides', (t) => {
  const rng = new Rng(5);
  const a = randomTensor(rng, [3, 4], 'float64', 'transposed', 0.5, 2);
  assertClose(t, ig.add(a.t, 2.5), refMap(a.ref, (x) => x + 2.5));
  assertClose(t, ig.sub(1, a.t), refMap(a.ref, (x) => 1 - x));
  assertClose(t, ig.div(1, a.t), refMap(a.ref, (x) => 1 / x));
  assertClose(t, ig.pow(a.t, 3), refMap(a.ref, (x) => x ** 3));
  assertClose(t, ig.pow(2, a.t), refMap(a.ref, (x) => 2 ** x));
  assertClose(t, a.t.add(a.t, 0.5), refMap(a.ref, (x) => 1.5 * x));
});

test('type promotion follows PyTorch', (t) => {
  const i = ig.tensor([1, 2, 3], { dtype: 'int32' });
  const f = ig.tensor([0.5, 0.5, 0.5]);
  t.is(ig.add(i, f).dtype, 'float32');
  t.is(ig.add(i, 1).dtype, 'int32');
  t.deepEqual(ig.add(i, 1).toArray(), [2, 3, 4]);
  t.is(ig.add(i, 0.5).dtype, 'float32');
  t.is(ig.div(i, 2).dtype, 'float32');
  t.deepEqual(ig.div(i, 2).toArray(), [0.5, 1, 1.5]);
  t.deepEqual(ig.pow(i, 2).toArray(), [1, 4, 9]);
  t.is(ig.add(f, f.to('float64')).dtype, 'float64');
  t.is(ig.add(f.to('bfloat16'), f.to('float16')).dtype, 'float32');
});

test('bad broadcast, mixed dtype handles, disposed inputs', (t) => {
  const a = ig.zeros([2, 3]);
  const b = ig.zeros([4]);
  assertCode(t, () => ig.add(a, b), 'ERR_SHAPE', /add.*\[2, 3\].*\[4\]/);
  const c = ig.zeros([3]);
  c.dispose();
  assertCode(t, () => ig.add(a, c), 'ERR_DISPOSED');
  assertCode(t, () => ig.add(a, 'x' as unknown as number), 'ERR_ARG');
  assertCode(t, () => ig.mul(true as unknown as number, 2), 'ERR_ARG');
});

test('binary ops: integer scalars must fit the integer dtype', (t) => {
  const i = ig.tensor([1, 2, 3], { dtype: 'int32' });
  assertCode(t, () => ig.add(i, 2 ** 31), 'ERR_ARG', /int32/);
  t.deepEqual(ig.add(i, 2 ** 31 - 4).toArray(), [2 ** 31 - 3, 2 ** 31 - 2, 2 ** 31 - 1]);
  assertCode(t, () => ig.sub(2 ** 40, i), 'ERR_ARG');
});

// --- references in float64 ---

/** erfc to float64 accuracy: Taylor series of erf near 0, a continued fraction in the tails. */
function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const tail = (z: number) => {
    let f = z;
    for (let n = 300; n >= 1; n--) f = z + n / 2 / f;
    return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
  };
  if (x >= 1.5) return tail(x);
  if (x <= -1.5) return 2 - tail(-x);
  let term = x;
  let sum = x;
  for (let n = 1; Math.abs(term) > 1e-18; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return 1 - (2 / Math.sqrt(Math.PI)) * sum;
}

function sigmoidRef(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

// At -Infinity the limits (0), not -Infinity * 0.
const siluRef = (x: number) => (x === -Infinity ? 0 : x * sigmoidRef(x));
const geluRef = (x: number) => (x === -Infinity ? 0 : 0.5 * x * erfc(-x / Math.SQRT2));
// 0.5 x (1 + tanh(u)) is x * sigmoid(2u): the same function, without cancellation in the tail.
const geluTanhRef = (x: number) => (x === -Infinity ? 0 : x * sigmoidRef(2 * Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

test('erfc reference matches known values', (t) => {
  // erf(0.5), erf(1) and erfc(3) from tables, to check the reference itself
  t.true(Math.abs(1 - erfc(0.5) - 0.5204998778130465) < 1e-15);
  t.true(Math.abs(1 - erfc(1) - 0.8427007929497149) < 1e-15);
  t.true(Math.abs(erfc(3) / 2.209049699858544e-5 - 1) < 1e-14);
  t.true(Math.abs(erfc(-1) - 1.8427007929497149) < 1e-15);
});

/** An op, its float64 reference, the range of its random inputs, whether it keeps integer dtypes. */
interface UnaryCase {
  name: string;
  op: (x: ig.Tensor) => ig.Tensor;
  ref: (x: number) => number;
  lo: number;
  hi: number;
  ints: boolean;
}
const UNARY: UnaryCase[] = [
  { name: 'neg', op: ig.neg, ref: (x) => -x, lo: -3, hi: 3, ints: true },
  { name: 'abs', op: ig.abs, ref: Math.abs, lo: -3, hi: 3, ints: true },
  { name: 'sqrt', op: ig.sqrt, ref: Math.sqrt, lo: 0, hi: 4, ints: false },
  { name: 'rsqrt', op: ig.rsqrt, ref: (x) => 1 / Math.sqrt(x), lo: 0.05, hi: 4, ints: false },
  { name: 'exp', op: ig.exp, ref: Math.exp, lo: -5, hi: 5, ints: false },
  { name: 'log', op: ig.log, ref: Math.log, lo: 0.01, hi: 5, ints: false },
  { name: 'tanh', op: ig.tanh, ref: Math.tanh, lo: -4, hi: 4, ints: false },
  { name: 'sigmoid', op: ig.sigmoid, ref: sigmoidRef, lo: -8, hi: 8, ints: false },
  { name: 'relu', op: ig.relu, ref: (x) => Math.max(x, 0), lo: -2, hi: 2, ints: true },
  { name: 'gelu', op: (x) => ig.gelu(x), ref: geluRef, lo: -5, hi: 5, ints: false },
  { name: 'gelu tanh', op: (x) => ig.gelu(x, 'tanh'), ref: geluTanhRef, lo: -5, hi: 5, ints: false },
  { name: 'silu', op: ig.silu, ref: siluRef, lo: -8, hi: 8, ints: false },
];

for (const { name, op, ref, lo, hi } of UNARY) {
  test(`${name}: random shapes, layouts and dtypes against float64`, (t) => {
    const rng = new Rng(name.length * 104729 + name.charCodeAt(0));
    for (let trial = 0; trial < 24; trial++) {
      // every dtype with every layout; most shapes have the 2 dims a transposed layout needs
      const dtype = FLOATS[trial % FLOATS.length];
      const shape = randomShape(rng, 4, 5, trial % 3 ? 2 : 0);
      const a = randomTensor(rng, shape, dtype, LAYOUTS[(trial >> 2) % LAYOUTS.length], lo, hi);
      const out = op(a.t);
      t.is(out.dtype, dtype);
      assertClose(t, out, refMap(a.ref, ref), undefined, `${name} ${dtype} ${JSON.stringify(shape)}`);
      a.t.dispose();
      out.dispose();
    }
  });
}

test('unary ops on tensors large enough to run on several threads', (t) => {
  const rng = new Rng(77);
  for (const layout of ['contiguous', 'transposed', 'strided'] as const) {
    const a = randomTensor(rng, [301, 257], 'float32', layout, -3, 3);
    for (const { name, op, ref } of UNARY.filter((u) => ['exp', 'gelu', 'relu', 'neg'].includes(u.name))) {
      const out = op(a.t);
      assertClose(t, out, refMap(a.ref, ref), undefined, `${name} ${layout}`);
      out.dispose();
    }
    const b = randomTensor(rng, [257], 'float32', 'contiguous');
    assertClose(t, ig.add(a.t, b.t), refBroadcast(a.ref, b.ref, (x, y) => x + y), undefined, `add ${layout}`);
    assertClose(t, ig.lt(a.t, b.t), refBroadcast(a.ref, b.ref, (x, y) => Number(x < y)), undefined, `lt ${layout}`);
    const mask = randomMask(rng, [301, 1], layout);
    const c = refBroadcast(a.ref, mask.ref, (_, m) => m);
    const bb = refBroadcast(a.ref, b.ref, (_, y) => y);
    const picked = refFromFn(a.ref.shape, (i) => (c.data[i] ? a.ref.data[i] : bb.data[i]));
    assertClose(t, ig.where(mask.t, a.t, b.t), picked, undefined, `where ${layout}`);
    assertClose(t, ig.clamp(a.t, -1, 1), refMap(a.ref, (x) => Math.min(Math.max(x, -1), 1)), undefined, `clamp ${layout}`);
    for (const x of [a.t, b.t, mask.t]) x.dispose();
  }
});

/** See the sweep below: float32 gelu tanh is limited by the rounding of its inner argument. */
const GELU_TANH_F32_RTOL = 3e-5;

const SPECIAL = [NaN, Infinity, -Infinity, 0, -0, 1e-30, 1e30, -1e30];
for (const v of [0.5, 10, 30, 80, 88, 100, 1000]) SPECIAL.push(v, -v);

test('unary ops: special values and large magnitudes keep their accuracy', (t) => {
  for (const dtype of ['float32', 'float64'] as const) {
    const x = ig.tensor(SPECIAL, { dtype: 'float64' }).to(dtype);
    const xs = refOf(x);
    // float32 results are compared with the float64 value rounded to float32 (so overflow is
    // inf there too), relatively: the tails of sigmoid, silu and gelu must not cancel to 0.
    const round = dtype === 'float32' ? Math.fround : (v: number) => v;
    // (float64: the reference's own exp(-z^2) limits it to ~1e-13 far in gelu's tail)
    const tol: [number, number] = dtype === 'float32' ? [4e-6, 1e-38] : [1e-12, 1e-300];
    for (const { name, op, ref } of UNARY) {
      const own: [number, number] = name === 'gelu tanh' && dtype === 'float32' ? [GELU_TANH_F32_RTOL, tol[1]] : tol;
      assertClose(t, op(x), refMap(xs, (v) => round(ref(v))), own, `${name} ${dtype}`);
    }
  }
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const x = ig.tensor([NaN, Infinity, -Infinity, 0, 0.5, -0.5, 10, -10, 1000, -1000], { dtype });
    const xs = refOf(x);
    for (const { name, op, ref } of UNARY) assertClose(t, op(x), refMap(xs, ref), undefined, `${name} ${dtype}`);
  }
});

test('float32 exp, log, tanh, sigmoid, silu and gelu: dense sweeps within a few ulp', (t) => {
  // float32 has its own exp, log, tanh and erfc (vectorised polynomials): check them densely,
  // down into subnormal inputs and results, against float64 rounded to float32.
  const n = 100003;
  const linear = (lo: number, hi: number) => (i: number) => lo + ((hi - lo) * i) / (n - 1);
  const sweeps: [string, (i: number) => number, number][] = [
    ['exp', linear(-105, 90), 1e-6],
    ['log', (i) => 2 ** linear(-149, 128)(i), 1e-6], // every binade, subnormals included
    ['tanh', linear(-12, 12), 1e-6],
    ['sigmoid', linear(-105, 105), 1e-6],
    // below -87 (gelu tanh: -10), x * sigmoid(.) multiplies a subnormal: few bits are left
    ['silu', linear(-87, 105), 1e-6],
    ['gelu', linear(-12.5, 30), 2e-6],
    // the float32 argument 2u = 2 sqrt(2/pi) (x + 0.044715 x^3) carries a rounding error of a
    // few ulp of |2u|, which the exponential turns into relative error |2u| * eps
    ['gelu tanh', linear(-10, 30), GELU_TANH_F32_RTOL],
  ];
  for (const [name, at, rtol] of sweeps) {
    const { op, ref } = UNARY.find((u) => u.name === name)!;
    const x = ig.tensor(Float32Array.from({ length: n }, (_, i) => at(i)));
    assertClose(t, op(x), refMap(refOf(x), (v) => Math.fround(ref(v))), [rtol, 3e-45], `${name} sweep`);
    x.dispose();
  }
});

test('unary ops on integer and bool tensors', (t) => {
  const rng = new Rng(31);
  for (const dtype of ['int32', 'int64'] as const) {
    const values = refFromFn([4, 5], () => rng.int(-50, 50));
    for (const layout of LAYOUTS) {
      const a = makeTensor(values, dtype, layout);
      for (const { name, op, ref, ints } of UNARY) {
        if (name.startsWith('gelu') || name === 'silu') {
          assertCode(t, () => op(a.t), 'ERR_DTYPE', new RegExp(`${name.split(' ')[0]}.*${dtype}`));
          continue;
        }
        const out = op(a.t);
        t.is(out.dtype, ints ? dtype : 'float32', name);
        assertClose(t, out, refMap(a.ref, (v) => (ints ? ref(v) : Math.fround(ref(v)))), [1e-6, 0], `${name} ${dtype} ${layout}`);
      }
    }
  }
  // the lowest integer has no positive counterpart: neg and abs wrap to it, as in PyTorch
  const lowest = ig.tensor([-(2 ** 31), 7], { dtype: 'int32' });
  t.deepEqual(ig.neg(lowest).toArray(), [-(2 ** 31), -7]);
  t.deepEqual(ig.abs(lowest).toArray(), [-(2 ** 31), 7]);
  const flags = ig.tensor([true, false]);
  t.is(ig.exp(flags).dtype, 'float32');
  assertClose(t, ig.exp(flags), refFromFn([2], (i) => Math.fround(Math.exp(1 - i))));
  t.deepEqual(ig.sqrt(flags).toArray(), [1, 0]);
  for (const op of [ig.neg, ig.abs, ig.relu, ig.gelu, ig.silu]) assertCode(t, () => op(flags), 'ERR_DTYPE', /bool/);
});

test('unary ops: bad arguments', (t) => {
  const a = ig.ones([2]);
  assertCode(t, () => ig.gelu(a, 'fast' as 'tanh'), 'ERR_ARG', /approximate/);
  for (const { op } of UNARY) assertCode(t, () => op([1, 2] as unknown as ig.Tensor), 'ERR_ARG');
  a.dispose();
  for (const { name, op } of UNARY) assertCode(t, () => op(a), 'ERR_DISPOSED', new RegExp(name.split(' ')[0]));
});

// --- clamp ---

test('clamp: random shapes, layouts, dtypes and bounds against float64', (t) => {
  const rng = new Rng(12);
  for (let trial = 0; trial < 24; trial++) {
    const dtype = FLOATS[trial % FLOATS.length];
    const shape = randomShape(rng, 4, 5, trial % 3 ? 2 : 0);
    const a = randomTensor(rng, shape, dtype, LAYOUTS[(trial >> 2) % LAYOUTS.length], -2, 2);
    const which = trial % 3;
    const lo = which === 1 ? undefined : rng.uniform(-1.5, 0);
    const hi = which === 0 ? null : rng.uniform(0, 1.5);
    // bounds are rounded to the dtype like the values
    const round = (v: number | null | undefined) => (v === undefined || v === null ? v : roundTo(v, dtype));
    const [rlo, rhi] = [round(lo) ?? -Infinity, round(hi) ?? Infinity];
    const out = ig.clamp(a.t, lo, hi);
    t.is(out.dtype, dtype);
    assertClose(t, out, refMap(a.ref, (x) => Math.min(Math.max(x, rlo), rhi)), undefined, `clamp ${dtype} [${lo}, ${hi}]`);
    a.t.dispose();
  }
});

test('clamp: NaN stays, min > max gives max, integers stay integers', (t) => {
  const x = ig.tensor([NaN, -5, 0.25, 5, -Infinity, Infinity]);
  assertClose(t, ig.clamp(x, -1, 1), refFromFn([6], (i) => [NaN, -1, 0.25, 1, -1, 1][i]));
  assertClose(t, ig.clamp(x, 2, 1), refFromFn([6], (i) => (i === 0 ? NaN : 1)));
  assertClose(t, x.clamp(null, 0), refFromFn([6], (i) => [NaN, -5, 0, 0, -Infinity, 0][i]));
  for (const dtype of ['int32', 'int64'] as const) {
    const i = ig.tensor([-7, -1, 0, 3, 9], { dtype });
    const c = ig.clamp(i, -2, 4);
    t.is(c.dtype, dtype);
    t.deepEqual(c.toArray(), [-2, -1, 0, 3, 4]);
    // bounds beyond the dtype's range saturate instead of wrapping
    t.deepEqual(ig.clamp(i, -1e20, 2 ** 40).toArray(), [-7, -1, 0, 3, 9]);
    t.deepEqual(ig.clamp(i, 2 ** 40).toArray(), Array(5).fill(dtype === 'int32' ? 2 ** 31 - 1 : 2 ** 40));
    const f = ig.clamp(i, -1.5);
    t.is(f.dtype, 'float32');
    t.deepEqual(f.toArray(), [-1.5, -1, 0, 3, 9]);
  }
  // bool promotes as in arithmetic
  const flags = ig.clamp(ig.tensor([true, false]), 0, 5);
  t.is(flags.dtype, 'int64');
  t.deepEqual(flags.toArray(), [1, 0]);
  t.is(ig.clamp(ig.tensor([true, false]), 0.5).dtype, 'float32');
});

test('clamp: bad arguments', (t) => {
  const a = ig.ones([2, 2]);
  assertCode(t, () => ig.clamp(a), 'ERR_ARG', /min and max/);
  assertCode(t, () => ig.clamp(a, null, null), 'ERR_ARG');
  assertCode(t, () => ig.clamp(a, NaN), 'ERR_ARG', /NaN/);
  assertCode(t, () => ig.clamp(a, 0, '1' as unknown as number), 'ERR_ARG');
  a.dispose();
  assertCode(t, () => ig.clamp(a, 0, 1), 'ERR_DISPOSED');
});

// --- comparisons ---

const COMPARE: [string, (a: ig.Tensor | number, b: ig.Tensor | number) => ig.Tensor, (x: number, y: number) => boolean][] = [
  ['eq', ig.eq, (x, y) => x === y],
  ['ne', ig.ne, (x, y) => x !== y],
  ['lt', ig.lt, (x, y) => x < y],
  ['le', ig.le, (x, y) => x <= y],
  ['gt', ig.gt, (x, y) => x > y],
  ['ge', ig.ge, (x, y) => x >= y],
];

/** Values from a small set (ties are common), NaN now and then for float dtypes. */
function tiedValues(rng: Rng, shape: number[], dtype: DType) {
  const nan = dtype !== 'int32' && dtype !== 'int64';
  return refFromFn(shape, () => (nan && rng.next() < 0.1 ? NaN : rng.int(-3, 3) / 2));
}

const COMPARE_DTYPES: DType[] = [...FLOATS, 'int32', 'int64'];

for (const [name, op, ref] of COMPARE) {
  test(`${name}: tensors of random shapes, layouts and dtypes, broadcast and promoted`, (t) => {
    const rng = new Rng(name.charCodeAt(0) * 31 + name.charCodeAt(1));
    for (let trial = 0; trial < 24; trial++) {
      const da = rng.pick(COMPARE_DTYPES);
      const db = trial % 2 ? da : rng.pick(COMPARE_DTYPES);
      const shape = randomShape(rng, 4, 4, trial % 3 ? 2 : 0);
      const other = rng.next() < 0.5 ? shape : broadcastPartner(rng, shape);
      // integer dtypes get whole numbers; halves would be truncated differently by each side
      const values = (s: number[], d: DType) => refMap(tiedValues(rng, s, d), (v) => (d.startsWith('int') ? Math.round(v) : v));
      const a = makeTensor(values(shape, da), da, LAYOUTS[trial % LAYOUTS.length]);
      const b = makeTensor(values(other, db), db, LAYOUTS[(trial >> 2) % LAYOUTS.length]);
      const out = op(a.t, b.t);
      t.is(out.dtype, 'bool');
      assertClose(t, out, refBroadcast(a.ref, b.ref, (x, y) => Number(ref(x, y))), undefined, `${name} ${da} ${db}`);
      for (const x of [a.t, b.t, out]) x.dispose();
    }
  });
}

test('comparisons with numbers on either side', (t) => {
  const rng = new Rng(91);
  for (const [name, op, ref] of COMPARE) {
    for (const dtype of COMPARE_DTYPES) {
      const values = refMap(tiedValues(rng, [3, 5], dtype), (v) => (dtype.startsWith('int') ? Math.round(v) : v));
      const a = makeTensor(values, dtype, rng.pick(LAYOUTS));
      for (const s of [0, 1, -0.5, NaN, Infinity]) {
        assertClose(t, op(a.t, s), refMap(a.ref, (x) => Number(ref(x, s))), undefined, `${name}(${dtype}, ${s})`);
        assertClose(t, op(s, a.t), refMap(a.ref, (x) => Number(ref(s, x))), undefined, `${name}(${s}, ${dtype})`);
      }
    }
  }
});

test('comparisons: floats meet numbers in their own dtype, integers compare exactly', (t) => {
  // 0.1 stored in float32 equals 0.1 rounded to float32, as in PyTorch
  t.deepEqual(ig.eq(ig.tensor([0.1, 0.2]), 0.1).toArray(), [true, false]);
  t.deepEqual(ig.eq(ig.tensor([0.1], { dtype: 'bfloat16' }), 0.1).toArray(), [true]);
  // int64 beyond 2^53, and numbers beyond the dtype's range
  const big = ig.tensor(BigInt64Array.from([2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n)]));
  t.deepEqual(ig.eq(big, 2 ** 53).toArray(), [false, false, false]);
  t.deepEqual(ig.lt(big, 2 ** 63).toArray(), [true, true, true]);
  t.deepEqual(ig.le(big, -(2 ** 63)).toArray(), [false, false, true]);
  t.deepEqual(ig.gt(big, 2 ** 53 + 0.5).toArray(), [true, true, false]);
  const small = ig.tensor([-3, 0, 3], { dtype: 'int32' });
  t.deepEqual(ig.lt(small, 0.5).toArray(), [true, true, false]);
  t.deepEqual(ig.gt(small, -1e10).toArray(), [true, true, true]);
  t.deepEqual(ig.ne(small, NaN).toArray(), [true, true, true]);
  t.deepEqual(ig.eq(ig.tensor([true, false]), 1).toArray(), [true, false]);
  t.deepEqual(ig.lt(ig.tensor([true, false]), 0.5).toArray(), [false, true]);
  t.deepEqual(ig.eq(ig.tensor([true, false]), ig.tensor([true, true])).toArray(), [true, false]);
  // promotion: int32 against float32 compares in float32
  t.deepEqual(ig.lt(small, ig.tensor([-2.5, 0.5, 2.5])).toArray(), [true, true, false]);
});

test('comparisons: bad arguments', (t) => {
  const a = ig.zeros([2, 3]);
  for (const [name, op] of COMPARE) {
    assertCode(t, () => op(a, ig.zeros([4])), 'ERR_SHAPE', new RegExp(`${name}.*\\[2, 3\\].*\\[4\\]`));
    assertCode(t, () => op(a, '1' as unknown as number), 'ERR_ARG');
    assertCode(t, () => op(true as unknown as number, a), 'ERR_ARG');
    assertCode(t, () => op(1, 2), 'ERR_ARG');
  }
  const b = ig.zeros([3]);
  b.dispose();
  for (const [, op] of COMPARE) {
    assertCode(t, () => op(a, b), 'ERR_DISPOSED');
    assertCode(t, () => op(b, 1), 'ERR_DISPOSED');
  }
});

// --- where and maskedFill ---

const WHERE_DTYPES: DType[] = [...FLOATS, 'int32', 'int64', 'bool'];

test('where: random shapes, layouts and dtypes, broadcast over all three', (t) => {
  const rng = new Rng(404);
  for (let trial = 0; trial < 32; trial++) {
    const shape = randomShape(rng, 4, 4);
    const partner = () => (rng.next() < 0.5 ? shape : broadcastPartner(rng, shape));
    const cond = randomMask(rng, partner(), LAYOUTS[trial % LAYOUTS.length]);
    const da = rng.pick(WHERE_DTYPES);
    const db = trial % 2 ? da : rng.pick(WHERE_DTYPES);
    const values = (d: DType) => refFromFn(partner(), () => (d === 'bool' ? rng.int(0, 1) : rng.int(-9, 9) / 4));
    const ra = values(da);
    const rb = values(db);
    // integers get whole numbers
    const a = makeTensor(da.startsWith('int') ? refMap(ra, Math.round) : ra, da, LAYOUTS[(trial >> 2) % LAYOUTS.length]);
    const b = makeTensor(db.startsWith('int') ? refMap(rb, Math.round) : rb, db, rng.pick(LAYOUTS));
    const out = ig.where(cond.t, a.t, b.t);
    if (da === db) t.is(out.dtype, da);
    const ab = refBroadcast(a.ref, b.ref, (x, y) => x - y); // only for the combined shape
    const full = refBroadcast(cond.ref, ab, () => 0);
    const ea = refBroadcast(full, a.ref, (_, x) => x);
    const eb = refBroadcast(full, b.ref, (_, y) => y);
    const ec = refBroadcast(full, cond.ref, (_, c) => c);
    const expected = refFromFn(full.shape, (i) => (ec.data[i] ? ea.data[i] : eb.data[i]));
    assertClose(t, out, expected, undefined, `where ${da} ${db} ${JSON.stringify(full.shape)}`);
    for (const x of [cond.t, a.t, b.t, out]) x.dispose();
  }
});

test('where: dtype promotion and numbers on either side', (t) => {
  const c = ig.tensor([[true, false, true]]);
  const f = ig.tensor([[1.5], [2.5]]);
  const i = ig.tensor([4, 5, 6], { dtype: 'int32' });
  const w = ig.where(c, i, f);
  t.is(w.dtype, 'float32');
  t.deepEqual(w.toArray(), [
    [4, 1.5, 6],
    [4, 2.5, 6],
  ]);
  t.is(ig.where(c, f.to('bfloat16'), f.to('float16')).dtype, 'float32');
  t.is(ig.where(c, i, 0).dtype, 'int32');
  t.deepEqual(ig.where(c, i, -1).toArray(), [[4, -1, 6]]);
  t.deepEqual(ig.where(c, 0.5, i).toArray(), [[0.5, 5, 0.5]]);
  t.is(ig.where(c, 0.5, i).dtype, 'float32');
  t.deepEqual(ig.where(c, -Infinity, f).toArray(), [
    [-Infinity, 1.5, -Infinity],
    [-Infinity, 2.5, -Infinity],
  ]);
  const both = ig.where(c, 1, 0);
  t.is(both.dtype, 'int64');
  t.deepEqual(both.toArray(), [[1, 0, 1]]);
  t.is(ig.where(c, 1, 0.5).dtype, 'float32');
  t.is(ig.where(c, ig.tensor([true]), 0).dtype, 'int64');
  t.is(ig.where(c, ig.tensor([true]), ig.tensor([false])).dtype, 'bool');
  // the method form: this where condition, other elsewhere
  t.deepEqual(i.where(c.squeeze(0), 9).toArray(), [4, 9, 6]);
});

test('where: bad arguments', (t) => {
  const c = ig.tensor([true, false, true]);
  const a = ig.zeros([3]);
  assertCode(t, () => ig.where(ig.ones([3]), a, a), 'ERR_DTYPE', /condition.*float32/);
  assertCode(t, () => ig.where(ig.ones([3], { dtype: 'int32' }), a, 0), 'ERR_DTYPE');
  assertCode(t, () => ig.where(c, a, ig.zeros([2])), 'ERR_SHAPE', /where/);
  assertCode(t, () => ig.where(ig.tensor([[true], [false]]), ig.zeros([2, 2]), ig.zeros([3])), 'ERR_SHAPE');
  assertCode(t, () => ig.where(c, a, '0' as unknown as number), 'ERR_ARG');
  assertCode(t, () => ig.where(c, null as unknown as number, a), 'ERR_ARG');
  assertCode(t, () => ig.where([true] as unknown as ig.Tensor, a, a), 'ERR_ARG');
  assertCode(t, () => ig.where(c, ig.zeros([3], { dtype: 'int32' }), 2 ** 31), 'ERR_ARG', /int32/);
  const gone = ig.zeros([3]);
  gone.dispose();
  assertCode(t, () => ig.where(c, gone, 0), 'ERR_DISPOSED');
  assertCode(t, () => ig.where(c, 0, gone), 'ERR_DISPOSED');
  const goneMask = ig.tensor([true]);
  goneMask.dispose();
  assertCode(t, () => ig.where(goneMask, a, 0), 'ERR_DISPOSED');
});

test('maskedFill: random shapes, layouts, dtypes and broadcast masks', (t) => {
  const rng = new Rng(808);
  for (let trial = 0; trial < 24; trial++) {
    const dtype = rng.pick([...FLOATS, 'int32', 'int64'] as DType[]);
    const shape = randomShape(rng, 4, 5);
    const a = makeTensor(refFromFn(shape, () => rng.int(-9, 9)), dtype, LAYOUTS[trial % LAYOUTS.length]);
    const maskShape = rng.next() < 0.5 ? shape : broadcastPartner(rng, shape);
    const mask = randomMask(rng, maskShape, LAYOUTS[(trial >> 2) % LAYOUTS.length]);
    const value = dtype.startsWith('int') ? rng.int(-100, 100) : rng.pick([-Infinity, NaN, 0.5, -1e4]);
    const out = ig.maskedFill(a.t, mask.t, value);
    t.is(out.dtype, dtype);
    const m = refBroadcast(a.ref, mask.ref, (_, c) => c);
    const filled = roundTo(value, dtype);
    assertClose(t, out, refFromFn(a.ref.shape, (i) => (m.data[i] ? filled : a.ref.data[i])), undefined, `maskedFill ${dtype}`);
    for (const x of [a.t, mask.t, out]) x.dispose();
  }
});

test('maskedFill: bad arguments', (t) => {
  const a = ig.zeros([2, 3]);
  assertCode(t, () => ig.maskedFill(a, ig.ones([2, 3]), 1), 'ERR_DTYPE', /mask.*float32/);
  assertCode(t, () => ig.maskedFill(a, ig.tensor([true, false]), 1), 'ERR_SHAPE');
  // a mask may broadcast to t's shape but not enlarge it
  assertCode(t, () => ig.maskedFill(ig.zeros([3]), ig.full([2, 3], true), 1), 'ERR_SHAPE', /\[2, 3\].*\[3\]/);
  assertCode(t, () => ig.maskedFill(a, ig.full([3], true), '1' as unknown as number), 'ERR_ARG');
  assertCode(t, () => ig.maskedFill(a, [true] as unknown as ig.Tensor, 1), 'ERR_ARG');
  assertCode(t, () => ig.maskedFill(ig.zeros([3], { dtype: 'int32' }), ig.full([3], true), 0.5), 'ERR_ARG', /int32/);
  assertCode(t, () => ig.maskedFill(ig.zeros([3], { dtype: 'int64' }), ig.full([3], true), -Infinity), 'ERR_ARG');
  t.deepEqual(ig.maskedFill(ig.full([2], false), ig.tensor([true, false]), 1).toArray(), [true, false]);
  const gone = ig.full([3], true);
  gone.dispose();
  assertCode(t, () => ig.maskedFill(a, gone, 1), 'ERR_DISPOSED');
  assertCode(t, () => gone.maskedFill(ig.full([3], true), 1), 'ERR_DISPOSED');
});

test('large outputs: blocks reused after dispose hold the right values', (t) => {
  // 8 MB float32 tensors come from the large-block cache: a freed output is the next one's memory
  const rng = new Rng(2024);
  const n = 2 * 1024 * 1024;
  const before = ig.memory().bytes.cpu;
  const a = randomTensor(rng, [n], 'float32');
  const b = randomTensor(rng, [n], 'float32');
  for (const [name, op, ref] of BINARY.slice(0, 3)) {
    const out = op(a.t, b.t);
    assertClose(t, out, refBroadcast(a.ref, b.ref, ref), undefined, `${name} of ${n}`);
    out.dispose();
  }
  ig.tidy(() => {
    const transposed = a.t.view(1024, 2048).mT;
    assertClose(t, ig.exp(transposed), refMap(refOf(transposed), Math.exp), undefined, 'exp transposed');
  });
  a.t.dispose();
  b.t.dispose();
  t.is(ig.memory().bytes.cpu, before);
});

import test from 'ava';
import * as ig from '../../lib';
import { DType } from '../../lib';
import { addon } from '../../lib/native';
import {
  LAYOUTS,
  Ref,
  Rng,
  assertClose,
  assertCode,
  makeTensor,
  numel,
  permutedTensor,
  randomShape,
  randomTensor,
  refFromFn,
  rowMajorStrides,
  tolerance,
  unravel,
} from '../helpers';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];

/**
 * Reference reduction: f gets, for every output element, the values reduced into it in
 * row-major order (so an argmax is an index into that list). dims null or [] = every dim.
 */
function refReduce(a: Ref, dims: number[] | null, keepdim: boolean, f: (values: number[]) => number): Ref {
  const nd = a.shape.length;
  const reduced = (d: number) => dims === null || dims.length === 0 || dims.some((x) => (x < 0 ? x + nd : x) === d);
  const kept = a.shape.map((s, d) => (reduced(d) ? 1 : s));
  const keptStrides = rowMajorStrides(kept);
  const groups: number[][] = Array.from({ length: numel(kept) }, () => []);
  for (let i = 0; i < a.data.length; i++) {
    const idx = unravel(i, a.shape);
    let o = 0;
    for (let d = 0; d < nd; d++) if (!reduced(d)) o += idx[d] * keptStrides[d];
    groups[o].push(a.data[i]);
  }
  const shape = keepdim ? kept : a.shape.filter((_, d) => !reduced(d));
  return { shape, data: Float64Array.from(groups, f) };
}

const refSum = (v: number[]) => v.reduce((s, x) => s + x, 0);
const refMean = (v: number[]) => refSum(v) / v.length;
const refVar = (correction: number) => (v: number[]) => {
  const m = refMean(v);
  return v.reduce((s, x) => s + (x - m) ** 2, 0) / Math.max(0, v.length - correction);
};
const refMax = (v: number[]) => (v.some(Number.isNaN) ? NaN : v.reduce((m, x) => (x > m ? x : m), -Infinity));
const refMin = (v: number[]) => (v.some(Number.isNaN) ? NaN : v.reduce((m, x) => (x < m ? x : m), Infinity));
const refArg = (best: (v: number[]) => number) => (v: number[]) => {
  const nan = v.findIndex(Number.isNaN);
  return nan >= 0 ? nan : v.indexOf(best(v));
};
const refLogsumexp = (v: number[]) => {
  const m = refMax(v);
  const shift = Number.isFinite(m) ? m : 0;
  return Math.log(v.reduce((s, x) => s + Math.exp(x - shift), 0)) + shift;
};

/**
 * Tolerance of a reduction: the dtype's, plus for sums (and means) the rounding a float32 (or
 * float64) accumulation may add, which scales with the sum of |x| over the reduced elements
 * (divided by their count for a mean).
 */
function reduceTolerance(dtype: DType, a: Ref, dims: number[] | null, kind: Kind): [number, number] {
  const [rtol, atol] = tolerance(dtype);
  if (kind === 'other') return [rtol, atol];
  const unit = dtype === 'float64' ? 2 ** -53 : 2 ** -24;
  const scale = refReduce(a, dims, false, (v) => v.reduce((s, x) => s + Math.abs(x), 0) / (kind === 'mean' ? Math.max(v.length, 1) : 1));
  return [rtol, atol + 8 * unit * Math.max(0, ...scale.data)];
}

/** A random dim argument: undefined, one dim (maybe negative) or a list of distinct dims. */
function randomDims(rng: Rng, ndim: number): number | number[] | undefined {
  const r = rng.next();
  if (r < 0.2 || ndim === 0) return undefined;
  if (r < 0.5) return rng.int(-ndim, ndim - 1);
  const dims = Array.from({ length: ndim }, (_, i) => i).filter(() => rng.next() < 0.5);
  return dims.map((d) => (rng.next() < 0.3 ? d - ndim : d));
}

const dimList = (dim: number | number[] | undefined): number[] | null => (dim === undefined ? null : typeof dim === 'number' ? [dim] : dim);

type Kind = 'sum' | 'mean' | 'other';
type MultiDimOp = (t: ig.Tensor, dim?: number | number[], keepdim?: boolean) => ig.Tensor;
const MULTI: [string, MultiDimOp, (v: number[]) => number, Kind][] = [
  ['sum', ig.sum, refSum, 'sum'],
  ['mean', ig.mean, refMean, 'mean'],
  ['var', (t, d, k) => ig.variance(t, d, k), refVar(1), 'other'],
  ['var correction 0', (t, d, k) => ig.variance(t, d, k, 0), refVar(0), 'other'],
  ['logsumexp', (t, d, k) => ig.logsumexp(t, d as number | number[], k), refLogsumexp, 'other'],
];

for (const [name, op, ref, kind] of MULTI) {
  test(`${name}: random shapes, dims, keepdim, layouts and dtypes against float64`, (t) => {
    const rng = new Rng(name.length * 104729);
    for (let trial = 0; trial < 60; trial++) {
      const dtype = rng.pick(FLOATS);
      const shape = randomShape(rng, 4, 5);
      const layout = rng.pick(LAYOUTS);
      const dim = randomDims(rng, shape.length);
      const keepdim = rng.next() < 0.5;
      const a = randomTensor(rng, shape, dtype, layout);
      const out = op(a.t, dim, keepdim);
      t.is(out.dtype, dtype);
      const what = `${name} ${dtype} ${layout} ${JSON.stringify(shape)} dim ${JSON.stringify(dim)} keepdim ${keepdim}`;
      const dims = dimList(dim);
      assertClose(t, out, refReduce(a.ref, dims, keepdim, ref), reduceTolerance(dtype, a.ref, dims, kind), what);
      a.t.dispose();
      out.dispose();
    }
  });
}

type OneDimOp = (t: ig.Tensor, dim?: number, keepdim?: boolean) => ig.Tensor;
const EXTREMES: [string, OneDimOp, (v: number[]) => number, boolean][] = [
  ['max', ig.max, refMax, false],
  ['min', ig.min, refMin, false],
  ['argmax', ig.argmax, refArg(refMax), true],
  ['argmin', ig.argmin, refArg(refMin), true],
];

for (const [name, op, ref, isArg] of EXTREMES) {
  test(`${name}: random shapes, dims, layouts and dtypes (ints too), exact`, (t) => {
    const rng = new Rng(name.length * 7919 + 3);
    for (let trial = 0; trial < 60; trial++) {
      const dtype = rng.pick<DType>([...FLOATS, 'int32', 'int64']);
      const shape = randomShape(rng, 4, 5);
      const layout = rng.pick(LAYOUTS);
      const dim = shape.length > 0 && rng.next() < 0.7 ? rng.int(-shape.length, shape.length - 1) : undefined;
      const keepdim = rng.next() < 0.5;
      // integers, or floats with ties (16-bit rounding makes many): first occurrence must win
      const values = refFromFn(shape, () => (dtype.startsWith('int') ? rng.int(-20, 20) : rng.uniform()));
      const a = makeTensor(values, dtype, layout);
      const out = op(a.t, dim, keepdim);
      t.is(out.dtype, isArg ? 'int64' : dtype);
      const what = `${name} ${dtype} ${layout} ${JSON.stringify(shape)} dim ${dim} keepdim ${keepdim}`;
      assertClose(t, out, refReduce(a.ref, dimList(dim), keepdim, ref), [0, 0], what);
      a.t.dispose();
      out.dispose();
    }
  });
}

test('permuted inputs are walked in memory order', (t) => {
  const rng = new Rng(23);
  for (let trial = 0; trial < 40; trial++) {
    const a = permutedTensor(rng, randomShape(rng, 4, 9, 2), rng.pick<DType>(['float32', 'float64']));
    const dim = randomDims(rng, a.t.ndim);
    const keepdim = rng.next() < 0.5;
    const dims = dimList(dim);
    const what = `${JSON.stringify(a.t.shape)} strides ${JSON.stringify(a.t.strides)} dim ${JSON.stringify(dim)}`;
    for (const [name, op, ref, kind] of MULTI) {
      assertClose(t, op(a.t, dim, keepdim), refReduce(a.ref, dims, keepdim, ref), reduceTolerance(a.t.dtype, a.ref, dims, kind), `${name} ${what}`);
    }
    const one = typeof dim === 'number' ? dim : undefined;
    for (const [name, op, ref] of EXTREMES) {
      assertClose(t, op(a.t, one, keepdim), refReduce(a.ref, dimList(one), keepdim, ref), [0, 0], `${name} ${what}`);
    }
    a.t.dispose();
  }
});

test('medium shapes take the column, copy and parallel paths', (t) => {
  const rng = new Rng(11);
  const cases: [number[], number[]][] = [
    [[300, 600], [0]], // columns: several blocks of columns, a multi-level tree over rows
    [[7, 130, 33], [1]], // columns with outer dims
    [[20, 30, 40], [0, 2]], // reduced dims no stride joins: copied
    [[600, 300], [1]], // rows
    [[5, 70000], [1]], // long rows on several threads
    [[2, 3, 4, 5], [3, 1]],
  ];
  for (const [shape, dims] of cases) {
    for (const layout of ['contiguous', 'transposed'] as const) {
      const a = randomTensor(rng, shape, 'float32', layout);
      for (const [name, op, ref, kind] of MULTI) {
        const tol = reduceTolerance('float32', a.ref, dims, kind);
        assertClose(t, op(a.t, dims, false), refReduce(a.ref, dims, false, ref), tol, `${name} ${shape} ${dims} ${layout}`);
      }
      if (dims.length === 1) {
        for (const [name, op, ref] of EXTREMES) {
          assertClose(t, op(a.t, dims[0], true), refReduce(a.ref, dims, true, ref), [0, 0], `${name} ${shape} ${dims} ${layout}`);
        }
      }
      a.t.dispose();
    }
  }
});

test('float32 sums over a million elements stay within float32 tolerance', (t) => {
  const rng = new Rng(3);
  const n = 1_000_003;
  const values = Float32Array.from({ length: n }, () => rng.uniform(0, 1));
  const exact = values.reduce((s, x) => s + x, 0);
  const x = ig.tensor(values);
  t.true(Math.abs(ig.sum(x).item() - exact) <= 1e-6 * exact, `sum ${ig.sum(x).item()} vs ${exact}`);
  t.true(Math.abs(ig.mean(x).item() - exact / n) <= 1e-6 * (exact / n));
  // the same elements as columns: [n/... rows, 3] summed over rows (a tree over rows)
  const rows = ig.tensor(values.subarray(0, 999_999), { shape: [333_333, 3] });
  const columns = ig.sum(rows, 0).data() as Float32Array;
  for (let j = 0; j < 3; j++) {
    let e = 0;
    for (let i = j; i < 999_999; i += 3) e += values[i];
    t.true(Math.abs(columns[j] - e) <= 1e-6 * e, `column ${j}: ${columns[j]} vs ${e}`);
  }
  // variance around a large mean (two passes keep it accurate)
  const shifted = Float32Array.from(values, (v) => 1000 + v);
  const xs = ig.tensor(shifted);
  const m = shifted.reduce((s, v) => s + v, 0) / n;
  const v = shifted.reduce((s, y) => s + (y - m) ** 2, 0) / (n - 1);
  t.true(Math.abs(ig.variance(xs).item() - v) <= 1e-5 * v, `var ${ig.variance(xs).item()} vs ${v}`);
  const lse = Math.log(values.reduce((s, y) => s + Math.exp(y), 0));
  t.true(Math.abs(ig.logsumexp(x, 0).item() - lse) <= 1e-6 * lse);
  for (const y of [x, rows, xs]) y.dispose();
});

test('long reductions give the same bits on one thread and on several', (t) => {
  const rng = new Rng(5);
  const x = ig.tensor(Float32Array.from({ length: 500_000 }, () => rng.uniform()));
  const threads = ig.getNumThreads();
  try {
    ig.setNumThreads(1);
    const one = [ig.sum(x).item(), ig.variance(x).item(), ig.logsumexp(x, 0).item()];
    ig.setNumThreads(Math.max(2, threads));
    const many = [ig.sum(x).item(), ig.variance(x).item(), ig.logsumexp(x, 0).item()];
    t.deepEqual(one, many);
  } finally {
    ig.setNumThreads(threads);
  }
});

test('argmax and max over a long row find the first occurrence', (t) => {
  const n = 300_000;
  const values = new Float32Array(n).fill(0.5);
  values[123_456] = 2;
  values[234_567] = 2;
  values[10] = -3;
  values[20] = -3;
  const x = ig.tensor(values);
  t.is(ig.argmax(x).item(), 123_456);
  t.is(ig.max(x).item(), 2);
  t.is(ig.argmin(x, 0).item(), 10);
  values[250_000] = NaN;
  values[260_000] = NaN;
  const y = ig.tensor(values);
  t.is(ig.argmax(y).item(), 250_000);
  t.is(ig.argmin(y).item(), 250_000);
  t.true(Number.isNaN(ig.max(y).item()));
});

test('special values: NaN propagates, infinities, rows of -inf', (t) => {
  const x = ig.tensor([
    [1, NaN, 3],
    [-Infinity, -Infinity, -Infinity],
    [Infinity, 1, 2],
    [-Infinity, 0, -Infinity],
  ]);
  const maxRow = ig.max(x, 1).toArray() as number[];
  t.true(Number.isNaN(maxRow[0]));
  t.deepEqual(maxRow.slice(1), [-Infinity, Infinity, 0]);
  t.deepEqual(ig.argmax(x, 1).toArray(), [1, 0, 0, 1]);
  t.deepEqual(ig.argmin(x, 1).toArray(), [1, 0, 1, 0]);
  const lse = ig.logsumexp(x, 1).toArray() as number[];
  t.true(Number.isNaN(lse[0]));
  t.deepEqual(lse.slice(1), [-Infinity, Infinity, 0]);
  const sums = ig.sum(x, 1).toArray() as number[];
  t.true(Number.isNaN(sums[0]));
  t.deepEqual(sums.slice(1), [-Infinity, Infinity, -Infinity]);
  // columns (a leading-dim reduction) handle them the same way
  const cols = x.transpose(0, 1).contiguous();
  t.deepEqual(ig.argmax(cols, 0).toArray(), [1, 0, 0, 1]);
  const colLse = ig.logsumexp(cols, 0).toArray() as number[];
  t.true(Number.isNaN(colLse[0]));
  t.deepEqual(colLse.slice(1), [-Infinity, Infinity, 0]);
  // large values do not overflow
  const big = ig.tensor([1000, 1000], { dtype: 'float64' });
  t.true(Math.abs(ig.logsumexp(big, 0).item() - (1000 + Math.log(2))) < 1e-12);
});

test('integer and bool tensors: sums are int64, max/argmax work, mean/var/logsumexp need floats', (t) => {
  const i = ig.tensor([[1, -2, 3], [4, 5, -6]], { dtype: 'int32' });
  const s = ig.sum(i, 1);
  t.is(s.dtype, 'int64');
  t.deepEqual(s.toArray(), [2, 3]);
  t.deepEqual(ig.sum(i).toArray(), 5);
  t.deepEqual(ig.sum(i, 0).toArray(), [5, 3, -3]);
  const b = ig.tensor([[true, false, true], [true, true, true]]);
  t.is(ig.sum(b).dtype, 'int64');
  t.deepEqual(ig.sum(b, 1).toArray(), [2, 3]);
  t.deepEqual(ig.max(i, 0).toArray(), [4, 5, 3]);
  t.is(ig.max(i, 0).dtype, 'int32');
  t.deepEqual(ig.argmin(i.to('int64'), 1).toArray(), [1, 2]);
  t.deepEqual(ig.argmax(i).toArray(), 4);
  t.is(ig.sum(ig.ones([2], { dtype: 'bfloat16' })).dtype, 'bfloat16');
  for (const op of [ig.mean, (x: ig.Tensor) => ig.variance(x), (x: ig.Tensor) => ig.logsumexp(x, 0)]) {
    assertCode(t, () => op(i), 'ERR_DTYPE', /float/);
    assertCode(t, () => op(b), 'ERR_DTYPE');
  }
});

test('empty reductions: sum 0, mean NaN, max and argmax refuse', (t) => {
  const e = ig.zeros([0, 3]);
  t.deepEqual(ig.sum(e, 0).toArray(), [0, 0, 0]);
  t.is(ig.sum(e).item(), 0);
  t.deepEqual(ig.sum(e, 1).shape, [0]);
  t.true(Number.isNaN(ig.mean(e).item()));
  t.true((ig.mean(e, 0).toArray() as number[]).every(Number.isNaN));
  t.true(Number.isNaN(ig.variance(e).item()));
  t.is(ig.logsumexp(e, 0).toArray().toString(), [-Infinity, -Infinity, -Infinity].toString());
  t.deepEqual(ig.max(e, 1).shape, [0]);
  t.deepEqual(ig.argmax(e, 1, true).shape, [0, 1]);
  assertCode(t, () => ig.max(e), 'ERR_SHAPE');
  assertCode(t, () => ig.argmax(e, 0), 'ERR_SHAPE');
  assertCode(t, () => ig.min(e, -2), 'ERR_SHAPE');
  assertCode(t, () => ig.argmin(e), 'ERR_SHAPE');
  t.is(ig.sum(ig.zeros([0], { dtype: 'int32' })).item(), 0);
});

test('0-dim tensors, keepdim of every dim, Tensor methods', (t) => {
  const s = ig.tensor(2.5);
  t.deepEqual(ig.sum(s).shape, []);
  t.is(ig.sum(s, 0).item(), 2.5);
  t.is(ig.max(s, -1, true).item(), 2.5);
  t.is(ig.argmax(s).item(), 0);
  t.is(ig.logsumexp(s, 0).item(), 2.5);
  const x = ig.tensor([[1, 2], [3, 4]]);
  t.deepEqual(ig.sum(x, undefined, true).shape, [1, 1]);
  t.deepEqual(ig.argmax(x, undefined, true).toArray(), [[3]]);
  t.deepEqual(ig.sum(x, []).toArray(), 10); // [] reduces every dim, as PyTorch
  t.is(x.sum().item(), 10);
  t.is(x.mean([0, 1]).item(), 2.5);
  t.deepEqual(x.max(0).toArray(), [3, 4]);
  t.deepEqual(x.argmin(1, true).toArray(), [[0], [0]]);
  t.deepEqual(x.var(1, false, 0).toArray(), [0.25, 0.25]);
  t.is(x.logsumexp([0, 1]).item(), Math.fround(Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(4))));
});

test('bad arguments raise the right codes', (t) => {
  const x = ig.zeros([2, 3]);
  assertCode(t, () => ig.sum(x, 2), 'ERR_INDEX', /sum: dim 2/);
  assertCode(t, () => ig.mean(x, [-3]), 'ERR_INDEX');
  assertCode(t, () => ig.max(x, 5), 'ERR_INDEX');
  assertCode(t, () => ig.argmax(x, -3), 'ERR_INDEX');
  assertCode(t, () => ig.sum(x, 0.5), 'ERR_ARG');
  assertCode(t, () => ig.variance(x, [NaN]), 'ERR_ARG');
  assertCode(t, () => ig.sum(x, [0, 0]), 'ERR_ARG', /repeats/);
  assertCode(t, () => ig.mean(x, [1, -1]), 'ERR_ARG');
  assertCode(t, () => ig.sum(x, '0' as unknown as number), 'ERR_ARG');
  assertCode(t, () => ig.max(x, [0] as unknown as number), 'ERR_ARG');
  assertCode(t, () => ig.argmax(x, 0, 1 as unknown as boolean), 'ERR_ARG');
  assertCode(t, () => ig.variance(x, 0, false, NaN), 'ERR_ARG');
  assertCode(t, () => ig.sum([1, 2] as unknown as ig.Tensor), 'ERR_ARG');
  const d = ig.zeros([2]);
  d.dispose();
  assertCode(t, () => ig.sum(d), 'ERR_DISPOSED');
  assertCode(t, () => ig.argmax(d), 'ERR_DISPOSED');
  assertCode(t, () => ig.logsumexp(d, 0), 'ERR_DISPOSED');
});

test('the native entry validates on its own', (t) => {
  const native = addon as { reduce(op: number, h: unknown, dims: unknown, keepdim: unknown, correction: unknown): number };
  const x = ig.zeros([2, 3], { dtype: 'int32' });
  const h = x.handle('test');
  assertCode(t, () => native.reduce(99, h, null, false, 0), 'ERR_ARG');
  assertCode(t, () => native.reduce(0, h, [2], false, 0), 'ERR_INDEX');
  assertCode(t, () => native.reduce(0, h, [1, 1], false, 0), 'ERR_ARG');
  assertCode(t, () => native.reduce(6, h, [0, 1], false, 0), 'ERR_ARG');
  assertCode(t, () => native.reduce(1, h, null, false, 0), 'ERR_DTYPE');
  assertCode(t, () => native.reduce(4, ig.zeros([0]).handle('test'), null, false, 0), 'ERR_SHAPE');
  assertCode(t, () => native.reduce(2, ig.zeros([2]).handle('test'), null, false, Infinity), 'ERR_ARG');
  assertCode(t, () => native.reduce(0, h, null, 'no', 0), 'ERR_ARG');
});

import test from 'ava';
import * as ig from '../../lib';
import { DType } from '../../lib';
import { LAYOUTS, Ref, Rng, assertClose, assertCode, permutedTensor, randomShape, randomTensor, rowMajorStrides, tolerance } from '../helpers';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];

/** Reference softmax (or log-softmax) of every line of `a` along `dim`, in float64. */
function refSoftmax(a: Ref, dim: number, log: boolean): Ref {
  const out = new Float64Array(a.data.length);
  if (a.shape.length === 0) {
    out[0] = log ? a.data[0] - a.data[0] : Math.exp(a.data[0] - a.data[0]);
    return { shape: [], data: out };
  }
  const d = dim < 0 ? dim + a.shape.length : dim;
  const n = a.shape[d];
  const step = rowMajorStrides(a.shape)[d];
  for (let start = 0; start < a.data.length; start++) {
    // the first element of a line has index 0 along d
    if (Math.floor(start / step) % n !== 0) continue;
    const at = (k: number) => start + k * step;
    let max = -Infinity;
    for (let k = 0; k < n; k++) max = Math.max(max, a.data[at(k)]);
    let total = 0;
    for (let k = 0; k < n; k++) total += Math.exp(a.data[at(k)] - max);
    for (let k = 0; k < n; k++) out[at(k)] = log ? a.data[at(k)] - max - Math.log(total) : Math.exp(a.data[at(k)] - max) / total;
  }
  return { shape: a.shape.slice(), data: out };
}

for (const [name, op, log] of [
  ['softmax', ig.softmax, false],
  ['logSoftmax', ig.logSoftmax, true],
] as const) {
  test(`${name}: random shapes, dims, layouts and dtypes against float64`, (t) => {
    const rng = new Rng(log ? 17 : 71);
    for (let trial = 0; trial < 80; trial++) {
      const dtype = rng.pick(FLOATS);
      const shape = randomShape(rng, 4, 6, 1);
      const layout = rng.pick(LAYOUTS);
      const dim = rng.int(-shape.length, shape.length - 1);
      const a = randomTensor(rng, shape, dtype, layout, -4, 4);
      const out = op(a.t, dim);
      t.is(out.dtype, dtype);
      assertClose(t, out, refSoftmax(a.ref, dim, log), undefined, `${name} ${dtype} ${layout} ${JSON.stringify(shape)} dim ${dim}`);
      a.t.dispose();
      out.dispose();
    }
  });

  test(`${name}: long rows, many rows, leading dims, non-contiguous`, (t) => {
    const rng = new Rng(5);
    const cases: [number[], number][] = [
      [[3, 20000], 1],
      [[500, 64], -1],
      [[300, 70], 0], // along a leading dim: columns
      [[4, 100, 300], 1],
      [[2, 3, 1], 1],
    ];
    for (const [shape, dim] of cases) {
      for (const layout of ['contiguous', 'transposed', 'strided'] as const) {
        const a = randomTensor(rng, shape, 'float32', layout, -10, 10);
        assertClose(t, op(a.t, dim), refSoftmax(a.ref, dim, log), undefined, `${name} ${shape} dim ${dim} ${layout}`);
        a.t.dispose();
      }
    }
  });

  test(`${name}: permuted inputs`, (t) => {
    const rng = new Rng(log ? 29 : 31);
    for (let trial = 0; trial < 30; trial++) {
      const a = permutedTensor(rng, randomShape(rng, 4, 9, 2), 'float32');
      const dim = rng.int(0, a.t.ndim - 1);
      assertClose(t, op(a.t, dim), refSoftmax(a.ref, dim, log), undefined, `${name} ${JSON.stringify(a.t.shape)} strides ${JSON.stringify(a.t.strides)} dim ${dim}`);
      a.t.dispose();
    }
  });

  test(`${name}: special values and large inputs`, (t) => {
    const x = ig.tensor([
      [1000, 1001, 999],
      [-Infinity, -Infinity, -Infinity],
      [-Infinity, 0, -Infinity],
      [Infinity, 1, 2],
      [NaN, 1, 2],
      [-1e30, 0, 1e30],
    ]);
    const ref = refSoftmax({ shape: [6, 3], data: Float64Array.from(x.data() as Float32Array) }, 1, log);
    // all -inf rows and rows with +inf or NaN are NaN, as PyTorch
    t.true(ref.data.slice(3, 6).every(Number.isNaN) && ref.data.slice(9, 15).every(Number.isNaN));
    assertClose(t, op(x, 1), ref);
    // the same along a leading dim (columns)
    const cols = x.transpose(0, 1).contiguous();
    assertClose(t, op(cols, 0), refSoftmax({ shape: [3, 6], data: Float64Array.from(cols.data() as Float32Array) }, 0, log));
  });
}

test('softmax rows sum to one and exp is accurate over the float32 range', (t) => {
  // softmax([0, d])[1] = e^d / (1 + e^d): the exponential in float32 across its range
  const ds = Array.from({ length: 1000 }, (_, i) => -87 + (i * 174) / 999);
  const x = ig.tensor(Float32Array.from(ds.flatMap((d) => [0, d])), { shape: [ds.length, 2] });
  const ref = { shape: [ds.length, 2], data: Float64Array.from(ds.flatMap((d) => [1 / (1 + Math.exp(Math.fround(d))), 1 / (1 + Math.exp(-Math.fround(d)))])) };
  assertClose(t, ig.softmax(x, 1), ref, [2e-6, 1e-37]);
  const rng = new Rng(2);
  const y = randomTensor(rng, [7, 1000], 'float32', 'contiguous', -30, 30);
  const sums = ig.sum(ig.softmax(y.t, 1), 1).data() as Float32Array;
  t.true(sums.every((s) => Math.abs(s - 1) < 1e-5));
});

test('softmax of a 0-dim tensor and of size-1 dims', (t) => {
  t.is(ig.softmax(ig.tensor(3), 0).item(), 1);
  t.is(ig.logSoftmax(ig.tensor(3), -1).item(), 0);
  t.deepEqual(ig.softmax(ig.tensor([[5], [7]]), 1).toArray(), [[1], [1]]);
  t.deepEqual(ig.softmax(ig.zeros([0, 4]), 1).shape, [0, 4]);
  t.deepEqual(ig.softmax(ig.zeros([3, 0]), 0).shape, [3, 0]);
  const x = ig.tensor([[1, 2], [3, 4]]);
  assertClose(t, x.softmax(0), refSoftmax({ shape: [2, 2], data: Float64Array.from([1, 2, 3, 4]) }, 0, false));
  assertClose(t, x.logSoftmax(-1), refSoftmax({ shape: [2, 2], data: Float64Array.from([1, 2, 3, 4]) }, -1, true));
});

test('softmax computes 16-bit floats in float32', (t) => {
  const rng = new Rng(8);
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const a = randomTensor(rng, [16, 300], dtype, 'contiguous', -8, 8);
    const wide = a.t.to('float32');
    // the 16-bit result is the float32 result rounded once
    assertClose(t, ig.softmax(a.t, 1), refSoftmax(a.ref, 1, false), tolerance(dtype));
    assertClose(t, ig.softmax(a.t, 1).to('float32'), { shape: [16, 300], data: Float64Array.from(ig.softmax(wide, 1).to(dtype).to('float32').data() as Float32Array) }, [0, 0]);
  }
});

test('softmax: bad arguments raise the right codes', (t) => {
  const x = ig.zeros([2, 3]);
  for (const op of [ig.softmax, ig.logSoftmax]) {
    assertCode(t, () => op(x, 2), 'ERR_INDEX');
    assertCode(t, () => op(x, -3), 'ERR_INDEX');
    assertCode(t, () => op(x, 0.5), 'ERR_ARG');
    assertCode(t, () => op(x, undefined as unknown as number), 'ERR_ARG');
    assertCode(t, () => op(ig.zeros([2], { dtype: 'int32' }), 0), 'ERR_DTYPE', /floating-point/);
    assertCode(t, () => op(ig.zeros([2], { dtype: 'bool' }), 0), 'ERR_DTYPE');
    assertCode(t, () => op({} as ig.Tensor, 0), 'ERR_ARG');
    const d = ig.zeros([2]);
    d.dispose();
    assertCode(t, () => op(d, 0), 'ERR_DISPOSED');
  }
});

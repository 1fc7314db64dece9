import test from 'ava';
import * as ig from '../../lib';
import { DType } from '../../lib';
import { LAYOUTS, Ref, Rng, assertClose, assertCode, numel, randomShape, randomTensor } from '../helpers';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];
const MACHINE_EPS: Record<string, number> = { float32: 2 ** -23, float64: 2 ** -52, bfloat16: 2 ** -7, float16: 2 ** -10 };

/**
 * Reference normalisation of every row of n trailing elements: y = (x - shift) * scale * w + b,
 * where stats(row) gives [shift, scale].
 */
function refNorm(x: Ref, n: number, stats: (row: Float64Array) => [number, number], w?: Ref, b?: Ref): Ref {
  const out = new Float64Array(x.data.length);
  for (let start = 0; start < x.data.length; start += n) {
    const row = x.data.subarray(start, start + n);
    const [shift, scale] = stats(row);
    for (let i = 0; i < n; i++) out[start + i] = (row[i] - shift) * scale * (w ? w.data[i] : 1) + (b ? b.data[i] : 0);
  }
  return { shape: x.shape.slice(), data: out };
}

const layerStats = (eps: number) => (row: Float64Array): [number, number] => {
  const mean = row.reduce((s, v) => s + v, 0) / row.length;
  const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / row.length;
  return [mean, 1 / Math.sqrt(variance + eps)];
};
const rmsStats = (eps: number) => (row: Float64Array): [number, number] => [0, 1 / Math.sqrt(row.reduce((s, v) => s + v * v, 0) / row.length + eps)];

/** A random input shape and the trailing part of it to normalise. */
function randomCase(rng: Rng): { shape: number[]; normalized: number[] } {
  const shape = randomShape(rng, 4, 6, 1);
  const k = rng.int(1, shape.length);
  return { shape, normalized: shape.slice(shape.length - k) };
}

test('layerNorm: random shapes, layouts, dtypes, with and without weight and bias', (t) => {
  const rng = new Rng(41);
  for (let trial = 0; trial < 80; trial++) {
    const dtype = rng.pick(FLOATS);
    const { shape, normalized } = randomCase(rng);
    const x = randomTensor(rng, shape, dtype, rng.pick(LAYOUTS), -3, 5);
    const w = rng.next() < 0.6 ? randomTensor(rng, normalized, dtype, rng.pick(LAYOUTS), 0.5, 2) : undefined;
    const b = rng.next() < 0.6 ? randomTensor(rng, normalized, dtype, rng.pick(LAYOUTS)) : undefined;
    const eps = rng.pick([1e-5, 1e-3, 0.1]);
    const out = ig.layerNorm(x.t, normalized, w?.t, b?.t, eps);
    t.is(out.dtype, dtype);
    const ref = refNorm(x.ref, numel(normalized), layerStats(eps), w?.ref, b?.ref);
    const what = `layerNorm ${dtype} ${JSON.stringify(shape)} over ${JSON.stringify(normalized)} w ${!!w} b ${!!b}`;
    assertClose(t, out, ref, undefined, what);
    for (const u of [x.t, w?.t, b?.t, out]) u?.dispose();
  }
});

test('rmsNorm: random shapes, layouts, dtypes, default eps is the dtype machine epsilon', (t) => {
  const rng = new Rng(43);
  for (let trial = 0; trial < 80; trial++) {
    const dtype = rng.pick(FLOATS);
    const { shape, normalized } = randomCase(rng);
    // small inputs, where eps matters as much as the mean of squares
    const scale = rng.pick([1, 0.05, 1e-3]);
    const x = randomTensor(rng, shape, dtype, rng.pick(LAYOUTS), -scale, scale);
    const w = rng.next() < 0.6 ? randomTensor(rng, normalized, dtype, rng.pick(LAYOUTS), 0.5, 2) : undefined;
    const eps = rng.next() < 0.5 ? undefined : 1e-6;
    const out = ig.rmsNorm(x.t, normalized, w?.t, eps);
    const ref = refNorm(x.ref, numel(normalized), rmsStats(eps ?? MACHINE_EPS[dtype]), w?.ref);
    const what = `rmsNorm ${dtype} ${JSON.stringify(shape)} over ${JSON.stringify(normalized)} w ${!!w} eps ${eps}`;
    assertClose(t, out, ref, undefined, what);
    for (const u of [x.t, w?.t, out]) u?.dispose();
  }
});

test('the default rmsNorm eps is visible on tiny inputs', (t) => {
  for (const dtype of FLOATS) {
    const x = ig.tensor([1e-3, -1e-3], { dtype });
    const got = ig.rmsNorm(x, [2]).to('float64').data() as Float64Array;
    const xs = ig.tensor([1e-3, -1e-3], { dtype }).to('float64').data() as Float64Array;
    const expected = xs[0] / Math.sqrt(xs[0] ** 2 + MACHINE_EPS[dtype]);
    t.true(Math.abs(got[0] - expected) <= 1e-2 * Math.abs(expected), `${dtype}: ${got[0]} vs ${expected}`);
  }
});

test('norms over long rows with a large mean stay accurate', (t) => {
  const rng = new Rng(9);
  const n = 100_000;
  // a float32 mean near 100 is only known to ~4e-6, which (x - mean) / std shows 3.5 times
  // larger; one-pass E[x^2] - E[x]^2 would be wrong by about 1e-2
  const x = randomTensor(rng, [3, n], 'float32', 'contiguous', 100, 101);
  assertClose(t, ig.layerNorm(x.t, [n]), refNorm(x.ref, n, layerStats(1e-5)), [1e-4, 1e-4]);
  assertClose(t, ig.rmsNorm(x.t, n), refNorm(x.ref, n, rmsStats(2 ** -23)));
  const many = randomTensor(rng, [2000, 64], 'float32', 'transposed');
  assertClose(t, ig.layerNorm(many.t, [64]), refNorm(many.ref, 64, layerStats(1e-5)));
});

test('norms of empty tensors and rows of one element', (t) => {
  t.deepEqual(ig.layerNorm(ig.zeros([0, 4]), [4]).shape, [0, 4]);
  t.deepEqual(ig.rmsNorm(ig.zeros([3, 0]), [0]).shape, [3, 0]);
  const x = ig.tensor([[2], [5]]);
  const b = ig.tensor([0.5]);
  t.deepEqual(ig.layerNorm(x, [1], null, b).toArray(), [[0.5], [0.5]]);
});

test('norms: bad arguments raise the right codes', (t) => {
  const x = ig.zeros([2, 3, 4]);
  const w = ig.ones([3, 4]);
  for (const [name, op] of [
    ['layerNorm', (s: unknown, weight?: ig.Tensor | null, input = x) => ig.layerNorm(input, s as number[], weight)],
    ['rmsNorm', (s: unknown, weight?: ig.Tensor | null, input = x) => ig.rmsNorm(input, s as number[], weight)],
  ] as const) {
    t.deepEqual(op([3, 4], w).shape, [2, 3, 4], name);
    assertCode(t, () => op([4], w), 'ERR_SHAPE', /weight of shape \[3, 4\]/);
    assertCode(t, () => op([3, 4], ig.ones([12])), 'ERR_SHAPE');
    assertCode(t, () => op([3]), 'ERR_SHAPE', /does not end with/);
    assertCode(t, () => op([1, 2, 3, 4]), 'ERR_SHAPE');
    assertCode(t, () => op([]), 'ERR_SHAPE');
    assertCode(t, () => op([3.5, 4]), 'ERR_ARG');
    assertCode(t, () => op('4'), 'ERR_ARG');
    assertCode(t, () => op([4], ig.ones([4], { dtype: 'float64' })), 'ERR_DTYPE');
    assertCode(t, () => op([4], null, ig.zeros([2, 4], { dtype: 'int32' })), 'ERR_DTYPE');
    assertCode(t, () => op([4], [1, 1, 1, 1] as unknown as ig.Tensor), 'ERR_ARG');
    const gone = ig.ones([4]);
    gone.dispose();
    assertCode(t, () => op([4], gone), 'ERR_DISPOSED');
    const dx = ig.zeros([4]);
    dx.dispose();
    assertCode(t, () => op([4], null, dx), 'ERR_DISPOSED');
  }
  assertCode(t, () => ig.layerNorm(x, [4], null, ig.zeros([3])), 'ERR_SHAPE', /bias/);
  assertCode(t, () => ig.layerNorm(x, [4], null, null, NaN), 'ERR_ARG');
  assertCode(t, () => ig.layerNorm(x, [4], null, null, -1), 'ERR_ARG');
  assertCode(t, () => ig.rmsNorm(x, [4], null, Infinity), 'ERR_ARG');
});

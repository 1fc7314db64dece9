import test from 'ava';
import * as ig from '../../lib';
import { DType, Tensor } from '../../lib';
import { addon } from '../../lib/native';
import {
  LAYOUTS,
  Ref,
  Rng,
  assertClose,
  assertCode,
  makeTensor,
  numel,
  randomShape,
  randomTensor,
  refFromFn,
  rowMajorStrides,
  unravel,
} from '../helpers';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];
const INDEX_DTYPES: DType[] = ['int32', 'int64'];

/** An index tensor of `shape` holding `values` (row-major), in a random layout. */
function indexTensor(rng: Rng, shape: number[], values: number[], dtype: DType = rng.pick(INDEX_DTYPES)) {
  return makeTensor({ shape, data: Float64Array.from(values) }, dtype, rng.pick(LAYOUTS));
}

function disposeAll(...tensors: Tensor[]): void {
  for (const t of tensors) t.dispose();
}

/** Reference embedding: out[..., j] = weight[indices[...], j]. */
function refEmbedding(indices: Ref, weight: Ref): Ref {
  const dim = weight.shape[1];
  return refFromFn([...indices.shape, dim], (i) => weight.data[indices.data[Math.floor(i / dim)] * dim + (i % dim)]);
}

test('embedding: random shapes, repeated and edge indices, layouts and dtypes against float64', (t) => {
  const rng = new Rng(11);
  for (let trial = 0; trial < 40; trial++) {
    const rows = rng.int(1, 9);
    const dim = rng.int(1, 6);
    const dtype = rng.pick(FLOATS);
    const weight = randomTensor(rng, [rows, dim], dtype, rng.pick(LAYOUTS));
    const shape = randomShape(rng, 3, 5);
    // the first and last rows always, and more indices than rows so that some repeat
    const values = Array.from({ length: numel(shape) }, (_, i) => (i === 0 ? 0 : i === 1 ? rows - 1 : rng.int(0, rows - 1)));
    const idx = indexTensor(rng, shape, values);
    const out = ig.embedding(idx.t, weight.t);
    t.is(out.dtype, dtype);
    assertClose(t, out, refEmbedding(idx.ref, weight.ref), [0, 0], `embedding ${dtype} [${shape}] of [${rows}, ${dim}]`);
    disposeAll(weight.t, idx.t, out);
  }
});

test('embedding: many indices (threads) and a wide weight', (t) => {
  const rng = new Rng(12);
  const weight = randomTensor(rng, [300, 96], 'float32', 'transposed');
  const values = Array.from({ length: 64 * 50 }, () => rng.int(0, 299));
  const idx = indexTensor(rng, [64, 50], values, 'int64');
  const out = ig.embedding(idx.t, weight.t);
  assertClose(t, out, refEmbedding(idx.ref, weight.ref), [0, 0]);
  disposeAll(weight.t, idx.t, out);
});

test('embedding: bad inputs', (t) => {
  const weight = ig.zeros([5, 3]);
  const idx = (values: number[], dtype: DType = 'int64') => ig.tensor(values, { dtype });
  assertCode(t, () => ig.embedding(idx([0, 5, 1]), weight), 'ERR_INDEX', /index 5 .*5 rows/);
  assertCode(t, () => ig.embedding(idx([2, -1], 'int32'), weight), 'ERR_INDEX', /index -1 .*5 rows/);
  assertCode(t, () => ig.embedding(ig.tensor([0, 1]), weight), 'ERR_DTYPE', /int32 or int64.*float32/);
  assertCode(t, () => ig.embedding(idx([0]), ig.zeros([5])), 'ERR_SHAPE');
  assertCode(t, () => ig.embedding(idx([0]), ig.zeros([5, 3], { dtype: 'int32' })), 'ERR_DTYPE');
  assertCode(t, () => ig.embedding([0, 1] as unknown as Tensor, weight), 'ERR_ARG');
  const gone = ig.zeros([4, 2]);
  gone.dispose();
  assertCode(t, () => ig.embedding(idx([0]), gone), 'ERR_DISPOSED');
  assertCode(t, () => ig.embedding(gone, weight), 'ERR_DISPOSED');
  // the empty weight has no valid index
  assertCode(t, () => ig.embedding(idx([0]), ig.zeros([0, 3])), 'ERR_INDEX');
  t.deepEqual(ig.embedding(idx([]), weight).shape, [0, 3]);
});

/** Reference gather along `dim`. */
function refGather(src: Ref, dim: number, index: Ref): Ref {
  const strides = rowMajorStrides(src.shape);
  return refFromFn(index.shape.slice(), (i) => {
    const at = unravel(i, index.shape);
    at[dim] = index.data[i];
    return src.data[at.reduce((acc, v, k) => acc + v * strides[k], 0)];
  });
}

test('gather: along every dim, random shapes, layouts and dtypes against float64', (t) => {
  const rng = new Rng(21);
  for (let trial = 0; trial < 60; trial++) {
    const shape = randomShape(rng, 4, 5, 1);
    const dim = rng.int(0, shape.length - 1);
    const dtype = rng.pick<DType>([...FLOATS, 'int32', 'int64', 'bool']);
    const layout = rng.pick(LAYOUTS);
    const src =
      dtype === 'bool' || dtype === 'int32' || dtype === 'int64'
        ? makeTensor(refFromFn(shape, () => (dtype === 'bool' ? rng.int(0, 1) : rng.int(-50, 50))), dtype, layout)
        : randomTensor(rng, shape, dtype, layout);
    // index sizes: at most t's off `dim`, anything along `dim`
    const indexShape = shape.map((s, d) => (d === dim ? rng.int(1, 6) : rng.int(1, s)));
    const values = Array.from({ length: numel(indexShape) }, () => rng.int(0, shape[dim] - 1));
    const idx = indexTensor(rng, indexShape, values);
    const negative = dim - shape.length;
    const out = ig.gather(src.t, rng.next() < 0.5 ? dim : negative, idx.t);
    t.is(out.dtype, dtype);
    assertClose(t, out, refGather(src.ref, dim, idx.ref), [0, 0], `gather ${dtype} [${shape}] dim ${dim} index [${indexShape}]`);
    disposeAll(src.t, idx.t, out);
  }
});

test('gather: a large index (threads), the Tensor method, 0-dim tensors', (t) => {
  const rng = new Rng(22);
  const src = randomTensor(rng, [200, 300], 'float64', 'strided');
  const values = Array.from({ length: 200 * 400 }, () => rng.int(0, 299));
  const idx = indexTensor(rng, [200, 400], values, 'int32');
  const out = src.t.gather(1, idx.t);
  assertClose(t, out, refGather(src.ref, 1, idx.ref), [0, 0]);
  const scalar = ig.tensor(7);
  const zeroDim = ig.tensor(0, { dtype: 'int64' });
  t.is(ig.gather(scalar, 0, zeroDim).item(), 7);
  t.deepEqual(ig.gather(ig.tensor([4, 5, 6]), -1, ig.tensor(2, { dtype: 'int64' })).shape, []);
  t.is(ig.gather(ig.tensor([4, 5, 6]), -1, ig.tensor(2, { dtype: 'int64' })).item(), 6);
  assertCode(t, () => ig.gather(scalar, 0, ig.tensor(1, { dtype: 'int64' })), 'ERR_INDEX');
  disposeAll(src.t, idx.t, out, scalar, zeroDim);
});

test('gather: bad inputs', (t) => {
  const src = ig.zeros([3, 4]);
  const idx = (values: number[][], dtype: DType = 'int64') => ig.tensor(values, { dtype });
  assertCode(t, () => ig.gather(src, 1, idx([[0, 4]])), 'ERR_INDEX', /index 4 .*dim 1 of size 4/);
  assertCode(t, () => ig.gather(src, 0, idx([[0, -1]], 'int32')), 'ERR_INDEX', /index -1/);
  assertCode(t, () => ig.gather(src, 0, ig.tensor([[0, 1]])), 'ERR_DTYPE');
  assertCode(t, () => ig.gather(src, 0, ig.tensor([0, 1], { dtype: 'int64' })), 'ERR_SHAPE', /as many dims/);
  assertCode(t, () => ig.gather(src, 0, idx([[0, 0, 0, 0, 0]])), 'ERR_SHAPE', /larger .* in dim 1/);
  assertCode(t, () => ig.gather(src, 2, idx([[0]])), 'ERR_INDEX', /dim 2/);
  assertCode(t, () => ig.gather(src, 0.5, idx([[0]])), 'ERR_ARG');
  assertCode(t, () => ig.gather(src, 0, 'x' as unknown as Tensor), 'ERR_ARG');
  const gone = idx([[0]]);
  gone.dispose();
  assertCode(t, () => ig.gather(src, 0, gone), 'ERR_DISPOSED');
});

/** Reference cat along `dim`. */
function refCat(refs: Ref[], dim: number): Ref {
  const shape = refs[0].shape.slice();
  shape[dim] = refs.reduce((n, r) => n + r.shape[dim], 0);
  const out = new Float64Array(numel(shape));
  for (let i = 0; i < out.length; i++) {
    const at = unravel(i, shape);
    let k = 0;
    while (at[dim] >= refs[k].shape[dim]) at[dim] -= refs[k++].shape[dim];
    const strides = rowMajorStrides(refs[k].shape);
    out[i] = refs[k].data[at.reduce((acc, v, d) => acc + v * strides[d], 0)];
  }
  return { shape, data: out };
}

/** The promoted dtype of a list, as the ops must give it. */
function promoted(dtypes: DType[]): DType {
  const float = dtypes.filter((d) => d.startsWith('float') || d === 'bfloat16');
  if (float.includes('float64')) return 'float64';
  if (float.includes('float32') || (float.includes('bfloat16') && float.includes('float16'))) return 'float32';
  if (float.length) return float[0];
  return dtypes.includes('int64') ? 'int64' : 'int32';
}

test('cat: along every dim, mixed layouts and dtypes, empty pieces, against float64', (t) => {
  const rng = new Rng(31);
  for (let trial = 0; trial < 50; trial++) {
    const shape = randomShape(rng, 4, 4, 1);
    const dim = rng.int(0, shape.length - 1);
    const count = rng.int(1, 4);
    const pieces = Array.from({ length: count }, () => {
      const s = shape.slice();
      s[dim] = rng.int(0, 3);
      const dtype = rng.pick<DType>(trial % 3 === 0 ? ['int32', 'int64'] : [...FLOATS, 'int32']);
      return makeTensor(refFromFn(s, () => rng.int(-20, 20) / 4), dtype, rng.pick(LAYOUTS));
    });
    const dtypes = pieces.map((p) => p.t.dtype);
    const out = ig.cat(
      pieces.map((p) => p.t),
      rng.next() < 0.5 ? dim : dim - shape.length,
    );
    t.is(out.dtype, promoted(dtypes), `dtypes ${dtypes}`);
    assertClose(t, out, refCat(pieces.map((p) => p.ref), dim), [0, 0], `cat [${dtypes}] dim ${dim}`);
    disposeAll(out, ...pieces.map((p) => p.t));
  }
});

test('cat: large pieces (threads) and a single tensor', (t) => {
  const rng = new Rng(32);
  const a = randomTensor(rng, [120, 700], 'float32', 'transposed');
  const b = randomTensor(rng, [120, 300], 'float32', 'strided');
  const out = ig.cat([a.t, b.t], 1);
  assertClose(t, out, refCat([a.ref, b.ref], 1), [0, 0]);
  const one = ig.cat([a.t]);
  assertClose(t, one, a.ref, [0, 0]);
  disposeAll(a.t, b.t, out, one);
});

test('stack: every dim in [-(ndim + 1), ndim], mixed layouts and dtypes, against float64', (t) => {
  const rng = new Rng(41);
  for (let trial = 0; trial < 40; trial++) {
    const shape = randomShape(rng, 3, 4);
    const count = rng.int(1, 4);
    const pieces = Array.from({ length: count }, () =>
      makeTensor(refFromFn(shape, () => rng.int(-20, 20) / 4), rng.pick<DType>([...FLOATS, 'int64']), rng.pick(LAYOUTS)),
    );
    const dim = rng.int(-(shape.length + 1), shape.length);
    const d = dim < 0 ? dim + shape.length + 1 : dim;
    const out = ig.stack(
      pieces.map((p) => p.t),
      dim,
    );
    // stacking = concatenating the pieces with a size-1 dim inserted at d
    const withDim = (r: Ref): Ref => ({ shape: [...r.shape.slice(0, d), 1, ...r.shape.slice(d)], data: r.data });
    t.is(out.dtype, promoted(pieces.map((p) => p.t.dtype)));
    assertClose(t, out, refCat(pieces.map((p) => withDim(p.ref)), d), [0, 0], `stack [${shape}] dim ${dim}`);
    disposeAll(out, ...pieces.map((p) => p.t));
  }
});

test('cat and stack: bad inputs', (t) => {
  const a = ig.zeros([2, 3]);
  const b = ig.zeros([2, 4]);
  assertCode(t, () => ig.cat([], 0), 'ERR_ARG');
  assertCode(t, () => ig.stack([], 0), 'ERR_ARG');
  assertCode(t, () => ig.cat(a as unknown as Tensor[], 0), 'ERR_ARG');
  assertCode(t, () => ig.cat([a, 3 as unknown as Tensor], 0), 'ERR_ARG');
  assertCode(t, () => ig.cat([a, b], 0), 'ERR_SHAPE', /tensor 1 has shape \[2, 4\] and tensor 0 has shape \[2, 3\].*dim 0/);
  t.deepEqual(ig.cat([a, b], 1).shape, [2, 7]);
  assertCode(t, () => ig.cat([a, ig.zeros([2, 3, 1])], 0), 'ERR_SHAPE', /number of dims/);
  assertCode(t, () => ig.cat([ig.tensor(1), ig.tensor(2)], 0), 'ERR_SHAPE', /0-dim/);
  assertCode(t, () => ig.cat([a, a], 2), 'ERR_INDEX');
  assertCode(t, () => ig.cat([a, a], 0.5), 'ERR_ARG');
  assertCode(t, () => ig.stack([a, a, b], 0), 'ERR_SHAPE', /tensor 2 has shape \[2, 4\]/);
  assertCode(t, () => ig.stack([a, a], 3), 'ERR_INDEX');
  assertCode(t, () => ig.stack([a, a], -4), 'ERR_INDEX');
  t.deepEqual(ig.stack([a, a], -3).shape, [2, 2, 3]);
  t.deepEqual(ig.stack([ig.tensor(1), ig.tensor(2)]).toArray(), [1, 2]);
  const gone = ig.zeros([2, 3]);
  gone.dispose();
  assertCode(t, () => ig.cat([a, gone], 0), 'ERR_DISPOSED');
  assertCode(t, () => ig.stack([gone], 0), 'ERR_DISPOSED');
});

test('native entry points validate on their own', (t) => {
  // What the TypeScript layer checks first must not crash the addon when it is called directly.
  type Raw = Record<string, (...args: unknown[]) => unknown>;
  const raw = addon as Raw;
  const h = (x: Tensor) => x.handle('test');
  const weight = ig.zeros([4, 2]);
  const floats = ig.tensor([0, 1]);
  const ints = ig.tensor([[0, 3]], { dtype: 'int64' });
  assertCode(t, () => raw.embedding(h(floats), h(weight)), 'ERR_DTYPE');
  assertCode(t, () => raw.embedding(h(ints), h(floats)), 'ERR_SHAPE');
  assertCode(t, () => raw.embedding(h(ints), h(ints)), 'ERR_DTYPE');
  assertCode(t, () => raw.gather(h(weight), 0, h(floats)), 'ERR_DTYPE');
  assertCode(t, () => raw.gather(h(weight), 5, h(ints)), 'ERR_INDEX');
  assertCode(t, () => raw.gather(h(weight), 0, h(ig.tensor([[0, 0, 0]], { dtype: 'int32' }))), 'ERR_SHAPE');
  assertCode(t, () => raw.gather(h(floats), 0, h(ints)), 'ERR_SHAPE');
  assertCode(t, () => raw.cat([], 0, 0), 'ERR_ARG');
  assertCode(t, () => raw.cat([h(weight), h(floats)], 0, 0), 'ERR_SHAPE');
  assertCode(t, () => raw.cat([h(weight), h(weight)], 0, 99), 'ERR_DTYPE');
  assertCode(t, () => raw.stack([h(weight), h(ints)], 0, 0), 'ERR_SHAPE');
  assertCode(t, () => raw.stack([h(weight)], 3, 0), 'ERR_INDEX');
  assertCode(t, () => raw.cat(h(weight), 0, 0), 'ERR_ARG');
  disposeAll(weight, floats, ints);
});

import test from 'ava';
import * as ig from '../../lib';
import { DType, Reduction, Tensor } from '../../lib';
import { addon } from '../../lib/native';
import { LAYOUTS, Ref, Rng, assertClose, assertCode, makeTensor, numel, randomShape, randomTensor, refBroadcast, refFromFn, rowMajorStrides, unravel } from '../helpers';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];
const REDUCTIONS: Reduction[] = ['mean', 'sum', 'none'];

/** Looser than the elementwise defaults: a loss sums C exponentials per row. */
function lossTolerance(dtype: DType): [number, number] {
  switch (dtype) {
    case 'float64':
      return [1e-10, 1e-10];
    case 'float32':
      return [1e-5, 1e-5];
    case 'float16':
      return [2e-3, 2e-3];
    default:
      return [1e-2, 1e-2];
  }
}

function disposeAll(...tensors: Tensor[]): void {
  for (const t of tensors) t.dispose();
}

/** PyTorch's promotion for a float dtype with a float or int32 one. */
function promoted(a: DType, b: DType): DType {
  if (a === b || b === 'int32') return a;
  if (a === 'float64' || b === 'float64') return 'float64';
  return 'float32';
}

function reduce(values: Ref, reduction: Reduction, count: number): Ref {
  if (reduction === 'none') return values;
  const total = values.data.reduce((a, b) => a + b, 0);
  return { shape: [], data: Float64Array.of(reduction === 'sum' ? total : total / count) };
}

/** Reference F.cross_entropy with class-index targets, in float64. */
function refCrossEntropy(logits: Ref, target: Ref, ignoreIndex: number, eps: number, reduction: Reduction): Ref {
  const rank = logits.shape.length;
  const classes = rank === 1 ? logits.shape[0] : logits.shape[1];
  const strides = rowMajorStrides(logits.shape);
  let counted = 0;
  const rows = refFromFn(target.shape.slice(), (i) => {
    const label = target.data[i];
    if (label === ignoreIndex) return 0;
    counted++;
    // logits position of class c for this target position: [n, c, d1, ...], or [c]
    const at = unravel(i, target.shape);
    const offset = rank === 1 ? 0 : at[0] * strides[0] + at.slice(1).reduce((acc, v, k) => acc + v * strides[k + 2], 0);
    const x = Array.from({ length: classes }, (_, c) => logits.data[offset + c * (rank === 1 ? 1 : strides[1])]);
    const max = Math.max(...x);
    const lse = max + Math.log(x.reduce((acc, v) => acc + Math.exp(v - max), 0));
    const nll = lse - x[label];
    if (eps === 0) return nll;
    const mean = x.reduce((a, b) => a + b, 0) / classes;
    return (1 - eps) * nll + eps * (lse - mean);
  });
  return reduce(rows, reduction, counted);
}

test('crossEntropy: random 1-D to 4-D logits, ignored targets, smoothing, every reduction, against float64', (t) => {
  const rng = new Rng(51);
  for (let trial = 0; trial < 80; trial++) {
    const rank = rng.int(1, 4);
    const classes = rng.int(1, 8);
    const batch = rng.int(1, 5);
    const spatial = randomShape(rng, rank - 2, 3, rank - 2);
    const logitsShape = rank === 1 ? [classes] : [batch, classes, ...spatial];
    const targetShape = rank === 1 ? [] : [batch, ...spatial];
    const dtype = rng.pick(FLOATS);
    const logits = randomTensor(rng, logitsShape, dtype, rng.pick(LAYOUTS), -3, 3);
    // the ignored value: the default, a negative one, or a real class
    const ignoreIndex = rng.pick([undefined, -1, rng.int(0, classes - 1)]);
    const ignored = ignoreIndex ?? -100;
    const labels = refFromFn(targetShape, () => (rng.next() < 0.25 ? ignored : rng.int(0, classes - 1)));
    const target = makeTensor(labels, rng.pick<DType>(['int32', 'int64']), rng.pick(LAYOUTS));
    const labelSmoothing = rng.pick([0, 0, 0.1, 0.37, 1]);
    const reduction = rng.pick(REDUCTIONS);
    const out = ig.crossEntropy(logits.t, target.t, { ignoreIndex, labelSmoothing, reduction });
    t.is(out.dtype, dtype);
    const ref = refCrossEntropy(logits.ref, target.ref, ignored, labelSmoothing, reduction);
    const what = `crossEntropy ${dtype} [${logitsShape}] ${reduction} eps ${labelSmoothing} ignore ${ignored}`;
    assertClose(t, out, ref, lossTolerance(dtype), what);
    disposeAll(logits.t, target.t, out);
  }
});

test('crossEntropy: extreme and masked logits stay exact', (t) => {
  const values = [
    [1e4, -1e4, 0, 1e4 - 1],
    [-1e4, -1e4, -1e4, -1e4],
    [1e4, 1e4, -1e4, 0],
    [-1e4, 1e4, 3, -1e4],
  ];
  const logits = ig.tensor(values);
  const ref = { shape: [4, 4], data: Float64Array.from(values.flat()) };
  for (const labels of [
    [3, 1, 2, 1],
    [0, 0, 0, 3],
  ]) {
    const target = ig.tensor(labels, { dtype: 'int64' });
    const targetRef = { shape: [4], data: Float64Array.from(labels) };
    for (const eps of [0, 0.2]) {
      for (const dtype of ['float32', 'float64'] as DType[]) {
        const x = logits.to(dtype);
        const out = ig.crossEntropy(x, target, { reduction: 'none', labelSmoothing: eps });
        assertClose(t, out, refCrossEntropy(ref, targetRef, -100, eps, 'none'), lossTolerance(dtype), `${dtype} eps ${eps}`);
        disposeAll(x, out);
      }
    }
    target.dispose();
  }
  // -inf marks impossible classes: finite loss without smoothing, infinite with it
  const masked = ig.tensor([[-Infinity, 2, 0.5, -Infinity]]);
  const label = ig.tensor([1], { dtype: 'int32' });
  t.true(Math.abs(ig.crossEntropy(masked, label).item() - Math.log(1 + Math.exp(-1.5))) < 1e-6);
  t.is(ig.crossEntropy(masked, label, { labelSmoothing: 0.1 }).item(), Infinity);
  disposeAll(logits, masked, label);
});

test('crossEntropy: many rows and classes (threads), 16-bit logits, strided classes', (t) => {
  const rng = new Rng(52);
  for (const [dtype, layout] of [
    ['float32', 'contiguous'],
    ['bfloat16', 'contiguous'],
    ['bfloat16', 'transposed'],
    ['float16', 'strided'],
  ] as [DType, (typeof LAYOUTS)[number]][]) {
    const logits = randomTensor(rng, [300, 1000], dtype, layout, -5, 5);
    const labels = refFromFn([300], (i) => (i % 7 === 0 ? -100 : rng.int(0, 999)));
    const target = makeTensor(labels, 'int64', 'contiguous');
    for (const reduction of REDUCTIONS) {
      const out = ig.crossEntropy(logits.t, target.t, { reduction, labelSmoothing: 0.05 });
      assertClose(t, out, refCrossEntropy(logits.ref, labels, -100, 0.05, reduction), lossTolerance(dtype), `${dtype} ${reduction}`);
      out.dispose();
    }
    disposeAll(logits.t, target.t);
  }
});

test('crossEntropy: every target ignored gives NaN for mean, 0 for sum', (t) => {
  const logits = ig.tensor([
    [1, 2],
    [3, 4],
  ]);
  const target = ig.tensor([-100, -100], { dtype: 'int64' });
  t.true(Number.isNaN(ig.crossEntropy(logits, target).item()));
  t.is(ig.crossEntropy(logits, target, { reduction: 'sum' }).item(), 0);
  t.deepEqual(ig.crossEntropy(logits, target, { reduction: 'none' }).toArray(), [0, 0]);
  const empty = ig.crossEntropy(ig.zeros([0, 3]), ig.zeros([0], { dtype: 'int64' }), { reduction: 'none' });
  t.deepEqual(empty.shape, [0]);
});

test('crossEntropy: bad inputs', (t) => {
  const logits = ig.zeros([2, 3]);
  const target = ig.tensor([0, 2], { dtype: 'int64' });
  const labels = (values: number[]) => ig.tensor(values, { dtype: 'int32' });
  assertCode(t, () => ig.crossEntropy(logits, labels([0, 3])), 'ERR_INDEX', /target 3 .*3 classes/);
  assertCode(t, () => ig.crossEntropy(logits, labels([-1, 0])), 'ERR_INDEX', /target -1/);
  assertCode(t, () => ig.crossEntropy(logits, labels([-1, 0]), { ignoreIndex: -2 }), 'ERR_INDEX');
  t.is(ig.crossEntropy(logits, labels([-1, 0]), { ignoreIndex: -1, reduction: 'sum' }).item(), Math.fround(Math.log(3)));
  assertCode(t, () => ig.crossEntropy(logits, ig.tensor([0, 1])), 'ERR_DTYPE', /class indices/);
  assertCode(t, () => ig.crossEntropy(ig.zeros([2, 3], { dtype: 'int32' }), target), 'ERR_DTYPE');
  assertCode(t, () => ig.crossEntropy(logits, labels([0, 1, 2])), 'ERR_SHAPE', /expected target shape \[2\]/);
  assertCode(t, () => ig.crossEntropy(ig.zeros([2, 3, 4]), target), 'ERR_SHAPE', /\[2, 4\]/);
  assertCode(t, () => ig.crossEntropy(ig.tensor(1), ig.tensor(0, { dtype: 'int64' })), 'ERR_SHAPE');
  assertCode(t, () => ig.crossEntropy(logits, target, { reduction: 'avg' as Reduction }), 'ERR_ARG');
  assertCode(t, () => ig.crossEntropy(logits, target, { labelSmoothing: 1.5 }), 'ERR_ARG');
  assertCode(t, () => ig.crossEntropy(logits, target, { labelSmoothing: -0.1 }), 'ERR_ARG');
  assertCode(t, () => ig.crossEntropy(logits, target, { labelSmoothing: NaN }), 'ERR_ARG');
  assertCode(t, () => ig.crossEntropy(logits, target, { ignoreIndex: 0.5 }), 'ERR_ARG');
  assertCode(t, () => ig.crossEntropy(logits, target, { ignore_index: 1 } as object), 'ERR_ARG', /unknown option ignore_index/);
  assertCode(t, () => ig.crossEntropy(logits, target, 'mean' as unknown as object), 'ERR_ARG');
  assertCode(t, () => ig.crossEntropy(logits, [0, 1] as unknown as Tensor), 'ERR_ARG');
  const gone = ig.zeros([2, 3]);
  gone.dispose();
  assertCode(t, () => ig.crossEntropy(gone, target), 'ERR_DISPOSED');
  disposeAll(logits, target);
});

test('mseLoss: random shapes, broadcasting, layouts, mixed dtypes and every reduction, against float64', (t) => {
  const rng = new Rng(61);
  for (let trial = 0; trial < 60; trial++) {
    const shape = randomShape(rng, 4, 5);
    const other = rng.next() < 0.5 ? shape : shape.slice(rng.int(0, shape.length)).map((d) => (rng.next() < 0.3 ? 1 : d));
    const [da, db] = rng.next() < 0.7 ? Array(2).fill(rng.pick(FLOATS)) : [rng.pick(FLOATS), rng.pick<DType>([...FLOATS, 'int32'])];
    const a = randomTensor(rng, shape, da, rng.pick(LAYOUTS));
    const b = db === 'int32' ? makeTensor(refFromFn(other, () => rng.int(-2, 2)), db, 'contiguous') : randomTensor(rng, other, db, rng.pick(LAYOUTS));
    const reduction = rng.pick(REDUCTIONS);
    const out = ig.mseLoss(a.t, b.t, { reduction });
    const squared = refBroadcast(a.ref, b.ref, (x, y) => (x - y) ** 2);
    const dtype = promoted(da, db);
    t.is(out.dtype, dtype);
    assertClose(t, out, reduce(squared, reduction, numel(squared.shape)), lossTolerance(dtype), `mseLoss ${da} ${db} [${shape}] [${other}] ${reduction}`);
    disposeAll(a.t, b.t, out);
  }
});

test('mseLoss: large inputs (threads), contiguous and broadcast', (t) => {
  const rng = new Rng(62);
  const a = randomTensor(rng, [300, 400], 'float32');
  for (const [shape, layout] of [
    [[300, 400], 'contiguous'],
    [[300, 400], 'strided'],
    [[400], 'contiguous'],
  ] as [number[], (typeof LAYOUTS)[number]][]) {
    const b = randomTensor(rng, shape, 'float32', layout);
    const squared = refBroadcast(a.ref, b.ref, (x, y) => (x - y) ** 2);
    for (const reduction of REDUCTIONS) {
      const out = ig.mseLoss(a.t, b.t, { reduction });
      assertClose(t, out, reduce(squared, reduction, numel(squared.shape)), lossTolerance('float32'), `[${shape}] ${layout} ${reduction}`);
      out.dispose();
    }
    b.t.dispose();
  }
  a.t.dispose();
  t.true(Number.isNaN(ig.mseLoss(ig.zeros([0]), ig.zeros([0])).item()));
  t.is(ig.mseLoss(ig.zeros([0]), ig.zeros([0]), { reduction: 'sum' }).item(), 0);
});

test('mseLoss: bad inputs', (t) => {
  const a = ig.zeros([2, 3]);
  assertCode(t, () => ig.mseLoss(a, ig.zeros([4])), 'ERR_SHAPE', /\[2, 3\].*\[4\]/);
  assertCode(t, () => ig.mseLoss(ig.zeros([3], { dtype: 'int32' }), ig.zeros([3], { dtype: 'int64' })), 'ERR_DTYPE');
  assertCode(t, () => ig.mseLoss(a, a, { reduction: 'max' as Reduction }), 'ERR_ARG');
  assertCode(t, () => ig.mseLoss(a, a, { size_average: true } as object), 'ERR_ARG');
  assertCode(t, () => ig.mseLoss(a, 1 as unknown as Tensor), 'ERR_ARG');
  const gone = ig.zeros([2, 3]);
  gone.dispose();
  assertCode(t, () => ig.mseLoss(a, gone), 'ERR_DISPOSED');
  a.dispose();
});

test('native entry points validate on their own', (t) => {
  // What the TypeScript layer checks first must not crash the addon when it is called directly.
  type Raw = Record<string, (...args: unknown[]) => unknown>;
  const raw = addon as Raw;
  const h = (x: Tensor) => x.handle('test');
  const logits = ig.zeros([2, 3]);
  const target = ig.tensor([0, 1], { dtype: 'int64' });
  assertCode(t, () => raw.crossEntropy(h(logits), h(logits), -100, 1, 0), 'ERR_DTYPE');
  assertCode(t, () => raw.crossEntropy(h(target), h(target), -100, 1, 0), 'ERR_DTYPE');
  assertCode(t, () => raw.crossEntropy(h(logits), h(ig.tensor([0], { dtype: 'int64' })), -100, 1, 0), 'ERR_SHAPE');
  assertCode(t, () => raw.crossEntropy(h(logits), h(target), -100, 7, 0), 'ERR_ARG');
  assertCode(t, () => raw.crossEntropy(h(logits), h(target), -100, 1, 2), 'ERR_ARG');
  assertCode(t, () => raw.crossEntropy(h(logits), h(target), -100, 1, NaN), 'ERR_ARG');
  assertCode(t, () => raw.crossEntropy(h(logits), h(target), 0.5, 1, 0), 'ERR_ARG');
  assertCode(t, () => raw.mseLoss(h(logits), h(target), 1, 5), 'ERR_DTYPE');
  assertCode(t, () => raw.mseLoss(h(logits), h(ig.zeros([4])), 1, 0), 'ERR_SHAPE');
  assertCode(t, () => raw.mseLoss(h(logits), h(logits), -1, 0), 'ERR_ARG');
  disposeAll(logits, target);
});

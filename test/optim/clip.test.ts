import test from 'ava';
import * as ig from '../../lib';
import { DType, Tensor } from '../../lib';
import { native } from '../../lib/optim/native';
import { LAYOUTS, Ref, Rng, assertClose, assertCode, randomShape, randomTensor, refOf } from '../helpers';
import { bitsOf } from './reference';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];

function refNorm(grads: Ref[], normType: number): number {
  const all = grads.flatMap((g) => Array.from(g.data, Math.abs));
  if (normType === Infinity) return all.some(Number.isNaN) ? NaN : Math.max(0, ...all);
  return all.reduce((acc, x) => acc + x ** normType, 0) ** (1 / normType);
}

/** Params whose grads are random tensors in random layouts (some params without a grad). */
function withGrads(rng: Rng, count: number, dtype: DType, scale: number) {
  const params: Tensor[] = [];
  const grads: Ref[] = [];
  for (let i = 0; i < count; i++) {
    const shape = randomShape(rng, 3, 6);
    const p = ig.zeros(shape, { dtype });
    if (rng.next() < 0.8) {
      const g = randomTensor(rng, shape, dtype, rng.pick(LAYOUTS.filter((l) => l !== 'broadcast')), -scale, scale);
      p.grad = g.t;
      grads.push(g.ref);
    }
    params.push(p);
  }
  return { params, grads };
}

test('clipGradNorm: 1-, 2-, 3- and inf-norms of random grads in every layout and dtype, clipped to maxNorm', (t) => {
  const rng = new Rng(21);
  for (let trial = 0; trial < 40; trial++) {
    const dtype = rng.pick(FLOATS);
    const normType = rng.pick([2, 1, 3, Infinity]);
    const { params, grads } = withGrads(rng, rng.int(1, 4), dtype, 2);
    const expected = refNorm(grads, normType);
    const maxNorm = rng.pick([0.5, 1, 100]);
    const before = params.filter((p) => p.grad).map((p) => bitsOf(p.grad as Tensor));
    const total = ig.clipGradNorm(params, maxNorm, normType);
    const what = `${dtype} norm ${normType} maxNorm ${maxNorm}`;
    t.true(Math.abs(total - expected) <= 1e-9 * Math.max(1, expected), `${what}: got ${total}, expected ${expected}`);
    const coef = maxNorm / (expected + 1e-6);
    params
      .filter((p) => p.grad)
      .forEach((p, i) => {
        if (coef >= 1) t.deepEqual(bitsOf(p.grad as Tensor), before[i], `${what}: below maxNorm the grads are untouched`);
        else assertClose(t, p.grad as Tensor, { shape: grads[i].shape, data: grads[i].data.map((x) => x * coef) }, undefined, what);
      });
  }
});

test('clipGradNorm: after clipping the norm is maxNorm; large grads sum the same on any thread split', (t) => {
  const rng = new Rng(22);
  const big = randomTensor(rng, [300, 700], 'float32');
  const small = randomTensor(rng, [3], 'float32');
  const a = ig.zeros([300, 700]);
  const b = ig.zeros([3]);
  a.grad = big.t;
  b.grad = small.t;
  const expected = refNorm([big.ref, small.ref], 2);
  const threads = ig.getNumThreads();
  ig.setNumThreads(1);
  const single = ig.clipGradNorm([a, b], 1e9);
  ig.setNumThreads(threads);
  t.is(ig.clipGradNorm([a, b], 1e9), single);
  t.true(Math.abs(single - expected) < 1e-9 * expected);
  ig.clipGradNorm([a, b], 2);
  t.true(Math.abs(refNorm([refOf(a.grad as Tensor), refOf(b.grad as Tensor)], 2) - 2) < 1e-5);
});

test('clipGradNorm: no grads gives 0; a single param; a grad shared by two params counts once', (t) => {
  t.is(ig.clipGradNorm([ig.zeros([2])], 1), 0);
  const p = ig.zeros([2]);
  p.grad = ig.tensor([3, 4]);
  t.is(ig.clipGradNorm(p, 10), 5);
  const q = ig.zeros([2]);
  q.grad = p.grad;
  t.is(ig.clipGradNorm([p, q], 1), 5);
  assertClose(t, p.grad, { shape: [2], data: Float64Array.of(0.6, 0.8) }, [1e-5, 1e-6]);
});

test('clipGradNorm: non-finite norms, with and without errorIfNonfinite', (t) => {
  const p = ig.zeros([3]);
  p.grad = ig.tensor([1, NaN, 2]);
  assertCode(t, () => ig.clipGradNorm([p], 1, 2, { errorIfNonfinite: true }), 'ERR_ARG', /nan/i);
  t.true(Number.isNaN((p.grad.toArray() as number[])[1]));
  t.is((p.grad.toArray() as number[])[0], 1, 'an error leaves the grads as they are');
  t.true(Number.isNaN(ig.clipGradNorm([p], 1, Infinity)));
  t.true((p.grad.toArray() as number[]).every(Number.isNaN), 'a NaN norm makes the grads NaN, as in PyTorch');
  const q = ig.zeros([2]);
  q.grad = ig.tensor([Infinity, 1]);
  assertCode(t, () => ig.clipGradNorm([q], 1, Infinity, { errorIfNonfinite: true }), 'ERR_ARG', /Infinity/);
  t.is(ig.clipGradNorm([q], 1), Infinity);
});

test('clipGradNorm: bad arguments raise the right codes', (t) => {
  const p = ig.zeros([2]);
  p.grad = ig.tensor([1, 1]);
  assertCode(t, () => ig.clipGradNorm([p], -1), 'ERR_ARG', /maxNorm/);
  assertCode(t, () => ig.clipGradNorm([p], NaN), 'ERR_ARG', /maxNorm/);
  assertCode(t, () => ig.clipGradNorm([p], 1, 0), 'ERR_ARG', /normType/);
  assertCode(t, () => ig.clipGradNorm([p], 1, 'inf' as unknown as number), 'ERR_ARG', /normType/);
  assertCode(t, () => ig.clipGradNorm('p' as unknown as Tensor, 1), 'ERR_ARG', /params/);
  assertCode(t, () => ig.clipGradNorm([p, 3 as unknown as Tensor], 1), 'ERR_ARG', /params\[1\]/);
  assertCode(t, () => ig.clipGradNorm([p], 1, 2, { foreach: true } as ig.optim.ClipGradNormOptions), 'ERR_ARG', /unknown option/);
  const q = ig.zeros([2]);
  q.grad = ig.tensor([1, 1], { dtype: 'int32' });
  assertCode(t, () => ig.clipGradNorm([q], 1), 'ERR_DTYPE', /floating-point/);
  q.grad = ig.tensor([1, 1]);
  q.grad.dispose();
  assertCode(t, () => ig.clipGradNorm([q], 1), 'ERR_DISPOSED');
  const h = (x: Tensor) => x.handle('test');
  assertCode(t, () => native.totalNorm([h(p)], -2), 'ERR_ARG', /normType/);
  assertCode(t, () => native.totalNorm([h(ig.tensor([1], { dtype: 'int64' }))], 2), 'ERR_DTYPE');
  const row = ig.tensor([1, 2]);
  assertCode(t, () => native.scaleInPlace([h(row.expand(3, 2))], 0.5), 'ERR_ARG', /broadcast/);
  t.deepEqual(row.toArray(), [1, 2]);
});

test('clipGradNormTensor: the same norm (a 0-dim float32 tensor) and the same clipped grads as clipGradNorm', (t) => {
  const rng = new Rng(21);
  for (const normType of [1, 2, 3, Infinity]) {
    for (const maxNorm of [0.1, 1e6]) {
      const { params } = withGrads(rng, 5, rng.pick(FLOATS), 2);
      const copies = params.map((p) => {
        const q = ig.zerosLike(p);
        q.grad = p.grad && p.grad.clone();
        return q;
      });
      const expected = ig.clipGradNorm(params, maxNorm, normType);
      const norm = ig.clipGradNormTensor(copies, maxNorm, normType);
      if (params.every((p) => p.grad === null)) {
        t.is(norm, null);
        continue;
      }
      t.is(norm!.dtype, 'float32');
      t.deepEqual(norm!.shape, []);
      t.is(norm!.item(), Math.fround(expected), `norm ${normType}`);
      params.forEach((p, i) => p.grad && t.deepEqual(refOf(copies[i].grad!).data, refOf(p.grad).data, `grad ${i}, norm ${normType}`));
    }
  }
  const nan = ig.zeros([2]);
  nan.grad = ig.tensor([NaN, 1]);
  t.true(Number.isNaN(ig.clipGradNormTensor(nan, 1)!.item()));
  t.true(Number.isNaN(refOf(nan.grad).data[1]), 'a NaN norm makes every grad NaN');
  assertCode(t, () => ig.clipGradNormTensor([nan], -1), 'ERR_ARG');
  assertCode(t, () => ig.clipGradNormTensor([nan], 1, 0), 'ERR_ARG');
  assertCode(t, () => native.clipByTotalNorm([], 1, 2), 'ERR_ARG');
});

import test from 'ava';
import * as ig from '../../lib';
import { DType, Tensor } from '../../lib';
import { native } from '../../lib/optim/native';
import { Rng, assertClose, assertCode, numel, randomShape } from '../helpers';
import { AdamWRef, bitsOf, randomValues, stateOf, stepTolerance, valuesOf } from './reference';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];

function param(values: Float64Array, shape: number[], dtype: DType): Tensor {
  return ig.tensor(values, { shape, dtype });
}

test('AdamW: several steps on random params of every float dtype against float64 (weight decay, bias correction)', (t) => {
  const rng = new Rng(1);
  for (let trial = 0; trial < 12; trial++) {
    const dtype = FLOATS[trial % FLOATS.length];
    const shapes = Array.from({ length: rng.int(1, 4) }, () => randomShape(rng, 3, 6));
    const options = {
      lr: rng.pick([1e-3, 1e-2, 0.1]),
      betas: [rng.pick([0.9, 0.8, 0]), rng.pick([0.999, 0.95])] as [number, number],
      eps: rng.pick([1e-8, 1e-3]),
      weightDecay: rng.pick([0, 1e-2, 0.5]),
    };
    const refs = shapes.map((s) => new AdamWRef(randomValues(rng, numel(s)), dtype));
    const params = shapes.map((s, i) => param(refs[i].p, s, dtype));
    refs.forEach((r, i) => (r.p = valuesOf(params[i])));
    const opt = new ig.AdamW(params, options);
    const what = `${dtype} ${JSON.stringify(shapes)} ${JSON.stringify(options)}`;
    for (let step = 1; step <= 5; step++) {
      params.forEach((p, i) => {
        const g = randomValues(rng, p.numel);
        p.grad?.dispose();
        p.grad = param(g, p.shape.slice(), dtype);
        refs[i].update(valuesOf(p.grad), options);
      });
      opt.step();
      params.forEach((p, i) => assertClose(t, p, { shape: p.shape.slice(), data: refs[i].p }, stepTolerance(dtype), `${what} step ${step}`));
    }
    const sd = opt.stateDict();
    params.forEach((p, i) => {
      const s = sd.state[i];
      t.is(s.step, 5);
      const expAvg = s.expAvg as Tensor;
      const expAvgSq = s.expAvgSq as Tensor;
      t.is(expAvg.dtype, stateOf(dtype));
      assertClose(t, expAvg, { shape: p.shape.slice(), data: refs[i].m }, stepTolerance('float32'), `${what} expAvg`);
      assertClose(t, expAvgSq, { shape: p.shape.slice(), data: refs[i].v }, stepTolerance('float32'), `${what} expAvgSq`);
    });
    opt.dispose();
  }
});

test('AdamW: the first step moves each element by lr * g / (|g| + eps) after the decay (bias correction)', (t) => {
  // At step 1 the bias-corrected averages are exactly g and g^2, whatever the betas.
  const rng = new Rng(2);
  const p0 = randomValues(rng, 50);
  const g = randomValues(rng, 50);
  const [lr, eps, weightDecay] = [0.05, 1e-3, 0.1];
  const p = ig.tensor(p0);
  p.grad = ig.tensor(g);
  new ig.AdamW([p], { lr, eps, weightDecay, betas: [0.7, 0.9] }).step();
  assertClose(t, p, { shape: [50], data: p0.map((x, i) => x * (1 - lr * weightDecay) - (lr * g[i]) / (Math.abs(g[i]) + eps)) }, [1e-12, 1e-12]);
});

test('AdamW: one multi-tensor step equals one step per tensor, bit for bit, mixed dtypes and sizes above the parallel grain', (t) => {
  const rng = new Rng(3);
  const specs: [number[], DType][] = [
    [[300, 257], 'float32'],
    [[1000], 'bfloat16'],
    [[7, 13, 11], 'float64'],
    [[], 'float32'],
    [[0, 5], 'float32'],
    [[40000], 'float16'],
    [[3, 30000], 'float32'],
  ];
  const values = specs.map(([s]) => randomValues(rng, numel(s)));
  const grads = specs.map(([s]) => randomValues(rng, numel(s)));
  const make = () =>
    specs.map(([s, dtype], i) => {
      const p = param(values[i], s, dtype);
      p.grad = param(grads[i], s, dtype);
      return p;
    });
  const together = make();
  const apart = make();
  const options = { lr: 0.01, weightDecay: 0.1 };
  const fused = new ig.AdamW(together, options);
  const single = apart.map((p) => new ig.AdamW([p], options));
  const refs = together.map((p, i) => new AdamWRef(valuesOf(p), specs[i][1]));
  for (let step = 0; step < 3; step++) {
    fused.step();
    for (const o of single) o.step();
    refs.forEach((r, i) => r.update(valuesOf(together[i].grad as Tensor), fused.paramGroups[0]));
  }
  specs.forEach(([s, dtype], i) => {
    t.deepEqual(bitsOf(together[i]), bitsOf(apart[i]), `${dtype} ${JSON.stringify(s)}`);
    assertClose(t, together[i], { shape: s, data: refs[i].p }, stepTolerance(dtype), `${dtype} ${JSON.stringify(s)} against float64`);
  });
});

test('AdamW: 16-bit params keep float32 state and round once per step', (t) => {
  const rng = new Rng(4);
  for (const dtype of ['bfloat16', 'float16'] as DType[]) {
    const p = param(randomValues(rng, 64), [8, 8], dtype);
    const ref = new AdamWRef(valuesOf(p), dtype);
    const opt = new ig.AdamW([p], { lr: 1e-3 });
    for (let step = 0; step < 3; step++) {
      p.grad = param(randomValues(rng, 64), [8, 8], dtype);
      ref.update(valuesOf(p.grad), opt.defaults);
      opt.step();
    }
    t.is(p.dtype, dtype);
    const s = opt.stateDict().state[0];
    t.is((s.expAvg as Tensor).dtype, 'float32');
    t.is((s.expAvgSq as Tensor).dtype, 'float32');
    // float32 state whatever the param's dtype: it follows the float64 model to float32 precision
    assertClose(t, s.expAvgSq as Tensor, { shape: [8, 8], data: ref.v }, [1e-6, 1e-9]);
    assertClose(t, p, { shape: [8, 8], data: ref.p }, stepTolerance(dtype));
  }
});

test('AdamW: params without a grad are skipped (no state, no step count)', (t) => {
  const a = ig.tensor([1, 2]);
  const b = ig.tensor([3, 4]);
  const opt = new ig.AdamW([a, b], { lr: 0.1 });
  a.grad = ig.tensor([1, -1]);
  opt.step();
  opt.step();
  t.deepEqual(b.toArray(), [3, 4]);
  const sd = opt.stateDict();
  t.deepEqual(Object.keys(sd.state), ['0']);
  t.is(sd.state[0].step, 2);
  b.grad = ig.tensor([1, 1]);
  opt.step();
  t.is(opt.stateDict().state[1].step, 1);
});

test('AdamW: a transposed grad is read in its layout', (t) => {
  const rng = new Rng(5);
  const p0 = randomValues(rng, 12);
  const g = ig.tensor(randomValues(rng, 12), { shape: [4, 3] });
  const a = ig.tensor(p0, { shape: [3, 4] });
  const b = ig.tensor(p0, { shape: [3, 4] });
  a.grad = g.mT;
  b.grad = g.mT.contiguous();
  new ig.AdamW([a]).step();
  new ig.AdamW([b]).step();
  t.deepEqual(bitsOf(a), bitsOf(b));
});

test('AdamW: per-group options', (t) => {
  const a = ig.tensor([1, 1]);
  const b = ig.tensor([1, 1]);
  a.grad = ig.tensor([1, 1]);
  b.grad = ig.tensor([1, 1]);
  const opt = new ig.AdamW([{ params: [a] }, { params: [b], lr: 0.5, weightDecay: 0 }], { lr: 0.1, eps: 0 });
  t.is(opt.paramGroups[0].lr, 0.1);
  t.is(opt.paramGroups[1].lr, 0.5);
  t.is(opt.paramGroups[1].eps, 0);
  opt.step();
  // first step: p * (1 - lr * wd) - lr * sign(g)
  assertClose(t, a, { shape: [2], data: Float64Array.of(0.999 - 0.1, 0.999 - 0.1) });
  assertClose(t, b, { shape: [2], data: Float64Array.of(0.5, 0.5) });
});

test('AdamW: bad options and grads raise the right codes; a failed step changes nothing', (t) => {
  const p = ig.tensor([1, 2, 3]);
  assertCode(t, () => new ig.AdamW([p], { lr: -1 }), 'ERR_ARG', /lr/);
  assertCode(t, () => new ig.AdamW([p], { lr: NaN }), 'ERR_ARG', /lr/);
  assertCode(t, () => new ig.AdamW([p], { betas: [0.9, 1] }), 'ERR_ARG', /betas\[1\]/);
  assertCode(t, () => new ig.AdamW([p], { betas: [0.9] as unknown as [number, number] }), 'ERR_ARG', /betas/);
  assertCode(t, () => new ig.AdamW([p], { eps: -1e-8 }), 'ERR_ARG', /eps/);
  assertCode(t, () => new ig.AdamW([p], { weightDecay: -0.1 }), 'ERR_ARG', /weightDecay/);
  assertCode(t, () => new ig.AdamW([p], { momentum: 0.9 } as unknown as ig.optim.AdamWOptions), 'ERR_ARG', /unknown option momentum/);
  assertCode(t, () => new ig.AdamW([{ params: [p], lr: 'x' as unknown as number }]), 'ERR_ARG', /paramGroups\[0\]\.lr/);

  const q = ig.tensor([5, 6]);
  const opt = new ig.AdamW([{ params: [q] }, { params: [p] }]);
  q.grad = ig.tensor([1, 1]);
  p.grad = ig.tensor([1, 1]);
  assertCode(t, () => opt.step(), 'ERR_SHAPE', /grad of param 0 of group 1 has shape \[2\]/);
  p.grad = ig.tensor([1, 1, 1], { dtype: 'float64' });
  assertCode(t, () => opt.step(), 'ERR_DTYPE', /float64/);
  p.grad = [1, 1, 1] as unknown as Tensor;
  assertCode(t, () => opt.step(), 'ERR_ARG', /grad/);
  p.grad = ig.tensor([1, 1, 1]);
  p.grad.dispose();
  assertCode(t, () => opt.step(), 'ERR_DISPOSED');
  p.grad = ig.tensor([1, 1, 1]);
  opt.paramGroups[1].lr = NaN;
  assertCode(t, () => opt.step(), 'ERR_ARG', /paramGroups\[1\]\.lr/);
  // group 0 was valid but nothing ran
  t.deepEqual(q.toArray(), [5, 6]);
  t.deepEqual(Object.keys(opt.stateDict().state), []);
  opt.paramGroups[1].lr = 1e-3;
  opt.step();
  t.notDeepEqual(q.toArray(), [5, 6]);
});

test('AdamW: the native step validates everything before writing anything', (t) => {
  const h = (x: Tensor) => x.handle('test');
  const p = ig.tensor([1, 2, 3, 4]);
  const g = ig.tensor([1, 1, 1, 1]);
  const m = ig.zeros([4]);
  const v = ig.zeros([4]);
  const run = (over: Partial<Record<'params' | 'grads' | 'm' | 'v', Tensor[]>>, steps = [1], beta1 = 0.9) =>
    native.adamwStep(
      [h(p), ...(over.params ?? []).map(h)],
      [h(g), ...(over.grads ?? []).map(h)],
      [h(m), ...(over.m ?? []).map(h)],
      [h(v), ...(over.v ?? []).map(h)],
      steps,
      0.1,
      beta1,
      0.999,
      1e-8,
      0,
      -1,
    );
  const q = ig.tensor([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  const zeros = (shape: number[], dtype: DType = 'float32') => ig.zeros(shape, { dtype });
  assertCode(t, () => run({ params: [q] }, [1, 1]), 'ERR_ARG', /one grad per param/);
  assertCode(t, () => run({ params: [q.mT], grads: [zeros([3, 2])], m: [zeros([3, 2])], v: [zeros([3, 2])] }, [1, 1]), 'ERR_ARG', /not contiguous/);
  assertCode(t, () => run({ params: [q], grads: [zeros([3, 2])], m: [zeros([2, 3])], v: [zeros([2, 3])] }, [1, 1]), 'ERR_SHAPE', /grad of param 1/);
  assertCode(t, () => run({ params: [q], grads: [zeros([2, 3])], m: [zeros([2, 3], 'float64')], v: [zeros([2, 3])] }, [1, 1]), 'ERR_DTYPE', /exp_avg of param 1/);
  assertCode(t, () => run({ params: [q], grads: [zeros([2, 3])], m: [zeros([2, 3])], v: [zeros([2, 3])] }, [1, 0]), 'ERR_ARG', /step count/);
  const i = ig.tensor([1, 2], { dtype: 'int32' });
  assertCode(t, () => run({ params: [i], grads: [i], m: [zeros([2])], v: [zeros([2])] }, [1, 1]), 'ERR_DTYPE', /floating-point/);
  assertCode(t, () => run({}, [1], 1), 'ERR_ARG', /beta1/);
  t.deepEqual(p.toArray(), [1, 2, 3, 4]);
  t.deepEqual(m.toArray(), [0, 0, 0, 0]);
  run({});
  t.notDeepEqual(p.toArray(), [1, 2, 3, 4]);
});

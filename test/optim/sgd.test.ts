import test from 'ava';
import * as ig from '../../lib';
import { DType, Tensor } from '../../lib';
import { native } from '../../lib/optim/native';
import { Rng, assertClose, assertCode, numel, randomShape } from '../helpers';
import { SGDRef, bitsOf, randomValues, stateOf, stepTolerance, valuesOf } from './reference';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];

function param(values: Float64Array, shape: number[], dtype: DType): Tensor {
  return ig.tensor(values, { shape, dtype });
}

const VARIANTS: Partial<ig.optim.SGDOptions>[] = [
  {},
  { weightDecay: 0.1 },
  { momentum: 0.9 },
  { momentum: 0.9, dampening: 0.5, weightDecay: 0.01 },
  { momentum: 0.8, nesterov: true },
  { momentum: 0.5, nesterov: true, weightDecay: 0.2 },
];

test('SGD: several steps with momentum, dampening, Nesterov and weight decay against float64', (t) => {
  const rng = new Rng(11);
  for (let trial = 0; trial < 24; trial++) {
    const dtype = FLOATS[trial % FLOATS.length];
    const variant = VARIANTS[trial % VARIANTS.length];
    const shapes = Array.from({ length: rng.int(1, 3) }, () => randomShape(rng, 3, 6));
    const opt = new ig.SGD(
      shapes.map((s) => param(randomValues(rng, numel(s)), s, dtype)),
      { lr: rng.pick([0.01, 0.1]), ...variant },
    );
    const params = opt.paramGroups[0].params;
    const refs = params.map((p) => new SGDRef(valuesOf(p), dtype));
    const what = `${dtype} ${JSON.stringify(shapes)} ${JSON.stringify(variant)}`;
    for (let step = 1; step <= 4; step++) {
      params.forEach((p, i) => {
        p.grad?.dispose();
        p.grad = param(randomValues(rng, p.numel), p.shape.slice(), dtype);
        refs[i].update(valuesOf(p.grad), opt.paramGroups[0]);
      });
      opt.step();
      params.forEach((p, i) => assertClose(t, p, { shape: p.shape.slice(), data: refs[i].p }, stepTolerance(dtype), `${what} step ${step}`));
    }
    const sd = opt.stateDict();
    params.forEach((p, i) => {
      const buf = sd.state[i]?.momentumBuffer as Tensor | undefined;
      if (!variant.momentum) {
        t.is(buf, undefined);
        return;
      }
      t.is(buf?.dtype, stateOf(dtype));
      assertClose(t, buf as Tensor, { shape: p.shape.slice(), data: refs[i].buf as Float64Array }, stepTolerance('float32'), `${what} buffer`);
    });
  }
});

test('SGD: the first momentum step takes the direction without dampening', (t) => {
  const p = ig.tensor(Float64Array.of(1, -2, 3));
  p.grad = ig.tensor(Float64Array.of(0.5, 0.5, -1));
  const opt = new ig.SGD([p], { lr: 0.1, momentum: 0.9, dampening: 0.5 });
  opt.step();
  t.deepEqual(p.toArray(), [1 - 0.05, -2 - 0.05, 3 + 0.1]);
  t.deepEqual((opt.stateDict().state[0].momentumBuffer as Tensor).toArray(), [0.5, 0.5, -1]);
  opt.step();
  // buf = 0.9 * g + 0.5 * g = 1.4 g
  assertClose(t, (opt.stateDict().state[0].momentumBuffer as Tensor), { shape: [3], data: Float64Array.of(0.7, 0.7, -1.4) });
});

test('SGD: one multi-tensor step equals one step per tensor, bit for bit', (t) => {
  const rng = new Rng(12);
  const specs: [number[], DType][] = [
    [[200, 300], 'float32'],
    [[5], 'float64'],
    [[0], 'float32'],
    [[50000], 'bfloat16'],
  ];
  const values = specs.map(([s]) => randomValues(rng, numel(s)));
  const make = () =>
    specs.map(([s, dtype], i) => {
      const p = param(values[i], s, dtype);
      p.grad = param(values[i].map((x) => x * 0.5 - 0.1), s, dtype);
      return p;
    });
  for (const variant of VARIANTS) {
    const together = make();
    const apart = make();
    const fused = new ig.SGD(together, { lr: 0.05, ...variant });
    const single = apart.map((p) => new ig.SGD([p], { lr: 0.05, ...variant }));
    for (let step = 0; step < 3; step++) {
      fused.step();
      for (const o of single) o.step();
    }
    specs.forEach(([s, dtype], i) => t.deepEqual(bitsOf(together[i]), bitsOf(apart[i]), `${dtype} ${JSON.stringify(s)} ${JSON.stringify(variant)}`));
  }
});

test('SGD: momentum switched on later starts a fresh buffer', (t) => {
  const p = ig.tensor(Float64Array.of(1, 1));
  p.grad = ig.tensor(Float64Array.of(1, 2));
  const opt = new ig.SGD([p], { lr: 0.1 });
  opt.step();
  t.deepEqual(Object.keys(opt.stateDict().state), []);
  opt.paramGroups[0].momentum = 0.9;
  opt.step();
  t.deepEqual((opt.stateDict().state[0].momentumBuffer as Tensor).toArray(), [1, 2]);
  assertClose(t, p, { shape: [2], data: Float64Array.of(1 - 0.2, 1 - 0.4) });
});

test('SGD: bad options raise ERR_ARG, also from the native step', (t) => {
  const p = ig.tensor([1, 2]);
  assertCode(t, () => new ig.SGD([p], { lr: -0.1 }), 'ERR_ARG', /lr/);
  assertCode(t, () => new ig.SGD([p], { momentum: -0.5 }), 'ERR_ARG', /momentum/);
  assertCode(t, () => new ig.SGD([p], { nesterov: true }), 'ERR_ARG', /nesterov/);
  assertCode(t, () => new ig.SGD([p], { nesterov: true, momentum: 0.9, dampening: 0.1 }), 'ERR_ARG', /nesterov/);
  assertCode(t, () => new ig.SGD([p], { nesterov: 1 as unknown as boolean }), 'ERR_ARG', /boolean/);
  assertCode(t, () => new ig.SGD([p], { dampening: Infinity }), 'ERR_ARG', /dampening/);
  const h = (x: Tensor) => x.handle('test');
  const g = ig.tensor([1, 1]);
  const buf = ig.zeros([2]);
  assertCode(t, () => native.sgdStep([h(p)], [h(g)], [], [], 0.1, 0, 0, 0, true, -1), 'ERR_ARG', /nesterov/);
  assertCode(t, () => native.sgdStep([h(p)], [h(g)], [h(buf)], [], 0.1, 0.9, 0, 0, false, -1), 'ERR_ARG', /fresh flag/);
  assertCode(t, () => native.sgdStep([h(p)], [h(g)], [h(buf)], [true], 0.1, 0, 0, 0, false, -1), 'ERR_ARG', /momentum buffer/);
  assertCode(t, () => native.sgdStep([h(p)], [h(g)], [h(ig.zeros([3]))], [true], 0.1, 0.9, 0, 0, false, -1), 'ERR_SHAPE', /momentum buffer/);
  assertCode(t, () => native.sgdStep([h(p)], [h(g)], [], [], 0.1, 0, 0, 0, false, 0), 'ERR_ARG', /per-replay lr .*CUDA/);
  t.deepEqual(p.toArray(), [1, 2]);
});

import test from 'ava';
import * as ig from '../../lib';
import { DType } from '../../lib';
import { LAYOUTS, Rng, assertClose, assertCode, randomShape, randomTensor, refBroadcast, refMap } from '../helpers';

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

import test from 'ava';
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as ig from '../../lib';
import { BackwardOptions, DType, Tensor } from '../../lib';
import { core } from '../../lib/native';
import { Ref, Rng, assertClose, assertCode, randomTensor } from '../helpers';

/** A float leaf that requires grad, from nested values. */
function leaf(values: ig.NestedArray, dtype: DType = 'float64'): Tensor {
  return ig.tensor(values as number[], { dtype }).requiresGrad_();
}

function values(t: Tensor | null): number[] {
  if (t === null) throw new Error('no gradient');
  const wide = t.to('float64');
  const out = Array.from(wide.data() as Float64Array);
  wide.dispose();
  return out;
}

function ref(shape: number[], data: number[]): Ref {
  return { shape, data: Float64Array.from(data) };
}

test('requiresGrad: leaves opt in, results of ops follow their inputs', (t) => {
  const x = ig.tensor([1, 2, 3]);
  t.false(x.requiresGrad);
  t.true(x.isLeaf);
  t.is(x.requiresGrad_(), x);
  t.true(x.requiresGrad);
  const y = x.mul(2);
  t.true(y.requiresGrad);
  t.false(y.isLeaf);
  const plain = ig.tensor([1, 2, 3]).mul(2);
  t.false(plain.requiresGrad);
  t.true(plain.isLeaf);
  x.requiresGrad_(false);
  t.false(x.requiresGrad);
  t.false(x.mul(2).requiresGrad);
  t.is(x.grad, null);
  // PyTorch's spelling, with the same checks
  x.requiresGrad = true;
  t.true(x.requiresGrad);
  assertCode(t, () => {
    ig.tensor([1], { dtype: 'int32' }).requiresGrad = true;
  }, 'ERR_DTYPE');
});

test('requiresGrad_: floats only, leaves only, a boolean flag', (t) => {
  for (const dtype of ['int32', 'int64', 'bool'] as DType[]) {
    assertCode(t, () => ig.tensor([1, 0], { dtype }).requiresGrad_(), 'ERR_DTYPE', /floating-point/);
  }
  t.notThrows(() => ig.tensor([1, 0], { dtype: 'int32' }).requiresGrad_(false));
  for (const dtype of ['float32', 'float64', 'bfloat16', 'float16'] as DType[]) t.true(ig.tensor([1], { dtype }).requiresGrad_().requiresGrad);
  const y = leaf([1, 2]).mul(3);
  assertCode(t, () => y.requiresGrad_(false), 'ERR_GRAD', /detach/);
  t.is(y.requiresGrad_(true), y);
  assertCode(t, () => ig.tensor([1]).requiresGrad_('yes' as unknown as boolean), 'ERR_ARG');
  const gone = ig.tensor([1]);
  gone.dispose();
  assertCode(t, () => gone.requiresGrad_(), 'ERR_DISPOSED');
});

test('backward of a scalar: d(sum(x * w))/dx = w, and the leaf root itself', (t) => {
  const x = leaf([[1, 2, 3], [4, 5, 6]]);
  const w = leaf([0.5, -1, 2]);
  const loss = x.mul(w).sum();
  loss.backward();
  t.deepEqual(values(x.grad), [0.5, -1, 2, 0.5, -1, 2]);
  t.deepEqual(values(w.grad), [5, 7, 9]);
  t.is(x.grad?.dtype, 'float64');
  t.deepEqual(x.grad?.shape, [2, 3]);
  t.false(x.grad!.requiresGrad, 'gradients carry no history');
  const s = leaf([3]);
  s.backward();
  t.deepEqual(values(s.grad), [1]);
});

test('gradients accumulate across backward calls', (t) => {
  const x = leaf([1, -2, 3]);
  x.mul(x).sum().backward();
  t.deepEqual(values(x.grad), [2, -4, 6]);
  x.mul(3).sum().backward();
  t.deepEqual(values(x.grad), [5, -1, 9]);
  // a disposed .grad starts afresh
  x.grad!.dispose();
  x.mul(3).sum().backward();
  t.deepEqual(values(x.grad), [3, 3, 3]);
});

test('shared subexpressions: gradients from every consumer are summed', (t) => {
  const rng = new Rng(5);
  const xs = Array.from({ length: 6 }, () => rng.uniform(-2, 2));
  const x = leaf(xs);
  // y = x * x used three times: z = y * y + y * x + sum(y) broadcast
  const y = x.mul(x);
  const z = y.mul(y).add(y.mul(x)).add(y.sum());
  z.sum().backward();
  // dz/dx_i = 4 x^3 + 3 x^2 + 6 * 2 x (the sum of y feeds every element)
  const expected = xs.map((v) => 4 * v ** 3 + 3 * v ** 2 + 12 * v);
  assertClose(t, x.grad!, ref([6], expected), [1e-12, 1e-12]);
  // the same tensor on both sides of an op
  const a = leaf([1.5, -2]);
  a.add(a).mul(a).sum().backward();
  t.deepEqual(values(a.grad), [6, -8]);
});

test('retainGraph: a graph can be backpropagated again; without it, a second backward is ERR_GRAD', (t) => {
  const x = leaf([1, 2]);
  const loss = x.mul(x).sum();
  loss.backward({ retainGraph: true });
  loss.backward(undefined, { retainGraph: true });
  t.deepEqual(values(x.grad), [4, 8]);
  loss.backward();
  t.deepEqual(values(x.grad), [6, 12]);
  assertCode(t, () => loss.backward(), 'ERR_GRAD', /already backpropagated.*retainGraph/);
  t.deepEqual(values(x.grad), [6, 12], 'the failed call changed nothing');
  // a later graph through a released node fails too, before anything runs
  const y = leaf([1, 1]);
  const h = x.mul(y);
  h.sum().backward();
  const again = h.mul(2).sum();
  const before = values(y.grad);
  assertCode(t, () => again.backward(), 'ERR_GRAD');
  t.deepEqual(values(y.grad), before);
  assertCode(t, () => loss.backward({ retainGraph: 'yes' as unknown as boolean }), 'ERR_ARG');
  assertCode(t, () => loss.backward({ retain_graph: true } as BackwardOptions), 'ERR_ARG', /unknown option retain_graph/);
});

test('backward of a non-scalar needs a gradient of its shape (converted to its dtype)', (t) => {
  const x = leaf([[1, 2], [3, 4]]);
  const y = x.mul(x);
  assertCode(t, () => y.backward(), 'ERR_GRAD', /one-element.*\[2, 2\]/);
  assertCode(t, () => y.backward(ig.tensor([1, 1], { dtype: 'float64' })), 'ERR_SHAPE');
  assertCode(t, () => y.backward([1, 2] as unknown as Tensor, {}), 'ERR_ARG');
  assertCode(t, () => y.backward([1, 2] as unknown as Tensor), 'ERR_ARG');
  const g = ig.tensor([[1, 0.5], [-1, 2]], { dtype: 'float32' });
  y.backward(g);
  t.deepEqual(values(x.grad), [2, 2, -6, 16]);
  t.false(g.isDisposed, "the caller's gradient is left alone");
  t.deepEqual(values(g), [1, 0.5, -1, 2]);
});

test('backward on a tensor that does not require grad is ERR_GRAD; on a disposed one ERR_DISPOSED', (t) => {
  const x = ig.tensor([1, 2]);
  assertCode(t, () => x.sum().backward(), 'ERR_GRAD', /does not require grad/);
  const y = leaf([1, 2]);
  const z = ig.noGrad(() => y.mul(2).sum());
  assertCode(t, () => z.backward(), 'ERR_GRAD');
  const w = y.sum();
  w.dispose();
  assertCode(t, () => w.backward(), 'ERR_DISPOSED');
});

test('backward after a leaf input was disposed is ERR_DISPOSED and changes nothing', (t) => {
  const a = leaf([1, 2]);
  const b = leaf([3, 4]);
  const loss = a.mul(b).sum();
  b.dispose();
  assertCode(t, () => loss.backward(), 'ERR_DISPOSED', /leaf of shape \[2\].*disposed/);
  t.is(a.grad, null);
});

test('a saved tensor released under the graph is ERR_GRAD naming the op', (t) => {
  const x = leaf([1, 2]);
  const y = x.softmax(0);
  // only the engine releases saved tensors; this reaches in to check the guard
  y._gradFn!.saved[0].dispose();
  assertCode(t, () => y.sum().backward(), 'ERR_GRAD', /saved by softmax/);
  t.is(x.grad, null);
});

test('backward works after the ops inputs and outputs (not leaves) were disposed', (t) => {
  const x = leaf([0.5, -1, 2]);
  const h = x.mul(x);
  const s = h.softmax(0);
  const loss = s.mul(h).sum();
  h.dispose();
  s.dispose();
  loss.backward();
  // reference: loss = sum(softmax(x^2) * x^2)
  const xs = [0.5, -1, 2];
  const e = xs.map((v) => Math.exp(v * v));
  const total = e.reduce((p, q) => p + q, 0);
  const p = e.map((v) => v / total);
  const hv = xs.map((v) => v * v);
  const dot = p.reduce((acc, pi, i) => acc + pi * hv[i], 0);
  // d/dh_j = p_j (h_j - dot) + p_j
  const expected = xs.map((v, j) => (p[j] * (hv[j] - dot) + p[j]) * 2 * v);
  assertClose(t, x.grad!, ref([3], expected), [1e-12, 1e-12]);
});

test('a tidy() around the forward does not break a later backward; .grad survives a tidy around backward', (t) => {
  const x = leaf([1, 2, 3]);
  const before = ig.memory().tensors;
  const loss = ig.tidy(() => x.mul(x).mul(2).sum());
  ig.tidy(() => {
    loss.backward();
  });
  t.deepEqual(values(x.grad), [4, 8, 12]);
  t.false(x.grad!.isDisposed);
  loss.dispose();
  x.grad!.dispose();
  x.grad = null;
  t.is(ig.memory().tensors, before);
});

test('noGrad records nothing, enableGrad turns recording back on, the mode is restored after a throw', (t) => {
  const x = leaf([1, 2]);
  t.true(ig.isGradEnabled());
  const r = ig.noGrad(() => {
    t.false(ig.isGradEnabled());
    const inner = ig.enableGrad(() => x.mul(2));
    t.true(inner.requiresGrad);
    t.false(ig.isGradEnabled());
    return x.mul(2);
  });
  t.false(r.requiresGrad);
  t.true(r.isLeaf);
  t.true(ig.isGradEnabled());
  t.throws(() =>
    ig.noGrad(() => {
      throw new Error('boom');
    }),
  );
  t.true(ig.isGradEnabled());
  assertCode(t, () => ig.noGrad((async () => 1) as unknown as () => number), 'ERR_ARG', /synchronous/);
  t.true(ig.isGradEnabled());
  assertCode(t, () => ig.noGrad(5 as unknown as () => number), 'ERR_ARG');
});

test('detach: the same storage, no history; gradients stop there', (t) => {
  const x = leaf([1, 2, 3]);
  const d = x.mul(2).detach();
  t.false(d.requiresGrad);
  t.true(d.isLeaf);
  t.deepEqual(values(d), [2, 4, 6]);
  x.mul(d).sum().backward();
  t.deepEqual(values(x.grad), [2, 4, 6], 'only the direct path counts');
  const base = ig.tensor([1, 2]);
  const storages = ig.memory().storages;
  const alias = base.detach();
  t.is(ig.memory().storages, storages, 'no copy');
  base.dispose();
  t.deepEqual(values(alias), [1, 2], 'the alias keeps the storage alive');
});

test('gradients of mixed dtypes come back in each leaf dtype; 16-bit leaves work', (t) => {
  const a = leaf([1, 2, 3], 'float32');
  const b = leaf([0.5, 0.25, 2], 'float64');
  const c = leaf([2, 2, 2], 'bfloat16');
  a.mul(b).mul(c).sum().backward();
  t.is(a.grad!.dtype, 'float32');
  t.is(b.grad!.dtype, 'float64');
  t.is(c.grad!.dtype, 'bfloat16');
  t.deepEqual(values(a.grad), [1, 0.5, 4]);
  t.deepEqual(values(b.grad), [2, 4, 6]);
  t.deepEqual(values(c.grad), [0.5, 0.5, 6]);
  // integer operands get no gradient and do not stop the others'
  const i = ig.tensor([1, 2, 3], { dtype: 'int32' });
  const f = leaf([1, 1, 1], 'float32');
  f.mul(i).sum().backward();
  t.deepEqual(values(f.grad), [1, 2, 3]);
});

test('each leaf gets a .grad of its own storage, contiguous, even when gradients are shared views', (t) => {
  const x = leaf([1, 2, 3]);
  const y = leaf([4, 5, 6]);
  // add passes one gradient to both; expand's gradient of a sum is a broadcast view
  const s = leaf([2]);
  x.add(y).add(s.expand(3)).backward(ig.tensor([1, 2, 3], { dtype: 'float64' }));
  for (const g of [x.grad!, y.grad!, s.grad!]) {
    t.true(core.ownsStorage(g.handle('test')));
    t.true(g.isContiguous());
  }
  t.deepEqual(values(x.grad), [1, 2, 3]);
  t.deepEqual(values(s.grad), [6]);
});

test('dispose() of a leaf disposes its .grad', (t) => {
  const x = leaf([1, 2]);
  x.mul(3).sum().backward();
  const g = x.grad!;
  x.dispose();
  t.true(g.isDisposed);
  t.is(x.grad, null);
});

test('memory returns to its level before the forward after backward (tensors and bytes)', (t) => {
  const rng = new Rng(11);
  const x = randomTensor(rng, [16, 32], 'float32').t.requiresGrad_();
  const w = randomTensor(rng, [32], 'float32').t.requiresGrad_();
  const b = randomTensor(rng, [32], 'float32').t.requiresGrad_();
  const target = ig.tensor(Array.from({ length: 16 }, (_, i) => i % 32), { dtype: 'int64' });
  for (const retainGraph of [false, true]) {
    const before = ig.memory();
    const loss = ig.tidy(() => {
      const h = ig.layerNorm(x, [32], w, b).mul(x).softmax(-1).logSoftmax(1);
      const parts = h.split(8, 1);
      const joined = ig.cat([parts[1], parts[0], parts[3], parts[2]], 1).transpose(0, 1).contiguous().mT;
      return ig.crossEntropy(joined, target).add(ig.mseLoss(joined, h)).add(joined.max(1).mean());
    });
    t.true(ig.memory().bytes.cpu > before.bytes.cpu, 'the graph holds saved tensors');
    loss.backward({ retainGraph });
    loss.dispose();
    for (const p of [x, w, b]) {
      t.truthy(p.grad);
      p.grad!.dispose();
      p.grad = null;
    }
    const after = ig.memory();
    if (retainGraph) {
      t.true(after.tensors > before.tensors, 'a retained graph keeps its saved tensors');
    } else {
      t.is(after.tensors, before.tensors);
      t.is(after.bytes.cpu, before.bytes.cpu);
    }
  }
});

test('a graph dies with its tensors at the end of tidy(); one dropped outside tidy is freed by the finalizer', (t) => {
  const lib = path.join(__dirname, '..', '..', 'lib');
  const script = `
    const ig = require(${JSON.stringify(lib)});
    const settle = () => new Promise((r) => setImmediate(r));
    (async () => {
      const x = ig.tensor(new Float32Array(1 << 16)).requiresGrad_();
      await settle(); gc();
      const base = ig.memory();
      for (let i = 0; i < 20; i++) ig.tidy(() => { x.mul(x).softmax(0).sum(); });
      const afterTidy = ig.memory();
      for (let i = 0; i < 20; i++) x.mul(x).softmax(0).sum();
      const held = ig.memory();
      let now = held;
      for (let round = 0; round < 100 && now.tensors > base.tensors; round++) { await settle(); gc(); await settle(); now = ig.memory(); }
      console.log(JSON.stringify({ base, afterTidy, held, now }));
    })();`;
  const res = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  t.is(res.status, 0, res.stderr);
  const { base, afterTidy, held, now } = JSON.parse(res.stdout);
  t.is(afterTidy.tensors, base.tensors, 'tidy() released the graphs recorded inside it');
  t.is(afterTidy.bytes.cpu, base.bytes.cpu);
  t.true(held.tensors > base.tensors, 'saved tensors of dropped, undisposed outputs wait for the finalizer');
  t.is(now.tensors, base.tensors);
  t.is(now.bytes.cpu, base.bytes.cpu);
});

test('broadcast gradients are summed to each input shape', (t) => {
  const rng = new Rng(3);
  const a = randomTensor(rng, [3, 1, 4], 'float64');
  const b = randomTensor(rng, [2, 1], 'float64');
  a.t.requiresGrad_();
  b.t.requiresGrad_();
  a.t.mul(b.t).sum().backward();
  // d/da = sum of b over the broadcast dims, and the other way round
  const sumB = b.ref.data.reduce((p, q) => p + q, 0);
  assertClose(t, a.t.grad!, { shape: [3, 1, 4], data: new Float64Array(12).fill(sumB) }, [1e-12, 1e-12]);
  const sumA = a.ref.data.reduce((p, q) => p + q, 0);
  assertClose(t, b.t.grad!, { shape: [2, 1], data: new Float64Array(2).fill(sumA) }, [1e-12, 1e-12]);
});

test('tidy() keeps the graph of a tensor taken out with keep() or returned, and frees the rest', (t) => {
  const x = ig.tensor([1, 2, 3], { dtype: 'float64' }).requiresGrad_();
  let escaped: ig.Tensor | null = null;
  const returned = ig.tidy(() => {
    escaped = ig.keep(x.mul(x).sum());
    x.exp().sum(); // dropped: its graph goes with it
    return x.mul(3).sum();
  });
  (escaped as unknown as ig.Tensor).backward();
  t.deepEqual(x.grad?.toArray(), [2, 4, 6]);
  returned.backward();
  t.deepEqual(x.grad?.toArray(), [5, 7, 9]);
  for (const y of [x, returned, escaped as unknown as ig.Tensor]) y.dispose();
});

test('a graph recorded in nested tidy() scopes is freed by the outer one, unless what it returns leads there', (t) => {
  const w = ig.tensor([[1, -2], [0.5, 1]], { dtype: 'float64', requiresGrad: true });
  const x = ig.tensor([[0.5, -1], [2, 0.25]], { dtype: 'float64' });
  // layers that tidy their own temporaries, as nn modules do
  const layer = (h: Tensor, p: Tensor) => ig.tidy(() => ig.matmul(h, p).tanh().mul(2));
  const model = (p: Tensor) => ig.tidy(() => layer(layer(x, p), p).sum());
  const before = ig.memory();
  ig.tidy(() => {
    model(w);
  });
  t.deepEqual(ig.memory(), before, 'nothing is left behind');
  const loss = ig.tidy(() => model(w));
  t.true(ig.memory().tensors > before.tensors + 1, 'the returned loss keeps the graph of the inner scopes');
  loss.backward();
  loss.dispose();
  w.grad!.dispose();
  w.grad = null;
  t.deepEqual(ig.memory(), before, 'backward released it');
  t.true(ig.gradcheck(model, [w]), 'and it gives the right gradient');
  for (const u of [w, x]) u.dispose();
});

test('matmul and linear keep only what the needed gradients read (a frozen weight keeps no activation)', (t) => {
  const x = ig.randn([4, 3], { requiresGrad: true });
  const w = ig.randn([5, 3]);
  const live = () => ig.memory().tensors;
  const cases: [string, () => Tensor, number][] = [
    ['linear, frozen weight: the weight', () => ig.linear(x, w), 1],
    ['matmul, frozen weight: the weight', () => ig.matmul(x, w.mT), 1],
    ['linear, input without grad: the input', () => ig.linear(w, x), 1],
  ];
  for (const [what, make, saved] of cases) {
    const level = live();
    const out = ig.tidy(() => make());
    t.is(live() - level, 1 + saved, what);
    out.dispose();
  }
  const both = ig.randn([5, 3], { requiresGrad: true });
  const level = live();
  const out = ig.linear(x, both);
  t.is(live() - level, 3, 'both operands requiring grad: both kept');
  for (const u of [x, w, both, out]) u.dispose();
});

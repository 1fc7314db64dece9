import test from 'ava';
import * as ig from '../../lib';
import { Tensor } from '../../lib';
import { queueBackwardCallback } from '../../lib/autograd/backward';
import { assertClose, assertCode } from '../helpers';

/** A chain of three layers, h = tanh(h W_i), each weight a leaf, and the loss's closure. */
function chain(seed: number) {
  ig.manualSeed(seed);
  const x = ig.randn([4, 3], { dtype: 'float64' });
  const weights = [0, 1, 2].map(() => ig.randn([3, 3], { dtype: 'float64' }).requiresGrad_());
  const loss = () => weights.reduce((h, w) => h.matmul(w).tanh(), x).sum();
  return { weights, loss };
}

function copyOf(t: Tensor | null): number[] {
  if (t === null) throw new Error('no gradient');
  return Array.from(t.data() as Float64Array);
}

test('a leaf is final as soon as its last producer ran: later layers hook first, before earlier grads exist', (t) => {
  const reference = chain(1);
  reference.loss().backward();
  const expected = reference.weights.map((w) => copyOf(w.grad));

  const { weights, loss } = chain(1);
  const fired: { layer: number; grad: number[]; earlierDone: boolean[]; gradMode: boolean }[] = [];
  weights.forEach((w, layer) =>
    w.registerPostAccumulateGradHook((leaf) => {
      t.is(leaf, w);
      fired.push({ layer, grad: copyOf(leaf.grad), earlierDone: weights.map((v) => v.grad !== null), gradMode: ig.isGradEnabled() });
    }),
  );
  loss().backward();
  t.deepEqual(
    fired.map((f) => f.layer),
    [2, 1, 0],
  );
  for (const f of fired) {
    t.deepEqual(f.grad, expected[f.layer], 'the grad is final when the hook runs');
    t.false(f.gradMode, 'hooks run under noGrad');
  }
  // when the last layer's hook ran, the first layer's weight had no gradient yet
  t.deepEqual(fired[0].earlierDone, [false, false, true]);
});

test('a leaf used by several ops is accumulated once, after its last use, and hooked once', (t) => {
  const w = ig.tensor([0.5, -1.5, 2], { dtype: 'float64' }).requiresGrad_();
  const v = ig.tensor([1, 2, 3], { dtype: 'float64' }).requiresGrad_();
  const order: string[] = [];
  w.registerPostAccumulateGradHook((leaf) => order.push(`w ${copyOf(leaf.grad).join(',')}`));
  v.registerPostAccumulateGradHook(() => order.push('v'));
  // w feeds the first op (through v * w) and the last (w * w): d/dw = v + 2w
  w.mul(v).exp().sum().add(w.mul(w).sum()).backward();
  const [wv, vv] = [[0.5, -1.5, 2], [1, 2, 3]];
  const expected = wv.map((wi, i) => vv[i] * Math.exp(wi * vv[i]) + 2 * wi);
  t.is(order.length, 2);
  t.true(order.includes('v'));
  assertClose(t, w.grad!, { shape: [3], data: Float64Array.from(expected) });
  t.is(order.find((o) => o.startsWith('w')), `w ${copyOf(w.grad).join(',')}`);
});

test('hooks run in registration order, remove() unregisters (idempotent), grads still accumulate', (t) => {
  const w = ig.tensor([1, 2], { dtype: 'float64' }).requiresGrad_();
  const calls: string[] = [];
  const a = w.registerPostAccumulateGradHook(() => calls.push('a'));
  w.registerPostAccumulateGradHook(() => calls.push('b'));
  const c = w.registerPostAccumulateGradHook(() => calls.push('c'));
  w.mul(3).sum().backward();
  t.deepEqual(calls, ['a', 'b', 'c']);
  a.remove();
  c.remove();
  c.remove();
  w.mul(3).sum().backward();
  t.deepEqual(calls, ['a', 'b', 'c', 'b']);
  t.deepEqual(copyOf(w.grad), [6, 6]);
  // a leaf that is the root itself
  w.sum().backward();
  t.deepEqual(calls, ['a', 'b', 'c', 'b', 'b']);
});

test('retainGraph: a second backward through the same graph runs the hooks again', (t) => {
  const { weights, loss } = chain(2);
  const counts = [0, 0, 0];
  weights.forEach((w, i) => w.registerPostAccumulateGradHook(() => counts[i]++));
  const l = loss();
  l.backward({ retainGraph: true });
  const once = weights.map((w) => copyOf(w.grad));
  l.backward();
  t.deepEqual(counts, [2, 2, 2]);
  weights.forEach((w, i) => t.deepEqual(copyOf(w.grad), once[i].map((g) => 2 * g)));
});

test('an exception in a hook propagates out of backward; the graph and its gradients are freed', (t) => {
  const { weights, loss } = chain(3);
  const before = ig.memory().tensors;
  const l = ig.tidy(() => loss());
  const hook = weights[1].registerPostAccumulateGradHook(() => {
    throw new Error('hook failed');
  });
  let ended = false;
  weights[2].registerPostAccumulateGradHook(() => queueBackwardCallback(() => (ended = true)));
  t.throws(() => l.backward(), { message: 'hook failed' });
  t.false(ended, 'the end callbacks of a failed backward do not run');
  t.is(weights[0].grad, null, 'the walk stopped at the hook');
  // what is left: the loss and the grads of the two later layers, nothing of the walk or of the graph's saved tensors
  t.is(ig.memory().tensors, before + 3);
  assertCode(t, () => l.backward(), 'ERR_GRAD', /already backpropagated/);
  hook.remove();
  weights.forEach((w) => w.grad?.dispose());
  weights.forEach((w) => (w.grad = null));
  loss().backward();
  t.true(ended);
  t.not(weights[0].grad, null);
});

test('end callbacks run after every hook, in order, before backward returns; ERR_GRAD outside backward', (t) => {
  const { weights, loss } = chain(4);
  const events: string[] = [];
  weights[2].registerPostAccumulateGradHook(() => {
    events.push('hook 2');
    queueBackwardCallback(() => {
      events.push(`end 1 (first layer's grad: ${weights[0].grad !== null})`);
      t.false(ig.isGradEnabled());
      queueBackwardCallback(() => events.push('end 2'));
    });
  });
  weights[0].registerPostAccumulateGradHook(() => events.push('hook 0'));
  loss().backward();
  events.push('returned');
  t.deepEqual(events, ['hook 2', 'hook 0', "end 1 (first layer's grad: true)", 'end 2', 'returned']);
  assertCode(t, () => queueBackwardCallback(() => {}), 'ERR_GRAD', /no backward is running/);
  // a callback's exception propagates too
  weights[1].registerPostAccumulateGradHook(() =>
    queueBackwardCallback(() => {
      throw new Error('callback failed');
    }),
  );
  t.throws(() => loss().backward(), { message: 'callback failed' });
  assertCode(t, () => queueBackwardCallback(() => {}), 'ERR_GRAD');
});

test('registerPostAccumulateGradHook: leaves that require grad only, a function', (t) => {
  const w = ig.tensor([1, 2]).requiresGrad_();
  assertCode(t, () => w.mul(2).registerPostAccumulateGradHook(() => {}), 'ERR_GRAD', /only leaves.*mul/);
  assertCode(t, () => ig.tensor([1, 2]).registerPostAccumulateGradHook(() => {}), 'ERR_GRAD', /does not require grad/);
  assertCode(t, () => w.registerPostAccumulateGradHook('f' as unknown as () => void), 'ERR_ARG', /function/);
  const gone = ig.tensor([1]).requiresGrad_();
  gone.dispose();
  assertCode(t, () => gone.registerPostAccumulateGradHook(() => {}), 'ERR_DISPOSED');
});

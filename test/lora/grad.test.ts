/**
 * The differentiable loraLinear: its gradients against finite differences (float64, leading
 * batch dims, with and without bias and dropout mask), what it computes and refuses for W.
 */
import test from 'ava';
import * as ig from '../../lib';
import { Rng, assertCode, randomTensor } from '../helpers';

function leaf(rng: Rng, shape: number[], grad: boolean): ig.Tensor {
  return randomTensor(rng, shape, 'float64').t.requiresGrad_(grad);
}

test('loraLinear: gradcheck of x, A, B and bias, with and without bias, mask and leading dims', (t) => {
  const rng = new Rng(11);
  for (const lead of [[3], [2, 3], [2, 1, 2]]) {
    for (const withBias of [false, true]) {
      for (const withMask of [false, true]) {
        const [inF, out, r] = [rng.int(2, 5), rng.int(2, 5), rng.int(1, 3)];
        const x = leaf(rng, [...lead, inF], true);
        const w = leaf(rng, [out, inF], false);
        const a = leaf(rng, [r, inF], true);
        const b = leaf(rng, [out, r], true);
        const bias = withBias ? leaf(rng, [out], true) : null;
        const mask = withMask ? ig.loraDropoutMask([...lead, inF], 0.4, { dtype: 'float64' }) : null;
        const scale = rng.uniform(0.5, 2);
        const inputs = bias ? [x, a, b, bias] : [x, a, b];
        const fn = (xx: ig.Tensor, aa: ig.Tensor, bb: ig.Tensor, bi?: ig.Tensor) => ig.loraLinear(xx, w, bi ?? null, aa, bb, scale, { dropoutMask: mask });
        t.true(ig.gradcheck(fn, inputs), `lead [${lead}] bias ${withBias} mask ${withMask}`);
        for (const u of [x, w, a, b, bias, mask]) u?.dispose();
      }
    }
  }
});

test('loraLinear: no gradient for W, none for x unless it requires grad; the result matches the forward', (t) => {
  const rng = new Rng(12);
  const x = leaf(rng, [2, 3, 4], false);
  const w = leaf(rng, [5, 4], false);
  const bias = leaf(rng, [5], false);
  const a = leaf(rng, [2, 4], true);
  const b = leaf(rng, [5, 2], true);
  const y = ig.loraLinear(x, w, bias, a, b, 0.7);
  const { y: expected, xa } = ig.loraLinearForward(x, w, bias, a, b, 0.7);
  t.deepEqual(y.data(), expected.data());
  t.true(y.requiresGrad);
  y.sum().backward();
  t.is(x.grad, null);
  t.is(w.grad, null);
  t.is(bias.grad, null);
  t.not(a.grad, null);
  t.not(b.grad, null);
  // Without any input requiring grad nothing is recorded.
  const plain = ig.noGrad(() => ig.loraLinear(x, w, bias, a, b, 0.7));
  t.false(plain.requiresGrad);
  for (const u of [x, w, bias, a, b, y, expected, xa, plain]) u.dispose();
});

test('loraLinear: a base weight that requires grad is refused while recording (ERR_GRAD)', (t) => {
  const rng = new Rng(13);
  const x = leaf(rng, [3, 4], true);
  const w = leaf(rng, [5, 4], true);
  const a = leaf(rng, [2, 4], true);
  const b = leaf(rng, [5, 2], true);
  assertCode(t, () => ig.loraLinear(x, w, null, a, b, 1), 'ERR_GRAD', /frozen/);
  // Under noGrad it is only a forward.
  const y = ig.noGrad(() => ig.loraLinear(x, w, null, a, b, 1));
  t.deepEqual(y.shape, [3, 5]);
  const frozen = w.detach();
  assertCode(t, () => ig.loraLinear(x, frozen, null, a, b, Number.NaN), 'ERR_ARG');
  for (const u of [x, w, frozen, a, b, y]) u.dispose();
});

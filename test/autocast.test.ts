/**
 * autocast: inside it, products run in the 16-bit dtype with their inputs cast (results equal
 * to explicit casts, gradients flowing back in the inputs' own dtypes), the float32 ops take and
 * give float32, float64 is left alone; nesting, null and exceptions restore the state.
 */
import test from 'ava';
import * as ig from '../lib';
import { Tensor } from '../lib';
import { assertCode, Rng, randomTensor, refOf } from './helpers';

/** Exactly the same dtype, shape and values. */
function same(t: import('ava').ExecutionContext, got: Tensor, expected: Tensor, what: string) {
  t.is(got.dtype, expected.dtype, what);
  t.deepEqual(got.shape, expected.shape, what);
  t.deepEqual(refOf(got).data, refOf(expected).data, what);
}

const rand = (rng: Rng, shape: number[]) => randomTensor(rng, shape, 'float32').t;

for (const dtype of ['bfloat16', 'float16'] as const) {
  test(`${dtype}: matmul, linear, the LoRA layer and attention equal their explicitly cast versions`, (t) => {
    const rng = new Rng(dtype === 'bfloat16' ? 1 : 2);
    const [a, b] = [rand(rng, [3, 5, 8]), rand(rng, [8, 6])];
    same(t, ig.autocast(dtype, () => ig.matmul(a, b)), ig.matmul(a.to(dtype), b.to(dtype)), 'matmul');
    const [x, w, bias] = [rand(rng, [4, 8]), rand(rng, [6, 8]), rand(rng, [6])];
    same(t, ig.autocast(dtype, () => ig.linear(x, w, bias)), ig.linear(x.to(dtype), w.to(dtype), bias.to(dtype)), 'linear');
    const wBf16 = w.to('bfloat16');
    const [la, lb] = [rand(rng, [2, 8]), rand(rng, [6, 2])];
    same(
      t,
      ig.autocast(dtype, () => ig.loraLinear(x, wBf16, null, la, lb, 0.5)),
      ig.loraLinear(x.to(dtype), wBf16.to(dtype), null, la, lb, 0.5),
      'loraLinear with a bfloat16 base weight and float32 adapters (which stay float32)',
    );
    const [q, k, v] = [rand(rng, [1, 2, 5, 4]), rand(rng, [1, 1, 5, 4]), rand(rng, [1, 1, 5, 4])];
    same(
      t,
      ig.autocast(dtype, () => ig.scaledDotProductAttention(q, k, v, { causal: true })),
      ig.scaledDotProductAttention(q.to(dtype), k.to(dtype), v.to(dtype), { causal: true }),
      'attention',
    );
  });
}

test('gradients flow back in each input dtype, equal to the explicit casts', (t) => {
  const grads = (auto: boolean) => {
    const x = rand(new Rng(4), [4, 8]).requiresGrad_();
    const la = rand(new Rng(5), [2, 8]).requiresGrad_();
    const lb = rand(new Rng(6), [6, 2]).requiresGrad_();
    const w = rand(new Rng(7), [6, 8]).to('bfloat16');
    const y = auto
      ? ig.autocast('bfloat16', () => ig.loraLinear(x, w, null, la, lb, 2))
      : ig.loraLinear(x.to('bfloat16'), w, null, la, lb, 2);
    ig.mul(y, y).to('float32').sum().backward();
    return [x.grad!, la.grad!, lb.grad!];
  };
  const [got, expected] = [grads(true), grads(false)];
  for (let i = 0; i < 3; i++) {
    t.is(got[i].dtype, 'float32');
    same(t, got[i], expected[i], `grad ${i}`);
  }
});

test('softmax, logSoftmax, the losses and the norms run in float32 inside autocast', (t) => {
  const rng = new Rng(8);
  const x16 = rand(rng, [4, 6]).to('bfloat16');
  const x32 = x16.to('float32');
  ig.autocast('bfloat16', () => {
    same(t, ig.softmax(x16, -1), ig.softmax(x32, -1), 'softmax');
    same(t, ig.logSoftmax(x16, -1), ig.logSoftmax(x32, -1), 'logSoftmax');
    const labels = ig.tensor([0, 5, 2, 3], { dtype: 'int32' });
    same(t, ig.crossEntropy(x16, labels), ig.crossEntropy(x32, labels), 'crossEntropy');
    same(t, ig.mseLoss(x16, ig.zeros([4, 6])), ig.mseLoss(x32, ig.zeros([4, 6])), 'mseLoss');
    const weight = rand(rng, [6]);
    same(t, ig.layerNorm(x16, [6], weight, null), ig.layerNorm(x32, [6], weight, null), 'layerNorm with a float32 weight');
    same(t, ig.rmsNorm(x16, [6], weight), ig.rmsNorm(x32, [6], weight), 'rmsNorm');
    // a product's bfloat16 output goes on to float32 softmax
    t.is(ig.softmax(ig.matmul(x32, x32.mT), -1).dtype, 'float32');
  });
  t.is(ig.softmax(x16, -1).dtype, 'bfloat16', 'outside autocast the dtype is kept');
});

test('float64 is not cast; nesting, null and exceptions restore the previous state', (t) => {
  const a64 = ig.ones([2, 2], { dtype: 'float64' });
  t.is(ig.autocast('bfloat16', () => ig.matmul(a64, a64)).dtype, 'float64');
  const a = ig.ones([2, 2]);
  t.is(ig.autocastDtype(), null);
  ig.autocast('bfloat16', () => {
    t.is(ig.matmul(a, a).dtype, 'bfloat16');
    ig.autocast('float16', () => t.is(ig.matmul(a, a).dtype, 'float16'));
    ig.autocast(null, () => t.is(ig.matmul(a, a).dtype, 'float32'));
    t.is(ig.autocastDtype(), 'bfloat16');
    t.throws(() =>
      ig.autocast('float16', () => {
        throw new Error('boom');
      }),
    );
    t.is(ig.autocastDtype(), 'bfloat16', 'restored after an exception');
    assertCode(t, () => ig.matmul(a, ig.ones([3, 3])), 'ERR_SHAPE');
  });
  t.is(ig.autocastDtype(), null);
  t.is(ig.autocast('bfloat16', () => 42), 42, 'returns what fn returns');
});

test('bad arguments', (t) => {
  assertCode(t, () => ig.autocast('float32' as 'bfloat16', () => 0), 'ERR_DTYPE');
  assertCode(t, () => ig.autocast('bfloat16', 3 as unknown as () => void), 'ERR_ARG');
});

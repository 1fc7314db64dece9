import test from 'ava';
import * as ig from '../../lib';
import { setRefetch } from '../../lib/autograd/graph';
import { assertClose, assertCode, refOf } from '../helpers';
import { launch, linesWith, worker } from './helpers';

// LoRA fine-tuning with the frozen weights sharded across 2 and 3 ranks equals the same steps
// unsharded on the whole batch, with and without prefetch, tied or not; each rank stores 1/N of
// the weights; and what is refused while sharded (workers/fsdp.ts).
for (const n of [2, 3]) {
  test.serial(`sharded frozen weights on ${n} ranks: the unsharded run's losses and adapters, 1/${n} of the bytes, the refusals`, async (t) => {
    const r = await launch(n, worker('fsdp')).done;
    t.is(r.code, 0, r.stderr);
    const ok = linesWith(r.stdout, /^\[rank \d+\] ok \d+$/);
    t.is(ok.length, n, r.stdout);
    for (const line of ok) t.true(Number(line.split(' ').pop()) > 100, line);
    for (const line of linesWith(r.stdout, /^\[rank 0\] stats /)) t.log(line);
  });
}

test('shardFrozenWeights without a process group is ERR_DIST', (t) => {
  const model = new ig.nn.Linear(4, 4);
  model.requiresGrad_(false);
  assertCode(t, () => ig.dist.shardFrozenWeights(model), 'ERR_DIST', /dist\.shardFrozenWeights: the process group is not initialized/);
  t.is(model.parameters().length, 2, 'the model is left as it was');
  model.dispose();
});

test('linear and loraLinear fetch a frozen weight registered with setRefetch again in their backward instead of saving it', (t) => {
  ig.manualSeed(3);
  const x = ig.randn([2, 3, 4], { dtype: 'float64' }).requiresGrad_(true);
  const w = ig.randn([5, 4], { dtype: 'float64' });
  const a = ig.randn([2, 4], { dtype: 'float64' }).requiresGrad_(true);
  const b = ig.randn([5, 2], { dtype: 'float64' }).requiresGrad_(true);
  const mask = ig.loraDropoutMask([2, 3, 4], 0.5, { dtype: 'float64' });
  // the backward must see the weight the refetcher gives, not the one the forward had
  const other = ig.randn([5, 4], { dtype: 'float64' });
  setRefetch(w, () => other);
  const g = ig.randn([2, 3, 5], { dtype: 'float64' });
  for (const [name, run] of [
    ['linear', () => ig.linear(x, w)],
    ['loraLinear', () => ig.loraLinear(x, w, null, a, b, 0.5)],
    ['loraLinear with dropout', () => ig.loraLinear(x, w, null, a, b, 0.5, { dropoutMask: mask })],
  ] as const) {
    const y = run();
    t.is(y._gradFn!.saved.includes(w), false);
    y.backward(g);
    // dx = g W (+ s (g B A) m for LoRA, m the dropout mask or ones)
    const expected = ig.tidy(() => {
      const base = ig.matmul(g, other);
      if (name === 'linear') return base;
      const lora = ig.matmul(ig.matmul(g, b), a).mul(0.5);
      return base.add(name === 'loraLinear' ? lora : lora.mul(mask));
    });
    assertClose(t, x.grad!, refOf(expected), undefined, name);
    for (const p of [x, a, b]) {
      p.grad?.dispose();
      p.grad = null;
    }
    expected.dispose();
    y.dispose();
  }
  for (const u of [x, w, a, b, mask, other, g]) u.dispose();
});

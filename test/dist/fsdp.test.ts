import test from 'ava';
import * as ig from '../../lib';
import { assertCode } from '../helpers';
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

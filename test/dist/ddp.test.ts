import test from 'ava';
import * as ig from '../../lib';
import { Tensor } from '../../lib';
import { assertCode } from '../helpers';
import { alive, killLastOfThree, launch, linesWith, worker } from './helpers';

const { dist } = ig;
const DDP = worker('ddp');

// Real worlds of processes: DDP (one backward per step, and noSync accumulation) and ZeRO-1 each
// equal one process training on the whole batch (workers/ddp.ts).
for (const n of [2, 3]) {
  test.serial(`${n} ranks: DDP, noSync accumulation and ZeRO-1 equal one process on the whole batch`, async (t) => {
    const r = await launch(n, DDP, ['check']).done;
    t.is(r.code, 0, r.stderr);
    const lines = linesWith(r.stdout, /^\[rank \d+\] check /);
    t.is(lines.length, 3 * n, r.stdout);
    const stateBytes: number[] = [];
    let full = 0;
    for (const line of lines) {
      const m = /check (\w+) (\S+) buckets (\d+) early ([\d,]+)(?: state (\d+) of (\d+))?$/.exec(line)!;
      t.truthy(m, line);
      t.true(Number(m[2]) < 1e-10, line);
      t.true(Number(m[3]) > 3, `several buckets: ${line}`);
      // the buckets finished by backward's walk started during it
      for (const early of m[4].split(',')) t.true(Number(early) >= 1, line);
      if (m[1] === 'zero') {
        stateBytes.push(Number(m[5]));
        full = Number(m[6]);
      }
    }
    t.is(stateBytes.length, n);
    t.is(
      stateBytes.reduce((a, b) => a + b, 0),
      full,
      'the shards hold the whole state once',
    );
    for (const bytes of stateBytes) t.true(bytes < full / n + full / 4, `${bytes} bytes of ${full} on one rank`);
  });
}

test.serial('a rank killed mid-training: the others fail within the timeout naming it, and no process is left', async (t) => {
  const { survivors, killedAt, ranks } = await killLastOfThree(DDP, /step 3\n/);
  for (const r of survivors) {
    t.is(r.code, 1, r.stderr);
    t.regex(r.stderr, /error ERR_(TIMEOUT|DIST) allReduce #\d+ \(float64 \[\d+\], avg\): .*rank 2/, r.stderr);
  }
  t.true(Date.now() - killedAt < 8000, `took ${Date.now() - killedAt} ms`);
  t.is((await ranks[2].done).signal, 'SIGKILL');
  for (const p of ranks) t.false(alive(p.child.pid!));
});

/** Two linear layers, the second used only when asked. */
class TwoLayers extends ig.nn.Module {
  first = new ig.nn.Linear(3, 4, { dtype: 'float64' });
  second = new ig.nn.Linear(4, 2, { dtype: 'float64' });
  forward(x: Tensor, useSecond = true): Tensor {
    const h = this.first.call(x).tanh();
    return useSecond ? this.second.call(h) : h;
  }
}

function grads(ps: Tensor[]): (number[] | null)[] {
  return ps.map((p) => (p.grad === null ? null : Array.from(p.grad.data() as Float64Array)));
}

// One process is a world of one: the API, its checks and its bookkeeping, in this process.
test.serial('a world of one: gradients as without DDP, unused params, noSync, stats, dispose', async (t) => {
  await dist.init({ timeoutMs: 10000 });
  try {
    ig.manualSeed(3);
    const plain = new TwoLayers();
    ig.manualSeed(3);
    const model = new TwoLayers();
    const ddp = new dist.DistributedDataParallel(model, { bucketCapMB: 40 / (1024 * 1024) });
    t.is(ddp.module, model);
    t.is(ddp.numBuckets, 4, 'each param a bucket of its own');
    t.is(ddp.lastSyncStats, null);
    const x = ig.randn([5, 3], { dtype: 'float64' });

    plain.call(x).sum().backward();
    ddp.call(x).sum().backward();
    t.deepEqual(grads(model.parameters()), grads(plain.parameters()));
    const stats = ddp.lastSyncStats!;
    t.is(stats.buckets, 4);
    t.is(stats.launchedEarly, 4);
    t.is(stats.bytes, (12 + 4 + 8 + 2) * 8 + 4 * 8, 'gradients and one flag per param');
    t.true(stats.waitMs >= 0 && stats.commMs >= 0 && stats.windowMs >= 0 && stats.hiddenShare >= 0 && stats.hiddenShare <= 1);

    // noSync accumulates; the next synced backward reduces the sums
    ddp.noSync(() => ddp.forward(x).sum().backward());
    await ddp.noSync(async () => ddp.forward(x).sum().backward());
    plain.call(x).sum().backward();
    plain.call(x).sum().backward();
    ddp.call(x).sum().backward();
    plain.call(x).sum().backward();
    t.deepEqual(grads(model.parameters()), grads(plain.parameters()));

    // params without a gradient in a backward: the others still reduce, they keep no grad
    for (const p of model.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
    ddp.call(x, false).sum().backward();
    t.deepEqual(
      grads(model.parameters()).map((g) => g !== null),
      [true, true, false, false],
    );
    t.is(ddp.lastSyncStats!.launchedEarly, 0, "the unused params' buckets come first and hold back the rest until the end");

    // after dispose(), backward no longer reduces
    const last = ddp.lastSyncStats;
    ddp.dispose();
    ddp.dispose();
    model.call(x).sum().backward();
    t.is(ddp.lastSyncStats, last);
    t.not(model.first.weight.grad, null);
    assertCode(t, () => ddp.forward(x), 'ERR_DISPOSED');
  } finally {
    dist.destroy();
  }
});

test.serial('construction copies rank 0 and checks its options; ZeRO in a world of one', async (t) => {
  assertCode(t, () => new dist.DistributedDataParallel(new TwoLayers()), 'ERR_DIST', /not initialized/);
  await dist.init({ timeoutMs: 10000 });
  try {
    const model = new TwoLayers();
    assertCode(t, () => new dist.DistributedDataParallel({} as TwoLayers), 'ERR_ARG', /expected a Module/);
    assertCode(t, () => new dist.DistributedDataParallel(model, { bucketCapMB: 0 }), 'ERR_ARG', /bucketCapMB must be a positive number/);
    assertCode(t, () => new dist.DistributedDataParallel(model, { broadcastBuffers: 1 as unknown as boolean }), 'ERR_ARG', /broadcastBuffers/);
    assertCode(t, () => new dist.DistributedDataParallel(model, { findUnused: true } as ig.dist.DistributedDataParallelOptions), 'ERR_ARG', /unknown option findUnused/);
    const ddp = new dist.DistributedDataParallel(model, { broadcastBuffers: true });
    t.is(ddp.numBuckets, 1);
    assertCode(t, () => ddp.noSync(5 as unknown as () => void), 'ERR_ARG');
    assertCode(t, () => ddp.measureCommunication(0), 'ERR_ARG', /reps/);
    t.true(ddp.measureCommunication(2) >= 0);
    ddp.dispose();

    // ZeRO: a balanced, deterministic partition; the inner optimizer holds this rank's share
    const sizes = [5, 1, 4, 4, 2, 3].map((n) => ig.zeros([n]));
    // largest first, each to the least loaded rank (ties to the lowest)
    t.deepEqual(dist.partitionBySize(sizes, 2), [0, 1, 1, 1, 0, 0]);
    t.deepEqual(dist.partitionBySize(sizes, 3), [0, 0, 1, 2, 2, 1]);
    const params = model.parameters();
    const zero = new dist.ZeroRedundancyOptimizer([{ params: params.slice(0, 2) }, { params: params.slice(2), lr: 0.5 }], ig.AdamW, { lr: 0.1 });
    t.is(zero.paramGroups.length, 2);
    t.is(zero.paramGroups[0].lr, 0.1);
    t.is(zero.paramGroups[1].lr, 0.5);
    t.is(zero.paramGroups[1].params.length, 2);
    t.deepEqual(zero.owners, [0, 0, 0, 0]);
    model.call(ig.randn([2, 3], { dtype: 'float64' })).sum().backward();
    zero.paramGroups[1].lr = 0.25;
    zero.step();
    t.is(zero.optimizer.paramGroups[1].lr, 0.25, 'the options reach the inner optimizer');
    t.is(zero.stateBytes(), 2 * 8 * (12 + 4 + 8 + 2));
    t.is(zero.localStateDict().paramGroups.length, 2);
    assertCode(t, () => zero.stateDict(), 'ERR_ARG', /not implemented.*localStateDict/);
    zero.zeroGrad();
    t.true(params.every((p) => p.grad === null));
    assertCode(t, () => new dist.ZeroRedundancyOptimizer([], ig.AdamW), 'ERR_ARG', /non-empty/);
    assertCode(t, () => new dist.ZeroRedundancyOptimizer([params[0], params[0]], ig.AdamW), 'ERR_ARG', /more than once/);
    assertCode(t, () => new dist.ZeroRedundancyOptimizer(params, ig.AdamW, { lr: -1 }), 'ERR_ARG', /lr/);
    zero.dispose();
  } finally {
    dist.destroy();
  }
});

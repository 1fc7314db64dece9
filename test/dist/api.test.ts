import test from 'ava';
import * as ig from '../../lib';
import { Work } from '../../lib/dist/work';
import { assertCode } from '../helpers';

const { dist } = ig;

// One process is a world of one: the API, its checks and the Work handles, in this process.
test.serial('before init: ERR_DIST; bad init options', async (t) => {
  t.false(dist.isInitialized());
  assertCode(t, () => dist.rank(), 'ERR_DIST', /not initialized/);
  assertCode(t, () => dist.allReduce(ig.ones([2])), 'ERR_DIST', /dist\.allReduce: the process group is not initialized/);
  if (!ig.cuda.isAvailable()) await t.throwsAsync(dist.init({ backend: 'nccl' }), { code: 'ERR_DEVICE', message: /NCCL cannot be used/ });
  await t.throwsAsync(dist.init({ backend: 'mpi' as 'gloo' }), { code: 'ERR_ARG' });
  await t.throwsAsync(dist.init({ timeoutMs: -5 }), { code: 'ERR_ARG', message: /timeoutMs/ });
  t.false(dist.isInitialized());
  dist.destroy(); // idempotent
});

test.serial('a world of one: rank, size, collectives as identities, Work handles', async (t) => {
  await dist.init({ backend: 'auto', timeoutMs: 10000 });
  t.true(dist.isInitialized());
  t.is(dist.rank(), 0);
  t.is(dist.worldSize(), 1);
  t.is(dist.localRank(), 0);
  await t.throwsAsync(dist.init(), { code: 'ERR_DIST', message: /already initialized/ });

  const x = ig.tensor([1.5, -2, 3]);
  const work = dist.allReduce(x, { op: 'avg' });
  t.is(await work, x);
  t.true(work.isCompleted);
  t.is(work.wait(), x); // settled works answer at once
  t.deepEqual(x.toArray(), [1.5, -2, 3]);
  t.is(dist.allReduce(ig.tensor([2, 3], { dtype: 'int64' }), { op: 'prod' }).wait().dtype, 'int64');

  const [only] = await dist.allGather(x);
  t.deepEqual(only.toArray(), [1.5, -2, 3]);
  t.deepEqual((await dist.allGather(x, { into: 'stack' })).shape, [1, 3]);
  t.deepEqual((await dist.allGather(x, { into: 'cat' })).shape, [3]);
  const out = ig.zeros([1, 3]);
  t.is(await dist.allGather(x, { out }), out);
  t.deepEqual(out.toArray(), [[1.5, -2, 3]]);

  t.deepEqual((await dist.reduceScatter(ig.tensor([[1, 2]]))).toArray(), [[1, 2]]);
  t.deepEqual((await dist.reduceScatter([ig.tensor([4, 5])], { op: 'max' })).toArray(), [4, 5]);
  t.deepEqual((await dist.broadcast(ig.tensor([7]), { src: 0 })).toArray(), [7]);
  t.is(await dist.barrier(), undefined);
  dist.barrier().wait();
  t.deepEqual((await dist.allReduce(ig.zeros([0]))).shape, [0]);
  dist.destroy();
  t.false(dist.isInitialized());
});

test.serial('every check of the collectives names the op', async (t) => {
  await dist.init({ timeoutMs: 10000 });
  const x = ig.ones([4]);
  assertCode(t, () => dist.allReduce(ig.tensor([true, false])), 'ERR_DTYPE', /cannot reduce bool/);
  assertCode(t, () => dist.allReduce(ig.tensor([1, 2], { dtype: 'int32' }), { op: 'avg' }), 'ERR_DTYPE', /avg needs a floating-point/);
  assertCode(t, () => dist.allReduce(x, { op: 'mean' as 'sum' }), 'ERR_ARG', /op must be one of sum, avg, max, min, prod/);
  assertCode(t, () => dist.allReduce([1, 2] as unknown as ig.Tensor), 'ERR_ARG', /dist\.allReduce: tensor must be a Tensor/);
  assertCode(t, () => dist.allReduce(x, { timeoutMs: 0 }), 'ERR_ARG', /timeoutMs must be a positive integer/);
  const gone = ig.ones([2]);
  gone.dispose();
  assertCode(t, () => dist.allReduce(gone), 'ERR_DISPOSED');
  assertCode(t, () => dist.allGather(x, { out: [x, x] }), 'ERR_ARG', /one tensor per rank \(1\), got 2/);
  assertCode(t, () => dist.allGather(x, { out: [ig.ones([5])] }), 'ERR_SHAPE', /out\[0\] must have shape \[4\]/);
  assertCode(t, () => dist.allGather(x, { out: [ig.ones([4], { dtype: 'float64' })] }), 'ERR_DTYPE', /out\[0\] must be float32/);
  assertCode(t, () => dist.allGather(x, { out: ig.ones([2, 4]) }), 'ERR_SHAPE', /\[1, 4\] \(stacked\) or \[4\] \(concatenated\)/);
  assertCode(t, () => dist.allGather(ig.tensor(3), { into: 'cat' }), 'ERR_SHAPE', /0-d/);
  assertCode(t, () => dist.allGather(x, { into: 'rows' as 'cat' }), 'ERR_ARG', /into must be/);
  assertCode(t, () => dist.reduceScatter(ig.tensor(2)), 'ERR_SHAPE', /does not split into 1 equal parts/);
  assertCode(t, () => dist.reduceScatter([x, x]), 'ERR_ARG', /one tensor per rank/);
  assertCode(t, () => dist.reduceScatter(x, { out: ig.ones([3]) }), 'ERR_SHAPE', /out must have shape \[4\]/);
  assertCode(t, () => dist.broadcast(x, { src: 1 }), 'ERR_ARG', /src must be a rank in \[0, 1\), got 1/);
  assertCode(t, () => dist.send(x, 0), 'ERR_ARG', /another rank/);
  assertCode(t, () => dist.recv(x, 2), 'ERR_ARG', /src must be a rank/);
  assertCode(t, () => dist.send(x, 0.5), 'ERR_ARG', /dst must be a rank/);
  dist.destroy();
});

test.serial('init after destroy joins a fresh group', async (t) => {
  for (let i = 0; i < 2; i++) {
    await dist.init({ timeoutMs: 10000 });
    t.deepEqual((await dist.allReduce(ig.tensor([i]))).toArray(), [i]);
    dist.destroy();
  }
  t.pass();
});

test('Work: a wait() that only ordered the device (NCCL) leaves the work pending; its outcome settles it later', async (t) => {
  // A stand-in for a process group: waitNative answers as the NCCL group does for a running work.
  let calls = 0;
  const owner = { pending: new Map<number, Work<unknown>>(), waitNative: () => (calls++, false) };
  const ok = new Work(owner, 1, 'result');
  t.is(ok.wait(), 'result');
  t.false(ok.isCompleted);
  t.true(owner.pending.has(1));
  ok._settle(null);
  t.true(ok.isCompleted);
  t.is(await ok, 'result');
  t.is(ok.wait(), 'result');
  t.is(calls, 1, 'a settled work does not ask its group again');

  const failing = new Work(owner, 2, 'result');
  t.is(failing.wait(), 'result');
  const failure = new ig.IgnisError('allReduce #2: timed out', 'ERR_TIMEOUT');
  failing._settle(failure);
  await t.throwsAsync(failing.asPromise(), { code: 'ERR_TIMEOUT' });
  assertCode(t, () => failing.wait(), 'ERR_TIMEOUT');
  t.false(owner.pending.has(2));

  // Gloo: waitNative blocks and answers true, which settles the work.
  const blocking = new Work({ pending: new Map<number, Work<unknown>>(), waitNative: () => true }, 3, 7);
  t.is(blocking.wait(), 7);
  t.true(blocking.isCompleted);
});

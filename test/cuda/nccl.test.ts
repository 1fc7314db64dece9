/**
 * The NCCL process group (native/cuda/nccl.cc) behind dist's collectives on CUDA tensors. In
 * every build: where CUDA or NCCL cannot be used, init({backend: 'nccl'}) and a collective on a
 * CUDA device fail with ERR_DEVICE saying why. On a GPU with NCCL: the collectives test world
 * (test/dist/workers/collectives.ts: every collective, dtype and size against results computed
 * from what each rank holds) on one GPU, and on two ranks with a dead peer when there are two GPUs;
 * in this process, that compute issued between a collective and its wait() overlaps it.
 */
import test from 'ava';
import * as ig from '../../lib';
import { group } from '../../lib/dist/group';
import { native } from '../../lib/dist/native';
import { assertCode } from '../helpers';
import { alive, launch, worker, world } from '../dist/helpers';
import { tinyModel } from '../train/fixtures';

const { dist } = ig;

/** Why NCCL cannot be used here, or '' when it can. */
function ncclUnavailable(): string {
  try {
    dist.ncclVersion();
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}
const reason = ncclUnavailable();
const gpus = reason === '' ? ig.cuda.deviceCount() : 0;
if (reason !== '') console.log(`test/cuda/nccl: GPU tests skipped (${reason})`);
// serial: the tests in this process init and destroy the one process group in turn
const gpuTest = reason === '' ? test.serial : test.skip;
const twoGpuTest = gpus >= 2 ? test : test.skip;
if (reason === '' && gpus < 2) console.log('test/cuda/nccl: 2-rank tests skipped (one GPU)');

test.serial('without CUDA or NCCL: ncclVersion and init({backend: nccl}) fail with ERR_DEVICE saying why', async (t) => {
  if (reason === '') {
    t.regex(dist.ncclVersion(), /^\d+\.\d+\.\d+$/);
    t.log(`NCCL ${dist.ncclVersion()}`);
    return;
  }
  // The reason names what is missing: the CUDA backend, the driver or device, or libnccl and where it was looked for.
  const why = !ig.cuda.isBuilt() ? /no CUDA backend/ : !ig.cuda.isAvailable() ? /CUDA is not available: / : /NCCL \(libnccl\.so\.2\) was not found\. Looked in /;
  assertCode(t, () => dist.ncclVersion(), 'ERR_DEVICE', why);
  if (ig.cuda.isBuilt() && !ig.cuda.isAvailable()) t.true(reason.includes(ig.cuda.unavailableReason()), reason);
  const e = await t.throwsAsync(dist.init({ backend: 'nccl', timeoutMs: 5000 }), { code: 'ERR_DEVICE' });
  t.regex(e!.message, /^dist\.init: NCCL cannot be used for CUDA tensors: /);
  t.regex(e!.message, why);
  t.false(dist.isInitialized());
});

test.serial('a CUDA device in a collective: ERR_DEVICE from the gloo backend, and where NCCL is missing', async (t) => {
  await dist.init({ backend: 'gloo', timeoutMs: 10000 });
  t.is(dist.backend(), 'gloo');
  assertCode(t, () => group('t').channel('dist.allReduce', 'cuda:0'), 'ERR_DEVICE', /dist\.allReduce: the gloo backend handles CPU tensors, got a tensor on cuda:0 \(init with backend 'nccl' or 'auto'/);
  t.is(group('t').channel('dist.allReduce', 'cpu'), group('t').gloo);
  t.deepEqual((await dist.allReduce(ig.tensor([1, 2]))).toArray(), [1, 2]);
  dist.destroy();

  await dist.init({ timeoutMs: 10000 });
  t.is(dist.backend(), 'auto');
  if (reason !== '') {
    assertCode(t, () => group('t').channel('dist.allGather', 'cuda:1'), 'ERR_DEVICE', /dist\.allGather: NCCL cannot be used for CUDA tensors: /);
    t.is(group('t').nccl, null);
  }
  // CPU tensors still go through Gloo.
  t.deepEqual((await dist.broadcast(ig.tensor([3]))).toArray(), [3]);
  dist.destroy();
});

test.serial('the native NCCL group checks its options and says why it cannot start', (t) => {
  const options = { rank: 0, size: 1, storeHost: '127.0.0.1', storePort: 1, token: 'x', prefix: 'p', timeoutMs: 1000, debug: false, iface: '', device: 0, peersPrefix: '' };
  if (reason !== '') {
    assertCode(t, () => new native.NcclGroup(options, () => {}), 'ERR_DEVICE');
  } else {
    assertCode(t, () => new native.NcclGroup({ ...options, rank: 1 }, () => {}), 'ERR_ARG', /rank must be in \[0, 1\)/);
    assertCode(t, () => new native.NcclGroup({ ...options, device: 64 }, () => {}), 'ERR_DEVICE', /cuda:64 does not exist/);
  }
  assertCode(t, () => new native.NcclGroup({ ...options, peersPrefix: undefined } as never, () => {}), 'ERR_ARG', /peersPrefix/);
});

gpuTest('a world of one on one GPU: every collective and dtype against local results (backend nccl)', async (t) => {
  const r = await launch(1, worker('collectives'), [], { IGNIS_DIST_DEVICE: 'cuda', IGNIS_DIST_BACKEND: 'nccl' }).done;
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /ok \d+/);
  t.log(/ok \d+/.exec(r.stdout)![0], `in ${r.ms} ms`);
});

gpuTest('in this process: collectives on cuda:0 are ordered with the ops around them; bad tensors are refused', async (t) => {
  await dist.init({ backend: 'nccl', timeoutMs: 20000 });
  const x = ig.tensor([0, 1, 2, 3, 4, 5]).cuda(0);
  // wait() orders the device's stream after the collective without blocking: the ops queued
  // after it see its result.
  dist.allReduce(x, { op: 'avg' }).wait();
  const y = ig.mul(x, 2);
  t.deepEqual(y.cpu().toArray(), [0, 2, 4, 6, 8, 10]);
  // A non-contiguous tensor goes through a copy, copied back on the comm stream before the work ends.
  const m = ig.tensor([[1, 2], [3, 4]]).cuda(0).transpose(0, 1);
  dist.allReduce(m).wait();
  t.deepEqual(ig.mul(m, 1).cpu().toArray(), [[1, 3], [2, 4]]);
  t.deepEqual((await dist.allGather(x, { into: 'cat' })).device, 'cuda:0');
  await dist.barrier();
  assertCode(t, () => dist.allReduce(ig.ones([2], { dtype: 'bool', device: 'cuda:0' })), 'ERR_DTYPE');
  assertCode(t, () => dist.allGather(x, { out: [ig.zeros([6])] }), 'ERR_DEVICE', /every tensor must be on cuda:0, got one on cpu/);
  if (ig.cuda.deviceCount() > 1) assertCode(t, () => dist.allReduce(ig.ones([2], { device: 'cuda:1' })), 'ERR_DEVICE', /nccl process group of this rank is on cuda:0/);
  dist.destroy();
  t.false(dist.isInitialized());
});

gpuTest('in this process: compute issued between a collective and its wait() overlaps it; the results and the inputs kept alive are right', async (t) => {
  await dist.init({ backend: 'nccl', timeoutMs: 20000 });
  const n = 1 << 22;
  const data = Float32Array.from({ length: n }, (_, i) => (i % 1000) / 7);
  const x = ig.tensor(data).cuda(0);
  // An input no longer referenced once issued: the work keeps its memory until it completes, so
  // the tensors made meanwhile on the current stream cannot take it.
  const src = ig.tensor(data).cuda(0);
  const gathered = ig.empty([n], { device: 'cuda:0' });
  const reduce = dist.allReduce(x, { op: 'sum' });
  const gather = dist.allGather(src, { out: gathered });
  src.dispose();
  // Compute queued while the collectives run on the comm stream.
  const a = ig.randn([1024, 1024], { device: 'cuda:0' });
  const b = ig.randn([1024, 1024], { device: 'cuda:0' });
  let c = ig.matmul(a, b);
  const fillers = Array.from({ length: 8 }, () => ig.full([n], -1, { device: 'cuda:0' }));
  for (let i = 0; i < 8; i++) c = ig.tanh(ig.matmul(c, b));
  reduce.wait();
  gather.wait();
  const expected = c.cpu();
  t.deepEqual(Array.from(x.cpu().data() as Float32Array), Array.from(data));
  t.deepEqual(Array.from(gathered.cpu().data() as Float32Array), Array.from(data));
  // the compute's own result, against the same ops after the collectives finished
  let again = ig.matmul(a, b);
  for (let i = 0; i < 8; i++) again = ig.tanh(ig.matmul(again, b));
  const want = expected.data() as Float32Array;
  const got = again.cpu().data() as Float32Array;
  t.true(want.every((v, i) => Math.abs(v - got[i]) <= 1e-4 * (1 + Math.abs(v))), 'the compute issued during the collectives');
  await reduce;
  await gather;
  t.true(reduce.isCompleted && gather.isCompleted);
  for (const f of fillers) f.dispose();
  dist.destroy();
});

gpuTest('in this process: DDP of a CUDA model keeps its buckets on the GPU and gives the gradients of the model alone', async (t) => {
  await dist.init({ backend: 'nccl', timeoutMs: 20000 });
  const ids = ig.tensor(BigInt64Array.from([3, 7, 1, 19, 4, 4, 0, 12], BigInt), { shape: [2, 4] }).cuda(0);
  const gradsOf = (wrap: boolean) => {
    const model = tinyModel('float32', true, 0).to('cuda:0');
    const ddp = wrap ? new dist.DistributedDataParallel(model, { bucketCapMB: 0.001 }) : null;
    ig.tidy(() => model.forward(ids, { labels: ids }).loss!.backward());
    const grads = model.parameters().filter((p) => p.requiresGrad).map((p) => p.grad!.cpu());
    t.true(model.parameters().every((p) => p.device === 'cuda:0'));
    ddp?.dispose();
    model.dispose();
    return grads;
  };
  const [alone, wrapped] = [gradsOf(false), gradsOf(true)];
  t.is(wrapped.length, alone.length);
  wrapped.forEach((g, i) => t.deepEqual(Array.from(g.data() as Float32Array), Array.from(alone[i].data() as Float32Array), `grad ${i}`));
  t.is(dist.backend(), 'nccl');
  ids.dispose();
  dist.destroy();
});

twoGpuTest('two ranks on two GPUs: every collective and dtype, NCCL made at the first CUDA collective (auto)', async (t) => {
  const r = await launch(2, worker('collectives'), [], { IGNIS_DIST_DEVICE: 'cuda', IGNIS_DIST_BACKEND: 'auto' }).done;
  t.is(r.code, 0, r.stderr);
  t.is((r.stdout.match(/ok \d+/g) ?? []).length, 2, r.stdout);
});

twoGpuTest('two ranks on two GPUs: a killed rank fails the other within its timeout, naming the work and the rank', async (t) => {
  const { ranks, store } = world(2, worker('faults'), ['loop', '100000'], () => ({ TIMEOUT_MS: '8000', IGNIS_DIST_DEVICE: 'cuda' }));
  const t0 = Date.now();
  while (!/step 3/.test(ranks[0].stdout()) && Date.now() - t0 < 60000) await new Promise((res) => setTimeout(res, 20));
  const killedAt = Date.now();
  ranks[1].child.kill('SIGKILL');
  const a = await ranks[0].done;
  store.close();
  t.is(a.code, 1, a.stderr);
  t.regex(a.stderr, /error ERR_(TIMEOUT|DIST) allReduce #\d+ \(float32 \[1024\], sum\): .*\(rank 0 of 2, cuda:0\)/, a.stderr);
  t.regex(a.stderr, /next ERR_DIST .*unusable after an earlier failure/);
  t.true(Date.now() - killedAt < 15000, `took ${Date.now() - killedAt} ms`);
  for (const p of ranks) t.false(alive(p.child.pid!));
});

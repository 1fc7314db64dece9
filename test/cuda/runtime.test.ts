/**
 * ig.cuda's device runtime. Without CUDA (a build without the backend, no driver or no device)
 * every use of a CUDA device is ERR_DEVICE with the reason; with a GPU, devices, transfers,
 * streams, events and the caching allocator work.
 */
import test from 'ava';
import * as ig from '../../lib';
import { DType } from '../../lib';
import { assertCode, Rng } from '../helpers';

const reason = ig.cuda.unavailableReason();
const gpuTest = reason ? test.skip : test;
const noGpuTest = reason ? test : test.skip;
if (reason) console.log(`test/cuda/runtime: GPU tests skipped (${reason})`);

noGpuTest('without CUDA: isAvailable() is false and every use of a CUDA device says why', (t) => {
  t.false(ig.cuda.isAvailable());
  t.is(ig.cuda.deviceCount(), 0);
  t.regex(reason, ig.cuda.isBuilt() ? /driver|device/ : /no CUDA backend/);
  const uses: [string, () => unknown][] = [
    ['getDeviceProperties', () => ig.cuda.getDeviceProperties(0)],
    ['synchronize', () => ig.cuda.synchronize()],
    ['setDevice', () => ig.cuda.setDevice(0)],
    ['currentStream', () => ig.cuda.currentStream()],
    ['defaultStream', () => ig.cuda.defaultStream(0)],
    ['Stream.create', () => ig.cuda.Stream.create()],
    ['Event', () => new ig.cuda.Event({ enableTiming: true })],
    ['memoryStats', () => ig.cuda.memoryStats()],
    ['resetPeakMemoryStats', () => ig.cuda.resetPeakMemoryStats()],
    ['emptyCache', () => ig.cuda.emptyCache('cuda:0')],
    ['empty', () => ig.empty([2], { device: 'cuda' })],
    ['randn', () => ig.randn([2], { device: 'cuda:0' })],
    ['cuda()', () => ig.ones([2]).cuda()],
    ['cuda(1)', () => ig.ones([2]).cuda(1)],
    ['to', () => ig.ones([2]).to('cuda')],
  ];
  for (const [name, use] of uses) {
    const err = t.throws(use, { instanceOf: ig.IgnisError }, name);
    t.is(err?.code, 'ERR_DEVICE', name);
    t.true(err?.message.includes(reason), `${name}: ${err?.message}`);
  }
  t.is(ig.ones([2]).cpu().device, 'cpu', 'cpu() needs no GPU');
});

test('the matmul precision is a setting of its own, kept without a GPU', (t) => {
  t.is(ig.cuda.getMatmulPrecision(), 'highest');
  ig.cuda.setMatmulPrecision('high');
  t.is(ig.cuda.getMatmulPrecision(), 'high');
  ig.cuda.setMatmulPrecision('highest');
  t.is(ig.cuda.getMatmulPrecision(), 'highest');
  assertCode(t, () => ig.cuda.setMatmulPrecision('medium' as ig.cuda.MatmulPrecision), 'ERR_ARG');
});

test('device arguments are checked: indices, names', (t) => {
  assertCode(t, () => ig.cuda.getDeviceProperties(-1), 'ERR_ARG');
  assertCode(t, () => ig.cuda.getDeviceProperties(1.5), 'ERR_ARG');
  assertCode(t, () => ig.cuda.memoryStats('gpu' as ig.Device), 'ERR_DEVICE', /unknown device/);
  assertCode(t, () => ig.cuda.synchronize('cpu'), 'ERR_DEVICE');
  assertCode(t, () => ig.cuda.getDeviceProperties(ig.cuda.deviceCount()), 'ERR_DEVICE');
});

gpuTest('device count and properties', (t) => {
  t.true(ig.cuda.isAvailable());
  t.true(ig.cuda.deviceCount() >= 1);
  const p = ig.cuda.getDeviceProperties(0);
  t.true(p.name.length > 0);
  t.true(p.totalMemory > 1 << 30);
  t.true(p.major >= 7);
  t.true(p.multiProcessorCount > 0);
  t.log(`${p.name}, compute ${p.major}.${p.minor}, ${(p.totalMemory / 2 ** 30).toFixed(1)} GiB, ${p.multiProcessorCount} SMs`);
  const v = ig.cuda.versions();
  t.regex(v.runtime, /^\d+\.\d+$/);
  t.regex(v.driver, /^\d+\.\d+$/);
  ig.cuda.synchronize();
  t.is(ig.zeros([2], { device: 'cuda' }).device, 'cuda:0', "'cuda' is the current device");
});

const DTYPES: DType[] = ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'int64', 'bool'];

gpuTest('to(cuda) and back keeps every element of every dtype; views move as their elements', (t) => {
  const rng = new Rng(1);
  for (const dtype of DTYPES) {
    for (const n of [0, 1, 7, 1000, 3 * (1 << 20) + 5]) {
      const values = Float64Array.from({ length: n }, () => (dtype === 'bool' ? rng.int(0, 1) : rng.int(-100, 100)));
      const host = ig.tensor(values, { dtype });
      const device = host.to('cuda');
      t.is(device.device, 'cuda:0');
      const back = device.cpu();
      t.is(back.device, 'cpu');
      t.deepEqual(Array.from(back.data() as ArrayLike<number | bigint>), Array.from(host.data() as ArrayLike<number | bigint>), `${dtype} ${n}`);
      for (const x of [host, device, back]) x.dispose();
    }
  }
  const base = ig.arange(24, { dtype: 'float32' }).reshape(2, 3, 4);
  const view = base.permute(2, 0, 1).slice(0, 1, 4, 2);
  t.deepEqual(view.cuda().toArray(), view.toArray(), 'a strided view arrives as its elements');
  t.deepEqual(view.cuda().cpu().toArray(), view.toArray());
});

gpuTest('creation on a device equals creation on the CPU, random ops included', (t) => {
  const pairs: [string, (device: ig.Device) => ig.Tensor][] = [
    ['zeros', (device) => ig.zeros([3, 4], { device })],
    ['full', (device) => ig.full([5], -2.5, { device, dtype: 'bfloat16' })],
    ['tensor', (device) => ig.tensor([[1, 2], [3, 4]], { device, dtype: 'int64' })],
    ['arange', (device) => ig.arange(0, 10, 0.5, { device })],
    ['linspace', (device) => ig.linspace(-1, 1, 9, { device, dtype: 'float64' })],
    ['eye', (device) => ig.eye(3, 4, { device })],
  ];
  for (const [name, make] of pairs) t.deepEqual(make('cuda').toArray(), make('cpu').toArray(), name);
  for (const [name, make] of [
    ['rand', (device: ig.Device) => ig.rand([1000], { device })],
    ['randn', (device: ig.Device) => ig.randn([1001], { device, dtype: 'float16' })],
    ['randint', (device: ig.Device) => ig.randint(-5, 5, [999], { device })],
  ] as const) {
    ig.manualSeed(42);
    const gpu = make('cuda').toArray();
    ig.manualSeed(42);
    t.deepEqual(gpu, make('cpu').toArray(), `${name}: the same seed gives the same numbers on both devices`);
  }
});

gpuTest('to(device) records its gradient back to the source device', (t) => {
  const x = ig.tensor([1, 2, 3], { requiresGrad: true });
  const y = x.cuda().mul(2).cpu().sum();
  y.backward();
  t.deepEqual(x.grad!.toArray(), [2, 2, 2]);
  t.is(x.grad!.device, 'cpu');
});

gpuTest('streams: ops run on the current stream; withStream switches and restores it', (t) => {
  const main = ig.cuda.currentStream();
  t.is(main.id, ig.cuda.defaultStream().id);
  const side = ig.cuda.Stream.create();
  t.not(side.id, main.id);
  const x = ig.randn([1 << 20], { device: 'cuda' });
  side.waitStream(main);
  const y = ig.cuda.withStream(side, () => {
    t.is(ig.cuda.currentStream().id, side.id);
    return x.mul(3).add(1);
  });
  t.is(ig.cuda.currentStream().id, main.id);
  side.synchronize();
  t.true(side.query());
  const expected = x.cpu().mul(3).add(1);
  t.deepEqual(y.cpu().toArray(), expected.toArray());
  // ordering across streams with an event
  const event = side.recordEvent();
  main.waitEvent(event);
  event.synchronize();
  t.true(event.query());
});

gpuTest('events time work on the GPU', (t) => {
  const a = ig.randn([2048, 2048], { device: 'cuda' });
  const start = new ig.cuda.Event({ enableTiming: true }).record();
  for (let i = 0; i < 5; i++) ig.matmul(a, a).dispose();
  const end = new ig.cuda.Event({ enableTiming: true }).record();
  end.synchronize();
  const ms = start.elapsedTime(end);
  t.true(ms > 0 && ms < 10_000, `${ms} ms`);
  assertCode(t, () => start.elapsedTime(new ig.cuda.Event()), 'ERR_CUDA');
});

gpuTest('the caching allocator: memoryStats follows tensors, freed memory is cached and reused, emptyCache gives it back', (t) => {
  ig.cuda.synchronize();
  ig.cuda.emptyCache();
  const before = ig.cuda.memoryStats();
  const x = ig.empty([64, 1024, 1024], { device: 'cuda' }); // 256 MiB
  const during = ig.cuda.memoryStats();
  t.is(during.allocated - before.allocated, 256 * 2 ** 20);
  t.true(during.reserved >= during.allocated);
  t.true(during.peakAllocated >= during.allocated);
  x.dispose();
  const after = ig.cuda.memoryStats();
  t.is(after.allocated, before.allocated);
  t.is(after.reserved, during.reserved, 'the segment stays cached');
  const again = ig.empty([64, 1024, 1024], { device: 'cuda' });
  t.is(ig.cuda.memoryStats().mallocs, during.mallocs, 'reused without cudaMalloc');
  again.dispose();
  ig.cuda.emptyCache();
  t.is(ig.cuda.memoryStats().reserved, before.reserved);
  ig.cuda.resetPeakMemoryStats();
  t.is(ig.cuda.memoryStats().peakAllocated, ig.cuda.memoryStats().allocated);
  const cudaBytes = ig.memory().bytes.cuda;
  const live = ig.ones([1000], { device: 'cuda' });
  t.is(ig.memory().bytes.cuda - cudaBytes, 4000, 'ig.memory() counts CUDA tensors by device');
  live.dispose();
});

gpuTest('out of device memory is ERR_OOM naming the size, and the process goes on', (t) => {
  const total = ig.cuda.getDeviceProperties().totalMemory;
  const n = Math.ceil((total * 2) / 4);
  assertCode(t, () => ig.empty([n], { device: 'cuda' }), 'ERR_OOM', /out of memory allocating .*GiB/);
  const ok = ig.ones([4], { device: 'cuda' });
  t.deepEqual(ok.toArray(), [1, 1, 1, 1]);
});

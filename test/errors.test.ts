import test from 'ava';
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as ig from '../lib';
import { DType, Tensor } from '../lib';
import { addon, core, NativeHandle } from '../lib/native';
import { assertCode } from './helpers';

test('shape mismatch: ERR_SHAPE naming the op and the shapes', (t) => {
  const a = ig.zeros([2, 3]);
  assertCode(t, () => ig.add(a, ig.zeros([3, 2])), 'ERR_SHAPE', /add.*\[2, 3\].*\[3, 2\]/);
  assertCode(t, () => a.view(4), 'ERR_SHAPE', /view.*\[4\]/);
  assertCode(t, () => a.reshape(7), 'ERR_SHAPE', /reshape/);
  assertCode(t, () => a.permute(0), 'ERR_SHAPE', /permute/);
  assertCode(t, () => a.split([1, 2], 0), 'ERR_SHAPE', /split/);
  assertCode(t, () => a.item(), 'ERR_SHAPE', /item/);
  assertCode(t, () => ig.tensor([[1, 2], [3]]), 'ERR_SHAPE', /tensor/);
  assertCode(t, () => ig.tensor(Float32Array.from([1, 2, 3]), { shape: [2, 2] }), 'ERR_SHAPE', /tensor/);
  assertCode(t, () => core.fromBuffer(new Float32Array(3), [2, 2], 0), 'ERR_SHAPE');
  assertCode(t, () => core.empty(new Array(17).fill(1), 0), 'ERR_SHAPE', /16 dims/);
});

test('bad broadcast: ERR_SHAPE', (t) => {
  const a = ig.zeros([2, 3]);
  for (const other of [[4], [3, 3], [2, 2, 3, 2]]) assertCode(t, () => a.mul(ig.zeros(other)), 'ERR_SHAPE', /mul.*broadcast/);
  assertCode(t, () => a.expand(2, 4), 'ERR_SHAPE', /expand/);
  assertCode(t, () => a.expand(3), 'ERR_SHAPE', /expand/);
  assertCode(t, () => core.copyInto(ig.zeros([2]).handle('t'), a.handle('t')), 'ERR_SHAPE');
  assertCode(t, () => core.expand(a.handle('t'), [3, 3]), 'ERR_SHAPE');
});

test('wrong dtype: ERR_DTYPE', (t) => {
  assertCode(t, () => ig.zeros([2], { dtype: 'complex64' as DType }), 'ERR_DTYPE', /zeros|empty/);
  assertCode(t, () => ig.ones([2]).to('float8' as DType), 'ERR_ARG');
  assertCode(t, () => ig.rand([2], { dtype: 'int64' }), 'ERR_DTYPE', /rand/);
  assertCode(t, () => ig.randn([2], { dtype: 'bool' }), 'ERR_DTYPE', /randn/);
  assertCode(t, () => ig.arange(3, { dtype: 'bool' }), 'ERR_DTYPE', /arange/);
  assertCode(t, () => ig.linspace(0, 1, 3, { dtype: 'bool' }), 'ERR_DTYPE', /linspace/);
  assertCode(t, () => ig.randint(0, 2, [2], { dtype: 'bool' }), 'ERR_DTYPE', /randint/);
  // the native layer checks dtypes again
  const f32 = ig.zeros([2]).handle('t');
  const f64 = ig.zeros([2], { dtype: 'float64' }).handle('t');
  const native = addon as { binary(op: number, a: NativeHandle, b: NativeHandle): NativeHandle };
  assertCode(t, () => native.binary(0, f32, f64), 'ERR_DTYPE', /add.*float32.*float64/);
  assertCode(t, () => native.binary(3, ig.zeros([2], { dtype: 'int32' }).handle('t'), ig.zeros([2], { dtype: 'int32' }).handle('t')), 'ERR_DTYPE', /div/);
  assertCode(t, () => core.toDtype(f32, 7), 'ERR_DTYPE');
  assertCode(t, () => core.empty([2], -1), 'ERR_DTYPE');
});

test('devices: an unavailable or unknown device is ERR_DEVICE before anything is made', (t) => {
  const devices = (ig.cuda.isAvailable() ? [`cuda:${ig.cuda.deviceCount()}`] : ['cuda', 'cuda:0', 'cuda:3']) as ig.Device[];
  const why = ig.cuda.isAvailable() ? /does not exist/ : /not available/;
  const before = ig.getRngState();
  for (const device of devices) {
    assertCode(t, () => ig.zeros([2], { device }), 'ERR_DEVICE', why);
    assertCode(t, () => ig.rand([2], { device }), 'ERR_DEVICE', why);
    assertCode(t, () => ig.arange(2, { device }), 'ERR_DEVICE', why);
    assertCode(t, () => ig.tensor([1], { device }), 'ERR_DEVICE', why);
    assertCode(t, () => ig.ones([2]).to(device), 'ERR_DEVICE', why);
  }
  t.deepEqual(ig.getRngState(), before, 'the generator did not move');
  assertCode(t, () => ig.zeros([2], { device: 'gpu' as ig.Device }), 'ERR_DEVICE', /unknown device/);
  assertCode(t, () => ig.ones([2]).to('cuda:x' as ig.Device), 'ERR_ARG');
  // the native side checks the device again
  assertCode(t, () => core.empty([2], 0, ig.cuda.deviceCount()), 'ERR_DEVICE');
});

test('use after dispose: ERR_DISPOSED from every kind of op', (t) => {
  const gone = ig.ones([2, 3]);
  const live = ig.ones([2, 3]);
  const raw = gone.handle('t');
  gone.dispose();
  const uses: [string, () => unknown][] = [
    ['view', () => gone.view(6)], ['reshape', () => gone.reshape(6)], ['permute', () => gone.permute(1, 0)],
    ['transpose', () => gone.transpose(0, 1)], ['mT', () => gone.mT], ['narrow', () => gone.narrow(0, 0, 1)],
    ['slice', () => gone.slice(0, 0, 1)], ['select', () => gone.select(0, 0)], ['expand', () => gone.expand(2, 2, 3)],
    ['squeeze', () => gone.squeeze()], ['squeeze(dim)', () => gone.squeeze(0)], ['unsqueeze', () => gone.unsqueeze(0)],
    ['flatten', () => gone.flatten()], ['split', () => gone.split(1)], ['chunk', () => gone.chunk(2)],
    ['contiguous', () => gone.contiguous()], ['clone', () => gone.clone()], ['to(dtype)', () => gone.to('float64')],
    ['to(device)', () => gone.to('cpu')], ['data', () => gone.data()], ['toArray', () => gone.toArray()],
    ['item', () => gone.select(0, 0).select(0, 0).item()], ['strides', () => gone.strides], ['isContiguous', () => gone.isContiguous()],
    ['add', () => gone.add(live)], ['add (other)', () => live.add(gone)], ['sub scalar', () => gone.sub(1)],
    ['mul', () => ig.mul(2, gone)], ['div', () => gone.div(live)], ['pow', () => gone.pow(2)],
    ['maximum', () => ig.maximum(live, gone)], ['minimum', () => gone.minimum(live)],
    ['zerosLike', () => ig.zerosLike(gone)], ['onesLike', () => ig.onesLike(gone)], ['emptyLike', () => ig.emptyLike(gone)],
    ['fullLike', () => ig.fullLike(gone, 1)], ['randLike', () => ig.randLike(gone)], ['randnLike', () => ig.randnLike(gone)],
    ['randintLike', () => ig.randintLike(gone, 3)],
    ['native view', () => core.view(raw, [6])], ['native meta', () => core.meta(raw)], ['native toBuffer', () => core.toBuffer(raw)],
    ['native copyInto', () => core.copyInto(live.handle('t'), raw)], ['native fill', () => core.fill(raw, 1)],
  ];
  for (const [name, use] of uses) {
    const err = t.throws(use, { instanceOf: ig.IgnisError }, name) as ig.IgnisError | undefined;
    t.is(err?.code, 'ERR_DISPOSED', `${name}: ${err?.message}`);
  }
  t.is(gone.toString(), 'tensor(<disposed>, shape=[2, 3], dtype=float32)', 'printing a disposed tensor does not throw');
  // a released handle is never reused by a later tensor
  const later = ig.zeros([1]);
  t.not(later.handle('t'), raw);
  assertCode(t, () => core.meta(raw), 'ERR_DISPOSED');
});

test('NaN, negative and non-integer sizes: ERR_ARG', (t) => {
  const bad = [[NaN], [-1], [1.5], [2, -3], [Infinity], ['2' as unknown as number], [null as unknown as number]];
  const creators: [string, (s: number[]) => unknown][] = [
    ['empty', (s) => ig.empty(s)], ['zeros', (s) => ig.zeros(s)], ['ones', (s) => ig.ones(s)], ['full', (s) => ig.full(s, 1)],
    ['rand', (s) => ig.rand(s)], ['randn', (s) => ig.randn(s)], ['randint', (s) => ig.randint(0, 3, s)],
    ['native empty', (s) => core.empty(s, 0)],
  ];
  for (const shape of bad) for (const [name, make] of creators) assertCode(t, () => make(shape), 'ERR_ARG', name.startsWith('native') ? undefined : new RegExp(name));
  const x = ig.zeros([2, 3]);
  // -1 means "infer" for views; -2 does not
  for (const shape of [...bad.filter((s) => s[0] !== -1), [-2, -3]]) {
    assertCode(t, () => x.view(...shape), 'ERR_ARG');
    assertCode(t, () => x.reshape(...shape), 'ERR_ARG');
    assertCode(t, () => x.expand(2, ...shape), 'ERR_ARG');
  }
  assertCode(t, () => ig.zeros('3' as unknown as number[]), 'ERR_ARG');
  assertCode(t, () => ig.eye(-1), 'ERR_ARG');
  assertCode(t, () => ig.eye(2.5), 'ERR_ARG');
  assertCode(t, () => ig.linspace(0, 1, -3), 'ERR_ARG');
  assertCode(t, () => ig.linspace(0, 1, NaN), 'ERR_ARG');
  assertCode(t, () => ig.arange(NaN), 'ERR_ARG');
  assertCode(t, () => ig.arange(-3), 'ERR_ARG');
  assertCode(t, () => x.narrow(0, 0, NaN), 'ERR_ARG');
  assertCode(t, () => x.split(1.5), 'ERR_ARG');
  assertCode(t, () => core.empty([2 ** 40, 2 ** 30], 0), 'ERR_ARG', /too large/);
  // values an integer dtype cannot hold
  for (const [value, dtype] of [[NaN, 'int32'], [2 ** 31, 'int32'], [-Infinity, 'int64'], [2 ** 63, 'int64']] as const) {
    assertCode(t, () => ig.full([2], value, { dtype }), 'ERR_ARG', /full.*overflow/);
    assertCode(t, () => core.fill(ig.zeros([2], { dtype }).handle('t'), value), 'ERR_ARG', /fill/);
  }
  t.deepEqual(ig.full([2], -2.7, { dtype: 'int32' }).toArray(), [-2, -2]);
});

test('non-integer dims: ERR_ARG', (t) => {
  const x = ig.zeros([2, 3, 4]);
  const dims = [0.5, NaN, '1' as unknown as number, null as unknown as number, Infinity];
  for (const d of dims) {
    assertCode(t, () => x.transpose(d, 1), 'ERR_ARG');
    assertCode(t, () => x.permute(0, 1, d), 'ERR_ARG');
    assertCode(t, () => x.select(d, 0), 'ERR_ARG');
    assertCode(t, () => x.narrow(d, 0, 1), 'ERR_ARG');
    assertCode(t, () => x.slice(d, 0, 1), 'ERR_ARG');
    assertCode(t, () => x.squeeze(d), 'ERR_ARG');
    assertCode(t, () => x.unsqueeze(d), 'ERR_ARG');
    assertCode(t, () => x.flatten(d), 'ERR_ARG');
    assertCode(t, () => x.split(1, d), 'ERR_ARG');
    assertCode(t, () => x.chunk(2, d), 'ERR_ARG');
  }
  assertCode(t, () => core.narrow(x.handle('t'), 0.5, 0, 1), 'ERR_ARG');
  assertCode(t, () => core.unsqueeze(x.handle('t'), NaN), 'ERR_ARG');
});

test('out-of-range dims: ERR_INDEX', (t) => {
  const x = ig.zeros([2, 3, 4]);
  for (const d of [3, -4, 100]) {
    assertCode(t, () => x.transpose(0, d), 'ERR_INDEX', /transpose.*dim/);
    assertCode(t, () => x.permute(0, 1, d), 'ERR_INDEX', /permute/);
    assertCode(t, () => x.select(d, 0), 'ERR_INDEX', /select/);
    assertCode(t, () => x.narrow(d, 0, 1), 'ERR_INDEX', /narrow/);
    assertCode(t, () => x.slice(d, 0, 1), 'ERR_INDEX', /slice/);
    assertCode(t, () => x.squeeze(d), 'ERR_INDEX', /squeeze/);
    assertCode(t, () => x.flatten(0, d), 'ERR_INDEX', /flatten/);
    assertCode(t, () => x.split(1, d), 'ERR_INDEX', /split/);
    assertCode(t, () => x.chunk(1, d), 'ERR_INDEX', /chunk/);
  }
  assertCode(t, () => x.unsqueeze(4), 'ERR_INDEX', /unsqueeze/);
  assertCode(t, () => x.unsqueeze(-5), 'ERR_INDEX', /unsqueeze/);
  t.deepEqual(x.unsqueeze(-4).shape, [1, 2, 3, 4]);
  assertCode(t, () => x.select(0, 2), 'ERR_INDEX', /index 2/);
  assertCode(t, () => x.narrow(1, 2, 2), 'ERR_INDEX');
  const h = x.handle('t');
  assertCode(t, () => core.narrow(h, 5, 0, 1), 'ERR_INDEX');
  assertCode(t, () => core.narrow(h, 0, 1, 5), 'ERR_INDEX');
  assertCode(t, () => core.slice(h, -9, 0, 1, 1), 'ERR_INDEX');
  assertCode(t, () => core.squeeze(h, 3), 'ERR_INDEX');
  assertCode(t, () => core.unsqueeze(h, 5), 'ERR_INDEX');
  assertCode(t, () => core.permute(h, [0, 1, 3]), 'ERR_INDEX');
});

test('a view that needs a copy: ERR_SHAPE (reshape copies instead)', (t) => {
  const x = ig.tidy(() => ig.arange(24, { dtype: 'float32' }).reshape(2, 3, 4));
  const cases: [Tensor, number[]][] = [
    [x.transpose(0, 2), [24]],
    [x.permute(1, 0, 2), [6, 4]],
    [x.slice(1, 0, 3, 2), [16]],
    [x.narrow(1, 0, 2), [16]],
    [x.select(1, 1), [8]],
    [ig.zeros([3, 1]).expand(3, 4), [12]],
  ];
  for (const [v, shape] of cases) {
    assertCode(t, () => v.view(...shape), 'ERR_SHAPE', /cannot view.*without copying/);
    assertCode(t, () => core.view(v.handle('t'), shape), 'ERR_SHAPE');
    const r = v.reshape(...shape);
    t.deepEqual(r.toArray(), v.contiguous().view(...shape).toArray());
  }
});

test('no bad call crashes the process', (t) => {
  // A batch of wrong calls, many straight into the native layer with garbage arguments, in a
  // child process: each must throw an IgnisError (or a TypeError from TS-level checks), and the
  // process must exit normally.
  const script = `
    const ig = require(${JSON.stringify(path.join(__dirname, '..', 'lib'))});
    const { addon } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'native'))});
    const good = ig.ones([2, 3]);
    const h = good.handle('t');
    const garbage = [undefined, null, NaN, -1, 1e15, 2 ** 53, 0.5, 'x', {}, [], [NaN], [-5], [1e15, 1e15], [2 ** 62], good, h, -h, h + 0.5, () => 1, Symbol('s'), 10n];
    let calls = 0, ignisErrors = 0, others = [];
    const tryIt = (name, fn) => {
      calls++;
      try { const r = fn(); if (typeof r === 'number' && name !== 'getNumThreads') addon.dispose(r); }
      catch (e) { if (e instanceof ig.IgnisError) ignisErrors++; else others.push(name + ': ' + e); }
    };
    const fns = Object.keys(addon).filter((k) => typeof addon[k] === 'function' && !['setErrorClass', 'dispose', 'setNumThreads', 'setRngState'].includes(k));
    // Capitalised exports are classes (the distributed store and process group): constructed with new.
    const call = (name, ...args) => (/^[A-Z]/.test(name) ? new addon[name](...args) : addon[name](...args));
    for (const name of fns) {
      tryIt(name + '()', () => call(name));
      for (const a of garbage) {
        tryIt(name, () => call(name, a));
        tryIt(name, () => call(name, h, a));
        tryIt(name, () => call(name, a, h));
        tryIt(name, () => call(name, h, a, a, a, a));
        tryIt(name, () => call(name, 0, h, a, a));
        tryIt(name, () => call(name, a, a, a, 0));
      }
    }
    for (const a of garbage) { tryIt('setNumThreads', () => addon.setNumThreads(a)); tryIt('setRngState', () => addon.setRngState(a, a)); }
    addon.setNumThreads(2);
    // and the public API with wrong arguments
    const api = [() => ig.zeros(), () => ig.tensor(), () => ig.arange(), () => ig.linspace(), () => ig.eye(), () => ig.rand(),
      () => ig.randint(), () => ig.manualSeed(), () => ig.setRngState(), () => good.view(), () => good.permute(), () => good.expand(),
      () => good.narrow(), () => good.slice(), () => good.select(), () => good.split(), () => good.chunk(), () => good.to(),
      () => ig.add(), () => ig.add(good), () => good.add(), () => ig.full([2]), () => ig.zerosLike()];
    api.forEach((f, i) => tryIt('api ' + i, f));
    good.dispose();
    process.stdout.write(JSON.stringify({ calls, ignisErrors, others, alive: ig.ones([1]).item() }));
  `;
  const res = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000 });
  t.is(res.signal, null, `killed by ${res.signal}`);
  t.is(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout) as { calls: number; ignisErrors: number; others: string[]; alive: number };
  t.true(out.calls > 1000, `${out.calls} calls`);
  t.true(out.ignisErrors > out.calls / 2, `${out.ignisErrors} IgnisErrors of ${out.calls} calls`);
  t.deepEqual(out.others, [], 'every failure is an IgnisError');
  t.is(out.alive, 1);
});

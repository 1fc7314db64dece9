/**
 * The CUDA kernels against the CPU on fresh random inputs: copies and conversions, the
 * elementwise family (broadcast and strided views made on the device) with their gradients, and
 * matmul/linear through cuBLAS, float32 (also on TF32) / bfloat16 / float16 / float64, with
 * transposed operands passed without copies. Ops without a CUDA kernel yet raise ERR_DEVICE.
 * Skipped without a GPU. IGNIS_TEST_DEVICE=cpu runs the same comparisons CPU against CPU, which
 * checks the tests themselves where there is no GPU.
 */
import test from 'ava';
import * as ig from '../../lib';
import { DType } from '../../lib';
import { addon } from '../../lib/native';
import { LAYOUTS, Layout, Ref, Rng, assertClose, assertCode, makeTensor, randomShape, refFromFn, refOf, tolerance } from '../helpers';

const device = (process.env.IGNIS_TEST_DEVICE ?? 'cuda') as ig.Device;
const reason = device === 'cpu' ? '' : ig.cuda.unavailableReason();
const gpuTest = reason ? test.skip : test;
if (reason) console.log(`test/cuda/ops: GPU tests skipped (${reason})`);

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];
const ALL: DType[] = [...FLOATS, 'int32', 'int64', 'bool'];

/** The same random values in the same layout (default: a random one) on the CPU and on the device. */
function pair(rng: Rng, shape: number[], dtype: DType, lo = -1, hi = 1, integers = false, layout: Layout = rng.pick(LAYOUTS)) {
  const values = refFromFn(shape, () => (integers ? rng.int(lo, hi) : rng.uniform(lo, hi)));
  const cpu = makeTensor(values, dtype, layout);
  const gpu = makeTensor(values, dtype, layout, device);
  return { cpu: cpu.t, gpu: gpu.t, ref: cpu.ref };
}

/** Shapes that broadcast against `shape`: some dims set to 1, some leading dims dropped. */
function partner(rng: Rng, shape: number[]): number[] {
  return shape.slice(rng.int(0, shape.length)).map((d) => (rng.next() < 0.3 ? 1 : d));
}

/** Checks the device result against the CPU one: same shape, dtype and device, values within the dtype's tolerance. */
function same(t: import('ava').ExecutionContext, gpu: ig.Tensor, cpu: ig.Tensor, what: string, tol?: [number, number]) {
  t.is(gpu.device, device === 'cuda' ? 'cuda:0' : device, what);
  t.is(gpu.dtype, cpu.dtype, what);
  assertClose(t, gpu, refOf(cpu), tol ?? tolerance(cpu.dtype), what);
}

gpuTest('copies: every dtype to every dtype, from strided and broadcast views', (t) => {
  const rng = new Rng(1);
  for (const from of ALL) {
    for (const to of ALL) {
      const shape = randomShape(rng, 4, 5, 1);
      const { cpu, gpu } = pair(rng, shape, from, -300, 300, true);
      same(t, gpu.to(to), cpu.to(to), `${from} -> ${to}`, [0, 0]);
      same(t, gpu.contiguous(), cpu.contiguous(), `contiguous ${from}`, [0, 0]);
    }
  }
  for (const dtype of ALL) {
    const value = dtype === 'bool' ? 1 : -7.25;
    same(t, ig.full([3, 5], value, { dtype, device }), ig.full([3, 5], value, { dtype }), `full ${dtype}`, [0, 0]);
  }
  const big = ig.arange(6, { device }).reshape(2, 3);
  const cpuBig = ig.arange(6).reshape(2, 3);
  same(t, ig.cat([big, big.mT.contiguous().reshape(2, 3)], 1), ig.cat([cpuBig, cpuBig.mT.contiguous().reshape(2, 3)], 1), 'cat', [0, 0]);
});

const BINARY: [string, (a: ig.Tensor, b: ig.Tensor) => ig.Tensor][] = [
  ['add', ig.add],
  ['sub', ig.sub],
  ['mul', ig.mul],
  ['div', ig.div],
  ['pow', ig.pow],
  ['maximum', ig.maximum],
  ['minimum', ig.minimum],
];

gpuTest('binary ops: random shapes, broadcasting, layouts and dtypes', (t) => {
  const rng = new Rng(2);
  for (const [name, op] of BINARY) {
    for (const dtype of [...FLOATS, 'int32', 'int64'] as DType[]) {
      if (name === 'div' && !FLOATS.includes(dtype)) continue;
      for (let trial = 0; trial < 4; trial++) {
        const shape = randomShape(rng, 4, 6);
        const other = rng.next() < 0.5 ? shape : partner(rng, shape);
        const ints = !FLOATS.includes(dtype);
        // positive bases and small exponents for pow, divisors away from 0
        const a = pair(rng, shape, dtype, name === 'pow' ? (ints ? 1 : 0.5) : ints ? -50 : -1, name === 'pow' ? (ints ? 5 : 2) : ints ? 50 : 1, ints);
        const b = pair(rng, other, dtype, name === 'pow' ? 0 : name === 'div' ? 0.5 : ints ? -50 : -1, name === 'pow' ? 3 : ints ? 50 : 2, ints);
        same(t, op(a.gpu, b.gpu), op(a.cpu, b.cpu), `${name} ${dtype} ${JSON.stringify(shape)} ${JSON.stringify(other)}`);
        same(t, op(b.gpu, a.gpu), op(b.cpu, a.cpu), `${name} ${dtype} swapped`);
      }
    }
  }
  const x = pair(rng, [4, 5], 'float32', 0.5, 2);
  for (const [name, f] of [
    ['add scalar', (v: ig.Tensor) => ig.add(v, 2.5)],
    ['rsub', (v: ig.Tensor) => ig.sub(1, v)],
    ['rdiv', (v: ig.Tensor) => ig.div(1, v)],
    ['pow scalar', (v: ig.Tensor) => ig.pow(v, 3)],
    ['rpow', (v: ig.Tensor) => ig.pow(2, v)],
    ['add alpha', (v: ig.Tensor) => v.add(v, 0.5)],
    ['int promotes', (v: ig.Tensor) => v.to('int32').add(1.5)],
  ] as const) {
    same(t, f(x.gpu), f(x.cpu), name);
  }
});

const UNARY: [string, (x: ig.Tensor) => ig.Tensor, number, number][] = [
  ['neg', ig.neg, -3, 3],
  ['abs', ig.abs, -3, 3],
  ['sqrt', ig.sqrt, 0, 4],
  ['rsqrt', ig.rsqrt, 0.1, 4],
  ['exp', ig.exp, -20, 20],
  ['log', ig.log, 0.01, 100],
  ['tanh', ig.tanh, -6, 6],
  ['sigmoid', ig.sigmoid, -20, 20],
  ['relu', ig.relu, -3, 3],
  ['gelu', (x) => ig.gelu(x), -8, 8],
  ['gelu tanh', (x) => ig.gelu(x, 'tanh'), -8, 8],
  ['silu', ig.silu, -20, 20],
  ['clamp', (x) => ig.clamp(x, -0.5, 0.75), -2, 2],
];

gpuTest('unary ops and clamp, and their gradients, in every float dtype', (t) => {
  const rng = new Rng(3);
  for (const [name, op, lo, hi] of UNARY) {
    for (const dtype of FLOATS) {
      const shape = randomShape(rng, 3, 7, 1);
      const x = pair(rng, shape, dtype, lo, hi);
      same(t, op(x.gpu), op(x.cpu), `${name} ${dtype}`);
      if (name === 'neg') continue;
      // the gradient kernels, through autograd with an explicit output gradient
      const g = pair(rng, shape, dtype);
      const grads = [x.gpu, x.cpu].map((v, k) => {
        const leaf = v.contiguous().detach().requiresGrad_();
        op(leaf).backward(k === 0 ? g.gpu : g.cpu);
        return leaf.grad!;
      });
      same(t, grads[0], grads[1], `${name}' ${dtype}`);
    }
  }
  for (const dtype of ['int32', 'int64'] as DType[]) {
    const x = pair(rng, [5, 6], dtype, -1000, 1000, true);
    for (const [name, op] of [['neg', ig.neg], ['abs', ig.abs], ['relu', ig.relu], ['clamp', (v: ig.Tensor) => ig.clamp(v, -10, 300)]] as const) {
      same(t, op(x.gpu), op(x.cpu), `${name} ${dtype}`, [0, 0]);
    }
    same(t, ig.sqrt(x.gpu.abs()), ig.sqrt(x.cpu.abs()), `sqrt promotes ${dtype}`);
  }
});

gpuTest('binary gradients: pow, maximum, minimum, mul, div', (t) => {
  const rng = new Rng(4);
  for (const [name, op] of BINARY) {
    for (const dtype of FLOATS) {
      const shape = randomShape(rng, 3, 5, 1);
      const a = pair(rng, shape, dtype, 0.5, 2);
      // ties for maximum/minimum: b takes some of a's values
      const b = pair(rng, shape, dtype, 0.5, 2);
      const g = pair(rng, shape, dtype);
      const grads = [0, 1].map((k) => {
        const [x, y] = k === 0 ? [a.gpu, b.gpu] : [a.cpu, b.cpu];
        const lx = x.contiguous().detach().requiresGrad_();
        const ly = (name === 'maximum' || name === 'minimum' ? ig.where(ig.gt(y, 1.5), lx, y) : y).contiguous().detach().requiresGrad_();
        op(lx, ly).backward(k === 0 ? g.gpu : g.cpu);
        return [lx.grad!, ly.grad!];
      });
      same(t, grads[0][0], grads[1][0], `${name} d/da ${dtype}`);
      same(t, grads[0][1], grads[1][1], `${name} d/db ${dtype}`);
    }
  }
});

gpuTest('comparisons, where and maskedFill', (t) => {
  const rng = new Rng(5);
  const compares = [ig.eq, ig.ne, ig.lt, ig.le, ig.gt, ig.ge];
  for (const dtype of ALL) {
    const shape = randomShape(rng, 4, 5, 1);
    const a = pair(rng, shape, dtype, -3, 3, true);
    const b = pair(rng, partner(rng, shape), dtype, -3, 3, true);
    for (const op of compares) {
      same(t, op(a.gpu, b.gpu), op(a.cpu, b.cpu), `${op.name} ${dtype}`, [0, 0]);
      for (const s of [0, 1.5, -2, 1e30, NaN]) same(t, op(a.gpu, s), op(a.cpu, s), `${op.name} ${dtype} with ${s}`, [0, 0]);
    }
    const mask = pair(rng, shape, 'bool', 0, 1, true);
    same(t, ig.where(mask.gpu, a.gpu, b.gpu), ig.where(mask.cpu, a.cpu, b.cpu), `where ${dtype}`, [0, 0]);
    if (dtype !== 'bool') {
      same(t, ig.where(mask.gpu, a.gpu, 2), ig.where(mask.cpu, a.cpu, 2), `where scalar ${dtype}`, [0, 0]);
      same(t, ig.maskedFill(a.gpu, mask.gpu, -1), ig.maskedFill(a.cpu, mask.cpu, -1), `maskedFill ${dtype}`, [0, 0]);
    }
  }
});

/** ||x - y|| / ||y|| over all elements (||x - y|| when y is all zeros). */
function relativeError(x: Ref, y: Ref): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < y.data.length; i++) {
    num += (x.data[i] - y.data[i]) ** 2;
    den += y.data[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

const matmulCopies = () => (addon as { matmulOperandCopies(): number }).matmulOperandCopies();

// Relative error allowed, by dtype, against the float64 product of the same (rounded) inputs.
const MATMUL_ERROR: Record<string, number> = { float64: 1e-12, float32: 1e-5, tf32: 5e-3, bfloat16: 1e-2, float16: 2e-3 };

gpuTest('matmul and linear through cuBLAS: batched, broadcast, transposed operands without copies', (t) => {
  const rng = new Rng(6);
  // [a's shape, b's shape, a stored transposed, b stored transposed]
  const cases: [number[], number[], boolean, boolean][] = [
    [[64, 96], [96, 80], false, false],
    [[64, 96], [96, 80], false, true],
    [[64, 96], [96, 80], true, false],
    [[64, 96], [96, 80], true, true],
    [[3, 33, 17], [3, 17, 29], false, false],
    [[2, 3, 33, 17], [17, 29], false, false],
    [[4, 1, 8, 16], [3, 16, 8], false, true],
    [[5, 7, 16], [16], false, false],
    [[16], [16, 9], false, false],
    [[16], [16], false, false],
    [[0, 8], [8, 4], false, false],
    [[3, 0], [0, 5], false, false],
  ];
  for (const precision of ['highest', 'high'] as const) {
    ig.cuda.setMatmulPrecision(precision);
    for (const dtype of FLOATS) {
      const kind = dtype === 'float32' && precision === 'high' ? 'tf32' : dtype;
      for (const [sa, sb, ta, tb] of cases) {
        // transposed operands are views of contiguous tensors with the last two dims swapped
        const swap = (s: number[], tr: boolean) => (tr ? [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]] : s);
        const a = pair(rng, swap(sa, ta), dtype, -1, 1, false, 'contiguous');
        const b = pair(rng, swap(sb, tb), dtype, -1, 1, false, 'contiguous');
        const view = (x: ig.Tensor, tr: boolean) => (tr ? x.mT : x);
        const what = `matmul ${kind} ${JSON.stringify([sa, sb, ta, tb])}`;
        const before = matmulCopies();
        const got = ig.matmul(view(a.gpu, ta), view(b.gpu, tb));
        t.is(matmulCopies(), before, `${what}: no operand copied`);
        const expected = ig.matmul(view(a.cpu, ta).to('float64'), view(b.cpu, tb).to('float64'));
        t.deepEqual(got.shape, expected.shape, what);
        t.is(got.dtype, dtype, what);
        if (expected.numel === 0) continue;
        const error = relativeError(refOf(got), refOf(expected));
        t.true(error <= MATMUL_ERROR[kind], `${what}: relative error ${error}`);
      }
    }
  }
  ig.cuda.setMatmulPrecision('highest');
  // operands without a BLAS form (every other column, a broadcast row) are copied first
  const strided = pair(rng, [40, 30], 'float32', -1, 1, false, 'strided');
  const broadcast = pair(rng, [30, 20], 'float32', -1, 1, false, 'broadcast');
  const before = matmulCopies();
  const got = ig.matmul(strided.gpu, broadcast.gpu);
  t.true(matmulCopies() > before);
  const error = relativeError(refOf(got), refOf(ig.matmul(strided.cpu.to('float64'), broadcast.cpu.to('float64'))));
  t.true(error <= MATMUL_ERROR.float32, `strided operands: relative error ${error}`);
  // linear: x @ w^T + b with a row-major weight, passed transposed
  for (const dtype of FLOATS) {
    const x = pair(rng, [6, 10, 32], dtype);
    const w = pair(rng, [24, 32], dtype);
    const b = pair(rng, [24], dtype);
    const before = matmulCopies();
    const got = ig.linear(x.gpu.contiguous(), w.gpu.contiguous(), b.gpu.contiguous());
    t.is(matmulCopies(), before, 'linear copies no operand');
    const expected = ig.linear(x.cpu.to('float64'), w.cpu.to('float64'), b.cpu.to('float64'));
    const error = relativeError(refOf(got), refOf(expected));
    t.true(error <= MATMUL_ERROR[dtype], `linear ${dtype}: relative error ${error}`);
  }
});

gpuTest('matmul gradients on the device', (t) => {
  const rng = new Rng(7);
  const a = pair(rng, [12, 20], 'float32');
  const b = pair(rng, [20, 7], 'float32');
  const g = pair(rng, [12, 7], 'float32');
  const grads = [0, 1].map((k) => {
    const la = (k === 0 ? a.gpu : a.cpu).contiguous().detach().requiresGrad_();
    const lb = (k === 0 ? b.gpu : b.cpu).contiguous().detach().requiresGrad_();
    ig.matmul(la, lb).backward(k === 0 ? g.gpu : g.cpu);
    return [la.grad!, lb.grad!];
  });
  same(t, grads[0][0], grads[1][0], 'd/da', [1e-5, 1e-5]);
  same(t, grads[0][1], grads[1][1], 'd/db', [1e-5, 1e-5]);
});

(device === 'cpu' ? test.skip : gpuTest)('ops without a CUDA kernel yet raise ERR_DEVICE naming the op; mixed devices are ERR_DEVICE', (t) => {
  const x = ig.randn([4, 6], { device });
  const labels = ig.randint(0, 6, [4], { device });
  const uses: [string, () => unknown][] = [
    ['sum', () => x.sum()],
    ['softmax', () => x.softmax(-1)],
    ['layerNorm', () => ig.layerNorm(x, [6])],
    ['crossEntropy', () => ig.crossEntropy(x, labels)],
    ['gather', () => x.gather(1, labels.unsqueeze(1))],
    ['embedding', () => ig.embedding(labels, x)],
  ];
  for (const [name, use] of uses) assertCode(t, use, 'ERR_DEVICE', new RegExp(`${name}.*not implemented on cuda yet`));
  assertCode(t, () => ig.add(x, ig.randn([4, 6])), 'ERR_DEVICE', /add.*cuda:0.*cpu/);
  assertCode(t, () => ig.matmul(ig.randn([6, 4]), x), 'ERR_DEVICE');
});

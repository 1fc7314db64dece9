/**
 * The CUDA kernels against the CPU on fresh random inputs: copies and conversions (also into
 * views, and overlapping ones), the elementwise family (broadcast and strided views made on the
 * device, zero-size and 0-dim tensors, six-dim permuted views) with their gradients, and
 * matmul/linear through cuBLAS, float32 (also on TF32) / bfloat16 / float16 / float64, with
 * transposed, batch-permuted, batch-repeated and wide-leading-dim operands passed without copies; reductions, softmax, norms, indexing and losses,
 * forward and backward, on random shapes and layouts; random numbers (the same on every device
 * for a seed); joins and splits. Mixed devices raise ERR_DEVICE, bad indices ERR_INDEX.
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

gpuTest('elementwise edge cases: zero-size and 0-dim tensors, six-dim permuted views, copies into strided views', (t) => {
  const rng = new Rng(14);
  type Op = [string, (x: ig.Tensor, y: ig.Tensor) => ig.Tensor];
  const ops: Op[] = [
    ['add', (x, y) => ig.add(x, y)],
    ['mul scalar', (x) => ig.mul(x, 3)],
    ['abs', (x) => ig.abs(x)],
    ['clamp', (x) => ig.clamp(x, -1, 1)],
    ['maximum', (x, y) => ig.maximum(x, y)],
    ['lt', (x, y) => ig.lt(x, y)],
    ['eq scalar', (x) => ig.eq(x, 1)],
    ['where', (x, y) => ig.where(ig.gt(x, 0), x, y)],
    ['to float16', (x) => x.to('float16')],
    ['to int32', (x) => x.to('int32')],
  ];
  // zero-size operands (no kernel may launch with 0 blocks), 0-dim ones, broadcasts into either
  const shapes: [number[], number[]][] = [
    [[0, 5], [0, 5]],
    [[3, 0, 2], [2]],
    [[0, 1], [1, 4]],
    [[2, 0], []],
    [[], []],
    [[], [3, 4]],
  ];
  for (const [sa, sb] of shapes) {
    for (const dtype of ['float32', 'bfloat16', 'int64'] as DType[]) {
      const a = pair(rng, sa, dtype, -3, 3, true, 'contiguous');
      const b = pair(rng, sb, dtype, -3, 3, true, 'contiguous');
      for (const [name, op] of ops) same(t, op(a.gpu, b.gpu), op(a.cpu, b.cpu), `${name} ${dtype} ${JSON.stringify([sa, sb])}`, [0, 0]);
      same(t, ig.full(sa, 2, { dtype, device }), ig.full(sa, 2, { dtype }), `full ${dtype} ${JSON.stringify(sa)}`, [0, 0]);
    }
    const x = pair(rng, sa, 'float32', -2, 2, false, 'contiguous');
    compareWithGrads(t, rng, ([v]) => ig.mul(ig.gelu(v), ig.sigmoid(v)), [x], `unary gradients ${JSON.stringify(sa)}`);
  }
  // six dims permuted so that no two merge: every operand walks its own strides
  for (const dtype of ['float32', 'float16', 'int32'] as DType[]) {
    const base = [2, 3, 2, 3, 2, 3];
    const a = pair(rng, base, dtype, -4, 4, true, 'contiguous');
    const b = pair(rng, base, dtype, -4, 4, true, 'contiguous');
    const pa = (x: ig.Tensor) => x.permute(5, 3, 1, 0, 2, 4);
    const pb = (x: ig.Tensor) => x.permute(1, 5, 3, 4, 2, 0);
    for (const [name, op] of ops) same(t, op(pa(a.gpu), pb(b.gpu)), op(pa(a.cpu), pb(b.cpu)), `${name} ${dtype} six permuted dims`, [0, 0]);
    same(t, pa(a.gpu).contiguous(), pa(a.cpu).contiguous(), `contiguous ${dtype} six permuted dims`, [0, 0]);
  }
  // copy_ into views: a transposed destination, every other column, with a conversion and a broadcast source
  for (const [from, to] of [['float32', 'bfloat16'], ['int64', 'float32'], ['float16', 'float16']] as [DType, DType][]) {
    const src = pair(rng, [8, 6], from, -9, 9, true);
    const row = pair(rng, [1, 4], from, -9, 9, true, 'contiguous');
    const results = [device, 'cpu' as ig.Device].map((d, k) => {
      const s = k === 0 ? src.gpu : src.cpu;
      const r = k === 0 ? row.gpu : row.cpu;
      const dst = ig.zeros([6, 8], { dtype: to, device: d });
      dst.mT.copy_(s);
      const wide = ig.zeros([5, 8], { dtype: to, device: d });
      wide.slice(1, 1, undefined, 2).copy_(r);
      return [dst, wide];
    });
    same(t, results[0][0], results[1][0], `copy_ ${from} -> ${to} into a transposed view`, [0, 0]);
    same(t, results[0][1], results[1][1], `copy_ ${from} -> ${to} broadcast into every other column`, [0, 0]);
  }
  // copy_ across devices: a host source into a transposed device view, and back
  {
    const src = pair(rng, [8, 6], 'float32', -9, 9, true);
    const onDevice = ig.zeros([6, 8], { dtype: 'bfloat16', device });
    onDevice.mT.copy_(src.cpu);
    const expected = ig.zeros([6, 8], { dtype: 'bfloat16' });
    expected.mT.copy_(src.cpu);
    same(t, onDevice, expected, 'copy_ from the host into a transposed device view', [0, 0]);
    const back = ig.zeros([8, 6]);
    back.copy_(src.gpu);
    assertClose(t, back, refOf(src.cpu), [0, 0], 'copy_ from the device into host memory');
  }
  // a source overlapping its destination is read in full before the (unordered) writes
  for (const dtype of ['float32', 'int64'] as DType[]) {
    const x = pair(rng, [64, 33], dtype, -9, 9, true, 'contiguous');
    const [gpu, cpu] = [x.gpu.clone(), x.cpu.clone()];
    for (const v of [gpu, cpu]) {
      v.slice(0, 1).copy_(v.slice(0, 0, 63));
      v.slice(1, 0, 32).copy_(v.slice(1, 1));
    }
    same(t, gpu, cpu, `overlapping copy_ ${dtype}`, [0, 0]);
  }
});

gpuTest('matmul through cuBLAS: batched transposed operands, batch dims that do not merge, wide leading dims, thin and empty products', (t) => {
  const rng = new Rng(15);
  // Each case makes the operands as views of fresh contiguous tensors (none needs a copy).
  type View = [number[], (x: ig.Tensor) => ig.Tensor];
  const plain = (s: number[]): View => [s, (x) => x];
  const cases: [string, View, View][] = [
    ['batched, both transposed', [[3, 17, 33], (x) => x.mT], [[3, 29, 17], (x) => x.mT]],
    ['4-D batch, a transposed, b broadcast', [[2, 3, 12, 9], (x) => x.mT], plain([12, 7])],
    ['batch dims that do not merge', [[4, 5, 8, 6], (x) => x.permute(1, 0, 2, 3)], plain([5, 4, 6, 7])],
    ['batch that does not merge, b broadcast', [[4, 5, 8, 6], (x) => x.permute(1, 0, 2, 3)], plain([6, 7])],
    ['a repeated along the batch (stride 0)', [[1, 8, 16], (x) => x.expand(5, 8, 16)], plain([5, 16, 8])],
    ['b repeated along the batch, transposed', plain([5, 8, 16]), [[1, 8, 16], (x) => x.expand(5, 8, 16).mT]],
    ['rows wider than the matrix', [[40, 50], (x) => x.slice(1, 0, 32)], [[32, 60], (x) => x.slice(1, 5, 45)]],
    ['columns wider than the matrix', [[40, 50], (x) => x.slice(1, 3, 35).mT], [[40, 70], (x) => x.slice(1, 1, 41).mT]],
    ['one row, batched', plain([3, 1, 16]), plain([3, 16, 9])],
    ['one column, batched', plain([3, 7, 16]), plain([3, 16, 1])],
    ['inner dim 1', plain([3, 7, 1]), plain([3, 1, 9])],
    ['batch of one', plain([1, 5, 6]), plain([1, 6, 7])],
    ['empty batch', plain([0, 3, 4]), plain([4, 5])],
    ['empty rows, batched', plain([2, 0, 4]), plain([2, 4, 3])],
    ['empty inner dim, batched', plain([2, 3, 0]), plain([2, 0, 5])],
    // few output tiles and a long inner dim: split along it, with a shorter last chunk
    ['long inner dim (split), a transposed', [[2248, 16], (x) => x.mT], plain([2248, 512])],
    ['long inner dim (split into several chunks), b transposed', plain([8, 5000]), [[16, 5000], (x) => x.mT]],
  ];
  for (const precision of ['highest', 'high'] as const) {
    ig.cuda.setMatmulPrecision(precision);
    for (const dtype of FLOATS) {
      const kind = dtype === 'float32' && precision === 'high' ? 'tf32' : dtype;
      for (const [name, [sa, va], [sb, vb]] of cases) {
        const a = pair(rng, sa, dtype, -1, 1, false, 'contiguous');
        const b = pair(rng, sb, dtype, -1, 1, false, 'contiguous');
        const what = `matmul ${kind}: ${name}`;
        const before = matmulCopies();
        const got = ig.matmul(va(a.gpu), vb(b.gpu));
        t.is(matmulCopies(), before, `${what}: no operand copied`);
        const expected = ig.matmul(va(a.cpu).to('float64'), vb(b.cpu).to('float64'));
        t.deepEqual(got.shape, expected.shape, what);
        t.is(got.dtype, dtype, what);
        const error = relativeError(refOf(got), refOf(expected));
        t.true(error <= MATMUL_ERROR[kind], `${what}: relative error ${error}`);
      }
    }
  }
  ig.cuda.setMatmulPrecision('highest');
  // gradients of a broadcast batched product with transposed operands (summed over the batch they repeat in)
  for (const dtype of ['float32', 'bfloat16'] as DType[]) {
    const a = pair(rng, [3, 1, 5, 8], dtype, -1, 1, false, 'contiguous');
    const b = pair(rng, [4, 6, 5], dtype, -1, 1, false, 'contiguous');
    compareWithGrads(t, rng, ([x, y]) => ig.matmul(x.mT, y.mT), [a, b], `matmul gradients ${dtype}, broadcast batch, transposed operands`);
  }
  // linear on a permuted input (its batch does not fold into rows), with a bias the GEMM adds onto
  for (const dtype of FLOATS) {
    const x = pair(rng, [10, 6, 32], dtype, -1, 1, false, 'contiguous');
    const w = pair(rng, [24, 32], dtype);
    const bias = pair(rng, [24], dtype);
    const got = ig.linear(x.gpu.permute(1, 0, 2), w.gpu, bias.gpu);
    const expected = ig.linear(x.cpu.permute(1, 0, 2).to('float64'), w.cpu.to('float64'), bias.cpu.to('float64'));
    const error = relativeError(refOf(got), refOf(expected));
    t.true(error <= MATMUL_ERROR[dtype], `linear ${dtype} on a permuted input: relative error ${error}`);
  }
});


/** Tolerance of a device result against the CPU's: kernels that reduce add in another order. */
function opTolerance(dtype: DType): [number, number] {
  return dtype === 'bfloat16' || dtype === 'float16' ? [1e-2, 1e-2] : dtype === 'float32' ? [1e-5, 1e-5] : tolerance(dtype);
}

interface Pair {
  cpu: ig.Tensor;
  gpu: ig.Tensor;
}

/**
 * f on the device and on the CPU (side 0 and 1) with leaves made from `inputs` (their layouts
 * kept), compared; then, when the result is a float, the inputs' gradients for the same random
 * output gradient, compared.
 */
function compareWithGrads(t: import('ava').ExecutionContext, rng: Rng, f: (xs: ig.Tensor[], side: number) => ig.Tensor, inputs: Pair[], what: string) {
  const runs = [0, 1].map((side) => {
    const leaves = inputs.map((x) => (side === 0 ? x.gpu : x.cpu).detach().requiresGrad_());
    return { leaves, out: f(leaves, side) };
  });
  const dtype = runs[1].out.dtype;
  same(t, runs[0].out, runs[1].out, what, opTolerance(dtype));
  if (!FLOATS.includes(dtype)) return;
  const g = pair(rng, runs[1].out.shape.slice(), dtype, -1, 1, false, 'contiguous');
  runs[0].out.backward(g.gpu);
  runs[1].out.backward(g.cpu);
  inputs.forEach((_, k) => same(t, runs[0].leaves[k].grad!, runs[1].leaves[k].grad!, `${what}: gradient of input ${k}`, opTolerance(runs[1].leaves[k].dtype)));
}

/** Random dims of a shape to reduce: undefined (all), or one to all of them in random order. */
function randomDims(rng: Rng, ndim: number, one: boolean): number[] | undefined {
  if (ndim === 0 || rng.next() < 0.2) return undefined;
  const dims = Array.from({ length: ndim }, (_, d) => d).sort(() => rng.next() - 0.5);
  return dims.slice(0, one ? 1 : rng.int(1, ndim)).map((d) => (rng.next() < 0.3 ? d - ndim : d));
}

type ReduceCase = [string, (x: ig.Tensor, dims: number[] | undefined, keepdim: boolean) => ig.Tensor, boolean, boolean];
const REDUCTIONS: ReduceCase[] = [
  // name, op, several dims, integers too
  ['sum', (x, d, k) => ig.sum(x, d, k), true, true],
  ['mean', (x, d, k) => ig.mean(x, d, k), true, false],
  ['var', (x, d, k) => ig.var(x, d, k), true, false],
  ['var correction 0', (x, d, k) => ig.var(x, d, k, 0), true, false],
  ['logsumexp', (x, d, k) => ig.logsumexp(x, d ?? x.shape.map((_, i) => i), k), true, false],
  ['max', (x, d, k) => ig.max(x, d?.[0], k), false, true],
  ['min', (x, d, k) => ig.min(x, d?.[0], k), false, true],
  ['argmax', (x, d, k) => ig.argmax(x, d?.[0], k), false, true],
  ['argmin', (x, d, k) => ig.argmin(x, d?.[0], k), false, true],
];

gpuTest('reductions over dims or all, keepdim, every layout and dtype, with gradients', (t) => {
  const rng = new Rng(8);
  for (const [name, op, several, ints] of REDUCTIONS) {
    for (const dtype of [...FLOATS, ...(ints ? (['int32', 'int64', 'bool'] as DType[]) : [])]) {
      for (let trial = 0; trial < 4; trial++) {
        const shape = randomShape(rng, 4, 6, 1);
        const integers = !FLOATS.includes(dtype);
        const x = pair(rng, shape, dtype, integers ? -20 : -2, integers ? 20 : 2, integers);
        const dims = randomDims(rng, shape.length, !several);
        const keepdim = rng.next() < 0.5;
        const what = `${name} ${dtype} ${JSON.stringify(shape)} dims ${JSON.stringify(dims)} keepdim ${keepdim}`;
        if (integers) same(t, op(x.gpu, dims, keepdim), op(x.cpu, dims, keepdim), what, [0, 0]);
        else compareWithGrads(t, rng, ([v]) => op(v, dims, keepdim), [x], what);
      }
    }
  }
  // long rows (one group per output), long columns (outputs side by side), one long reduction
  for (const dtype of FLOATS) {
    for (const shape of [[3, 5000], [5000, 3], [70000]]) {
      const x = pair(rng, shape, dtype, -2, 2, false, 'contiguous');
      for (const [name, op] of REDUCTIONS) {
        for (const dims of [[shape.length - 1], [0], undefined]) {
          if (name.startsWith('arg') && dtype === 'bfloat16') continue;  // ties among 256 values: either first is right
          same(t, op(x.gpu, dims, false), op(x.cpu, dims, false), `${name} ${dtype} ${JSON.stringify(shape)} dims ${JSON.stringify(dims)}`, opTolerance(dtype));
        }
      }
    }
  }
  // the same result, to the bit, from run to run
  const big = pair(rng, [3000, 70], 'float32', -1, 1, false, 'contiguous');
  for (const dims of [[0], [1], undefined]) {
    same(t, ig.sum(big.gpu, dims), ig.sum(big.gpu, dims).cpu(), `sum ${JSON.stringify(dims)} twice`, [0, 0]);
    same(t, ig.var(big.gpu, dims), ig.var(big.gpu, dims).cpu(), `var ${JSON.stringify(dims)} twice`, [0, 0]);
  }
  // NaN wins max/min/argmax; -inf rows; empty reductions
  const values = refFromFn([4, 6], (i) => (i === 9 ? NaN : i >= 12 && i < 18 ? -Infinity : rng.uniform(-1, 1)));
  const marked = [ig.tensor(values.data, { shape: values.shape, device }), ig.tensor(values.data, { shape: values.shape })];
  for (const [name, op] of REDUCTIONS) {
    for (const dims of [[1], [0], undefined]) same(t, op(marked[0], dims, false), op(marked[1], dims, false), `${name} NaN/-inf ${JSON.stringify(dims)}`, [1e-6, 1e-6]);
  }
  const empty = [ig.zeros([0, 3], { device }), ig.zeros([0, 3])];
  for (const op of [ig.sum, ig.mean]) same(t, op(empty[0], 0), op(empty[1], 0), `${op.name} of nothing`, [0, 0]);
});

gpuTest('softmax and logSoftmax along any dim, every layout and dtype, with gradients', (t) => {
  const rng = new Rng(9);
  for (const log of [false, true]) {
    const op = log ? ig.logSoftmax : ig.softmax;
    for (const dtype of FLOATS) {
      for (let trial = 0; trial < 5; trial++) {
        const shape = randomShape(rng, 4, 7, 1);
        const x = pair(rng, shape, dtype, -4, 4);
        const dim = rng.int(-shape.length, shape.length - 1);
        compareWithGrads(t, rng, ([v]) => op(v, dim), [x], `${op.name} ${dtype} ${JSON.stringify(shape)} dim ${dim}`);
      }
      for (const [shape, dim] of [[[3, 3000], 1], [[3000, 2], 0], [[2, 1000, 3], 1]] as [number[], number][]) {
        const x = pair(rng, shape, dtype, -8, 8, false, 'contiguous');
        compareWithGrads(t, rng, ([v]) => op(v, dim), [x], `${op.name} ${dtype} ${JSON.stringify(shape)} dim ${dim}`);
      }
    }
    // masked (-inf) entries and an all -inf row (NaN, as on the CPU)
    const values = refFromFn([3, 8], (i) => (i % 8 < 3 || i >= 16 ? -Infinity : rng.uniform(-1, 1)));
    const masked = [ig.tensor(values.data, { shape: values.shape, device }), ig.tensor(values.data, { shape: values.shape })];
    same(t, op(masked[0], 1), op(masked[1], 1), `${op.name} with -inf`, [1e-6, 1e-6]);
  }
});

gpuTest('layerNorm and rmsNorm over the trailing dims, with weight, bias and their gradients', (t) => {
  const rng = new Rng(10);
  for (const dtype of FLOATS) {
    for (let trial = 0; trial < 6; trial++) {
      const shape = [...randomShape(rng, 2, 5), ...randomShape(rng, 2, 9, 1)];
      const k = rng.int(1, Math.min(2, shape.length));
      const normalized = shape.slice(shape.length - k);
      const x = pair(rng, shape, dtype, -3, 3);
      const w = pair(rng, normalized, dtype, 0.5, 1.5);
      const b = pair(rng, normalized, dtype);
      const affine = rng.int(0, 2);  // none, weight, weight and bias
      const params = [w, b].slice(0, affine);
      const what = `${dtype} ${JSON.stringify(shape)} normalized ${JSON.stringify(normalized)} affine ${affine}`;
      compareWithGrads(t, rng, ([v, wt, bs]) => ig.layerNorm(v, normalized, wt ?? null, bs ?? null), [x, ...params], `layerNorm ${what}`);
      compareWithGrads(t, rng, ([v, wt]) => ig.rmsNorm(v, normalized, wt ?? null), [x, ...params.slice(0, 1)], `rmsNorm ${what}`);
    }
    // rows longer than a block, many rows for the weight and bias sums (in chunks past 2048 rows)
    for (const shape of [[4, 2000], [700, 24], [2, 1100, 40]]) {
      const n = [shape[shape.length - 1]];
      const [x, w, b] = [pair(rng, shape, dtype, -3, 3, false, 'contiguous'), pair(rng, n, dtype), pair(rng, n, dtype)];
      compareWithGrads(t, rng, ([v, wt, bs]) => ig.layerNorm(v, n, wt, bs), [x, w, b], `layerNorm ${dtype} ${JSON.stringify(shape)}`);
      compareWithGrads(t, rng, ([v, wt]) => ig.rmsNorm(v, n, wt), [x, w], `rmsNorm ${dtype} ${JSON.stringify(shape)}`);
    }
  }
});

gpuTest('embedding and gather, forward and backward; indices out of range are ERR_INDEX', (t) => {
  const rng = new Rng(11);
  for (const dtype of FLOATS) {
    for (const indexDtype of ['int32', 'int64'] as DType[]) {
      // repeated indices: the backward sums their rows
      const weight = pair(rng, [9, rng.int(1, 40)], dtype);
      const indices = pair(rng, randomShape(rng, 3, 6), indexDtype, 0, 8, true);
      compareWithGrads(t, rng, ([w], side) => ig.embedding(side === 0 ? indices.gpu : indices.cpu, w), [weight], `embedding ${dtype} ${indexDtype}`);
      for (let trial = 0; trial < 4; trial++) {
        const shape = randomShape(rng, 4, 5, 1);
        const dim = rng.int(0, shape.length - 1);
        const indexShape = shape.map((s, d) => (d === dim ? rng.int(1, 7) : rng.int(1, s)));
        const x = pair(rng, shape, dtype);
        const index = pair(rng, indexShape, indexDtype, 0, shape[dim] - 1, true);
        compareWithGrads(t, rng, ([v], side) => ig.gather(v, dim, side === 0 ? index.gpu : index.cpu), [x], `gather ${dtype} ${indexDtype} ${JSON.stringify(shape)} dim ${dim} index ${JSON.stringify(indexShape)}`);
      }
    }
  }
  const w = ig.randn([5, 3], { device });
  assertCode(t, () => ig.embedding(ig.tensor([0, 5, 1], { dtype: 'int64', device }), w), 'ERR_INDEX', /index 5 is out of range/);
  assertCode(t, () => ig.embedding(ig.tensor([[0, 1], [-1, 7]], { dtype: 'int32', device }), w), 'ERR_INDEX', /index -1 is out of range/);
  assertCode(t, () => w.gather(1, ig.tensor([[0], [3], [1], [0], [2]], { dtype: 'int64', device })), 'ERR_INDEX', /index 3 is out of range/);
  assertCode(t, () => ig.crossEntropy(w, ig.tensor([0, 1, 3, -100, 2], { dtype: 'int64', device })), 'ERR_INDEX', /target 3 is out of range/);
  // the device is still usable
  same(t, ig.sum(w), ig.sum(w.cpu()), 'after the errors', [1e-5, 1e-5]);
});

gpuTest('reductions down long columns (few outputs side by side), strided and 3-D, in two passes; the same bits run to run', (t) => {
  const rng = new Rng(14);
  // [shape, reduced dim, view every other row of a tensor twice as long]
  const cases: [number[], number, boolean][] = [
    [[20000, 4], 0, false],
    [[3000, 2, 3], 0, false],
    [[2, 9000, 3], 1, false],
    [[12000, 5], 0, true],
    [[2500, 40], 0, false],
  ];
  for (const [shape, dim, strided] of cases) {
    for (const dtype of ALL) {
      const integers = !FLOATS.includes(dtype);
      const full = strided ? [shape[0] * 2, ...shape.slice(1)] : shape;
      // positive values: long sums without cancellation keep float32's relative error small
      const x = pair(rng, full, dtype, integers ? -20 : 0, integers ? 20 : 1, integers, 'contiguous');
      const [gpu, cpu] = strided ? [x.gpu.slice(0, 0, undefined, 2), x.cpu.slice(0, 0, undefined, 2)] : [x.gpu, x.cpu];
      for (const [name, op, , ints] of REDUCTIONS) {
        if (integers && !ints) continue;
        if (name.startsWith('arg') && (dtype === 'bfloat16' || dtype === 'float16')) continue;  // rounded ties
        const what = `${name} ${dtype} ${JSON.stringify(shape)} dim ${dim}${strided ? ' (every other row)' : ''}`;
        same(t, op(gpu, [dim], false), op(cpu, [dim], false), what, integers ? [0, 0] : opTolerance(dtype));
      }
    }
  }
  // many long columns
  const wide = ig.rand([2100, 2500]);
  const wideGpu = wide.to(device);
  same(t, ig.sum(wideGpu, 0), ig.sum(wide, 0), 'sum [2100, 2500] dim 0', [1e-5, 1e-5]);
  same(t, ig.argmax(wideGpu, 0), ig.argmax(wide, 0), 'argmax [2100, 2500] dim 0', [0, 0]);
  const wideInts = ig.mul(wide, 1000).to('int32');
  same(t, ig.max(wideInts.to(device), 0), ig.max(wideInts, 0), 'max int32 [2100, 2500] dim 0', [0, 0]);
  const long = pair(rng, [200000, 4], 'float32', -1, 1, false, 'contiguous');
  same(t, ig.sum(long.gpu, 0), ig.sum(long.gpu, 0).cpu(), 'sum [200000, 4] twice', [0, 0]);
  same(t, ig.max(long.gpu, 0), ig.max(long.gpu, 0).cpu(), 'max [200000, 4] twice', [0, 0]);
  // partial results long enough to be cut again
  const huge = ig.rand([(1 << 23) + 3, 2]);
  const hugeGpu = huge.to(device);
  same(t, ig.sum(hugeGpu, 0), ig.sum(huge, 0), 'sum [2^23 + 3, 2] dim 0', [1e-5, 1e-5]);
  same(t, ig.min(hugeGpu, 0), ig.min(huge, 0), 'min [2^23 + 3, 2] dim 0', [0, 0]);
  hugeGpu.dispose();
  huge.dispose();
});

gpuTest('zero-size inputs and long rows: reductions, softmax, norms, crossEntropy, embedding', (t) => {
  const rng = new Rng(15);
  // reductions of nothing: sum 0, mean and var NaN, logsumexp -inf; outputs with no elements
  for (const shape of [[3, 0], [0, 4], [2, 0, 3]]) {
    const x = pair(rng, shape, 'float32', -1, 1, false, 'contiguous');
    for (const [name, op] of REDUCTIONS.slice(0, 5)) {
      for (const dims of [[0], [shape.length - 1], undefined]) {
        same(t, op(x.gpu, dims, false), op(x.cpu, dims, false), `${name} ${JSON.stringify(shape)} dims ${JSON.stringify(dims)}`, [0, 0]);
      }
    }
    same(t, ig.softmax(x.gpu, -1), ig.softmax(x.cpu, -1), `softmax ${JSON.stringify(shape)}`, [0, 0]);
    same(t, ig.logSoftmax(x.gpu, 0), ig.logSoftmax(x.cpu, 0), `logSoftmax ${JSON.stringify(shape)} dim 0`, [0, 0]);
  }
  for (const dtype of ['float32', 'bfloat16'] as DType[]) {
    const rows = pair(rng, [0, 8], dtype, -1, 1, false, 'contiguous');
    const [w, b] = [pair(rng, [8], dtype), pair(rng, [8], dtype)];
    compareWithGrads(t, rng, ([v, wt, bs]) => ig.layerNorm(v, [8], wt, bs), [rows, w, b], `layerNorm ${dtype} of no rows`);
    compareWithGrads(t, rng, ([v, wt]) => ig.rmsNorm(v, [8], wt), [rows, w], `rmsNorm ${dtype} of no rows`);
    const logits = pair(rng, [0, 5], dtype);
    const none = [ig.zeros([0], { dtype: 'int64', device }), ig.zeros([0], { dtype: 'int64' })];
    for (const reduction of ['mean', 'sum', 'none'] as const) {
      compareWithGrads(t, rng, ([v], side) => ig.crossEntropy(v, none[side], { reduction }), [logits], `crossEntropy ${dtype} of no rows, ${reduction}`);
    }
    const weight = pair(rng, [7, 3], dtype);
    compareWithGrads(t, rng, ([v], side) => ig.embedding(none[side], v), [weight], `embedding ${dtype} of no indices`);
  }
  // rows far longer than a block of threads
  for (const dtype of FLOATS) {
    const x = pair(rng, [2, 40000], dtype, -4, 4, false, 'contiguous');
    for (const op of [ig.softmax, ig.logSoftmax]) compareWithGrads(t, rng, ([v]) => op(v, 1), [x], `${op.name} ${dtype} [2, 40000]`);
    same(t, ig.logsumexp(x.gpu, [1]), ig.logsumexp(x.cpu, [1]), `logsumexp ${dtype} [2, 40000]`, opTolerance(dtype));
    same(t, ig.var(x.gpu, [1]), ig.var(x.cpu, [1]), `var ${dtype} [2, 40000]`, opTolerance(dtype));
    const [w, b] = [pair(rng, [40000], dtype, 0.5, 1.5), pair(rng, [40000], dtype)];
    compareWithGrads(t, rng, ([v, wt, bs]) => ig.layerNorm(v, [40000], wt, bs), [x, w, b], `layerNorm ${dtype} [2, 40000]`);
    compareWithGrads(t, rng, ([v, wt]) => ig.rmsNorm(v, [40000], wt), [x, w], `rmsNorm ${dtype} [2, 40000]`);
    // a large vocabulary, some targets ignored
    const logits = pair(rng, [6, 32000], dtype, -5, 5, false, 'contiguous');
    const labelRef = refFromFn([6], (i) => (i === 2 ? -100 : rng.int(0, 31999)));
    const labels = [makeTensor(labelRef, 'int64', 'contiguous', device).t, makeTensor(labelRef, 'int64', 'contiguous').t];
    for (const labelSmoothing of [0, 0.1]) {
      compareWithGrads(t, rng, ([v], side) => ig.crossEntropy(v, labels[side], { labelSmoothing }), [logits], `crossEntropy ${dtype} [6, 32000] smoothing ${labelSmoothing}`);
    }
  }
});

gpuTest('embedding backward: repeated rows add their terms in index order, to the bit as on the CPU', (t) => {
  const rng = new Rng(16);
  // [rows, dim, indices]: tiles taller than the weight, several column tiles, a large vocabulary
  for (const [rows, dim, n] of [[9, 5, 40], [300, 300, 2000], [40000, 40, 3000]]) {
    for (const dtype of FLOATS) {
      const indexDtype = rng.pick(['int32', 'int64'] as DType[]);
      // a third of the indices on row 0, as padding would be
      const values = refFromFn([n], () => (rng.next() < 0.3 ? 0 : rng.int(0, rows - 1)));
      const indices = [makeTensor(values, indexDtype, 'contiguous', device).t, makeTensor(values, indexDtype, 'contiguous').t];
      const weight = pair(rng, [rows, dim], dtype, -1, 1, false, 'contiguous');
      const g = pair(rng, [n, dim], dtype, -1, 1, false, 'contiguous');
      const grads = [0, 1].map((side) => {
        const leaf = (side === 0 ? weight.gpu : weight.cpu).detach().requiresGrad_();
        ig.embedding(indices[side], leaf).backward(side === 0 ? g.gpu : g.cpu);
        return leaf.grad!;
      });
      same(t, grads[0], grads[1], `embedding backward ${dtype} ${indexDtype} [${rows}, ${dim}] ${n} indices`, [0, 0]);
    }
  }
});

gpuTest('crossEntropy (ignoreIndex, labelSmoothing, reductions) and mseLoss, with gradients', (t) => {
  const rng = new Rng(12);
  for (const dtype of FLOATS) {
    for (const shape of [[6, 5], [7], [3, 4, 5], [2, 3, 2, 2], [5, 700]]) {
      const classDim = shape.length === 1 ? 0 : 1;
      const targetShape = shape.filter((_, d) => d !== classDim);
      const logits = pair(rng, shape, dtype, -5, 5);
      const labels = pair(rng, targetShape, rng.pick(['int32', 'int64'] as DType[]), 0, shape[classDim] - 1, true, 'contiguous');
      // some targets ignored
      const maskRef = refFromFn(targetShape, () => (rng.next() < 0.2 ? 1 : 0));
      const mask = { gpu: makeTensor(maskRef, 'bool', 'contiguous', device).t, cpu: makeTensor(maskRef, 'bool', 'contiguous').t };
      const ignored = [ig.where(mask.gpu, ig.fullLike(labels.gpu, -1), labels.gpu), ig.where(mask.cpu, ig.fullLike(labels.cpu, -1), labels.cpu)];
      for (const reduction of ['mean', 'sum', 'none'] as const) {
        const labelSmoothing = rng.pick([0, 0.1]);
        const what = `crossEntropy ${dtype} ${JSON.stringify(shape)} ${reduction} smoothing ${labelSmoothing}`;
        compareWithGrads(t, rng, ([v], side) => ig.crossEntropy(v, side === 0 ? labels.gpu : labels.cpu, { reduction, labelSmoothing }), [logits], what);
        compareWithGrads(t, rng, ([v], side) => ig.crossEntropy(v, ignored[side], { reduction, labelSmoothing, ignoreIndex: -1 }), [logits], `${what} ignoring`);
      }
    }
    for (const reduction of ['mean', 'sum', 'none'] as const) {
      const shape = randomShape(rng, 4, 6, 1);
      const input = pair(rng, shape, dtype);
      const target = pair(rng, partner(rng, shape), dtype);
      compareWithGrads(t, rng, ([a, b]) => ig.mseLoss(a, b, { reduction }), [input, target], `mseLoss ${dtype} ${reduction} ${JSON.stringify(shape)}`);
    }
  }
});

gpuTest('rand, randn and randint give the same numbers on the device as on the CPU for a seed', (t) => {
  for (const dtype of FLOATS) {
    for (const [name, make] of [
      ['rand', (d: ig.Device) => ig.rand([37, 11], { dtype, device: d })],
      ['randn', (d: ig.Device) => ig.randn([37, 11], { dtype, device: d })],
    ] as const) {
      ig.manualSeed(42);
      const a = make(device);
      const b = make(device);
      ig.manualSeed(42);
      const c = make('cpu');
      const d = make('cpu');
      // normals agree to rounding (fused multiply-adds; a 16-bit result may round the other way), uniforms exactly
      const tol: [number, number] = name === 'randn' ? (dtype === 'float32' || dtype === 'float64' ? [1e-6, 1e-6] : opTolerance(dtype)) : [0, 0];
      same(t, a, c, `${name} ${dtype}`, tol);
      same(t, b, d, `${name} ${dtype}, second draw`, tol);
    }
  }
  for (const dtype of ['int32', 'int64', 'float32'] as DType[]) {
    ig.manualSeed(7);
    const a = ig.randint(-5, 100, [50], { dtype, device });
    ig.manualSeed(7);
    same(t, a, ig.randint(-5, 100, [50], { dtype }), `randint ${dtype}`, [0, 0]);
  }
});

gpuTest('joins and splits on the device: cat, stack, split, chunk, contiguous copies of views', (t) => {
  const rng = new Rng(13);
  for (const dtype of FLOATS) {
    const a = pair(rng, [3, 4, 5], dtype);
    const b = pair(rng, [3, 2, 5], dtype);
    const c = pair(rng, [3, 4, 5], dtype);
    same(t, ig.cat([a.gpu, b.gpu], 1), ig.cat([a.cpu, b.cpu], 1), `cat ${dtype}`, [0, 0]);
    for (const dim of [0, 1, 3, -1]) same(t, ig.stack([a.gpu, c.gpu], dim), ig.stack([a.cpu, c.cpu], dim), `stack ${dtype} dim ${dim}`, [0, 0]);
    const parts = [a.gpu.split([1, 3], 1), a.cpu.split([1, 3], 1)];
    parts[1].forEach((p, k) => same(t, parts[0][k].contiguous(), p.contiguous(), `split ${dtype} part ${k}`, [0, 0]));
    const chunks = [a.gpu.chunk(2, 2), a.cpu.chunk(2, 2)];
    chunks[1].forEach((p, k) => same(t, chunks[0][k].contiguous(), p.contiguous(), `chunk ${dtype} part ${k}`, [0, 0]));
    // views moved between devices keep their values
    const view = a.cpu.permute(2, 0, 1).slice(0, 1, undefined, 2);
    same(t, view.to(device), view, `to(device) of a view ${dtype}`, [0, 0]);
    same(t, a.gpu.permute(2, 0, 1).slice(0, 1, undefined, 2).to('cpu').to(device), view, `to('cpu') of a device view ${dtype}`, [0, 0]);
    // the gradient of cat and stack on the device
    compareWithGrads(t, rng, ([x, y]) => ig.cat([x, y], 1), [a, b], `cat gradient ${dtype}`);
  }
});

(device === 'cpu' ? test.skip : gpuTest)('products split along a long inner dim equal the unsplit ones; IGNIS_CUDA_SPLIT_K is auto or off', (t) => {
  const rng = new Rng(18);
  const withSplit = <T>(choice: string, fn: () => T): T => {
    process.env.IGNIS_CUDA_SPLIT_K = choice;
    try {
      return fn();
    } finally {
      delete process.env.IGNIS_CUDA_SPLIT_K;
    }
  };
  for (const dtype of ['float32', 'bfloat16'] as DType[]) {
    // a LoRA adapter's gradient: [r, in] summed over the tokens
    const a = pair(rng, [4100, 16], dtype, -1, 1, false, 'contiguous').gpu.mT;
    const b = pair(rng, [4100, 1024], dtype, -1, 1, false, 'contiguous').gpu;
    const [split, whole] = [withSplit('auto', () => ig.matmul(a, b)), withSplit('off', () => ig.matmul(a, b))];
    const error = relativeError(refOf(split.to('float64')), refOf(whole.to('float64')));
    t.true(error <= MATMUL_ERROR[dtype], `${dtype}: split against unsplit, relative error ${error}`);
    // the split product adds onto what the output holds (a LoRA layer's base GEMM, out features few)
    const x = pair(rng, [8, 4096], dtype, -1, 1, false, 'contiguous');
    const [w, la, lb, bias] = [pair(rng, [32, 4096], dtype), pair(rng, [4, 4096], dtype), pair(rng, [32, 4], dtype), pair(rng, [32], dtype)];
    const got = ig.loraLinearForward(x.gpu, w.gpu, bias.gpu, la.gpu, lb.gpu, 0.5).y;
    const expected = ig.loraLinearForward(x.cpu, w.cpu, bias.cpu, la.cpu, lb.cpu, 0.5).y;
    same(t, got, expected, `loraLinearForward ${dtype}, in 4096, out 32`, opTolerance(dtype));
  }
  assertCode(t, () => withSplit('always', () => ig.matmul(ig.randn([4, 8], { device }), ig.randn([8, 4], { device }))), 'ERR_ARG', /IGNIS_CUDA_SPLIT_K/);
});

(device === 'cpu' ? test.skip : gpuTest)('mixed devices are ERR_DEVICE', (t) => {
  const x = ig.randn([4, 6], { device });
  assertCode(t, () => ig.add(x, ig.randn([4, 6])), 'ERR_DEVICE', /add.*cuda:0.*cpu/);
  assertCode(t, () => ig.matmul(ig.randn([6, 4]), x), 'ERR_DEVICE');
  assertCode(t, () => ig.crossEntropy(x, ig.randint(0, 6, [4])), 'ERR_DEVICE');
  assertCode(t, () => ig.embedding(ig.randint(0, 4, [3]), x), 'ERR_DEVICE');
  assertCode(t, () => ig.layerNorm(x, [6], ig.ones([6])), 'ERR_DEVICE');
});

gpuTest('sizes just below, at and above the chunk and tile boundaries of the reductions, norms and embedding backward', (t) => {
  const rng = new Rng(17);
  // few long rows: cut into chunks of 8192 from 32768 elements on
  for (const n of [32767, 32768, 32769]) {
    const x = pair(rng, [2, n], 'float32', 0, 1, false, 'contiguous');
    for (const [name, op] of REDUCTIONS) same(t, op(x.gpu, [1], false), op(x.cpu, [1], false), `${name} [2, ${n}] dim 1`, opTolerance('float32'));
  }
  // few long columns: cut into chunks of 512 from 2048 rows on
  for (const rows of [2047, 2048, 2049]) {
    const x = pair(rng, [rows, 33], 'float32', 0, 1, false, 'contiguous');
    for (const [name, op] of REDUCTIONS) same(t, op(x.gpu, [0], false), op(x.cpu, [0], false), `${name} [${rows}, 33] dim 0`, opTolerance('float32'));
    const [w, b] = [pair(rng, [33], 'float32'), pair(rng, [33], 'float32')];
    compareWithGrads(t, rng, ([v, wt, bs]) => ig.layerNorm(v, [33], wt, bs), [x, w, b], `layerNorm [${rows}, 33]`);
  }
  // embedding backward: one row past a tile (32 rows of 256 float32 columns), one column past a
  // column tile, one index past a batch of 256
  for (const [rows, dim, n] of [[33, 257, 257], [32, 256, 256], [17, 33, 255]]) {
    const values = refFromFn([n], () => rng.int(0, rows - 1));
    const indices = [makeTensor(values, 'int64', 'contiguous', device).t, makeTensor(values, 'int64', 'contiguous').t];
    const g = pair(rng, [n, dim], 'float32', -1, 1, false, 'contiguous');
    const grads = [0, 1].map((side) => {
      const leaf = (side === 0 ? ig.zeros([rows, dim], { device }) : ig.zeros([rows, dim])).requiresGrad_();
      ig.embedding(indices[side], leaf).backward(side === 0 ? g.gpu : g.cpu);
      return leaf.grad!;
    });
    same(t, grads[0], grads[1], `embedding backward [${rows}, ${dim}] ${n} indices`, [0, 0]);
  }
});

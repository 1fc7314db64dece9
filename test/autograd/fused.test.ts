/**
 * The native backward kernels (layerNorm, rmsNorm, crossEntropy, embedding, gather, the binary
 * and unary ops' gradient kernels) and the gradients of matmul, linear and where, in every float
 * dtype and on shapes large enough to run in parallel, against the float64 gradients (which
 * gradcheck.test.ts checks against finite differences);
 * their results do not depend on the thread count; their native entry points validate.
 */
import test, { ExecutionContext } from 'ava';
import * as ig from '../../lib';
import { DType, Tensor } from '../../lib';
import { addon, NativeHandle } from '../../lib/native';
import { LAYOUTS, Ref, Rng, assertClose, assertCode, numel, randomTensor, refOf } from '../helpers';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];

/** Tolerances of a gradient computed in `dtype`, scaled by the size of the reference. */
function gradTolerance(dtype: DType, ref: Ref): [number, number] {
  const scale = ref.data.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-3);
  const rel = { float64: 1e-10, float32: 2e-5, float16: 4e-3, bfloat16: 3e-2 }[dtype as 'float64'];
  return [rel, rel * scale];
}

/**
 * The gradients of sum(fn(...inputs) * g), g fixed by `seed`, for float64 inputs rounded to
 * `dtype`: once with leaves of `dtype`, once in float64 from the same rounded values. Only the
 * inputs marked in `wanted` require grad. Returns both, as references, in input order.
 */
function gradsBothWays(dtype: DType, inputs: Tensor[], wanted: boolean[], fn: (...xs: Tensor[]) => Tensor, seed: number) {
  const run = (leaves: Tensor[]) =>
    ig.tidy(() => {
      leaves.forEach((x, k) => x.requiresGrad_(wanted[k]));
      const out = fn(...leaves);
      out.backward(randomTensor(new Rng(seed), out.shape.slice(), out.dtype).t);
      return leaves.filter((_, k) => wanted[k]).map((x) => refOf(x.grad!));
    });
  const low = inputs.map((x) => x.to(dtype));
  const wide = low.map((x) => x.to('float64'));
  const result = { got: run(low), expected: run(wide), dtype };
  for (const x of [...low, ...wide]) x.dispose();
  return result;
}

function checkBothWays(t: ExecutionContext, what: string, r: ReturnType<typeof gradsBothWays>): void {
  r.got.forEach((got, k) => {
    const asTensor = ig.tensor(got.data, { dtype: 'float64', shape: got.shape });
    assertClose(t, asTensor, r.expected[k], gradTolerance(r.dtype, r.expected[k]), `${what} gradient ${k} (${r.dtype})`);
    asTensor.dispose();
  });
}

test('layerNorm and rmsNorm backward: every dtype and layout, parallel shapes, against float64', (t) => {
  const rng = new Rng(21);
  const shapes = [[3, 5], [2, 3, 8], [300, 256], [5, 1], [70, 3, 4]];
  for (const shape of shapes) {
    for (const dtype of FLOATS) {
      for (const rms of [false, true]) {
        const k = shape.length > 2 && rng.next() < 0.5 ? 2 : 1;
        const normalized = shape.slice(shape.length - k);
        const x = randomTensor(rng, shape, 'float64', rng.pick(LAYOUTS), -2, 3).t;
        const w = randomTensor(rng, normalized, 'float64', 'contiguous', 0.5, 1.5).t;
        const b = randomTensor(rng, normalized, 'float64').t;
        const wanted = [true, rng.next() < 0.8, !rms && rng.next() < 0.8];
        const fn = rms
          ? (xx: Tensor, ww: Tensor) => ig.rmsNorm(xx, normalized, ww, 1e-5)
          : (xx: Tensor, ww: Tensor, bb: Tensor) => ig.layerNorm(xx, normalized, ww, bb, 1e-5);
        const inputs = rms ? [x, w] : [x, w, b];
        const r = gradsBothWays(dtype, inputs, wanted.slice(0, inputs.length), fn as (...xs: Tensor[]) => Tensor, rng.int(0, 1e6));
        checkBothWays(t, `${rms ? 'rmsNorm' : 'layerNorm'} [${shape}] over [${normalized}]`, r);
        for (const u of [x, w, b]) u.dispose();
      }
    }
  }
});

test('crossEntropy backward: every dtype, reductions, smoothing, ignored targets, class dim inside', (t) => {
  const rng = new Rng(22);
  const cases: number[][] = [[4, 7], [512, 300], [3, 5, 6], [9], [40, 33, 20]];
  for (const shape of cases) {
    for (const dtype of FLOATS) {
      const classes = shape.length === 1 ? shape[0] : shape[1];
      const targetShape = shape.filter((_, d) => d !== (shape.length === 1 ? 0 : 1));
      const labels = Array.from({ length: numel(targetShape) }, () => (rng.next() < 0.15 ? -1 : rng.int(0, classes - 1)));
      if (!labels.some((v) => v !== -1)) labels[0] = 0;
      const target = ig.tensor(labels, { dtype: 'int32' }).reshape(...targetShape);
      const opts = { ignoreIndex: -1, reduction: rng.pick(['mean', 'sum', 'none'] as const), labelSmoothing: rng.pick([0, 0.2]) };
      const logits = randomTensor(rng, shape, 'float64', rng.pick(LAYOUTS), -4, 4).t;
      const r = gradsBothWays(dtype, [logits], [true], (x) => ig.crossEntropy(x, target, opts), rng.int(0, 1e6));
      checkBothWays(t, `crossEntropy [${shape}] ${JSON.stringify(opts)}`, r);
      logits.dispose();
      target.dispose();
    }
  }
});

test('embedding and gather backward: repeated indices summed, 16-bit gradients accumulated in float32', (t) => {
  const rng = new Rng(23);
  for (const dtype of FLOATS) {
    // 4000 lookups of 5 rows: every row of the gradient sums about 800 terms
    const indices = ig.tensor(Array.from({ length: 4000 }, () => rng.int(0, 4)), { dtype: 'int64' }).reshape(40, 100);
    const weight = randomTensor(rng, [5, 16], 'float64').t;
    checkBothWays(t, `embedding ${dtype}`, gradsBothWays(dtype, [weight], [true], (w) => ig.embedding(indices, w), 1));
    const x = randomTensor(rng, [30, 400], 'float64', rng.pick(LAYOUTS)).t;
    const index = ig.tensor(Array.from({ length: 30 * 1000 }, () => rng.int(0, 399)), { dtype: 'int32' }).reshape(30, 1000);
    checkBothWays(t, `gather ${dtype}`, gradsBothWays(dtype, [x], [true], (a) => a.gather(1, index), 2));
    for (const u of [indices, weight, x, index]) u.dispose();
  }
});

test('binary ops gradient kernel: pow, maximum, minimum in every dtype, broadcast, large', (t) => {
  const rng = new Rng(24);
  for (const dtype of FLOATS) {
    for (const shape of [[3, 4], [256, 300]]) {
      const a = randomTensor(rng, shape, 'float64', rng.pick(['contiguous', 'transposed', 'strided']), 0.5, 2).t;
      const b = randomTensor(rng, [shape[1]], 'float64', 'contiguous', -2, 2).t;
      const fn = (x: Tensor, y: Tensor) => ig.pow(x, y).add(ig.maximum(x, y)).add(ig.minimum(y, x)).add(ig.pow(x, 2)).add(ig.maximum(y, 0));
      checkBothWays(t, `binary [${shape}]`, gradsBothWays(dtype, [a, b], [true, rng.next() < 0.7], fn, 3));
      a.dispose();
      b.dispose();
    }
  }
});

test('maximum/minimum: ties split the gradient in halves, pow has PyTorch values at 0', (t) => {
  const a = ig.tensor([1, 2, 3], { dtype: 'float64' }).requiresGrad_();
  const b = ig.tensor([1, 5, 0], { dtype: 'float64' }).requiresGrad_();
  ig.maximum(a, b).sum().backward();
  t.deepEqual(a.grad!.toArray(), [0.5, 0, 1]);
  t.deepEqual(b.grad!.toArray(), [0.5, 1, 0]);
  const z = ig.tensor([0, 0, 2], { dtype: 'float64' }).requiresGrad_();
  const e = ig.tensor([0, 2, 0], { dtype: 'float64' }).requiresGrad_();
  // d(z^e)/dz is 0 where e == 0; d(z^e)/de is 0 where z == 0 and e >= 0
  ig.pow(z, e).sum().backward();
  t.deepEqual(z.grad!.toArray(), [0, 0, 0]);
  t.deepEqual(e.grad!.toArray(), [0, 0, Math.log(2)]);
});

const UNARY: [string, (a: Tensor) => Tensor, number, number][] = [
  ['abs', (a) => a.abs(), -2, 2],
  ['sqrt', (a) => a.sqrt(), 0.2, 3],
  ['rsqrt', (a) => a.rsqrt(), 0.2, 3],
  ['exp', (a) => a.exp(), -2, 2],
  ['log', (a) => a.log(), 0.2, 3],
  ['tanh', (a) => a.tanh(), -3, 3],
  ['sigmoid', (a) => a.sigmoid(), -6, 6],
  ['relu', (a) => a.relu(), -2, 2],
  ['gelu', (a) => ig.gelu(a), -6, 6],
  ["gelu 'tanh'", (a) => ig.gelu(a, 'tanh'), -6, 6],
  ['silu', (a) => a.silu(), -8, 8],
  ['clamp', (a) => a.clamp(-0.5, 0.7), -1, 1],
];

test('unary and clamp gradient kernels: every op, dtype and layout, parallel sizes, against float64', (t) => {
  const rng = new Rng(26);
  for (const shape of [[3, 5], [300, 257]]) {
    for (const dtype of FLOATS) {
      for (const [name, f, lo, hi] of UNARY) {
        const x = randomTensor(rng, shape, 'float64', rng.pick(LAYOUTS), lo, hi).t;
        checkBothWays(t, `${name} [${shape}]`, gradsBothWays(dtype, [x], [true], f, rng.int(0, 1e6)));
        x.dispose();
      }
    }
  }
});

test('where, maskedFill, matmul and linear backward in every dtype, against float64', (t) => {
  const rng = new Rng(27);
  const cond = ig.tensor(Array.from({ length: 40 * 30 }, () => rng.next() < 0.5)).reshape(40, 30);
  for (const dtype of FLOATS) {
    const a = randomTensor(rng, [40, 30], 'float64', rng.pick(LAYOUTS)).t;
    const b = randomTensor(rng, [30], 'float64').t;
    const select = (x: Tensor, y: Tensor) => ig.where(cond, x, y).add(x.maskedFill(cond.narrow(0, 0, 1), 3));
    checkBothWays(t, 'where, maskedFill', gradsBothWays(dtype, [a, b], [true, true], select, 1));
    const x = randomTensor(rng, [3, 20, 48], 'float64', rng.pick(LAYOUTS)).t;
    const w = randomTensor(rng, [48, 16], 'float64', rng.pick(LAYOUTS)).t;
    const bias = randomTensor(rng, [16], 'float64').t;
    checkBothWays(t, 'matmul', gradsBothWays(dtype, [x, w], [true, true], ig.matmul, 2));
    checkBothWays(t, 'linear', gradsBothWays(dtype, [x, w.mT, bias], [true, true, true], ig.linear, 3));
    for (const u of [a, b, x, w, bias]) u.dispose();
  }
  cond.dispose();
});

test('gradients at special points: PyTorch conventions at kinks, finite limits in the tails', (t) => {
  const grad = (f: (a: Tensor) => Tensor, values: number[], dtype: DType = 'float64') =>
    ig.tidy(() => {
      const x = ig.tensor(values, { dtype, requiresGrad: true });
      f(x).sum().backward();
      return Array.from(refOf(x.grad!).data);
    });
  t.deepEqual(grad((a) => a.abs(), [-2, 0, 3]), [-1, 0, 1], "abs'(0) = 0");
  t.deepEqual(grad((a) => a.relu(), [-2, 0, 3]), [0, 0, 1], "relu'(0) = 0");
  t.deepEqual(grad((a) => a.clamp(-1, 1), [-1.5, -1, 0, 1, 1.5]), [0, 1, 1, 1, 0], 'clamp passes the gradient at its bounds');
  t.deepEqual(grad((a) => a.clamp(1, -1), [-2, 0, 2]), [0, 0, 0], 'crossed bounds: a constant');
  t.deepEqual(grad((a) => a.sqrt(), [0, 4]), [Infinity, 0.25]);
  t.deepEqual(grad((a) => a.log(), [0, 4]), [Infinity, 0.25]);
  for (const dtype of FLOATS) {
    t.deepEqual(grad((a) => ig.gelu(a), [-Infinity, Infinity], dtype), [0, 1], `gelu ${dtype}`);
    t.deepEqual(grad((a) => ig.gelu(a, 'tanh'), [-Infinity, Infinity], dtype), [0, 1], `gelu tanh ${dtype}`);
    t.deepEqual(grad((a) => a.silu(), [-Infinity, Infinity], dtype), [0, 1], `silu ${dtype}`);
    t.deepEqual(grad((a) => a.sigmoid(), [-Infinity, Infinity], dtype), [0, 0], `sigmoid ${dtype}`);
    t.deepEqual(grad((a) => a.tanh(), [-Infinity, Infinity], dtype), [0, 0], `tanh ${dtype}`);
    t.deepEqual(grad((a) => a.exp(), [-Infinity], dtype), [0], `exp ${dtype}`);
  }
});

test('backward kernels give the same bits whatever the thread count', (t) => {
  const rng = new Rng(25);
  const x = randomTensor(rng, [600, 128], 'float32').t;
  const w = randomTensor(rng, [128], 'float32', 'contiguous', 0.5, 1.5).t;
  const weight = randomTensor(rng, [50, 64], 'float32').t;
  const indices = ig.tensor(Array.from({ length: 3000 }, () => rng.int(0, 49)), { dtype: 'int64' });
  const target = ig.tensor(Array.from({ length: 600 }, () => rng.int(0, 127)), { dtype: 'int64' });
  const grads = () =>
    ig.tidy(() => {
      const leaves = [x, w, weight].map((p) => p.detach().requiresGrad_());
      const [xl, wl, el] = leaves;
      const loss = ig.layerNorm(xl, [128], wl).mul(ig.embedding(indices.narrow(0, 0, 600), el).sum(1, true)).sum().add(ig.crossEntropy(xl, target));
      loss.backward();
      return leaves.map((p) => Array.from(p.grad!.data() as Float32Array));
    });
  const threads = ig.getNumThreads();
  try {
    ig.setNumThreads(1);
    const one = grads();
    ig.setNumThreads(Math.max(2, threads));
    const many = grads();
    one.forEach((g, k) => t.deepEqual(g, many[k], `gradient ${k}`));
  } finally {
    ig.setNumThreads(threads);
  }
  for (const u of [x, w, weight, indices, target]) u.dispose();
});

test('the native backward entry points validate their arguments', (t) => {
  interface BackwardNative {
    binaryBackward(op: number, grad: NativeHandle, self: NativeHandle, other: NativeHandle): NativeHandle;
    embeddingBackward(grad: NativeHandle, indices: NativeHandle, numEmbeddings: number): NativeHandle;
    gatherBackward(grad: NativeHandle, dim: number, index: NativeHandle, shape: number[]): NativeHandle;
    layerNormBackward(...args: unknown[]): unknown;
    rmsNormBackward(...args: unknown[]): unknown;
    crossEntropyBackward(...args: unknown[]): unknown;
  }
  const native = addon as BackwardNative & {
    unaryBackward(op: number, grad: NativeHandle, saved: NativeHandle): NativeHandle;
    clampBackward(grad: NativeHandle, a: NativeHandle, lo: number, hi: number): NativeHandle;
  };
  const h = (x: Tensor) => x.handle('test');
  const f = ig.tensor([[1, 2], [3, 4]]);
  const i = ig.tensor([[0, 1], [1, 0]], { dtype: 'int64' });
  const bad = ig.tensor([[0, 5], [1, 0]], { dtype: 'int64' });
  assertCode(t, () => native.binaryBackward(9, h(f), h(f), h(f)), 'ERR_ARG');
  assertCode(t, () => native.binaryBackward(0, h(i), h(i), h(i)), 'ERR_DTYPE');
  assertCode(t, () => native.binaryBackward(0, h(f), h(ig.tensor([1, 2, 3])), h(f)), 'ERR_SHAPE');
  assertCode(t, () => native.binaryBackward(0, h(f), h(f), h(ig.tensor([1], { dtype: 'float64' }))), 'ERR_DTYPE');
  const exp = 4; // UnaryOp codes of native/kernels/elementwise.h
  assertCode(t, () => native.unaryBackward(0, h(f), h(f)), 'ERR_ARG', /neg/);
  assertCode(t, () => native.unaryBackward(12, h(f), h(f)), 'ERR_ARG');
  assertCode(t, () => native.unaryBackward(exp, h(i), h(i)), 'ERR_DTYPE');
  assertCode(t, () => native.unaryBackward(exp, h(f), h(ig.zeros([2, 2], { dtype: 'float64' }))), 'ERR_DTYPE');
  assertCode(t, () => native.unaryBackward(exp, h(f), h(ig.zeros([2]))), 'ERR_SHAPE');
  assertCode(t, () => native.clampBackward(h(f), h(f), NaN, 1), 'ERR_ARG');
  assertCode(t, () => native.clampBackward(h(f), h(ig.zeros([2, 1])), 0, 1), 'ERR_SHAPE');
  assertCode(t, () => native.clampBackward(h(i), h(i), 0, 1), 'ERR_DTYPE');
  assertCode(t, () => native.embeddingBackward(h(ig.zeros([2, 2, 3])), h(bad), 4), 'ERR_INDEX');
  assertCode(t, () => native.embeddingBackward(h(ig.zeros([2, 3])), h(i), 4), 'ERR_SHAPE');
  assertCode(t, () => native.embeddingBackward(h(ig.zeros([2, 2, 3])), h(i), -1), 'ERR_ARG');
  assertCode(t, () => native.embeddingBackward(h(ig.zeros([2, 2, 3])), h(f), 4), 'ERR_DTYPE');
  assertCode(t, () => native.gatherBackward(h(f), 1, h(bad), [2, 2]), 'ERR_INDEX');
  assertCode(t, () => native.gatherBackward(h(f), 2, h(i), [2, 2]), 'ERR_INDEX');
  assertCode(t, () => native.gatherBackward(h(f), 1, h(i), [1, 2]), 'ERR_SHAPE');
  assertCode(t, () => native.gatherBackward(h(ig.tensor([1, 2])), 0, h(i), [2, 2]), 'ERR_SHAPE');
  const stats = ig.zeros([2]);
  assertCode(t, () => native.layerNormBackward(h(f), h(f), [2], null, h(ig.zeros([3])), h(stats), true, true, true), 'ERR_SHAPE');
  assertCode(t, () => native.layerNormBackward(h(f), h(f), [3], null, h(stats), h(stats), true, true, true), 'ERR_SHAPE');
  assertCode(t, () => native.rmsNormBackward(h(f), h(f), [2], null, h(ig.zeros([2], { dtype: 'float64' })), true, true), 'ERR_SHAPE');
  assertCode(t, () => native.rmsNormBackward(h(ig.zeros([2, 3])), h(f), [2], null, h(stats), true, true), 'ERR_SHAPE');
  const target = ig.tensor([0, 1], { dtype: 'int64' });
  const scalar = ig.tensor(1);
  assertCode(t, () => native.crossEntropyBackward(h(scalar), h(f), h(target), h(stats), -100, 1, 0, 5), 'ERR_ARG');
  assertCode(t, () => native.crossEntropyBackward(h(f), h(f), h(target), h(stats), -100, 1, 0, 2), 'ERR_SHAPE');
  assertCode(t, () => native.crossEntropyBackward(h(scalar), h(f), h(ig.tensor([0, 7], { dtype: 'int64' })), h(stats), -100, 1, 0, 2), 'ERR_INDEX');
  assertCode(t, () => native.crossEntropyBackward(h(scalar), h(f), h(target), h(ig.zeros([3])), -100, 1, 0, 2), 'ERR_SHAPE');
  assertCode(t, () => native.crossEntropyBackward(h(scalar), h(f), h(target), h(stats), -100, 7, 0, 2), 'ERR_ARG');
});

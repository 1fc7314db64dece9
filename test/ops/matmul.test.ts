import test from 'ava';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { Worker } from 'worker_threads';
import * as ig from '../../lib';
import { DType } from '../../lib';
import { addon } from '../../lib/native';
import {
  LAYOUTS,
  Layout,
  Ref,
  Rng,
  assertClose,
  assertCode,
  numel,
  randomShape,
  randomTensor,
  refBroadcast,
  refFromFn,
  rowMajorStrides,
  tolerance,
  unravel,
} from '../helpers';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];
const diagnostics = addon as { matmulOperandCopies(): number; blasInfo(): { config: string; threads: number } };
const operandCopies = (): number => diagnostics.matmulOperandCopies();

/** matmul in float64 with PyTorch's semantics, as plain loops. */
function refMatmul(a: Ref, b: Ref): Ref {
  const a2 = a.shape.length === 1 ? [1, a.shape[0]] : a.shape;
  const b2 = b.shape.length === 1 ? [b.shape[0], 1] : b.shape;
  const [m, k] = a2.slice(-2);
  const n = b2[b2.length - 1];
  const nb = Math.max(a2.length, b2.length) - 2;
  const pad = (s: number[]) => [...Array(nb - (s.length - 2)).fill(1), ...s.slice(0, -2)];
  const batchA = pad(a2);
  const batchB = pad(b2);
  const batch = batchA.map((d, i) => (d === 1 ? batchB[i] : d));
  const stridesA = rowMajorStrides(batchA);
  const stridesB = rowMajorStrides(batchB);
  const out = new Float64Array(numel(batch) * m * n);
  for (let bi = 0; bi < numel(batch); bi++) {
    const idx = unravel(bi, batch);
    let ia = 0;
    let ib = 0;
    for (let d = 0; d < nb; d++) {
      if (batchA[d] !== 1) ia += idx[d] * stridesA[d];
      if (batchB[d] !== 1) ib += idx[d] * stridesB[d];
    }
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a.data[ia * m * k + i * k + p] * b.data[ib * k * n + p * n + j];
        out[bi * m * n + i * n + j] = s;
      }
    }
  }
  const shape = [...batch, ...(a.shape.length > 1 ? [m] : []), ...(b.shape.length > 1 ? [n] : [])];
  return { shape, data: out };
}

/** w [out, in] -> w^T [in, out], as a Ref. */
function refTranspose(w: Ref): Ref {
  const [rows, cols] = w.shape;
  return refFromFn([cols, rows], (i) => w.data[(i % rows) * cols + Math.floor(i / rows)]);
}

/** The last two dims of a 3-D Ref swapped. */
function refTranspose3(x: Ref): Ref {
  const [nb, rows, cols] = x.shape;
  return refFromFn([nb, cols, rows], (i) => {
    const [bi, c, r] = unravel(i, [nb, cols, rows]);
    return x.data[bi * rows * cols + r * cols + c];
  });
}

/**
 * Tolerance for a product over k terms in [-1, 1]: the dtype's relative tolerance for rounding
 * the result, plus float32 (or float64) accumulation error growing with k.
 */
function productTolerance(dtype: DType, k: number): [number, number] {
  const accumulate = dtype === 'float64' ? 1e-15 : 2e-7;
  return [tolerance(dtype)[0], Math.max(1, k) * accumulate + tolerance(dtype)[1] * 1e-3];
}

/** A batch shape that broadcasts against `batch`: some dims set to 1, some leading dims dropped. */
function batchPartner(rng: Rng, batch: number[]): number[] {
  return batch.slice(rng.int(0, batch.length)).map((d) => (rng.next() < 0.3 ? 1 : d));
}

/** Operand shapes for one random matmul case, 1-D and N-D included. */
function randomOperands(rng: Rng): [number[], number[]] {
  const [m, k, n] = [rng.int(1, 7), rng.int(1, 7), rng.int(1, 7)];
  const batch = randomShape(rng, 3, 3);
  const other = batchPartner(rng, batch);
  const [batchA, batchB] = rng.next() < 0.5 ? [batch, other] : [other, batch];
  switch (rng.int(0, 5)) {
    case 0:
      return [[k], [k]];
    case 1:
      return [[k], [...batchB, k, n]];
    case 2:
      return [[...batchA, m, k], [k]];
    case 3:
      return [[m, k], [k, n]];
    default:
      return [[...batchA, m, k], [...batchB, k, n]];
  }
}

test('matmul: random shapes, layouts and dtypes against float64', (t) => {
  const rng = new Rng(2024);
  for (let trial = 0; trial < 160; trial++) {
    const dtype = FLOATS[trial % FLOATS.length];
    const [sa, sb] = randomOperands(rng);
    const a = randomTensor(rng, sa, dtype, rng.pick(LAYOUTS));
    const b = randomTensor(rng, sb, dtype, rng.pick(LAYOUTS));
    const out = ig.matmul(a.t, b.t);
    t.is(out.dtype, dtype);
    const k = sa[sa.length - 1];
    assertClose(t, out, refMatmul(a.ref, b.ref), productTolerance(dtype, k), `${dtype} ${JSON.stringify(sa)} @ ${JSON.stringify(sb)}`);
    for (const x of [a.t, b.t, out]) x.dispose();
  }
});

test('matmul: every layout pair of both operands, batched with broadcasting', (t) => {
  const rng = new Rng(77);
  for (const la of LAYOUTS) {
    for (const lb of LAYOUTS) {
      for (const dtype of ['float32', 'float64'] as DType[]) {
        const a = randomTensor(rng, [2, 1, 5, 6], dtype, la);
        const b = randomTensor(rng, [3, 6, 4], dtype, lb);
        const out = a.t.matmul(b.t);
        assertClose(t, out, refMatmul(a.ref, b.ref), productTolerance(dtype, 6), `${la} @ ${lb} ${dtype}`);
        for (const x of [a.t, b.t, out]) x.dispose();
      }
    }
  }
});

/** Sizes large enough for OpenBLAS's blocked kernels, its threads, and the batch spread over the pool. */
const LARGE: [string, number[], number[], Layout, Layout][] = [
  ['2-D, threaded by OpenBLAS', [130, 300], [300, 90], 'contiguous', 'transposed'],
  ['batch folded into rows', [3, 70, 65], [65, 80], 'contiguous', 'contiguous'],
  ['batch over the thread pool', [6, 33, 40], [6, 40, 20], 'transposed', 'contiguous'],
  ['batch of large products', [2, 260, 250], [250, 270], 'transposed', 'transposed'],
  ['broadcast batch over the pool', [4, 1, 20, 30], [1, 3, 30, 25], 'contiguous', 'broadcast'],
];

for (const [name, sa, sb, la, lb] of LARGE) {
  test(`matmul: ${name} (${JSON.stringify(sa)} @ ${JSON.stringify(sb)})`, (t) => {
    const rng = new Rng(sa.length * 31 + sb[0]);
    for (const dtype of ['float32', 'float64', 'bfloat16'] as DType[]) {
      const a = randomTensor(rng, sa, dtype, la);
      const b = randomTensor(rng, sb, dtype, lb);
      const expected = refMatmul(a.ref, b.ref);
      const k = sa[sa.length - 1];
      assertClose(t, ig.matmul(a.t, b.t), expected, productTolerance(dtype, k), `${dtype}`);
      if (dtype === 'float32') {
        // the same numbers on one thread (OpenBLAS capped as well)
        const threads = ig.getNumThreads();
        ig.setNumThreads(1);
        try {
          assertClose(t, ig.matmul(a.t, b.t), expected, productTolerance(dtype, k), `${dtype}, one thread`);
        } finally {
          ig.setNumThreads(threads);
        }
      }
    }
  });
}

test('matmul: column-major batch folded into rows', (t) => {
  // a [2, 3, 4] with strides [3, 1, 6]: its batch and rows merge into one column-major dim
  const rng = new Rng(3);
  const base = randomTensor(rng, [4, 2, 3], 'float32');
  const a = base.t.permute(1, 2, 0);
  t.deepEqual(a.strides, [3, 1, 6]);
  const b = randomTensor(rng, [4, 5], 'float32', 'transposed');
  const aRef = refFromFn([2, 3, 4], (i) => {
    const [bi, r, c] = unravel(i, [2, 3, 4]);
    return base.ref.data[c * 6 + bi * 3 + r];
  });
  const copies = operandCopies();
  assertClose(t, ig.matmul(a, b.t), refMatmul(aRef, b.ref), productTolerance('float32', 4));
  t.is(operandCopies(), copies);
});

test('matmul: 1-D operands', (t) => {
  const rng = new Rng(11);
  const v = randomTensor(rng, [5], 'float64', 'strided');
  const w = randomTensor(rng, [5], 'float64');
  const dot = ig.matmul(v.t, w.t);
  t.deepEqual(dot.shape, []);
  t.true(Math.abs(dot.item() - v.ref.data.reduce((s, x, i) => s + x * w.ref.data[i], 0)) < 1e-12);
  const m = randomTensor(rng, [2, 5, 3], 'float64', 'transposed');
  const vm = ig.matmul(v.t, m.t);
  t.deepEqual(vm.shape, [2, 3]);
  assertClose(t, vm, refMatmul(v.ref, m.ref));
  const mt = randomTensor(rng, [2, 3, 5], 'float64', 'transposed');
  const mv = ig.matmul(mt.t, w.t);
  t.deepEqual(mv.shape, [2, 3]);
  assertClose(t, mv, refMatmul(mt.ref, w.ref));
});

test('matmul: zero sizes', (t) => {
  const cases: [number[], number[], number[]][] = [
    [[0, 3], [3, 4], [0, 4]],
    [[2, 3], [3, 0], [2, 0]],
    [[0], [0], []],
    [[2, 0], [0, 4], [2, 4]],
    [[3, 2, 0], [0, 5], [3, 2, 5]],
    [[0, 2, 3], [3, 4], [0, 2, 4]],
    [[4, 0], [0], [4]],
  ];
  for (const dtype of FLOATS) {
    for (const [sa, sb, so] of cases) {
      const a = ig.ones(sa, { dtype });
      const b = ig.ones(sb, { dtype });
      const out = ig.matmul(a, b);
      t.deepEqual(out.shape, so);
      t.is(out.dtype, dtype);
      // k = 0 sums nothing: zeros
      assertClose(t, out, refFromFn(so, () => 0), undefined, `${JSON.stringify(sa)} @ ${JSON.stringify(sb)}`);
    }
  }
});

test('matmul: results do not depend on what the reused output memory held', (t) => {
  const rng = new Rng(12);
  const cases: [number[], number[]][] = [[[1, 40], [40, 30]], [[30, 40], [40, 1]], [[30, 40], [40, 30]], [[30, 0], [0, 30]]];
  for (const [sa, sb] of cases) {
    const a = randomTensor(rng, sa, 'float32', 'transposed');
    const b = randomTensor(rng, sb, 'float32');
    const expected = refMatmul(a.ref, b.ref);
    for (let r = 0; r < 3; r++) {
      ig.full([numel(expected.shape)], NaN).dispose();  // freed memory of the result's size, full of NaN
      assertClose(t, ig.matmul(a.t, b.t), expected, productTolerance('float32', sa[1]), JSON.stringify([sa, sb]));
    }
  }
});

test('matmul: transposed and vector views reach BLAS without a copy', (t) => {
  const rng = new Rng(5);
  const a = randomTensor(rng, [3, 40, 30], 'float32', 'transposed');
  const b = randomTensor(rng, [30, 20], 'float32', 'transposed');
  const v = randomTensor(rng, [30], 'float32', 'strided');
  const w = randomTensor(rng, [50, 30], 'float32');
  const before = operandCopies();
  for (const out of [ig.matmul(a.t, b.t), ig.matmul(a.t.mT.mT, v.t), ig.matmul(b.t.mT, a.t.mT), ig.linear(a.t, w.t)]) out.dispose();
  t.is(operandCopies(), before, 'no operand was copied');
  // a layout with no BLAS form (every other element in both dims) is copied, and counted
  const s = randomTensor(rng, [30, 20], 'float32', 'strided');
  assertClose(t, ig.matmul(a.t, s.t), refMatmul(a.ref, s.ref), productTolerance('float32', 30));
  t.is(operandCopies(), before + 1);
});

test('matmul: narrowed views (rows longer than the columns) reach BLAS without a copy', (t) => {
  const rng = new Rng(21);
  const big = randomTensor(rng, [12, 20], 'float32');
  const other = randomTensor(rng, [3, 9, 16], 'float32');
  // columns 4..10 of rows 2..9, and a batch of column blocks
  const a = big.t.narrow(0, 2, 7).narrow(1, 4, 6);
  const b = other.t.narrow(2, 5, 8).narrow(1, 0, 6);
  const aRef = refFromFn([7, 6], (i) => big.ref.data[(2 + Math.floor(i / 6)) * 20 + 4 + (i % 6)]);
  const bRef = refFromFn([3, 6, 8], (i) => {
    const [bi, r, c] = unravel(i, [3, 6, 8]);
    return other.ref.data[bi * 144 + r * 16 + 5 + c];
  });
  const before = operandCopies();
  assertClose(t, ig.matmul(a, b), refMatmul(aRef, bRef), productTolerance('float32', 6));
  assertClose(t, ig.matmul(b.mT, a.mT), refMatmul(refTranspose3(bRef), refTranspose(aRef)), productTolerance('float32', 6));
  t.is(operandCopies(), before);
});

test('matmul: an operand repeated over the batch with a layout BLAS cannot take', (t) => {
  const rng = new Rng(4);
  const small = randomTensor(rng, [1, 5, 6], 'float32', 'strided');
  const a = small.t.expand(4, 5, 6);
  const b = randomTensor(rng, [4, 6, 3], 'float32', 'transposed');
  const aRef = refFromFn([4, 5, 6], (i) => small.ref.data[i % 30]);
  const before = ig.memory().bytes.cpu;
  assertClose(t, ig.matmul(a, b.t), refMatmul(aRef, b.ref), productTolerance('float32', 6));
  t.is(ig.memory().bytes.cpu, before + 4 * 5 * 3 * 4, 'the copy is freed; only the result remains');
});

test('setNumThreads and IGNIS_NUM_THREADS cap the threads of OpenBLAS', (t) => {
  const rng = new Rng(6);
  const a = randomTensor(rng, [300, 300], 'float32');
  const threads = ig.getNumThreads();
  try {
    ig.setNumThreads(1);
    ig.matmul(a.t, a.t).dispose();
    t.is(diagnostics.blasInfo().threads, 1);
  } finally {
    ig.setNumThreads(threads);
  }
  ig.matmul(a.t, a.t).dispose();
  t.true(diagnostics.blasInfo().threads <= threads);
  const script = `const ig = require(${JSON.stringify(path.join(__dirname, '..', '..', 'lib'))});
    const { addon } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'lib', 'native'))});
    const a = ig.ones([300, 300]);
    const p = ig.matmul(a, a);
    process.stdout.write(JSON.stringify([addon.blasInfo().threads, p.toArray()[0][0]]));`;
  const res = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, IGNIS_NUM_THREADS: '1' } });
  t.is(res.status, 0, res.stderr);
  t.deepEqual(JSON.parse(res.stdout), [1, 300]);
});

/**
 * Batches of small products (OpenBLAS set to one thread) and large products (OpenBLAS threads),
 * interleaved; returns the sum of each result. Runs in the main thread and, from its source
 * text, in workers.
 */
function mixedProducts(lib: string): number[] {
  const ig = require(lib) as typeof import('../../lib');
  const fill = (shape: number[], seed: number) => {
    const data = new Float32Array(shape.reduce((x, y) => x * y, 1));
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(seed + i * 0.37);
    return ig.tensor(data, { shape });
  };
  const small = [fill([32, 24, 20], 1), fill([32, 20, 16], 2)];
  const large = [fill([200, 300], 3), fill([300, 250], 4)];
  const sums: number[] = [];
  for (let r = 0; r < 12; r++) {
    const [x, y] = r % 2 ? small : large;
    const out = ig.matmul(x, y);
    sums.push((out.data() as Float32Array).reduce((s, v) => s + v, 0));
    out.dispose();
  }
  return sums;
}

test('matmul from worker threads at the same time as the main thread', async (t) => {
  const lib = path.join(__dirname, '..', '..', 'lib');
  const source = `require('worker_threads').parentPort.postMessage((${mixedProducts.toString()})(${JSON.stringify(lib)}))`;
  const runWorker = () =>
    new Promise<number[]>((resolve, reject) => {
      const worker = new Worker(source, { eval: true });
      worker.once('message', resolve);
      worker.once('error', reject);
    });
  const workers = Promise.all([runWorker(), runWorker()]);
  const expected = mixedProducts(lib);
  for (const sums of await workers) {
    t.is(sums.length, expected.length);
    sums.forEach((s, i) => t.true(Math.abs(s - expected[i]) <= 1e-3 * Math.max(1, Math.abs(expected[i])), `product ${i}: ${s} vs ${expected[i]}`));
  }
});

test('linear: random shapes, layouts and dtypes, with and without bias', (t) => {
  const rng = new Rng(99);
  for (let trial = 0; trial < 64; trial++) {
    const dtype = FLOATS[trial % FLOATS.length];
    const [inF, outF] = [rng.int(1, 9), rng.int(1, 9)];
    const xShape = [...randomShape(rng, 2, 4), inF];
    const x = randomTensor(rng, xShape, dtype, rng.pick(LAYOUTS));
    const w = randomTensor(rng, [outF, inF], dtype, rng.pick(LAYOUTS));
    const withBias = trial % 2 === 0;
    const bias = withBias ? randomTensor(rng, [outF], dtype, rng.pick(LAYOUTS)) : null;
    const out = ig.linear(x.t, w.t, bias?.t);
    t.is(out.dtype, dtype);
    let expected = refMatmul(x.ref, refTranspose(w.ref));
    if (bias) expected = refBroadcast(expected, bias.ref, (p, c) => p + c);
    assertClose(t, out, expected, productTolerance(dtype, inF), `${dtype} ${JSON.stringify(xShape)} w [${outF}, ${inF}] bias ${withBias}`);
    for (const tensor of [x.t, w.t, bias?.t, out]) tensor?.dispose();
  }
});

test('linear: larger sizes, bias added by the GEMM, zero in_features', (t) => {
  const rng = new Rng(8);
  for (const dtype of ['float32', 'float64', 'float16'] as DType[]) {
    const x = randomTensor(rng, [2, 50, 64], dtype, 'contiguous');
    const w = randomTensor(rng, [96, 64], dtype, 'contiguous');
    const b = randomTensor(rng, [96], dtype);
    const expected = refBroadcast(refMatmul(x.ref, refTranspose(w.ref)), b.ref, (p, c) => p + c);
    assertClose(t, ig.linear(x.t, w.t, b.t), expected, productTolerance(dtype, 64), dtype);
  }
  // in_features = 0: the product is empty, the bias remains
  const b = ig.tensor([1, 2, 3]);
  const out = ig.linear(ig.zeros([2, 0]), ig.zeros([3, 0]), b);
  assertClose(t, out, refFromFn([2, 3], (i) => (i % 3) + 1));
  t.deepEqual(ig.linear(ig.zeros([0, 4]), ig.zeros([3, 4]), b).shape, [0, 3]);
  t.deepEqual(ig.linear(ig.ones([4]), ig.ones([3, 4])).toArray(), [4, 4, 4]);
});

test('matmul and linear: bad inputs', (t) => {
  const a = ig.zeros([2, 3]);
  const b = ig.zeros([4, 5]);
  assertCode(t, () => ig.matmul(a, b), 'ERR_SHAPE', /matmul.*\[2, 3\].*\[4, 5\]/);
  assertCode(t, () => ig.matmul(ig.zeros([2, 2, 3]), ig.zeros([3, 3, 4])), 'ERR_SHAPE', /\[2, 2, 3\].*\[3, 3, 4\]/);
  assertCode(t, () => ig.matmul(ig.zeros([3]), ig.zeros([4])), 'ERR_SHAPE', /\[3\].*\[4\]/);
  assertCode(t, () => ig.matmul(ig.tensor(1), ig.zeros([1])), 'ERR_SHAPE');
  assertCode(t, () => ig.matmul(a, ig.zeros([3, 2], { dtype: 'int32' })), 'ERR_DTYPE');
  assertCode(t, () => ig.matmul(ig.zeros([2], { dtype: 'bool' }), ig.zeros([2], { dtype: 'bool' })), 'ERR_DTYPE');
  assertCode(t, () => ig.matmul(a, ig.zeros([3, 2], { dtype: 'float64' })), 'ERR_DTYPE');
  assertCode(t, () => ig.matmul(a, [1, 2] as unknown as ig.Tensor), 'ERR_ARG');
  const gone = ig.zeros([3, 2]);
  gone.dispose();
  assertCode(t, () => ig.matmul(a, gone), 'ERR_DISPOSED');
  const w = ig.zeros([4, 3]);
  assertCode(t, () => ig.linear(a, w, ig.zeros([3])), 'ERR_SHAPE', /bias.*\[3\]/);
  assertCode(t, () => ig.linear(a, w, ig.zeros([1, 4])), 'ERR_SHAPE');
  assertCode(t, () => ig.linear(a, ig.zeros([4, 2])), 'ERR_SHAPE', /\[2, 3\].*\[4, 2\]/);
  assertCode(t, () => ig.linear(a, ig.zeros([3])), 'ERR_SHAPE');
  assertCode(t, () => ig.linear(ig.tensor(2), w), 'ERR_SHAPE');
  assertCode(t, () => ig.linear(a, w, ig.zeros([4], { dtype: 'float64' })), 'ERR_DTYPE');
  assertCode(t, () => ig.linear(a, w.to('int64')), 'ERR_DTYPE');
  assertCode(t, () => ig.linear(a, w, gone), 'ERR_DISPOSED');
});

test('matmul and linear: the native layer validates on its own', (t) => {
  type Native = {
    matmul(a: unknown, b: unknown): unknown;
    linear(x: unknown, w: unknown, bias: unknown): unknown;
  };
  const native = addon as Native;
  const h = (x: ig.Tensor) => x.handle('test');
  const a = ig.zeros([2, 3]);
  assertCode(t, () => native.matmul(h(a), h(ig.zeros([2, 3]))), 'ERR_SHAPE', /\[2, 3\].*\[2, 3\]/);
  assertCode(t, () => native.matmul(h(ig.zeros([2, 2, 3])), h(ig.zeros([3, 3, 4]))), 'ERR_SHAPE');
  assertCode(t, () => native.matmul(h(ig.tensor(1)), h(a)), 'ERR_SHAPE');
  assertCode(t, () => native.matmul(h(a.to('int32')), h(a.to('int32').mT)), 'ERR_DTYPE');
  assertCode(t, () => native.matmul(h(a), h(a.to('float64').mT)), 'ERR_DTYPE');
  assertCode(t, () => native.linear(h(a), h(ig.zeros([3])), null), 'ERR_SHAPE');
  assertCode(t, () => native.linear(h(a), h(ig.zeros([4, 3])), h(ig.zeros([3]))), 'ERR_SHAPE');
  assertCode(t, () => native.linear(h(a), h(ig.zeros([4, 2])), null), 'ERR_SHAPE');
});

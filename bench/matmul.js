"use strict";
// Matmul against numpy and PyTorch in the same run.
// CPU (default): float32 square products at n = 256..2048 (target: at least 0.9x numpy's GFLOP/s
// at 1024), a transposed first operand, a batch of small products and a linear layer with bias,
// against numpy and PyTorch on the CPU.
// --device cuda: TF32 and bfloat16 (and full float32) products at 4096 and 8192 against PyTorch
// on the same GPU, timed with CUDA events after a warm-up, median of many (target: at least 0.95x).
// Usage: node bench/matmul.js [--quick] [--threads N] [--device cpu|cuda]
// (build first: node-gyp build or npm run build:cuda, and tsc -p .)
// --threads N runs every library on N threads (numpy through OPENBLAS_NUM_THREADS).
const ig = require('..');
const { addon } = require('../dist/lib/native');
const { median, timeit, timeCuda, wantsCuda, runPeer, report } = require('./common');

const quick = process.argv.includes('--quick');
const threadsFlag = process.argv.indexOf('--threads');
if (threadsFlag > 0) {
  const n = Number(process.argv[threadsFlag + 1]);
  ig.setNumThreads(n);
  process.env.OPENBLAS_NUM_THREADS = String(n);
}
if (wantsCuda(ig, 'matmul')) {
  benchCuda();
  process.exit(0);
}

/** TF32 / bfloat16 / float32 square products on the GPU, ignis and PyTorch alternating. */
function benchCuda() {
  const sizes = quick ? [1024, 2048] : [4096, 8192];
  const cases = [
    ...sizes.map((n) => ({ name: `tf32 ${n}`, n, dtype: 'float32', precision: 'high' })),
    ...sizes.map((n) => ({ name: `bf16 ${n}`, n, dtype: 'bfloat16', precision: 'highest' })),
    ...sizes.map((n) => ({ name: `float32 ${n}`, n, dtype: 'float32', precision: 'highest' })),
  ];
  const timeIgnis = (c) => {
    ig.cuda.setMatmulPrecision(c.precision);
    const a = ig.randn([c.n, c.n], { dtype: c.dtype, device: 'cuda' });
    const b = ig.randn([c.n, c.n], { dtype: c.dtype, device: 'cuda' });
    const seconds = timeCuda(ig, () => ig.matmul(a, b).dispose()).median;
    a.dispose();
    b.dispose();
    ig.cuda.setMatmulPrecision('highest');
    return seconds;
  };
  const rounds = quick ? 1 : 2;
  const seconds = { ignis: [], torch: [] };
  let torch;
  for (let r = 0; r < rounds; r++) {
    seconds.ignis.push(cases.map(timeIgnis));
    torch = runPeer('torch', 'matmul', { cases, lib: 'torch', device: 'cuda' });
    seconds.torch.push(torch.rows?.map((row) => row.seconds));
  }
  const rows = cases.map((c, i) => {
    const tflops = (lib) => {
      const times = seconds[lib].map((round) => round?.[i]).filter((t) => t !== undefined);
      return times.length ? (2 * c.n ** 3) / median(times) / 1e12 : undefined;
    };
    const [ours, theirs] = [tflops('ignis'), tflops('torch')];
    return { case: c.name, 'ignis TFLOP/s': ours, 'torch TFLOP/s': theirs, 'ignis/torch': theirs && ours / theirs };
  });
  const gpu = ig.cuda.getDeviceProperties().name;
  const cublas = ig.cuda.libraries().find((l) => l.name === 'cublas');
  report('matmul-cuda', rows, { gpu, cublas: cublas.version, torch: torch.version ?? torch.skipped, rounds });
  console.log(`${gpu}; ignis with cuBLAS ${cublas.version} (${cublas.path}); torch: ${torch.version ?? torch.skipped}`);
}

const sizes = quick ? [256, 512] : [256, 512, 1024, 2048];
const cases = [
  ...sizes.map((n) => ({ name: `square ${n}`, a: [n, n], b: [n, n] })),
  { name: 'A^T @ B, 1024', a: [1024, 1024], b: [1024, 1024], transA: true },
  { name: 'batched [64, 128, 128]', a: [64, 128, 128], b: [64, 128, 128] },
  { name: 'linear [512, 1024] x [1024, 1024] + b', a: [512, 1024], b: [1024, 1024], linear: true },
];

/** Multiply-adds times two, per call. */
function flops(c) {
  const [m, k] = c.a.slice(-2);
  const n = c.linear ? c.b[0] : c.b[c.b.length - 1];
  const batch = c.a.slice(0, -2).reduce((x, y) => x * y, 1);
  return 2 * batch * m * n * k;
}

function rand(shape) {
  const n = shape.reduce((x, y) => x * y, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.random() * 2 - 1;
  return ig.tensor(data, { shape });
}

function timeIgnis(c) {
  const x = rand(c.a);
  const y = rand(c.b);
  const bias = c.linear ? rand([c.b[0]]) : null;
  const a = c.transA ? x.mT : x;
  const fn = c.linear ? () => ig.linear(a, y, bias).dispose() : () => ig.matmul(a, y).dispose();
  const seconds = timeit(fn).median;
  for (const t of [x, y, a, bias]) t?.dispose();
  return seconds;
}

// Rounds alternate ignis and the peers so that load from other processes falls on all of them;
// each figure is the median over the rounds.
const rounds = quick ? 1 : 5;
const threads = ig.getNumThreads();
const seconds = { ignis: [], numpy: [], torch: [] };
let numpy;
let torch;
const runPeers = () => {
  numpy = runPeer('numpy', 'matmul', { threads, cases, lib: 'numpy' });
  torch = runPeer('torch', 'matmul', { threads, cases, lib: 'torch' });
  seconds.numpy.push(numpy.rows?.map((row) => row.seconds));
  seconds.torch.push(torch.rows?.map((row) => row.seconds));
};
for (let r = 0; r < rounds; r++) {
  if (r % 2) runPeers();
  seconds.ignis.push(cases.map(timeIgnis));
  if (r % 2 === 0) runPeers();
}

const rows = cases.map((c, i) => {
  const gflops = (lib) => {
    const times = seconds[lib].map((round) => round?.[i]).filter((t) => t !== undefined);
    return times.length ? flops(c) / median(times) / 1e9 : undefined;
  };
  const [ours, np, th] = [gflops('ignis'), gflops('numpy'), gflops('torch')];
  return {
    case: c.name,
    'ignis GFLOP/s': ours,
    'numpy GFLOP/s': np,
    'ignis/numpy': np && ours / np,
    'torch GFLOP/s': th,
    'ignis/torch': th && ours / th,
  };
});

const blas = { ignis: addon.blasInfo().config, numpy: numpy.blas ?? numpy.skipped, torch: torch.blas ?? torch.skipped };
report('matmul', rows, { blas, threads, rounds });
for (const [who, config] of Object.entries(blas)) console.log(`${who}: ${config}`);

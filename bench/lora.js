'use strict';
// The fused LoRA linear layer, forward + backward (dx, dA, dB; W frozen), float32, r = 16,
// against PyTorch (CPU) running PEFT's formula with autograd in the same run
// (y = F.linear(x, W) + F.linear(F.linear(x, A), B) * s; W without grad, x with grad; no
// dropout, as PEFT's p = 0). Target: at most 0.75x PyTorch's time. Also the GEMM floor: the two
// base GEMMs alone (x W^T and dY W with ignis linear/matmul), and each time's ratio to it.
// --device cuda: x [8192, 4096] and W [4096, 4096] bfloat16, A and B float32, r = 16, under
// autocast('bfloat16') (PyTorch: torch.autocast, as PEFT trains), timed with CUDA events.
// Usage: node bench/lora.js [--quick] [--threads N] [--device cpu|cuda]
// (build first: node-gyp build or npm run build:cuda, and tsc -p .)
// --threads N runs both libraries on N threads.
const ig = require('..');
const { median, timeit, timeCuda, wantsCuda, runPeer, report } = require('./common');

const quick = process.argv.includes('--quick');
const threadsFlag = process.argv.indexOf('--threads');
if (threadsFlag > 0) ig.setNumThreads(Number(process.argv[threadsFlag + 1]));
const cases = [
  { name: 'x [4096, 1024], W [1024, 1024], r 16', n: 4096, in: 1024, out: 1024, r: 16 },
  { name: 'x [2048, 4096], W [4096, 4096], r 16', n: 2048, in: 4096, out: 4096, r: 16 },
].slice(0, quick ? 1 : 2);
const alpha = 32;
if (wantsCuda(ig, 'lora')) {
  benchCuda();
  process.exit(0);
}

/** The bfloat16 layer on the GPU, forward + backward under autocast, ignis and PyTorch alternating. */
function benchCuda() {
  const c = quick
    ? { name: 'x [2048, 1024], W [1024, 1024] bf16, r 16', n: 2048, in: 1024, out: 1024, r: 16 }
    : { name: 'x [8192, 4096], W [4096, 4096] bf16, r 16', n: 8192, in: 4096, out: 4096, r: 16 };
  const s = ig.loraScaling(alpha, c.r);
  // splitK: IGNIS_CUDA_SPLIT_K for this timing ('off' shows what splitting the adapters' long-k
  // gradient products along k saves)
  const timeIgnis = (splitK) => {
    process.env.IGNIS_CUDA_SPLIT_K = splitK;
    const cuda = { device: 'cuda' };
    const x = ig.randn([c.n, c.in], { ...cuda, dtype: 'bfloat16' }).requiresGrad_();
    const w = ig.mul(ig.randn([c.out, c.in], cuda), 1 / Math.sqrt(c.in)).to('bfloat16');
    const a = ig.mul(ig.randn([c.r, c.in], cuda), 1 / Math.sqrt(c.in)).requiresGrad_();
    const b = ig.mul(ig.randn([c.out, c.r], cuda), 0.01).requiresGrad_();
    const dy = ig.randn([c.n, c.out], { ...cuda, dtype: 'bfloat16' });
    const step = () => {
      for (const t of [x, a, b]) {
        t.grad?.dispose();
        t.grad = null;
      }
      ig.tidy(() => ig.autocast('bfloat16', () => ig.loraLinear(x, w, null, a, b, s)).backward(dy));
    };
    const seconds = timeCuda(ig, step).median;
    for (const t of [x, w, a, b, dy]) t.dispose();
    delete process.env.IGNIS_CUDA_SPLIT_K;
    return seconds;
  };
  const rounds = quick ? 1 : 3;
  const seconds = { ignis: [], unsplit: [], torch: [] };
  let torch;
  for (let r = 0; r < rounds; r++) {
    seconds.ignis.push(timeIgnis('auto'));
    seconds.unsplit.push(timeIgnis('off'));
    torch = runPeer('torch', 'lora', { cases: [c], alpha, device: 'cuda' });
    if (torch.rows) seconds.torch.push(torch.rows[0].seconds);
  }
  const [ours, theirs] = [median(seconds.ignis) * 1e3, seconds.torch.length ? median(seconds.torch) * 1e3 : undefined];
  const gpu = ig.cuda.getDeviceProperties().name;
  const unsplit = median(seconds.unsplit) * 1e3;
  const rows = [{
    case: c.name,
    'ignis ms': ours,
    'split-K off ms': unsplit,
    'torch ms': theirs,
    'ignis/torch': theirs && ours / theirs,
    'split-K off/torch': theirs && unsplit / theirs,
  }];
  report('lora-cuda', [...rows, ...cudaParts(c)],
    { gpu, rounds, alpha, torch: torch.torch ?? torch.skipped });
}

/**
 * Where the layer's time goes: each of its GEMMs alone on bfloat16 operands (the adapters' two
 * gradient products with split-K on and off), one row each.
 */
function cudaParts(c) {
  const bf16 = { device: 'cuda', dtype: 'bfloat16' };
  const [x, w, dy] = [ig.randn([c.n, c.in], bf16), ig.randn([c.out, c.in], bf16), ig.randn([c.n, c.out], bf16)];
  const [a, b, xa, dyB] = [ig.randn([c.r, c.in], bf16), ig.randn([c.out, c.r], bf16), ig.randn([c.n, c.r], bf16), ig.randn([c.n, c.r], bf16)];
  const time = (fn, splitK = 'auto') => {
    process.env.IGNIS_CUDA_SPLIT_K = splitK;
    const ms = timeCuda(ig, () => ig.tidy(fn)).median * 1e3;
    delete process.env.IGNIS_CUDA_SPLIT_K;
    return ms;
  };
  const products = [
    ['x W^T (base)', () => ig.matmul(x, w.mT)],
    ['dY W (dx)', () => ig.matmul(dy, w)],
    ['x A^T (xa)', () => ig.matmul(x, a.mT)],
    ['dY B', () => ig.matmul(dy, b)],
    ['dY^T xa (dB)', () => ig.matmul(dy.mT, xa), true],
    ['(dY B)^T x (dA)', () => ig.matmul(dyB.mT, x), true],
  ];
  const rows = products.map(([name, fn, split]) => ({
    case: `part: ${name}`,
    'ignis ms': time(fn),
    ...(split ? { 'split-K off ms': time(fn, 'off') } : {}),
  }));
  for (const t of [x, w, dy, a, b, xa, dyB]) t.dispose();
  return rows;
}

function layer(c) {
  return {
    x: ig.randn([c.n, c.in]),
    w: ig.mul(ig.randn([c.out, c.in]), 1 / Math.sqrt(c.in)),
    ...ig.loraAdapters(c.in, c.out, c.r),
    dy: ig.randn([c.n, c.out]),
  };
}

function timeIgnis(c) {
  const { x, w, a, b, dy } = layer(c);
  // B starts at zeros; give it values so that no product is trivially zero.
  const bMat = ig.mul(ig.randn([c.out, c.r]), 0.01);
  b.dispose();
  const s = ig.loraScaling(alpha, c.r);
  const step = () => {
    const { y, xa } = ig.loraLinearForward(x, w, null, a, bMat, s);
    const g = ig.loraLinearBackward(dy, x, w, a, bMat, xa, s);
    for (const t of [y, xa, g.dx, g.da, g.db]) t.dispose();
  };
  const floor = () => {
    ig.linear(x, w).dispose();
    ig.matmul(dy, w).dispose();
  };
  const out = { step: timeit(step, { reps: 5, warmup: 2 }).median, floor: timeit(floor, { reps: 5, warmup: 2 }).median };
  for (const t of [x, w, a, bMat, dy]) t.dispose();
  return out;
}

// Rounds alternate ignis and the peer so that load from other processes falls on both; each
// figure is the median over the rounds.
const rounds = quick ? 1 : 3;
const threads = ig.getNumThreads();
const seconds = { ignis: [], floor: [], torch: [] };
let skipped;
for (let round = 0; round < rounds; round++) {
  const runTorch = () => {
    const res = runPeer('torch', 'lora', { threads, cases, alpha });
    skipped = res.skipped;
    seconds.torch.push(res.rows?.map((row) => row.seconds));
  };
  if (round % 2) runTorch();
  const ours = cases.map(timeIgnis);
  seconds.ignis.push(ours.map((o) => o.step));
  seconds.floor.push(ours.map((o) => o.floor));
  if (round % 2 === 0) runTorch();
}

const ms = (lib, i) => {
  const times = seconds[lib].map((round) => round?.[i]).filter((t) => t !== undefined);
  return times.length ? median(times) * 1e3 : undefined;
};
const rows = cases.map((c, i) => {
  const [ours, floor, torch] = [ms('ignis', i), ms('floor', i), ms('torch', i)];
  return {
    case: c.name,
    'ignis ms': ours,
    'torch ms': torch,
    'ignis/torch': torch && ours / torch,
    'floor ms': floor,
    'ignis/floor': ours / floor,
    'torch/floor': torch && torch / floor,
  };
});
report('lora', rows, { threads, rounds, alpha, ...(skipped ? { skipped } : {}) });
if (skipped) console.log(skipped);

'use strict';
// Autograd against PyTorch (CPU) in the same run: one training step (forward with the graph
// recorded, backward, gradients dropped) of the fused ops (layerNorm, rmsNorm, crossEntropy,
// embedding) and of softmax, on LLM-like sizes; and the per-op cost of the tape on tiny tensors
// (add of 8 elements without grad, with the graph recorded, and a chain of 10 small ops); and
// the gradients of activations (one native pass each), linear and a batched matmul.
// PyTorch 1.13 has no F.rms_norm: its peer is the usual x * rsqrt(mean(x^2) + eps) * w.
// Usage: node bench/autograd.js [--quick]   (build first: node-gyp build && tsc -p .)
const ig = require('..');
const { median, timeit, runPeer, report } = require('./common');

const quick = process.argv.includes('--quick');
const cases = [
  { name: 'add [8], no grad', kind: 'add', shape: [8], grad: false },
  { name: 'add [8] + backward', kind: 'add', shape: [8], grad: true },
  { name: 'chain of 10 ops [16, 16] + backward', kind: 'chain', shape: [16, 16] },
  { name: 'softmax [4096, 1024] + backward', kind: 'softmax', shape: [4096, 1024] },
  { name: 'layerNorm [4096, 1024] + backward', kind: 'layerNorm', shape: [4096, 1024] },
  { name: 'rmsNorm [4096, 1024] + backward', kind: 'rmsNorm', shape: [4096, 1024] },
  { name: 'crossEntropy [2048, 8192] + backward', kind: 'crossEntropy', shape: [2048, 8192] },
  { name: 'embedding [32000, 256] x 4096 + backward', kind: 'embedding', shape: [32000, 256], indices: 4096 },
  { name: 'gelu [4096, 1024] + backward', kind: 'unary', op: 'gelu', shape: [4096, 1024] },
  { name: 'silu [4096, 1024] + backward', kind: 'unary', op: 'silu', shape: [4096, 1024] },
  { name: 'tanh [4096, 1024] + backward', kind: 'unary', op: 'tanh', shape: [4096, 1024] },
  { name: 'linear [2048, 512] x [512, 512] + bias + backward', kind: 'linear', shape: [2048, 512], out: 512 },
  { name: 'matmul [16, 128, 256] x [256, 256] + backward', kind: 'matmul', shape: [16, 128, 256], out: 256 },
];

function rand(shape, lo = -1, hi = 1) {
  const n = shape.reduce((x, y) => x * y, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = lo + Math.random() * (hi - lo);
  return ig.tensor(data, { shape });
}

function randint(n, bound) {
  return ig.tensor(BigInt64Array.from({ length: n }, () => BigInt(Math.floor(Math.random() * bound))));
}

/** The step of a case: forward, backward, gradients dropped; and the tensors to free afterwards. */
function makeStep(c) {
  const [rows, cols] = c.shape;
  const leaf = (shape, lo, hi) => rand(shape, lo, hi).requiresGrad_(c.grad !== false);
  let params;
  let forward;
  switch (c.kind) {
    case 'add': {
      params = [leaf(c.shape), leaf(c.shape)];
      if (!c.grad) return { fn: () => ig.add(params[0], params[1]).dispose(), free: params };
      forward = () => ig.add(params[0], params[1]).sum();
      break;
    }
    case 'chain': {
      params = [leaf(c.shape), leaf([cols], 0.5, 1.5)];
      forward = () => {
        const [x, w] = params;
        return x.mul(w).add(1).softmax(-1).mul(x).sub(w).div(2).pow(2).sum(1).mean();
      };
      break;
    }
    case 'softmax':
      params = [leaf(c.shape, -4, 4)];
      forward = () => params[0].softmax(-1).mul(params[0]).sum();
      break;
    case 'layerNorm':
      params = [leaf(c.shape), leaf([cols], 0.5, 1.5), leaf([cols])];
      forward = () => ig.layerNorm(params[0], [cols], params[1], params[2]).mul(params[0]).sum();
      break;
    case 'rmsNorm':
      params = [leaf(c.shape), leaf([cols], 0.5, 1.5)];
      forward = () => ig.rmsNorm(params[0], [cols], params[1], 1e-6).mul(params[0]).sum();
      break;
    case 'crossEntropy': {
      params = [leaf(c.shape, -4, 4)];
      const target = randint(rows, cols);
      forward = () => ig.crossEntropy(params[0], target);
      break;
    }
    case 'embedding': {
      params = [leaf(c.shape)];
      const indices = randint(c.indices, rows);
      forward = () => ig.embedding(indices, params[0]).mul(2).sum();
      break;
    }
    case 'unary':
      params = [leaf(c.shape, -4, 4)];
      forward = () => ig[c.op](params[0]).sum();
      break;
    case 'linear':
      params = [leaf(c.shape), leaf([c.out, cols]), leaf([c.out])];
      forward = () => ig.linear(params[0], params[1], params[2]).sum();
      break;
    case 'matmul':
      params = [leaf(c.shape), leaf([c.shape[c.shape.length - 1], c.out])];
      forward = () => ig.matmul(params[0], params[1]).sum();
      break;
  }
  const fn = () => {
    ig.tidy(() => forward().backward());
    for (const p of params) {
      p.grad.dispose();
      p.grad = null;
    }
  };
  return { fn, free: params };
}

function timeIgnis() {
  return cases.map((c) => {
    const { fn, free } = makeStep(c);
    // the step runs many functions: give the JIT time to optimise them all first
    const start = Date.now();
    while (Date.now() - start < 500) fn();
    const seconds = timeit(fn).median;
    for (const t of free) t.dispose();
    return seconds;
  });
}

// Rounds alternate ignis and PyTorch so that load from other processes falls on both.
const rounds = quick ? 1 : 3;
const threads = ig.getNumThreads();
const seconds = { ignis: [], torch: [] };
let torchInfo;
for (let r = 0; r < rounds; r++) {
  seconds.ignis.push(timeIgnis());
  const res = runPeer('torch', 'autograd', { threads, cases });
  torchInfo = res.torch ?? res.skipped;
  seconds.torch.push(cases.map((c) => res.rows?.find((row) => row.name === c.name)?.seconds));
}
const us = (lib, i) => {
  const times = seconds[lib].map((round) => round[i]).filter((t) => t !== undefined);
  return times.length ? median(times) * 1e6 : undefined;
};
const rows = cases.map((c, i) => {
  const [ours, peer] = [us('ignis', i), us('torch', i)];
  return { case: c.name, 'ignis us': ours, 'torch us': peer, 'torch / ignis': peer && peer / ours };
});
report('autograd', rows, { threads, rounds, torch: torchInfo });

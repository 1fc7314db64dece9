'use strict';
// Causal attention, float32, q, k, v [B, H, L, D] with grad: the fused scaledDotProductAttention
// against PyTorch (CPU) in the same run (F.scaled_dot_product_attention(..., is_causal=True), or
// on PyTorch 1.13 its predecessor F._scaled_dot_product_attention) and against ignis's composed
// path (matmul, additive causal mask, softmax, matmul), as CausalSelfAttention ran before the
// fused op. Times the forward alone (no grad) and forward + backward. Target: faster than
// PyTorch at the fine-tuning benchmark's size (B 8, H 4, L 128, D 64).
// Usage: IGNIS_NUM_THREADS=1 node bench/attention.js [--quick]   (build first: node-gyp build && tsc -p .)
// The peer runs on as many threads as ignis.
// --device cuda: bfloat16, causal, forward + backward on the GPU: the flash kernels, the
// tensor-core ones (IGNIS_CUDA_ATTENTION=tensor-core), the materialized ones
// (IGNIS_CUDA_ATTENTION=materialized) and PyTorch's F.scaled_dot_product_attention on the same
// GPU (build with npm run build:cuda).
const ig = require('..');
const { median, timeit, timeCuda, wantsCuda, runPeer, report } = require('./common');

const quick = process.argv.includes('--quick');
if (wantsCuda(ig, 'attention')) {
  benchCuda();
  process.exit(0);
}

/** Causal bfloat16 attention forward + backward on the GPU: flash, tensor-core, materialized and PyTorch. */
function benchCuda() {
  const gpuCases = [
    { name: 'B 8, H 16, L 1024, D 64', B: 8, H: 16, L: 1024, D: 64 },
    { name: 'B 2, H 16, L 4096, D 128', B: 2, H: 16, L: 4096, D: 128 },
  ].slice(0, quick ? 1 : 2);
  const timeStep = (c, choice) => {
    const opts = { device: 'cuda', dtype: 'bfloat16' };
    const [q, k, v] = [0, 1, 2].map(() => ig.randn([c.B, c.H, c.L, c.D], opts).requiresGrad_());
    const dout = ig.randn([c.B, c.H, c.L, c.D], opts);
    const step = () => {
      for (const t of [q, k, v]) {
        t.grad?.dispose();
        t.grad = null;
      }
      ig.tidy(() => ig.scaledDotProductAttention(q, k, v, { causal: true }).backward(dout));
    };
    process.env.IGNIS_CUDA_ATTENTION = choice;
    try {
      return timeCuda(ig, step, { reps: 5 }).median;
    } finally {
      delete process.env.IGNIS_CUDA_ATTENTION;
      for (const t of [q, k, v, dout]) t.dispose();
    }
  };
  const rows = [];
  let torch;
  for (const c of gpuCases) {
    const flash = timeStep(c, 'flash') * 1e3;
    // opt-in kernels: a failure leaves their column empty rather than the flash figures unreported
    let tensorCore;
    try {
      tensorCore = timeStep(c, 'tensor-core') * 1e3;
    } catch (e) {
      console.log(`tensor-core kernels failed on ${c.name}: ${e.message}`);
    }
    const materialized = timeStep(c, 'materialized') * 1e3;
    torch = runPeer('torch', 'attention', { cases: [c], device: 'cuda' });
    const theirs = torch.rows ? torch.rows[0].step * 1e3 : undefined;
    rows.push({
      case: `${c.name} fwd+bwd`,
      'ignis ms': flash,
      'tensor-core ms': tensorCore,
      'materialized ms': materialized,
      'torch ms': theirs,
      'ignis/torch': theirs && flash / theirs,
      'tensor-core/torch': theirs && tensorCore && tensorCore / theirs,
    });
  }
  report('attention-cuda', rows, { gpu: ig.cuda.getDeviceProperties().name, torch: torch.torch ?? torch.skipped, api: torch.api });
}
const cases = [
  { name: 'B 8, H 4, L 128, D 64', B: 8, H: 4, L: 128, D: 64 },
  { name: 'B 1, H 16, L 1024, D 64', B: 1, H: 16, L: 1024, D: 64 },
].slice(0, quick ? 1 : 2);

function composed(q, k, v, mask) {
  return ig.tidy(() => ig.matmul(ig.softmax(ig.add(ig.mul(ig.matmul(q, k.mT), 1 / Math.sqrt(q.shape[3])), mask), -1), v));
}

function timeIgnis(c) {
  const shape = [c.B, c.H, c.L, c.D];
  const [q, k, v] = [0, 1, 2].map(() => ig.randn(shape, { requiresGrad: true }));
  const dout = ig.randn(shape);
  const mask = ig.nn.causalMask(c.L);
  const fused = () => ig.scaledDotProductAttention(q, k, v, { causal: true });
  const old = () => composed(q, k, v, mask);
  const clear = () => {
    for (const x of [q, k, v]) {
      x.grad?.dispose();
      x.grad = null;
    }
  };
  const forward = (f) => () => ig.noGrad(f).dispose();
  const step = (f) => () => {
    const out = f();
    out.backward(dout);
    out.dispose();
    clear();
  };
  const opts = { reps: 5, warmup: 2 };
  const out = {
    fusedForward: timeit(forward(fused), opts).median,
    fusedStep: timeit(step(fused), opts).median,
    oldForward: timeit(forward(old), opts).median,
    oldStep: timeit(step(old), opts).median,
  };
  for (const t of [q, k, v, dout, mask]) t.dispose();
  return out;
}

// Rounds alternate ignis and the peer so that load from other processes falls on both; each
// figure is the median over the rounds.
const rounds = quick ? 1 : 3;
const threads = ig.getNumThreads();
const seconds = [];
const peer = [];
let skipped;
let api;
for (let round = 0; round < rounds; round++) {
  const runTorch = () => {
    const res = runPeer('torch', 'attention', { threads, cases });
    skipped = res.skipped;
    api = res.api;
    peer.push(res.rows);
  };
  if (round % 2) runTorch();
  seconds.push(cases.map(timeIgnis));
  if (round % 2 === 0) runTorch();
}

const ms = (list, i, key) => {
  const times = list.map((round) => round?.[i]?.[key]).filter((t) => t !== undefined);
  return times.length ? median(times) * 1e3 : undefined;
};
const rows = [];
cases.forEach((c, i) => {
  for (const [what, fusedKey, oldKey, torchKey] of [
    ['forward', 'fusedForward', 'oldForward', 'forward'],
    ['fwd+bwd', 'fusedStep', 'oldStep', 'step'],
  ]) {
    const [ours, old, torch] = [ms(seconds, i, fusedKey), ms(seconds, i, oldKey), ms(peer, i, torchKey)];
    rows.push({
      case: `${c.name} ${what}`,
      'ignis ms': ours,
      'torch ms': torch,
      'torch/ignis speed': torch && torch / ours,
      'composed ms': old,
      'composed/ignis speed': old / ours,
    });
  }
});
report('attention', rows, { threads, rounds, skipped, torchApi: api });
if (api) console.log(`torch: ${api}`);
if (skipped) console.log(`torch: ${skipped}`);

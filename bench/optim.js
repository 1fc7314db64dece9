'use strict';
// One AdamW step (the multi-tensor native step) against torch.optim.AdamW on the CPU in the same
// run — its per-tensor loop, foreach (multi-tensor) and fused (when the installed torch has a CPU
// fused AdamW) — over about 10M float32 parameters in 20 tensors, and over 400 small tensors
// (LoRA-like: the per-tensor overhead). Also ignis with bfloat16 params (float32 state) and SGD
// with momentum on the 10M parameters.
// Usage: node bench/optim.js   (build first: node-gyp build && tsc -p .)
const ig = require('..');
const { timeit, runPeer, report } = require('./common');

const cases = [
  // 10 x [768, 768] + 10 x [640, 640] = 9.99M parameters
  { name: '20 tensors, 10M params', shapes: [...Array(10).fill([768, 768]), ...Array(10).fill([640, 640])] },
  { name: '400 x [8, 256]', shapes: Array(400).fill([8, 256]) },
];
const reps = 7;

function params(shapes, dtype) {
  return shapes.map((shape) => {
    const values = Float32Array.from({ length: shape[0] * shape[1] }, () => Math.random() * 2 - 1);
    const p = ig.tensor(values, { shape, dtype });
    p.grad = ig.tensor(values.map((v) => v * 0.1), { shape, dtype });
    return p;
  });
}

function timeStep(opt) {
  const seconds = timeit(() => opt.step(), { reps, warmup: 2, minSampleMs: 0 }).median;
  opt.dispose();
  return seconds;
}

const threads = ig.getNumThreads();
const torch = runPeer('torch', 'optim', { threads, cases, reps });
const rows = [];
for (const c of cases) {
  const numel = c.shapes.reduce((n, [r, k]) => n + r * k, 0);
  const ignis = timeStep(new ig.AdamW(params(c.shapes, 'float32'), { lr: 1e-3, weightDecay: 1e-2 }));
  const row = (name, seconds, extra = {}) => ({ case: `${c.name}: ${name}`, ms: seconds && seconds * 1e3, 'Melem/s': seconds && numel / seconds / 1e6, ...extra });
  rows.push(row('ignis AdamW float32', ignis));
  for (const r of (torch.rows ?? []).filter((r) => r.name.startsWith(c.name))) {
    rows.push(row(`torch AdamW float32 ${r.name.slice(c.name.length + 1)}`, r.seconds, { 'torch / ignis': r.seconds ? r.seconds / ignis : r.skipped }));
  }
  if (c === cases[0]) {
    rows.push(row('ignis AdamW bfloat16 (float32 state)', timeStep(new ig.AdamW(params(c.shapes, 'bfloat16'), { lr: 1e-3, weightDecay: 1e-2 }))));
    rows.push(row('ignis SGD float32 momentum 0.9', timeStep(new ig.SGD(params(c.shapes, 'float32'), { lr: 1e-3, momentum: 0.9 }))));
  }
}
report('optim', rows, { threads, torch: torch.torch ?? torch.skipped });

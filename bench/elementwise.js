'use strict';
// Elementwise ops against numpy and PyTorch (CPU) in the same run:
//  - throughput: add of two 4M-element float32 tensors (target: numpy/ignis time >= 0.8), and
//    unary ops for information;
//  - per-op overhead: add of 8-element tensors, disposed one by one or inside tidy (target:
//    below PyTorch eager).
// Usage: node bench/elementwise.js   (after building: node-gyp build and tsc)
const ig = require('..');
const { timeit, runPeer, report } = require('./common');

const LARGE = 4 * 1024 * 1024;
const SMALL = 8;
const threads = ig.getNumThreads();

const a = ig.tensor(Float32Array.from({ length: LARGE }, () => Math.random() * 2 - 1));
const b = ig.tensor(Float32Array.from({ length: LARGE }, () => Math.random() * 2 - 1));
const x = ig.tensor(Float32Array.from({ length: SMALL }, () => Math.random()));
const y = ig.tensor(Float32Array.from({ length: SMALL }, () => Math.random()));

const once = (op) => () => op().dispose();
const ours = {
  add_large: timeit(once(() => ig.add(a, b))).median,
  exp_large: timeit(once(() => ig.exp(a))).median,
  tanh_large: timeit(once(() => ig.tanh(a))).median,
  gelu_large: timeit(once(() => ig.gelu(a))).median,
  add_small: timeit(once(() => ig.add(x, y)), { minSampleMs: 50 }).median,
};
const BATCH = 100;
ours.add_small_tidy =
  timeit(
    () =>
      ig.tidy(() => {
        for (let i = 0; i < BATCH; i++) ig.add(x, y);
      }),
    { minSampleMs: 50 },
  ).median / BATCH;

const numpy = runPeer('numpy', 'elementwise', { peer: 'numpy', large: LARGE, small: SMALL });
const torch = runPeer('torch', 'elementwise', { peer: 'torch', large: LARGE, small: SMALL, threads });
for (const [name, p] of [['numpy', numpy], ['torch', torch]]) if (p.skipped) console.log(`skipped ${name}: ${p.skipped}`);

const us = (s) => (s === undefined ? '' : s * 1e6);
// Each row: ignis's median time and the peers', with peer/ignis time ratios (> 1: ignis is faster).
function row(label, ignis, key) {
  const r = { case: label, ignis_us: us(ignis), numpy_us: us(numpy[key]), torch_us: us(torch[key]) };
  if (numpy[key] !== undefined) r.numpy_over_ignis = numpy[key] / ignis;
  if (torch[key] !== undefined) r.torch_over_ignis = torch[key] / ignis;
  return r;
}
const rows = [
  row('add 4M f32', ours.add_large, 'add_large'),
  row('exp 4M f32', ours.exp_large, 'exp_large'),
  row('tanh 4M f32', ours.tanh_large, 'tanh_large'),
  row('gelu 4M f32', ours.gelu_large, 'gelu_large'),
  row('add 8 f32 (dispose)', ours.add_small, 'add_small'),
  row('add 8 f32 (tidy)', ours.add_small_tidy, 'add_small'),
];
report('elementwise', rows, { threads, torch: torch.version, note: 'medians; *_over_ignis > 1 means ignis is faster' });

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
const ratio = (peer, ig_) => (peer === undefined ? '' : peer / ig_);
const rows = [
  { case: 'add 4M f32', ignis_us: us(ours.add_large), numpy_us: us(numpy.add_large), torch_us: us(torch.add_large),
    numpy_over_ignis: ratio(numpy.add_large, ours.add_large), torch_over_ignis: ratio(torch.add_large, ours.add_large) },
  { case: 'exp 4M f32', ignis_us: us(ours.exp_large), numpy_us: us(numpy.exp_large), torch_us: us(torch.exp_large),
    numpy_over_ignis: ratio(numpy.exp_large, ours.exp_large), torch_over_ignis: ratio(torch.exp_large, ours.exp_large) },
  { case: 'tanh 4M f32', ignis_us: us(ours.tanh_large), numpy_us: us(numpy.tanh_large),
    numpy_over_ignis: ratio(numpy.tanh_large, ours.tanh_large) },
  { case: 'gelu 4M f32', ignis_us: us(ours.gelu_large), torch_us: us(torch.gelu_large),
    torch_over_ignis: ratio(torch.gelu_large, ours.gelu_large) },
  { case: 'add 8 f32 (dispose)', ignis_us: us(ours.add_small), numpy_us: us(numpy.add_small), torch_us: us(torch.add_small),
    numpy_over_ignis: ratio(numpy.add_small, ours.add_small), torch_over_ignis: ratio(torch.add_small, ours.add_small) },
  { case: 'add 8 f32 (tidy)', ignis_us: us(ours.add_small_tidy), numpy_us: us(numpy.add_small), torch_us: us(torch.add_small),
    numpy_over_ignis: ratio(numpy.add_small, ours.add_small_tidy), torch_over_ignis: ratio(torch.add_small, ours.add_small_tidy) },
];
report('elementwise', rows, { threads, torch: torch.version, note: 'medians; *_over_ignis > 1 means ignis is faster' });

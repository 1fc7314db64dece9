'use strict';
// Creation ops against PyTorch (CPU, same thread count): random generators and ranges at a
// small size (per-op overhead) and a large one (throughput). Usage: node bench/creation.js
const { timeit, runPeer, report } = require('./common');
const ig = require('..');

const SIZES = [1000, 1 << 20];
const threads = ig.getNumThreads();

// name -> (n) => one call, disposing its result
const OPS = {
  rand: (n) => ig.rand([n]).dispose(),
  'rand f64': (n) => ig.rand([n], { dtype: 'float64' }).dispose(),
  randn: (n) => ig.randn([n]).dispose(),
  'randn f64': (n) => ig.randn([n], { dtype: 'float64' }).dispose(),
  'randn bf16': (n) => ig.randn([n], { dtype: 'bfloat16' }).dispose(),
  randint: (n) => ig.randint(0, 1000, [n]).dispose(),
  arange: (n) => ig.arange(0, n, 1, { dtype: 'float32' }).dispose(),
  linspace: (n) => ig.linspace(0, 1, n).dispose(),
  eye: (n) => ig.eye(Math.round(Math.sqrt(n))).dispose(),
};

const peer = runPeer('torch', 'creation', { sizes: SIZES, ops: Object.keys(OPS), threads });
const rows = [];
for (const [name, op] of Object.entries(OPS)) {
  for (const n of SIZES) {
    const ours = timeit(() => op(n)).median;
    const theirs = peer.skipped ? undefined : peer.results[`${name} ${n}`];
    rows.push({
      op: name,
      n,
      'ignis us': ours * 1e6,
      'torch us': theirs === undefined ? 'n/a' : theirs * 1e6,
      'torch/ignis': theirs === undefined ? 'n/a' : theirs / ours,
    });
  }
}
report('creation', rows, { peer: peer.skipped ?? peer.version, threads });

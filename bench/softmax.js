'use strict';
// softmax over the last dim of a [4096, 1024] float32 tensor against numpy (target: at least
// 0.8x numpy's speed) and PyTorch (CPU) in the same run; for information, log-softmax, a sum
// over the last dim and layerNorm rows (with weight and bias) of the same tensor.
// numpy: e = exp(x - x.max(-1, keepdims=True)); e / e.sum(-1, keepdims=True).
// Usage: node bench/softmax.js [--quick]   (build first: node-gyp build && tsc -p .)
const ig = require('..');
const { median, timeit, runPeer, report } = require('./common');

const quick = process.argv.includes('--quick');
const shape = [4096, 1024];
const cases = ['softmax', 'logSoftmax', 'sum(-1)', 'layerNorm'];

function rand(dims, lo = -1, hi = 1) {
  const n = dims.reduce((x, y) => x * y, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = lo + (hi - lo) * Math.random();
  return ig.tensor(data, { shape: dims });
}

function timeIgnis() {
  const x = rand(shape, -4, 4);
  const w = rand([shape[1]], 0.5, 1.5);
  const b = rand([shape[1]]);
  const fns = {
    softmax: () => ig.softmax(x, -1),
    logSoftmax: () => ig.logSoftmax(x, -1),
    'sum(-1)': () => ig.sum(x, -1),
    layerNorm: () => ig.layerNorm(x, [shape[1]], w, b),
  };
  const out = cases.map((c) => timeit(() => fns[c]().dispose()).median);
  for (const t of [x, w, b]) t.dispose();
  return out;
}

// Rounds alternate ignis and the peers so that load from other processes falls on all of them;
// each figure is the median over the rounds.
const rounds = quick ? 1 : 3;
const threads = ig.getNumThreads();
const seconds = { ignis: [], numpy: [], torch: [] };
const skipped = {};
for (let r = 0; r < rounds; r++) {
  seconds.ignis.push(timeIgnis());
  for (const lib of ['numpy', 'torch']) {
    const res = runPeer(lib, 'softmax', { threads, shape, cases, lib });
    if (res.skipped) skipped[lib] = res.skipped;
    seconds[lib].push(cases.map((c) => res.rows?.find((row) => row.name === c)?.seconds));
  }
}

const ms = (lib, i) => {
  const times = seconds[lib].map((round) => round[i]).filter((t) => t !== undefined);
  return times.length ? median(times) * 1e3 : undefined;
};
const rows = cases.map((c, i) => {
  const [ours, np, th] = [ms('ignis', i), ms('numpy', i), ms('torch', i)];
  return {
    case: `${c} [${shape}]`,
    'ignis ms': ours,
    'numpy ms': np,
    'ignis/numpy speed': np && np / ours,
    'torch ms': th,
    'ignis/torch speed': th && th / ours,
  };
});
report('softmax', rows, { threads, rounds, skipped });
for (const [lib, why] of Object.entries(skipped)) console.log(`${lib}: ${why}`);

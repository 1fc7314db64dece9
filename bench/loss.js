'use strict';
// crossEntropy and mseLoss against PyTorch (CPU) in the same run: LLM-sized logits (few rows,
// a large vocabulary) in float32 and bfloat16, many short rows, 4-D logits (class dim strided),
// label smoothing, and mean squared error reduced and unreduced.
// Usage: node bench/loss.js   (build first: node-gyp build && tsc -p .)
const ig = require('..');
const { timeit, runPeer, report } = require('./common');

const cases = [
  { name: 'crossEntropy [512, 32000] mean', kind: 'crossEntropy', input: [512, 32000] },
  { name: 'crossEntropy [512, 32000] bf16', kind: 'crossEntropy', input: [512, 32000], dtype: 'bfloat16' },
  { name: 'crossEntropy [512, 32000] smoothing 0.1', kind: 'crossEntropy', input: [512, 32000], opts: { labelSmoothing: 0.1 } },
  { name: 'crossEntropy [16384, 64] none', kind: 'crossEntropy', input: [16384, 64], opts: { reduction: 'none' } },
  { name: 'crossEntropy [16, 10, 64, 64]', kind: 'crossEntropy', input: [16, 10, 64, 64] },
  { name: 'crossEntropy [4, 10]', kind: 'crossEntropy', input: [4, 10] },
  { name: 'mseLoss [1024, 1024] mean', kind: 'mseLoss', input: [1024, 1024], target: [1024, 1024], reduction: 'mean' },
  { name: 'mseLoss [1024, 1024] none', kind: 'mseLoss', input: [1024, 1024], target: [1024, 1024], reduction: 'none' },
  { name: 'mseLoss [1024, 1024] vs [1024] mean', kind: 'mseLoss', input: [1024, 1024], target: [1024], reduction: 'mean' },
  { name: 'mseLoss [16] mean', kind: 'mseLoss', input: [16], target: [16], reduction: 'mean' },
];

function rand(shape, lo, hi) {
  const n = shape.reduce((x, y) => x * y, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = lo + Math.random() * (hi - lo);
  return ig.tensor(data, { shape });
}

function timeIgnis(c) {
  const wide = rand(c.input, -4, 4);
  const x = wide.to(c.dtype ?? 'float32');
  let fn;
  if (c.kind === 'crossEntropy') {
    const classes = c.input[1];
    const targetShape = [c.input[0], ...c.input.slice(2)];
    const n = targetShape.reduce((a, b) => a * b, 1);
    const labels = new BigInt64Array(n).map(() => BigInt(Math.floor(Math.random() * classes)));
    const target = ig.tensor(labels, { shape: targetShape });
    fn = () => ig.crossEntropy(x, target, c.opts).dispose();
  } else {
    const y = rand(c.target, 0, 1);
    fn = () => ig.mseLoss(x, y, { reduction: c.reduction }).dispose();
  }
  return timeit(fn).median;
}

const threads = ig.getNumThreads();
const torch = runPeer('torch', 'loss', { threads, cases });
const rows = cases.map((c) => {
  const ignis = timeIgnis(c);
  const peer = torch.rows?.find((r) => r.name === c.name)?.seconds;
  return { case: c.name, 'ignis us': ignis * 1e6, 'torch us': peer && peer * 1e6, 'torch / ignis': peer && peer / ignis };
});
report('loss', rows, { threads, torch: torch.torch ?? torch.skipped });

'use strict';
// embedding, gather, cat and stack against PyTorch (CPU) in the same run: LLM-sized embedding
// lookups, gathers along the last and the first dim, joins of large and of tiny tensors (the
// tiny ones measure per-op overhead), contiguous and transposed inputs.
// Usage: node bench/indexing.js   (build first: node-gyp build && tsc -p .)
const ig = require('..');
const { timeit, runPeer, report } = require('./common');

const cases = [
  { name: 'embedding [8, 512] of [32000, 512]', kind: 'embedding', indices: [8, 512], weight: [32000, 512] },
  { name: 'embedding [4, 16] of [1000, 64]', kind: 'embedding', indices: [4, 16], weight: [1000, 64] },
  { name: 'gather dim 1 [4096, 1] of [4096, 1000]', kind: 'gather', input: [4096, 1000], index: [4096, 1], dim: 1 },
  { name: 'gather dim 0 [512, 512] of [512, 512]', kind: 'gather', input: [512, 512], index: [512, 512], dim: 0 },
  { name: 'cat dim 0 3 x [1024, 1024]', kind: 'cat', shapes: [[1024, 1024], [1024, 1024], [1024, 1024]], dim: 0 },
  { name: 'cat dim 1 3 x [1024, 1024]', kind: 'cat', shapes: [[1024, 1024], [1024, 1024], [1024, 1024]], dim: 1 },
  { name: 'cat dim 1 2 x [1024, 1024] transposed', kind: 'cat', shapes: [[1024, 1024], [1024, 1024]], dim: 1, transposed: true },
  { name: 'cat dim 1 2 x [4, 8]', kind: 'cat', shapes: [[4, 8], [4, 8]], dim: 1 },
  { name: 'stack dim 0 8 x [256, 256]', kind: 'stack', shapes: Array(8).fill([256, 256]), dim: 0 },
  { name: 'stack dim 2 8 x [256, 256]', kind: 'stack', shapes: Array(8).fill([256, 256]), dim: 2 },
];

function rand(shape) {
  const n = shape.reduce((x, y) => x * y, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.random() * 2 - 1;
  return ig.tensor(data, { shape });
}

function randint(shape, high) {
  const n = shape.reduce((x, y) => x * y, 1);
  const data = new BigInt64Array(n);
  for (let i = 0; i < n; i++) data[i] = BigInt(Math.floor(Math.random() * high));
  return ig.tensor(data, { shape });
}

function timeIgnis(c) {
  let fn;
  if (c.kind === 'embedding') {
    const weight = rand(c.weight);
    const idx = randint(c.indices, c.weight[0]);
    fn = () => ig.embedding(idx, weight).dispose();
  } else if (c.kind === 'gather') {
    const src = rand(c.input);
    const idx = randint(c.index, c.input[c.dim]);
    fn = () => ig.gather(src, c.dim, idx).dispose();
  } else {
    const tensors = c.shapes.map((s) => (c.transposed ? rand([...s].reverse()).mT : rand(s)));
    const op = c.kind === 'cat' ? ig.cat : ig.stack;
    fn = () => op(tensors, c.dim).dispose();
  }
  return timeit(fn).median;
}

const threads = ig.getNumThreads();
const torch = runPeer('torch', 'indexing', { threads, cases });
const rows = cases.map((c) => {
  const ignis = timeIgnis(c);
  const peer = torch.rows?.find((r) => r.name === c.name)?.seconds;
  return { case: c.name, 'ignis us': ignis * 1e6, 'torch us': peer && peer * 1e6, 'torch / ignis': peer && peer / ignis };
});
report('indexing', rows, { threads, torch: torch.torch ?? torch.skipped });

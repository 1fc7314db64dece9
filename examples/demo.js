// A short tour of ignis on the CPU: tensors and views, broadcasting, matmul through OpenBLAS,
// and a small classifier trained with autograd and AdamW, all with deterministic memory.
// Run with `npm run demo`.
'use strict';
const ig = require('..');

ig.manualSeed(0);

ig.tidy(() => {
  console.log('A 2x3 tensor and its transpose (a view, no copy):');
  const a = ig.tensor([[1, 2, 3], [4, 5, 6]]);
  console.log(a);
  console.log(a.mT, '\n');
  console.log('Broadcasting the column means over it, then reducing:');
  const centred = a.sub(a.mean(0));
  console.log(centred, '-> column sums', centred.sum(0).toArray(), '\n');
});

// matmul speed on this machine (float32, n = 1024)
const gflops = ig.tidy(() => {
  const m = ig.randn([1024, 1024]);
  m.matmul(m);
  const reps = 5;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) m.matmul(m).dispose();
  return (2 * 1024 ** 3 * reps) / Number(process.hrtime.bigint() - t0);
});
console.log(`matmul 1024x1024 float32: ${gflops.toFixed(1)} GFLOP/s on ${ig.getNumThreads()} threads\n`);

// A 2-layer MLP learns to tell which of 4 clusters a point comes from.
class MLP extends ig.nn.Module {
  constructor() {
    super();
    this.hidden = new ig.nn.Linear(2, 32);
    this.out = new ig.nn.Linear(32, 4);
  }
  forward(x) {
    return this.out.call(this.hidden.call(x).gelu());
  }
}
const centres = ig.tensor([[2, 2], [-2, 2], [-2, -2], [2, -2]]);
const batch = () =>
  ig.tidy(() => {
    const labels = ig.randint(0, 4, [256]);
    const x = ig.embedding(labels, centres).add(ig.randn([256, 2]));
    return { x, labels };
  });
const model = new MLP();
const opt = new ig.AdamW(model.parameters(), { lr: 0.01 });
console.log(`Training a ${model.numParameters()}-parameter MLP with AdamW:`);
const t0 = Date.now();
for (let step = 1; step <= 200; step++) {
  const loss = ig.tidy(() => {
    const { x, labels } = batch();
    const loss = ig.crossEntropy(model.call(x), labels);
    loss.backward();
    opt.step();
    opt.zeroGrad();
    return loss.item();
  });
  if (step === 1 || step % 50 === 0) console.log(`  step ${String(step).padStart(3)}  loss ${loss.toFixed(4)}`);
}
const accuracy = ig.noGrad(() =>
  ig.tidy(() => {
    const { x, labels } = batch();
    return model.call(x).argmax(-1).eq(labels).to('float32').mean().item();
  }),
);
console.log(`  ${Date.now() - t0} ms; held-out accuracy ${(100 * accuracy).toFixed(1)}%`);

model.dispose();
opt.dispose();
centres.dispose();
const left = ig.memory();
console.log(`\nAfter tidy() and dispose(): ${left.tensors} live tensors, ${left.bytes.cpu} bytes`);

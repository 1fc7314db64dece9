// A short tour of ignis tensors on the CPU: creation, views, broadcasting, matmul through
// OpenBLAS, a softmax classifier's forward pass with its loss, and deterministic memory.
// Run with `npm run demo`.
'use strict';
const ig = require('..');

ig.manualSeed(0);

console.log('A 2x3 tensor and its transpose (a view, no copy):');
const a = ig.tensor([[1, 2, 3], [4, 5, 6]]);
console.log(a);
console.log(a.mT, '\n');

console.log('Broadcasting a row over it, then reducing:');
const shifted = a.sub(a.mean(0));
console.log(shifted, '-> column sums', shifted.sum(0).toArray(), '\n');

// A linear classifier on random data: logits = x W^T + b, then cross-entropy.
const batch = 256, features = 512, classes = 10;
const { loss, accuracy, gflops } = ig.tidy(() => {
  const x = ig.randn([batch, features]);
  const w = ig.randn([classes, features]).mul(1 / Math.sqrt(features));
  const b = ig.zeros([classes]);
  const labels = ig.randint(0, classes, [batch]);
  const logits = ig.linear(x, w, b);
  const probs = logits.softmax(-1);
  const predicted = probs.argmax(-1);
  const accuracy = predicted.eq(labels).to('float32').mean().item();

  // matmul speed on this machine (float32, n = 1024)
  const m = ig.randn([1024, 1024]);
  const t0 = process.hrtime.bigint();
  const reps = 5;
  for (let i = 0; i < reps; i++) m.matmul(m).dispose();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9 / reps;
  return { loss: ig.crossEntropy(logits, labels).item(), accuracy, gflops: (2 * 1024 ** 3) / seconds / 1e9 };
});
console.log(`Random linear classifier: cross-entropy ${loss.toFixed(4)} (ln 10 = ${Math.log(10).toFixed(4)}), accuracy ${(100 * accuracy).toFixed(1)}%`);
console.log(`matmul 1024x1024 float32: ${gflops.toFixed(1)} GFLOP/s on ${ig.getNumThreads()} threads`);

a.dispose();
shifted.dispose();
const left = ig.memory();
console.log(`\nAfter tidy() and dispose(): ${left.tensors} live tensors, ${left.bytes.cpu} bytes`);

'use strict';
// Data-parallel LoRA fine-tuning: the step of bench/finetune.js (bench/finetune-model.js) on 1
// and 2 ranks through the launcher, each rank one thread and its own batch of 8 x 128 tokens,
// with DistributedDataParallel averaging the LoRA gradients and AdamW on every rank. Reports the
// median step time and per-rank tokens/s, and for the gradient reduction: its buckets, bytes,
// the time it takes alone (median of blocking rounds, nothing to overlap with), the time backward
// still waited for it at its end (median over steps; it also holds any lag of the other rank),
// and the share hidden behind backward (1 - wait / alone). Rows for the default bucket size
// (25 MB: one bucket for these LoRA gradients) and for small buckets (about a layer's each).
// Usage: node bench/ddp.js [--ranks 1,2] [--steps 7]   (build first: node-gyp build && tsc -p .)
const { parseArgs } = require('util');
const { median, launchRanks } = require('./common');

// --- a rank (started by the launcher with --worker) ---

async function worker(a) {
  const ig = require('..');
  const { buildModel, config, batch, seqLen } = require('./finetune-model');
  const { dist } = ig;
  await dist.init({ timeoutMs: 120000 });
  const model = buildModel(ig);
  const ddp = new dist.DistributedDataParallel(model, { bucketCapMB: a.bucketCapMB });
  const opt = new ig.AdamW(model.parameters().filter((p) => p.requiresGrad), { lr: 1e-3, weightDecay: 0 });
  ig.manualSeed(1 + dist.rank());
  const ids = ig.randint(0, config.vocab, [batch, seqLen], { dtype: 'int64' });
  const steps = [];
  for (let i = 0; i < 2 + a.steps; i++) {
    dist.barrier().wait(); // the ranks start each step together: the wait at its end is not an earlier step's skew
    const t0 = process.hrtime.bigint();
    ig.tidy(() => ddp.forward(ids, { labels: ids }).loss.backward());
    opt.step();
    opt.zeroGrad();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (i >= 2) steps.push({ seconds, ...ddp.lastSyncStats });
  }
  const commMs = ddp.measureCommunication(a.steps);
  const result = {
    rank: dist.rank(),
    seconds: median(steps.map((s) => s.seconds)),
    waitMs: median(steps.map((s) => s.waitMs)),
    windowMs: median(steps.map((s) => s.windowMs)),
    commMs,
    buckets: ddp.numBuckets,
    bytes: steps[0].bytes,
  };
  console.log(`RESULT ${JSON.stringify(result)}`);
  ddp.dispose();
  opt.dispose();
  dist.destroy();
}

// --- the benchmark ---

function main() {
  const { values } = parseArgs({
    options: {
      worker: { type: 'string' },
      ranks: { type: 'string', default: '1,2' },
      steps: { type: 'string', default: '7' },
    },
  });
  if (values.worker) return worker(JSON.parse(values.worker));
  const { report } = require('./common');
  const { batch, seqLen, description } = require('./finetune-model');
  const steps = Number(values.steps);
  const rows = [];
  for (const n of values.ranks.split(',').map(Number)) {
    for (const bucketCapMB of n === 1 ? [25] : [25, 0.04]) {
      const results = launchRanks(__filename, n, { bucketCapMB, steps });
      if (results.length !== n) throw new Error(`${results.length} of ${n} ranks reported`);
      // the slowest rank sets the pace
      const slowest = results.reduce((a, b) => (b.seconds > a.seconds ? b : a));
      const waitMs = median(results.map((r) => r.waitMs));
      const commMs = median(results.map((r) => r.commMs));
      rows.push({
        ranks: n,
        'bucket MB': bucketCapMB,
        buckets: slowest.buckets,
        'grad KB': slowest.bytes / 1024,
        'step ms': slowest.seconds * 1e3,
        'tok/s per rank': (batch * seqLen) / slowest.seconds,
        'tok/s total': (n * batch * seqLen) / slowest.seconds,
        'comm alone ms': n > 1 ? commMs : '',
        'wait ms': n > 1 ? waitMs : '',
        'hidden %': n > 1 && commMs > 0 ? 100 * Math.min(1, Math.max(0, 1 - waitMs / commMs)) : '',
      });
    }
  }
  report('ddp', rows, { step: description, steps, threadsPerRank: 1 });
}

Promise.resolve(main()).catch((e) => {
  console.error(e.stack || e);
  process.exit(1);
});

'use strict';
// Data-parallel LoRA fine-tuning: the step of bench/finetune.js (bench/finetune-model.js) on 1
// and 2 ranks through the launcher, each rank one thread and its own batch of 8 x 128 tokens,
// with DistributedDataParallel averaging the LoRA gradients and AdamW on every rank. Reports the
// median step time and per-rank tokens/s, and for the gradient reduction: its buckets, bytes,
// the time it takes alone (median of blocking rounds, nothing to overlap with), the time backward
// still waited for it at its end (in each step the least of the ranks' waits: the last rank to
// finish backward waits for the reductions only, the others for it too; median over steps), and
// the share hidden behind backward (1 - wait / alone). Rows for the default bucket size
// (25 MB: one bucket for these LoRA gradients) and for small buckets (about a layer's each),
// and one with ZeroRedundancyOptimizer (the AdamW state per rank).
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
  const params = model.parameters().filter((p) => p.requiresGrad);
  const options = { lr: 1e-3, weightDecay: 0 };
  const opt = a.zero ? new dist.ZeroRedundancyOptimizer(params, ig.AdamW, options) : new ig.AdamW(params, options);
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
    waits: steps.map((s) => s.waitMs),
    windowMs: median(steps.map((s) => s.windowMs)),
    commMs,
    buckets: ddp.numBuckets,
    bytes: steps[0].bytes,
    stateBytes: opt.stateBytes(),
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
    const variants = n === 1 ? [{ bucketCapMB: 25 }] : [{ bucketCapMB: 25 }, { bucketCapMB: 0.04 }, { bucketCapMB: 0.04, zero: true }];
    for (const { bucketCapMB, zero = false } of variants) {
      const results = launchRanks(__filename, n, { bucketCapMB, zero, steps });
      if (results.length !== n) throw new Error(`${results.length} of ${n} ranks reported`);
      // the slowest rank sets the pace
      const slowest = results.reduce((a, b) => (b.seconds > a.seconds ? b : a));
      // In each step the rank that finishes backward last waits only for what is left of the
      // reductions (the others also wait for it): its wait is the communication not hidden.
      const waitMs = median(results[0].waits.map((_, i) => Math.min(...results.map((r) => r.waits[i]))));
      const commMs = median(results.map((r) => r.commMs));
      rows.push({
        ranks: n,
        optimizer: zero ? 'ZeRO-1 AdamW' : 'AdamW',
        'state KB per rank': results.map((r) => r.stateBytes / 1024).join(' / '),
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

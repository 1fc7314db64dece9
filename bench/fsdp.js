'use strict';
// Sharded frozen weights (dist.shardFrozenWeights) against replicated ones, on 2 ranks over Gloo
// on loopback: the LoRA step of bench/finetune.js (its model and global batch, split over the
// ranks; forward, cross-entropy, backward, the adapters' gradients averaged with allReduce,
// AdamW), its time (the slowest rank's median) and each rank's peak of native memory during the
// steps, with prefetch on and off. Also the bytes of frozen weights each rank stores and the time
// a step waits for all-gathers (what prefetch did not hide).
// Usage: node bench/fsdp.js [--ranks 2] [--reps 5]   (build first: node-gyp build && tsc -p .;
//   set IGNIS_NUM_THREADS=1 on a busy machine: it reaches every rank)
const { spawnSync } = require('child_process');
const path = require('path');
const { parseArgs } = require('util');

const MB = 1 << 20;

// --- a rank (started by the launcher with --worker) ---

async function worker(a) {
  const ig = require('..');
  const { dist } = ig;
  const { config, batch, seqLen, buildModel } = require('./finetune');
  const { timeit } = require('./common');
  await dist.init({ timeoutMs: 120000 });
  const n = dist.worldSize();
  const rows = batch / n;
  const slowest = (v) => dist.allReduce(ig.tensor([v], { dtype: 'float64' }), { op: 'max' }).wait().item();
  const everyRank = (v) => dist.allGather(ig.tensor([v], { dtype: 'float64' }), { into: 'cat' }).wait().data();
  const results = [];
  for (const mode of ['replicated', 'sharded, prefetch', 'sharded, no prefetch']) {
    const model = buildModel();
    const sharded = mode === 'replicated' ? null : dist.shardFrozenWeights(model, { prefetch: mode === 'sharded, prefetch' });
    const params = model.parameters().filter((p) => p.requiresGrad);
    const opt = new ig.AdamW(params, { lr: 1e-3, weightDecay: 0 });
    ig.manualSeed(1);
    const ids = ig.randint(0, config.vocab, [batch, seqLen], { dtype: 'int64' });
    const mine = ids.narrow(0, dist.rank() * rows, rows).contiguous();
    const step = () => {
      ig.tidy(() => model.forward(mine, { labels: mine }).loss.backward());
      for (const p of params) dist.allReduce(p.grad, { op: 'avg' }).wait();
      opt.step();
      opt.zeroGrad();
    };
    step(); // the optimizer's state exists from here on
    const before = sharded?.stats();
    ig.resetPeakMemory();
    const seconds = timeit(step, { reps: a.reps, warmup: 1, minSampleMs: 0 }).median;
    const peak = ig.peakMemory().cpu;
    const stats = sharded?.stats();
    const frozen = sharded ? stats.shardBytes : model.parameters().filter((p) => !p.requiresGrad).reduce((s, p) => s + p.numel * 4, 0);
    results.push({
      mode,
      'ms/step': slowest(seconds) * 1e3,
      'tok/s (all ranks)': (batch * seqLen) / slowest(seconds),
      'peak MB per rank': [...everyRank(peak / MB)].map((v) => v.toFixed(1)).join(' / '),
      'frozen MB per rank': frozen / MB,
      'gather wait ms/step': sharded ? slowest((stats.waitMs - before.waitMs) / (a.reps + 1)) : undefined,
    });
    sharded?.dispose();
    opt.dispose();
    model.dispose();
    ids.dispose();
    mine.dispose();
  }
  if (dist.rank() === 0) console.log(`RESULT ${JSON.stringify(results)}`);
  dist.destroy();
}

// --- the benchmark ---

function main() {
  const { values } = parseArgs({
    options: { worker: { type: 'string' }, ranks: { type: 'string', default: '2' }, reps: { type: 'string', default: '5' } },
  });
  if (values.worker) return worker(JSON.parse(values.worker));
  const { report } = require('./common');
  const { config, lora, batch, seqLen } = require('./finetune');
  const ranks = Number(values.ranks);
  const launcher = path.join(__dirname, '..', 'dist', 'lib', 'dist', 'launch.js');
  const work = { reps: Number(values.reps) };
  const res = spawnSync(process.execPath, [launcher, '--nproc-per-node', String(ranks), '--master-port', '0', __filename, '--worker', JSON.stringify(work)], {
    encoding: 'utf8',
    maxBuffer: 16 << 20,
  });
  const line = (res.stdout || '').split('\n').find((l) => l.startsWith('[rank 0] RESULT '));
  if (res.status !== 0 || !line) throw new Error(`ranks failed (${res.status}): ${res.stderr}`);
  const rows = JSON.parse(line.slice('[rank 0] RESULT '.length)).map((r) => ({ ranks, ...r }));
  const threads = Number(process.env.IGNIS_NUM_THREADS) || require('..').getNumThreads();
  report('fsdp', rows, {
    step: `LoRA r${lora.r} ${lora.targets.join(',')}; ${config.layers}L d${config.hidden} V${config.vocab}; ${batch}x${seqLen} over ${ranks} ranks; float32`,
    threadsPerRank: threads,
  });
}

main();

'use strict';
// Sharded frozen weights (dist.shardFrozenWeights) against replicated ones, on 2 ranks over Gloo
// on loopback: the LoRA step of bench/finetune.js (its model and global batch, split over the
// ranks; forward, cross-entropy, backward, the adapters' gradients averaged with allReduce,
// AdamW). Reported: the step's time (the slowest rank's median over the rounds, the modes
// alternating; and its fastest step, less disturbed by other load), each rank's peak of native
// memory during the steps, the bytes of frozen weights each rank stores and the time a step
// waits for all-gathers (what prefetch did not hide), with prefetch on and off. `--layers` and
// `--rows` (rows per rank) change the model's depth and the batch, to see where weights rather
// than activations make the peak.
// Usage: node bench/fsdp.js [--ranks 2] [--reps 5] [--rounds 2] [--layers L] [--rows R]
//   (build first: node-gyp build && tsc -p .; IGNIS_NUM_THREADS=1 reaches every rank)
const { spawnSync } = require('child_process');
const path = require('path');
const { parseArgs } = require('util');

const MB = 1 << 20;
const MODES = ['replicated', 'sharded, prefetch', 'sharded, no prefetch'];

// --- a rank (started by the launcher with --worker) ---

/** Times `reps` steps of one mode; returns this rank's median seconds, peak bytes, frozen bytes stored and gather wait per step. */
function runMode(ig, mode, a) {
  const { dist } = ig;
  const { config, buildModel } = require('./finetune-model');
  const { timeit } = require('./common');
  const model = buildModel(ig, { layers: a.layers });
  const sharded = mode === 'replicated' ? null : dist.shardFrozenWeights(model, { prefetch: mode === 'sharded, prefetch' });
  const params = model.parameters().filter((p) => p.requiresGrad);
  const opt = new ig.AdamW(params, { lr: 1e-3, weightDecay: 0 });
  ig.manualSeed(1 + dist.rank());
  const ids = ig.randint(0, config.vocab, [a.rows, a.seqLen], { dtype: 'int64' });
  const step = () => {
    ig.tidy(() => model.forward(ids, { labels: ids }).loss.backward());
    for (const p of params) dist.allReduce(p.grad, { op: 'avg' }).wait();
    opt.step();
    opt.zeroGrad();
  };
  for (let i = 0; i < 3; i++) step(); // warm-up; the optimizer's state exists from here on
  const waited = sharded?.stats().waitMs;
  ig.resetPeakMemory();
  const { median, samples } = timeit(step, { reps: a.reps, warmup: 0, minSampleMs: 0 });
  const result = {
    seconds: median,
    fastest: Math.min(...samples),
    peak: ig.peakMemory().cpu,
    frozen: sharded ? sharded.stats().shardBytes : model.parameters().filter((p) => !p.requiresGrad).reduce((s, p) => s + p.numel * 4, 0),
    waitMs: sharded ? (sharded.stats().waitMs - waited) / a.reps : undefined,
  };
  sharded?.dispose();
  opt.dispose();
  model.dispose();
  ids.dispose();
  return result;
}

async function worker(a) {
  const ig = require('..');
  const { dist } = ig;
  const { median } = require('./common');
  await dist.init({ timeoutMs: 120000 });
  const slowest = (v) => dist.allReduce(ig.tensor([v], { dtype: 'float64' }), { op: 'max' }).wait().item();
  const everyRank = (v) => [...dist.allGather(ig.tensor([v], { dtype: 'float64' }), { into: 'cat' }).wait().data()];
  const runs = new Map(MODES.map((m) => [m, []]));
  for (let round = 0; round < a.rounds; round++) {
    for (let i = 0; i < MODES.length; i++) {
      const mode = MODES[(i + round) % MODES.length];
      runs.get(mode).push(runMode(ig, mode, a));
    }
  }
  const rows = MODES.map((mode) => {
    const list = runs.get(mode);
    const seconds = slowest(median(list.map((r) => r.seconds)));
    const fastest = slowest(Math.min(...list.map((r) => r.fastest)));
    const peaks = everyRank(Math.max(...list.map((r) => r.peak)) / MB);
    return {
      mode,
      'ms/step': seconds * 1e3,
      'fastest ms/step': fastest * 1e3,
      'tok/s (all ranks)': (dist.worldSize() * a.rows * a.seqLen) / seconds,
      'peak MB per rank': peaks.map((v) => v.toFixed(1)).join(' / '),
      'frozen MB per rank': list[0].frozen / MB,
      'gather wait ms/step': list[0].waitMs === undefined ? undefined : slowest(median(list.map((r) => r.waitMs))),
    };
  });
  if (dist.rank() === 0) console.log(`RESULT ${JSON.stringify(rows)}`);
  dist.destroy();
}

// --- the benchmark ---

function main() {
  const { config, lora, batch, seqLen } = require('./finetune-model');
  const { values } = parseArgs({
    options: {
      worker: { type: 'string' },
      ranks: { type: 'string', default: '2' },
      reps: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '2' },
      layers: { type: 'string', default: String(config.layers) },
      rows: { type: 'string' },
    },
  });
  if (values.worker) return worker(JSON.parse(values.worker));
  const { report } = require('./common');
  const ranks = Number(values.ranks);
  const work = {
    reps: Number(values.reps), rounds: Number(values.rounds), layers: Number(values.layers),
    rows: values.rows === undefined ? batch / ranks : Number(values.rows), seqLen,
  };
  const launcher = path.join(__dirname, '..', 'dist', 'lib', 'dist', 'launch.js');
  const res = spawnSync(process.execPath, [launcher, '--nproc-per-node', String(ranks), '--master-port', '0', __filename, '--worker', JSON.stringify(work)], {
    encoding: 'utf8',
    maxBuffer: 16 << 20,
  });
  const line = (res.stdout || '').split('\n').find((l) => l.startsWith('[rank 0] RESULT '));
  if (res.status !== 0 || !line) throw new Error(`ranks failed (${res.status}): ${res.stderr}`);
  const rows = JSON.parse(line.slice('[rank 0] RESULT '.length)).map((r) => ({ ranks, ...r }));
  report(`fsdp-${work.layers}L-${work.rows}x${seqLen}`, rows, {
    step: `LoRA r${lora.r} ${lora.targets.join(',')}; ${work.layers}L d${config.hidden} V${config.vocab}; ${work.rows}x${seqLen} per rank, ${ranks} ranks; float32`,
    threadsPerRank: Number(process.env.IGNIS_NUM_THREADS) || require('os').cpus().length,
    ...work,
  });
}

main();

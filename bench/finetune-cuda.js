'use strict';
// The LoRA fine-tuning step of bench/finetune.js (bench/finetune-model.js) on the GPU, float32:
// ignis eager, ignis replaying a CUDA graph of the step (captured after two eager steps), and
// PyTorch eager (bench/peers/finetune.py with device cuda) on the same GPU, each timed with
// CUDA events over whole steps (forward, cross-entropy, backward, AdamW), median of the samples;
// then the same through Trainer.trainStep (batches copied in, loss read back), eager and with
// cudaGraph.
// Usage: node bench/finetune-cuda.js [--quick]   (build first: npm run build:cuda && tsc -p .)
const ig = require('..');
const { median, timeCuda, runPeer, report } = require('./common');
const { config, lora, batch, seqLen, buildModel, description } = require('./finetune-model');
const { Trainer } = ig.train;

const quick = process.argv.includes('--quick');
const reps = quick ? 3 : 7;
if (!ig.cuda.isAvailable()) {
  // bench/run.js runs every script: on a machine without a GPU this one has nothing to time
  console.log(`bench/finetune-cuda: skipped (${ig.cuda.unavailableReason()})`);
  process.exit(0);
}

/** Seconds per step, eager and graph-replayed, of a fresh model on the GPU. */
function timeIgnis() {
  const model = buildModel(ig).to('cuda');
  const params = model.parameters().filter((p) => p.requiresGrad);
  const opt = new ig.AdamW(params, { lr: 1e-3, weightDecay: 0 });
  const ids = ig.randint(0, config.vocab, [batch, seqLen], { dtype: 'int64' }).to('cuda');
  const step = () => {
    ig.tidy(() => model.forward(ids, { labels: ids }).loss.backward());
    opt.step();
    opt.zeroGrad();
  };
  const eager = timeCuda(ig, step, { reps, warmup: 2, minSampleMs: 0 }).median;
  const graph = ig.cuda.graph(step);
  const replay = timeCuda(ig, () => graph.replay(), { reps, warmup: 2, minSampleMs: 0 }).median;
  graph.dispose();
  opt.dispose();
  model.dispose();
  ids.dispose();
  return { eager, replay };
}

/** Seconds per `Trainer.trainStep` (which reads the loss back each step), eager or with cudaGraph. */
function timeTrainer(cudaGraph) {
  const model = buildModel(ig).to('cuda');
  const ids = () => Array.from({ length: seqLen }, () => Math.floor(Math.random() * config.vocab));
  const train = Array.from({ length: 4 * batch }, () => {
    const inputIds = ids();
    return { inputIds, labels: inputIds };
  });
  // totalSteps: more than timeCuda runs (warm-up, calibration, samples)
  const trainer = new Trainer({ model, train, padId: 0, batchSize: batch, totalSteps: 1000, lr: 1e-3, cudaGraph });
  const seconds = timeCuda(ig, () => trainer.trainStep(), { reps, warmup: 3, minSampleMs: 0 }).median;
  trainer.dispose();
  model.dispose();
  return seconds;
}

// Rounds alternate ignis and the peer; each figure is the median over the rounds.
const rounds = quick ? 1 : 3;
const seconds = { eager: [], replay: [], trainer: [], trainerGraph: [], torch: [] };
let torch;
for (let round = 0; round < rounds; round++) {
  const ours = timeIgnis();
  seconds.eager.push(ours.eager);
  seconds.replay.push(ours.replay);
  seconds.trainer.push(timeTrainer(false));
  seconds.trainerGraph.push(timeTrainer(true));
  torch = runPeer('torch', 'finetune', { threads: 1, config, ...lora, batch, seqLen, reps, device: 'cuda' });
  if (torch.seconds) seconds.torch.push(torch.seconds);
}
const tokens = batch * seqLen;
const rate = (list) => (list.length ? tokens / median(list) : undefined);
const theirs = rate(seconds.torch);
const row = (how, list) => ({ step: `${description}, ${how}`, 'ignis tok/s': rate(list), 'torch tok/s': theirs, 'ignis/torch': theirs && rate(list) / theirs });
report('finetune-cuda', [
  row('eager', seconds.eager),
  row('graph replay', seconds.replay),
  row('Trainer.trainStep eager', seconds.trainer),
  row('Trainer.trainStep cudaGraph', seconds.trainerGraph),
], {
  gpu: ig.cuda.getDeviceProperties().name,
  rounds,
  torch: torch.torch ?? torch.skipped,
});

'use strict';
// Tokens per second of one LoRA fine-tuning step (forward, cross-entropy, backward, AdamW) of a
// small LLaMA: 4 layers, d=256, 4 heads, SwiGLU 768, vocabulary 256, batch 8 x 128 tokens, LoRA
// r=8 (alpha 16, dropout 0.05) on q_proj and v_proj, float32 on the CPU; against the same model
// and step in PyTorch (bench/peers/finetune.py) in the same run. Target: at least 1.0x PyTorch's
// tokens/s.
// --device cuda: the same step on the GPU, eager and replayed from a CUDA graph (captured after
// two eager steps), against PyTorch eager on the same GPU, timed with CUDA events.
// Usage: node bench/finetune.js [--quick] [--threads N] [--device cpu|cuda]
// (build first: node-gyp build or npm run build:cuda, and tsc -p .)
const ig = require('..');
const { median, timeit, timeCuda, runPeer, report } = require('./common');

const quick = process.argv.includes('--quick');
const threadsFlag = process.argv.indexOf('--threads');
if (threadsFlag > 0) ig.setNumThreads(Number(process.argv[threadsFlag + 1]));
const threads = ig.getNumThreads();
const config = { hidden: 256, heads: 4, kvHeads: 4, layers: 4, intermediate: 768, vocab: 256 };
const lora = { r: 8, alpha: 16, dropout: 0.05, targets: ['q_proj', 'v_proj'] };
const batch = 8;
const seqLen = 128;
const reps = quick ? 3 : 7;
const deviceFlag = process.argv.indexOf('--device');
const device = deviceFlag > 0 ? process.argv[deviceFlag + 1] : 'cpu';

if (device === 'cuda') {
  benchCuda();
  process.exit(0);
}

/** The model with its adapters, optimizer and a batch, on `on`. */
function setup(on) {
  ig.manualSeed(0);
  const model = new ig.LlamaForCausalLM({
    vocabSize: config.vocab, hiddenSize: config.hidden, intermediateSize: config.intermediate,
    numHiddenLayers: config.layers, numAttentionHeads: config.heads, numKeyValueHeads: config.kvHeads,
  });
  ig.applyLora(model, { r: lora.r, alpha: lora.alpha, dropout: lora.dropout, targetModules: lora.targets });
  model.to(on).train();
  const params = model.parameters().filter((p) => p.requiresGrad);
  const opt = new ig.AdamW(params, { lr: 1e-3, weightDecay: 0 });
  const ids = ig.randint(0, config.vocab, [batch, seqLen], { dtype: 'int64' }).to(on);
  const step = () => {
    ig.tidy(() => model.forward(ids, { labels: ids }).loss.backward());
    opt.step();
    opt.zeroGrad();
  };
  const dispose = () => {
    opt.dispose();
    model.dispose();
    ids.dispose();
  };
  return { step, dispose };
}

/** Eager and graph-replayed steps on the GPU against PyTorch eager. */
function benchCuda() {
  if (!ig.cuda.isAvailable()) throw new Error(`bench/finetune --device cuda: ${ig.cuda.unavailableReason()}`);
  const rounds = quick ? 1 : 3;
  const seconds = { eager: [], graph: [], torch: [] };
  let torch;
  for (let round = 0; round < rounds; round++) {
    const { step, dispose } = setup('cuda');
    seconds.eager.push(timeCuda(ig, step, { reps, warmup: 2, minSampleMs: 0 }).median);
    const g = ig.cuda.graph(step);
    seconds.graph.push(timeCuda(ig, () => g.replay(), { reps, warmup: 2, minSampleMs: 0 }).median);
    g.dispose();
    dispose();
    torch = runPeer('torch', 'finetune', { threads, config, ...lora, batch, seqLen, reps, device: 'cuda' });
    if (torch.seconds) seconds.torch.push(torch.seconds);
  }
  const tokens = batch * seqLen;
  const rate = (list) => (list.length ? tokens / median(list) : undefined);
  const [eager, graph, theirs] = [rate(seconds.eager), rate(seconds.graph), rate(seconds.torch)];
  const name = `LoRA r${lora.r} q,v; ${config.layers}L d${config.hidden} h${config.heads} V${config.vocab}; ${batch}x${seqLen}`;
  report('finetune-cuda', [
    { step: `${name}, eager`, 'ignis tok/s': eager, 'torch tok/s': theirs, 'ignis/torch': theirs && eager / theirs },
    { step: `${name}, graph replay`, 'ignis tok/s': graph, 'torch tok/s': theirs, 'ignis/torch': theirs && graph / theirs },
  ], { gpu: ig.cuda.getDeviceProperties().name, rounds, torch: torch.torch ?? torch.skipped });
}

function timeIgnis() {
  const { step, dispose } = setup('cpu');
  const seconds = timeit(step, { reps, warmup: 2, minSampleMs: 0 }).median;
  dispose();
  return seconds;
}

// Rounds alternate ignis and the peer so that load from other processes falls on both.
const rounds = quick ? 1 : 3;
const seconds = { ignis: [], torch: [] };
let skipped;
for (let round = 0; round < rounds; round++) {
  const runTorch = () => {
    const res = runPeer('torch', 'finetune', { threads, config, ...lora, batch, seqLen, reps });
    skipped = res.skipped;
    if (res.seconds) seconds.torch.push(res.seconds);
  };
  if (round % 2) runTorch();
  seconds.ignis.push(timeIgnis());
  if (round % 2 === 0) runTorch();
}
const tokens = batch * seqLen;
const ours = tokens / median(seconds.ignis);
const torch = seconds.torch.length ? tokens / median(seconds.torch) : undefined;
report('finetune', [{
  step: `LoRA r${lora.r} q,v; ${config.layers}L d${config.hidden} h${config.heads} V${config.vocab}; ${batch}x${seqLen}`,
  'ignis tok/s': ours,
  'torch tok/s': torch,
  'ignis/torch': torch && ours / torch,
}], { threads, rounds, ...(skipped ? { skipped } : {}) });
if (skipped) console.log(skipped);

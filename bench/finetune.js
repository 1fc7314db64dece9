'use strict';
// Tokens per second of one LoRA fine-tuning step (forward, cross-entropy, backward, AdamW) of a
// small LLaMA: 4 layers, d=256, 4 heads, SwiGLU 768, vocabulary 256, batch 8 x 128 tokens, LoRA
// r=8 (alpha 16, dropout 0.05) on q_proj and v_proj, float32 on the CPU; against the same model
// and step in PyTorch (bench/peers/finetune.py) in the same run. Target: at least 1.0x PyTorch's
// tokens/s.
// Usage: node bench/finetune.js [--quick] [--threads N]   (build first: node-gyp build && tsc -p .)
const ig = require('..');
const { median, timeit, runPeer, report } = require('./common');

const quick = process.argv.includes('--quick');
const threadsFlag = process.argv.indexOf('--threads');
if (threadsFlag > 0) ig.setNumThreads(Number(process.argv[threadsFlag + 1]));
const threads = ig.getNumThreads();
const config = { hidden: 256, heads: 4, kvHeads: 4, layers: 4, intermediate: 768, vocab: 256 };
const lora = { r: 8, alpha: 16, dropout: 0.05, targets: ['q_proj', 'v_proj'] };
const batch = 8;
const seqLen = 128;
const reps = quick ? 3 : 7;

function timeIgnis() {
  ig.manualSeed(0);
  const model = new ig.LlamaForCausalLM({
    vocabSize: config.vocab, hiddenSize: config.hidden, intermediateSize: config.intermediate,
    numHiddenLayers: config.layers, numAttentionHeads: config.heads, numKeyValueHeads: config.kvHeads,
  });
  ig.applyLora(model, { r: lora.r, alpha: lora.alpha, dropout: lora.dropout, targetModules: lora.targets });
  model.train();
  const params = model.parameters().filter((p) => p.requiresGrad);
  const opt = new ig.AdamW(params, { lr: 1e-3, weightDecay: 0 });
  const ids = ig.randint(0, config.vocab, [batch, seqLen], { dtype: 'int64' });
  const step = () => {
    ig.tidy(() => model.forward(ids, { labels: ids }).loss.backward());
    opt.step();
    opt.zeroGrad();
  };
  const seconds = timeit(step, { reps, warmup: 2, minSampleMs: 0 }).median;
  opt.dispose();
  model.dispose();
  ids.dispose();
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

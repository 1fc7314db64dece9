'use strict';
// The fine-tuning step that bench/finetune.js, bench/ddp.js and bench/fsdp.js time: a small LLaMA (4 layers,
// d=256, 4 heads, SwiGLU 768, vocabulary 256), LoRA r=8 (alpha 16, dropout 0.05) on q_proj and
// v_proj, float32 on the CPU, batch 8 x 128 tokens.
const config = { hidden: 256, heads: 4, kvHeads: 4, layers: 4, intermediate: 768, vocab: 256 };
const lora = { r: 8, alpha: 16, dropout: 0.05, targets: ['q_proj', 'v_proj'] };
const batch = 8;
const seqLen = 128;

/** The model with LoRA applied, in training mode, from seed 0 (`changes` override fields of `config`). */
function buildModel(ig, changes = {}) {
  const c = { ...config, ...changes };
  ig.manualSeed(0);
  const model = new ig.LlamaForCausalLM({
    vocabSize: c.vocab, hiddenSize: c.hidden, intermediateSize: c.intermediate,
    numHiddenLayers: c.layers, numAttentionHeads: c.heads, numKeyValueHeads: c.kvHeads,
  });
  ig.applyLora(model, { r: lora.r, alpha: lora.alpha, dropout: lora.dropout, targetModules: lora.targets });
  model.train();
  return model;
}

/** What the step is, for report tables. */
const description = `LoRA r${lora.r} q,v; ${config.layers}L d${config.hidden} h${config.heads} V${config.vocab}; ${batch}x${seqLen}`;

module.exports = { config, lora, batch, seqLen, buildModel, description };

/** The model and data the training tests share (the trainer's tests and the distributed ones). */
import * as ig from '../../lib';
import { IGNORE_INDEX } from '../../lib/data/dataset';
import type { Example } from '../../lib/data/dataset';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '../../lib/data/tokenizer';
import { Rng, tempDir } from '../helpers';

/** The tiny LLaMA of the training tests. */
export const CONFIG = { vocabSize: 20, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 2, numKeyValueHeads: 1 };

/** A seeded tiny LLaMA, with LoRA on q_proj and v_proj (B made non-zero) when `lora`. */
export function tinyModel(dtype: ig.DType, lora: boolean, dropout = 0.1): ig.LlamaForCausalLM {
  ig.manualSeed(11);
  const model = new ig.LlamaForCausalLM(CONFIG, { dtype });
  if (lora) {
    ig.applyLora(model, { r: 4, alpha: 8, dropout, targetModules: ['q_proj', 'v_proj'], dtype });
    // B starts at zero: give it values so that every adapter weight gets a gradient from step 1
    ig.noGrad(() => {
      const bs = model.namedParameters().filter(([n]) => n.includes('lora_B'));
      model.loadStateDict(new Map(bs.map(([n, p]) => [n, ig.mul(ig.randn(p.shape.slice(), { dtype }), 0.1)])), { strict: false });
    });
  }
  return model;
}

/** `count` seeded examples of 3 to 8 tokens, the first token sometimes a prompt (no loss). */
export function examples(count: number, seed: number): Example[] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => {
    const length = 3 + Math.floor(rng.next() * 6);
    const inputIds = Array.from({ length }, () => Math.floor(rng.next() * CONFIG.vocabSize));
    const promptLength = Math.floor(rng.next() * 2);
    return { inputIds, labels: inputIds.map((id, p) => (p < promptLength ? IGNORE_INDEX : id)) };
  });
}

/** A tiny byte-level LLaMA saved as a model folder, and a small prompt/completion dataset. */
export function finetuneFixture(t: Parameters<typeof tempDir>[0]): { model: string; data: string; root: string } {
  const root = tempDir(t);
  const model = path.join(root, 'model');
  ig.manualSeed(5);
  const tokenizer = Tokenizer.byteLevel();
  const m = new ig.LlamaForCausalLM({
    vocabSize: tokenizer.vocabSize, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2,
    numAttentionHeads: 4, numKeyValueHeads: 2, maxPositionEmbeddings: 64,
  });
  m.savePretrained(model);
  m.dispose();
  tokenizer.save(model);
  const data = path.join(root, 'data.jsonl');
  const words = ['CAT', 'DOG', 'OWL', 'EEL', 'ANT', 'BEE', 'COW', 'PIG', 'RAT', 'YAK'];
  fs.writeFileSync(data, words.map((w) => JSON.stringify({ prompt: `${w}, n.`, completion: ` a ${w.toLowerCase()}.` })).join('\n') + '\n');
  return { model, data, root };
}

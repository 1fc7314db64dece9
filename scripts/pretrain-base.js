#!/usr/bin/env node
// Pretrains ignis' built-in base model, models/ignis-tiny: a LLaMA-architecture decoder (4 layers,
// d=256, 4 heads, byte-level vocabulary) trained from scratch on the English fortune cookies of
// Debian's `fortunes` package (fortune-mod's data files, BSD licence; `apt-get install fortunes`).
// Everything is fixed by --seed, so the same command rebuilds the same weights on the same
// machine type. Takes about 25 minutes on 2 CPU cores with the defaults.
//
//   node scripts/pretrain-base.js [--steps 1000] [--batch 16] [--seq-len 256] [--lr 3e-3] [--seed 0]
//                                 [--corpus /usr/share/games/fortunes] [--out models/ignis-tiny]
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { setImmediate } = require('node:timers/promises');
const cliProgress = require('cli-progress');
const ig = require('..');
const { Tokenizer } = require('../dist/lib/data/tokenizer');
const { splitExamples, tokenizeRecords } = require('../dist/lib/data/dataset');
const { Trainer } = require('../dist/lib/train/trainer');
const { lossCurveSvg } = require('../dist/lib/train/plot');
const { llamaConfig } = require('../dist/lib/io/config');

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string', default: '1000' },
    batch: { type: 'string', default: '16' },
    'seq-len': { type: 'string', default: '256' },
    lr: { type: 'string', default: '3e-3' },
    seed: { type: 'string', default: '0' },
    corpus: { type: 'string', default: '/usr/share/games/fortunes' },
    out: { type: 'string', default: path.join(__dirname, '..', 'models', 'ignis-tiny') },
  },
});
const steps = Number(args.steps);
const batch = Number(args.batch);
const seqLen = Number(args['seq-len']);
const seed = Number(args.seed);

// Fortune files are plain text with one cookie per block, blocks separated by lines holding "%".
// The ASCII-art files are left out (pictures, not prose), and so are the "definitions" cookies,
// which resemble the fine-tuning demo's dictionary style the base model should not know yet.
const SKIP = new Set(['art', 'ascii-art', 'definitions']);
const files = fs.readdirSync(args.corpus)
  .filter((f) => !f.includes('.') && !SKIP.has(f) && fs.statSync(path.join(args.corpus, f)).isFile())
  .sort();
if (files.length === 0) {
  console.error(`no fortune files in ${args.corpus}: install them with apt-get install fortunes`);
  process.exit(1);
}
// Some cookies underline or embolden with "x<backspace>x" overstriking: keep the last character.
const records = files.flatMap((f) => fs.readFileSync(path.join(args.corpus, f), 'utf8')
  .replace(/[^\n]\x08/g, '')
  .split(/^%$/m)
  .map((cookie) => cookie.trim())
  .filter((cookie) => cookie.length > 0)
  .map((text) => ({ text })));

const tokenizer = Tokenizer.byteLevel();
ig.manualSeed(seed);
const examples = tokenizeRecords(records, tokenizer, { seqLen });
const { train, heldOut } = splitExamples(examples, 0.02, seed);
const config = llamaConfig({
  vocabSize: tokenizer.vocabSize,
  hiddenSize: 256,
  intermediateSize: 768,
  numHiddenLayers: 4,
  numAttentionHeads: 4,
  numKeyValueHeads: 4,
  maxPositionEmbeddings: 512,
  bosTokenId: tokenizer.bosId,
  eosTokenId: tokenizer.eosId,
  padTokenId: tokenizer.padId,
  tieWordEmbeddings: false,
});
const model = new ig.LlamaForCausalLM(config);
// transformers' initialisation of LLaMA: every projection and embedding ~ N(0, 0.02^2)
const init = new Map(model.namedParameters()
  .filter(([name]) => /(_proj|embed_tokens|lm_head)\.weight$/.test(name))
  .map(([name, p]) => [name, ig.mul(ig.randn(p.shape), config.initializerRange)]));
model.loadStateDict(init, { strict: false });
for (const t of init.values()) t.dispose();
const tokens = examples.reduce((n, e) => n + e.inputIds.length, 0);
console.log(`corpus: ${records.length} fortunes from ${files.length} files, ${tokens} tokens -> ${train.length} training and ${heldOut.length} held-out sequences of ${seqLen}`);
console.log(`model: ${model.numParameters()} parameters; ${steps} steps of ${batch} x ${seqLen} tokens (${((steps * batch * seqLen) / tokens).toFixed(2)} epochs)`);

const trainer = new Trainer({
  model, train, heldOut, padId: tokenizer.padId, batchSize: batch, totalSteps: steps,
  lr: Number(args.lr), warmupSteps: Math.round(steps * 0.05), weightDecay: 0.1, seed,
});
const bar = new cliProgress.SingleBar({
  format: 'pretrain |{bar}| {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_formatted}',
  noTTYOutput: true, notTTYSchedule: 60000, etaBuffer: 50,
}, cliProgress.Presets.shades_classic);
const history = [];
const evals = [];

async function main() {
  bar.start(steps, 0, { loss: '-', tps: '-' });
  for (let s = 0; s < steps; s++) {
    const started = performance.now();
    const r = trainer.trainStep();
    const seconds = (performance.now() - started) / 1000;
    history.push([r.step, r.loss]);
    bar.update(r.step, { loss: r.loss.toFixed(3), tps: (r.inputTokens / seconds).toFixed(0) });
    if (r.step % 200 === 0 || r.step === steps) evals.push([r.step, trainer.evaluate().loss]);
    await setImmediate();  // lets the progress bar's timer run
  }
  bar.stop();
  const final = trainer.evaluate();
  trainer.dispose();
  console.log(`held-out loss ${final.loss.toFixed(4)} nats/byte (perplexity ${final.perplexity.toFixed(3)})`);

  fs.mkdirSync(args.out, { recursive: true });
  model.savePretrained(args.out, { dtype: 'bfloat16' });
  tokenizer.save(args.out);
  fs.writeFileSync(path.join(args.out, 'pretrain-loss.svg'), lossCurveSvg('Pretraining of ignis-tiny', [
    { name: 'training loss', points: history, color: '#1f77b4' },
    { name: 'held-out loss', points: evals, color: '#d62728' },
  ]));
  fs.writeFileSync(path.join(args.out, 'pretrain.json'), JSON.stringify({
    command: `node scripts/pretrain-base.js --steps ${steps} --batch ${batch} --seq-len ${seqLen} --lr ${args.lr} --seed ${seed}`,
    corpus: { package: 'fortunes (Debian)', licence: 'BSD', files, fortunes: records.length, tokens },
    heldOutLoss: final.loss,
    trainLoss: history.slice(-20).reduce((a, [, l]) => a + l, 0) / Math.min(20, history.length),
  }, null, 2) + '\n');
  console.log(`saved ${args.out}`);
}

main();

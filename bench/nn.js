'use strict';
// Forward passes of nn modules against PyTorch (CPU) eager modules in the same run, float32:
// - Linear 64 -> 64 on [1, 64]: the per-call overhead of a small module;
// - Linear 1024 -> 1024 on [256, 1024];
// - CausalSelfAttention, LLaMA-style (hidden 512, 8 heads, 4 key/value heads, rotary, causal
//   mask built per call), on [1, 128, 512];
// - DecoderBlock (the same attention, RMSNorm, SwiGLU with intermediate 1376) on [1, 128, 512].
// The PyTorch peer computes what Hugging Face's LlamaAttention / LlamaDecoderLayer compute
// (eager path), written out in bench/peers/nn.py.
// Usage: node bench/nn.js [--quick]   (build first: node-gyp build && tsc -p .)
const ig = require('..');
const { median, timeit, runPeer, report } = require('./common');

const quick = process.argv.includes('--quick');
const cfg = { hidden: 512, heads: 8, kvHeads: 4, intermediate: 1376, batch: 1, seq: 128 };
const cases = ['linear small', 'linear large', 'attention', 'decoder block'];

function timeIgnis() {
  const { nn } = ig;
  ig.manualSeed(0);
  const blockOpts = { hiddenSize: cfg.hidden, intermediateSize: cfg.intermediate, numAttentionHeads: cfg.heads, numKeyValueHeads: cfg.kvHeads };
  const small = new nn.Linear(64, 64);
  const large = new nn.Linear(1024, 1024);
  const block = new nn.DecoderBlock(blockOpts);
  const rope = new nn.RotaryEmbedding(cfg.hidden / cfg.heads);
  const xs = ig.randn([1, 64]);
  const xl = ig.randn([256, 1024]);
  const x = ig.randn([cfg.batch, cfg.seq, cfg.hidden]);
  const positions = ig.arange(cfg.seq).view(1, -1);
  const fns = {
    'linear small': () => small.call(xs).dispose(),
    'linear large': () => large.call(xl).dispose(),
    // the rotary tables are computed per call, as a model does once per forward
    attention: () => ig.tidy(() => block.self_attn.call(x, rope.call(positions))),
    'decoder block': () => ig.tidy(() => block.call(x, rope.call(positions))),
  };
  const out = cases.map((c) => timeit(fns[c]).median);
  for (const m of [small, large, block, rope]) m.dispose();
  for (const t of [xs, xl, x, positions]) t.dispose();
  return out;
}

// Rounds alternate ignis and the peer so that load from other processes falls on both; each
// figure is the median over the rounds.
const rounds = quick ? 1 : 3;
const threads = ig.getNumThreads();
const seconds = { ignis: [], torch: [] };
let skipped;
for (let r = 0; r < rounds; r++) {
  seconds.ignis.push(timeIgnis());
  const res = runPeer('torch', 'nn', { threads, cfg, cases });
  if (res.skipped) skipped = res.skipped;
  seconds.torch.push(cases.map((c) => res.rows?.find((row) => row.name === c)?.seconds));
}

const ms = (lib, i) => {
  const times = seconds[lib].map((round) => round[i]).filter((t) => t !== undefined);
  return times.length ? median(times) * 1e3 : undefined;
};
const rows = cases.map((c, i) => {
  const [ours, th] = [ms('ignis', i), ms('torch', i)];
  return { case: c, 'ignis ms': ours, 'torch ms': th, 'ignis/torch speed': th && th / ours };
});
report('nn', rows, { threads, rounds, cfg, skipped });
if (skipped) console.log(`torch: ${skipped}`);

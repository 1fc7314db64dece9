/**
 * applyLora: targeting by list, RegExp and 'all-linear', the summary, freezing, training a tiny
 * model with AdamW, model-level switching, mergeLora, bad inputs.
 */
import test from 'ava';
import * as ig from '../../lib';
import { LoraLinear, Tensor, applyLora, lora, nn } from '../../lib';
import { Rng, assertClose, assertCode, randomTensor, refOf } from '../helpers';
import { TinyLlama } from '../nn/models';

class Mlp extends nn.Module {
  up_proj: nn.Linear;
  down_proj: nn.Linear;
  constructor(d: number) {
    super();
    this.up_proj = new nn.Linear(d, 2 * d, { dtype: 'float64' });
    this.down_proj = new nn.Linear(2 * d, d, { dtype: 'float64' });
  }
  forward(x: Tensor): Tensor {
    return this.down_proj.call(this.up_proj.call(x).relu());
  }
}

class Block extends nn.Module {
  q_proj: nn.Linear;
  v_proj: nn.Linear;
  norm: nn.LayerNorm;
  mlp: Mlp;
  constructor(d: number) {
    super();
    this.q_proj = new nn.Linear(d, d, { dtype: 'float64' });
    this.v_proj = new nn.Linear(d, d, { bias: false, dtype: 'float64' });
    this.norm = new nn.LayerNorm(d, { dtype: 'float64' });
    this.mlp = new Mlp(d);
  }
  forward(x: Tensor): Tensor {
    const h = x.add(this.v_proj.call(this.q_proj.call(this.norm.call(x)).tanh()));
    return h.add(this.mlp.call(h));
  }
}

class Tiny extends nn.Module {
  blocks: Block[];
  lm_head: nn.Linear;
  constructor(readonly d = 6, vocab = 5) {
    super();
    this.blocks = [new Block(d), new Block(d)];
    this.lm_head = new nn.Linear(d, vocab, { bias: false, dtype: 'float64' });
  }
  forward(x: Tensor): Tensor {
    return ig.tidy(() => {
      let h = x;
      for (const b of this.blocks) h = b.call(h);
      return this.lm_head.call(h);
    });
  }
}

/** The elements a rank-r adapter adds to each targeted Linear. */
function adapterSize(model: nn.Module, paths: string[], r: number): number {
  return paths.reduce((n, p) => {
    const l = model.getSubmodule(p) as LoraLinear;
    return n + r * (l.inFeatures + l.outFeatures);
  }, 0);
}

test('applyLora: a list of names, PEFT parameter names, summary numbers, everything else frozen', (t) => {
  ig.manualSeed(3);
  const model = new Tiny();
  const total0 = model.numParameters();
  const summary = applyLora(model, { r: 2, alpha: 4, targetModules: ['q_proj', 'mlp.down_proj'] });
  t.deepEqual(summary.targeted, ['blocks.0.q_proj', 'blocks.0.mlp.down_proj', 'blocks.1.q_proj', 'blocks.1.mlp.down_proj']);
  const added = adapterSize(model, summary.targeted, 2);
  t.is(summary.trainable, added);
  t.is(summary.total, total0 + added);
  const trainable = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n);
  t.true(trainable.length === 8 && trainable.every((n) => /\.lora_[AB]\.default\.weight$/.test(n)));
  const names = model.namedParameters().map(([n]) => n);
  t.true(names.includes('blocks.0.q_proj.base_layer.weight'));
  t.true(names.includes('blocks.1.mlp.down_proj.lora_B.default.weight'));
  t.true(model.getSubmodule('blocks.0.q_proj') instanceof LoraLinear);
  t.true(model.getSubmodule('blocks.0.v_proj') instanceof nn.Linear);
});

test('applyLora: RegExp (whole path) and all-linear (without lm_head)', (t) => {
  const byRegex = new Tiny();
  const s1 = applyLora(byRegex, { targetModules: /blocks\.1\..*_proj/, r: 1 });
  t.deepEqual(s1.targeted, ['blocks.1.q_proj', 'blocks.1.v_proj', 'blocks.1.mlp.up_proj', 'blocks.1.mlp.down_proj']);
  assertCode(t, () => applyLora(new Tiny(), { targetModules: /q_proj/ }), 'ERR_ARG', /no Linear module matches/);
  const all = new Tiny();
  const s2 = applyLora(all, { targetModules: 'all-linear', r: 2 });
  t.is(s2.targeted.length, 8);
  t.false(s2.targeted.includes('lm_head'));
  t.true(all.getSubmodule('lm_head') instanceof nn.Linear);
  t.is(s2.trainable, adapterSize(all, s2.targeted, 2));
});

test('applyLora: a tiny model trains with AdamW, frozen weights stay put; mergeLora keeps its output', (t) => {
  ig.manualSeed(4);
  const rng = new Rng(4);
  const model = new Tiny();
  applyLora(model, { r: 4, alpha: 8, targetModules: 'all-linear' });
  const frozen = model.namedParameters().filter(([, p]) => !p.requiresGrad).map(([n, p]) => [n, p.data()] as const);
  const x = randomTensor(rng, [8, 6], 'float64').t;
  const target = randomTensor(rng, [8, 5], 'float64').t;
  const opt = new ig.AdamW(model.parameters().filter((p) => p.requiresGrad), { lr: 0.02, weightDecay: 0 });
  const lossAt = () => ig.tidy(() => ig.mseLoss(model.call(x), target).item());
  const first = lossAt();
  for (let step = 0; step < 40; step++) {
    ig.tidy(() => {
      opt.zeroGrad();
      ig.mseLoss(model.call(x), target).backward();
      opt.step();
    });
  }
  const last = lossAt();
  t.true(last < 0.5 * first, `loss ${first} -> ${last}`);
  for (const [name, values] of frozen) t.deepEqual(model.namedParameters().find(([n]) => n === name)![1].data(), values, name);
  const before = refOf(ig.noGrad(() => model.call(x)));
  const restored = lora.mergeLora(model);
  t.is(restored.length, 8);
  t.false(model.modules().some((m) => m instanceof LoraLinear));
  t.false(model.namedParameters().some(([n]) => n.includes('lora_') || n.includes('base_layer')));
  assertClose(t, ig.noGrad(() => model.call(x)), before, undefined, 'merged model');
});

test('applyLora: a second adapter, model-level switching and disabling', (t) => {
  const rng = new Rng(5);
  const model = new Tiny();
  const x = randomTensor(rng, [3, 6], 'float64').t;
  const base = refOf(model.call(x));
  applyLora(model, { r: 2, targetModules: ['q_proj'] });
  const s = applyLora(model, { r: 3, targetModules: ['q_proj'], adapterName: 'second' });
  t.is(s.trainable, adapterSize(model, s.targeted, 3));
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof LoraLinear)) continue;
    t.deepEqual(m.adapterNames, ['default', 'second'], name);
    t.is(m.activeAdapter, 'second');
    for (const adapter of m.adapterNames) {
      const b = m.adapterWeights(adapter).b;
      const v = randomTensor(rng, b.shape.slice(), 'float64').t;
      m.loadStateDict({ [`lora_B.${adapter}.weight`]: v }, { strict: false });
    }
  }
  const second = refOf(model.call(x));
  lora.setAdapter(model, 'default');
  const first = refOf(model.call(x));
  t.true(first.data.some((v, i) => Math.abs(v - second.data[i]) > 1e-6));
  lora.disableAdapters(model);
  assertClose(t, model.call(x), base, undefined, 'disabled');
  lora.enableAdapters(model);
  assertClose(t, model.call(x), first, undefined, 'enabled');
  assertCode(t, () => lora.setAdapter(model, 'missing'), 'ERR_ARG');
});

test('applyLora: bad inputs', (t) => {
  assertCode(t, () => applyLora(new Tiny(), { targetModules: ['k_proj'] }), 'ERR_ARG', /no Linear module matches/);
  assertCode(t, () => applyLora(new Tiny(), { targetModules: ['mlp'] }), 'ERR_ARG', /only Linear/);
  assertCode(t, () => applyLora(new Tiny(), { targetModules: [] }), 'ERR_ARG');
  assertCode(t, () => applyLora(new Tiny(), { targetModules: 'q_proj' as never }), 'ERR_ARG');
  assertCode(t, () => applyLora({} as nn.Module, { targetModules: ['q_proj'] }), 'ERR_ARG');
  assertCode(t, () => applyLora(new Tiny(), { targetModules: ['q_proj'], r: -1 }), 'ERR_ARG');
  assertCode(t, () => lora.mergeLora({} as nn.Module), 'ERR_ARG');
  // A refused call leaves the model as it was.
  const model = new Tiny();
  for (const bad of [{ r: 0 }, { dropout: 2 }, { adapterName: 'training' }, { adapterName: '' }]) {
    assertCode(t, () => applyLora(model, { targetModules: 'all-linear', ...bad }), 'ERR_ARG', undefined);
    t.true(model.parameters().every((p) => p.requiresGrad));
    t.false(model.modules().some((m) => m instanceof LoraLinear));
  }
  applyLora(model, { targetModules: ['q_proj'] });
  assertCode(t, () => applyLora(model, { targetModules: 'all-linear' }), 'ERR_ARG', /already has an adapter 'default'/);
  t.false(model.getSubmodule('blocks.0.v_proj') instanceof LoraLinear);
});

test('applyLora on a LLaMA-shaped model: PEFT keys, counts, gradients on the adapters only', (t) => {
  ig.manualSeed(8);
  const model = new TinyLlama({ vocabSize: 11, numLayers: 2, hiddenSize: 8, intermediateSize: 12, numAttentionHeads: 4, numKeyValueHeads: 2 });
  const summary = applyLora(model, { r: 2, alpha: 16, targetModules: ['q_proj', 'v_proj'] });
  t.deepEqual(summary.targeted, ['layers.0.self_attn.q_proj', 'layers.0.self_attn.v_proj', 'layers.1.self_attn.q_proj', 'layers.1.self_attn.v_proj']);
  // q_proj 8 -> 8 and v_proj 8 -> 4 (2 kv heads of 2): 2 * (16 + 12) per layer.
  t.is(summary.trainable, 2 * 2 * (8 + 8 + 8 + 4));
  const keys = ig.tidy(() => [...model.stateDict().keys()]);
  t.true(keys.includes('layers.0.self_attn.q_proj.base_layer.weight'));
  t.true(keys.includes('layers.1.self_attn.v_proj.lora_A.default.weight'));
  t.true(keys.includes('layers.1.self_attn.v_proj.lora_B.default.weight'));
  const ids = ig.randint(11, [2, 5]);
  const logits = model.call(ids);
  ig.crossEntropy(logits.view(-1, 11), ids.view(-1)).backward();
  for (const [name, p] of model.namedParameters()) t.is(p.grad !== null, /lora_[AB]/.test(name), name);
  const all = applyLora(new TinyLlama({ vocabSize: 11, numLayers: 2, hiddenSize: 8, intermediateSize: 12, numAttentionHeads: 4, numKeyValueHeads: 2 }), { targetModules: 'all-linear' });
  t.is(all.targeted.length, 14);
});

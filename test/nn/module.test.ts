import test from 'ava';
import * as ig from '../../lib';
import { Tensor, nn } from '../../lib';
import { assertCode, refOf } from '../helpers';
import { SmallEncoder, TinyLlama, llamaLayerNames, snapshot } from './models';

const LLAMA = { vocabSize: 11, numLayers: 2, hiddenSize: 8, intermediateSize: 12, numAttentionHeads: 4, numKeyValueHeads: 2 };

const live = () => ig.memory().tensors;
const keysOf = (m: nn.Module) => ig.tidy(() => [...m.stateDict().keys()]);

/** Random token ids [batch, seq] in [0, vocab), from the global generator. */
function ids(batch: number, seq: number, vocab: number): Tensor {
  return ig.randint(vocab, [batch, seq]);
}

test('parameter names and order follow a LLaMA checkpoint (nested modules, arrays of layers)', (t) => {
  const model = new TinyLlama(LLAMA);
  const expected = ['embed_tokens.weight', ...llamaLayerNames(0), ...llamaLayerNames(1), 'norm.weight', 'lm_head.weight'];
  t.deepEqual(model.namedParameters().map(([n]) => n), expected);
  t.deepEqual(keysOf(model), expected, 'non-persistent buffers stay out of the state dict');
  t.deepEqual(
    model.namedParameters().map(([, p]) => p.shape),
    [[11, 8], ...[0, 1].flatMap(() => [[8, 8], [4, 8], [4, 8], [8, 8], [12, 8], [12, 8], [8, 12], [8], [8]]), [8], [11, 8]],
  );
  t.is(model.parameters()[1], model.layers[0].self_attn.q_proj.weight);
  const modules = model.namedModules().map(([n]) => n);
  t.deepEqual(modules.slice(0, 9), ['', 'embed_tokens', 'layers.0', 'layers.0.self_attn', 'layers.0.self_attn.q_proj',
    'layers.0.self_attn.k_proj', 'layers.0.self_attn.v_proj', 'layers.0.self_attn.o_proj', 'layers.0.mlp']);
  t.deepEqual(modules.slice(-3), ['norm', 'lm_head', 'rotary_emb']);
  t.deepEqual(model.namedChildren().map(([n]) => n), ['embed_tokens', 'layers.0', 'layers.1', 'norm', 'lm_head', 'rotary_emb']);
  t.is(model.children()[1], model.layers[0]);
  t.is(model.numParameters(), 11 * 8 * 2 + 2 * (64 + 32 + 32 + 64 + 3 * 96 + 16) + 8);
  model.dispose();
});

test('members: own parameters before submodules, buffers (persistent or not), parameter arrays; other properties are not members', (t) => {
  class Custom extends nn.Module {
    inner = new nn.Linear(2, 3);
    scale = nn.parameter(ig.ones([3]));
    plain = ig.zeros([2]);
    sizes = [1, 2, 3];
    options = { weight: nn.parameter(ig.ones([1])) };
    experts = [nn.parameter(ig.zeros([2])), nn.parameter(ig.ones([2]))];
    declare running_mean: Tensor;
    declare table: Tensor;
    constructor() {
      super();
      this.registerBuffer('running_mean', ig.zeros([3]));
      this.registerBuffer('table', ig.ones([4]), { persistent: false });
    }
    forward(x: Tensor): Tensor {
      return this.inner.call(x).mul(this.scale);
    }
  }
  const m = new Custom();
  t.deepEqual(m.namedParameters().map(([n]) => n), ['scale', 'experts.0', 'experts.1', 'inner.weight', 'inner.bias']);
  t.deepEqual(m.namedBuffers().map(([n]) => n), ['running_mean', 'table']);
  t.is(m.buffers()[0], m.running_mean);
  t.is(m.buffers()[1], m.table);
  t.deepEqual(keysOf(m), ['scale', 'experts.0', 'experts.1', 'running_mean', 'inner.weight', 'inner.bias']);
  t.true(nn.isParameter(m.scale));
  t.false(nn.isParameter(m.plain));
  t.false(m.running_mean.requiresGrad, 'buffers do not require grad');
  t.true(m.scale.requiresGrad);
  // a buffer set to null drops out; a registered name stays a buffer when reassigned
  m.registerBuffer('running_mean', null);
  t.deepEqual(m.namedBuffers().map(([n]) => n), ['table']);
  assertCode(t, () => m.registerBuffer('a.b', ig.zeros([1])), 'ERR_ARG');
  assertCode(t, () => m.registerBuffer('x', 3 as unknown as Tensor), 'ERR_ARG');
  const extra = ig.zeros([1]);
  assertCode(t, () => m.registerBuffer('scale', extra), 'ERR_ARG', /parameter/);
  assertCode(t, () => m.registerBuffer('inner', extra), 'ERR_ARG', /submodule/);
  assertCode(t, () => m.registerBuffer('y', extra, { persistent: 1 as unknown as boolean }), 'ERR_ARG');
  extra.dispose();
  m.dispose();
  m.plain.dispose();
  m.options.weight.dispose();
});

test('parameter(): floating-point only; requiresGrad as asked', (t) => {
  assertCode(t, () => nn.parameter(ig.zeros([2], { dtype: 'int32' })), 'ERR_DTYPE');
  assertCode(t, () => nn.parameter({} as Tensor), 'ERR_ARG');
  const p = nn.parameter(ig.zeros([2]), false);
  t.false(p.requiresGrad);
  t.true(nn.isParameter(p));
  p.dispose();
});

test('tied weights: one parameter under two names counts once, and is in the state dict under both', (t) => {
  const model = new TinyLlama({ ...LLAMA, numLayers: 1 });
  model.lm_head.weight.dispose();
  model.lm_head.weight = model.embed_tokens.weight;
  const names = model.namedParameters().map(([n]) => n);
  t.false(names.includes('lm_head.weight'));
  t.is(names.length, 1 + 9 + 1);
  t.is(model.numParameters(), 11 * 8 + 64 + 32 + 32 + 64 + 3 * 96 + 16 + 8);
  const sd = model.stateDict();
  t.true(sd.has('embed_tokens.weight') && sd.has('lm_head.weight'));
  // a shared submodule is listed once by namedModules, and the state dict has it under both names
  model.layers.push(model.layers[0]);
  t.is(model.namedModules().filter(([, m]) => m === model.layers[0]).length, 1);
  t.true(keysOf(model).includes('layers.1.mlp.up_proj.weight'));
  for (const v of sd.values()) v.dispose();
  model.dispose();
});

test('a module that holds one of its ancestors is rejected when walked', (t) => {
  const model = new TinyLlama({ ...LLAMA, numLayers: 1 });
  (model.layers[0] as unknown as { owner: nn.Module }).owner = model;
  assertCode(t, () => model.namedParameters(), 'ERR_ARG', /layers\.0\.owner/);
  assertCode(t, () => model.stateDict(), 'ERR_ARG');
  delete (model.layers[0] as unknown as { owner?: nn.Module }).owner;
  model.dispose();
});

test('getSubmodule / setSubmodule by path, through arrays', (t) => {
  const model = new TinyLlama(LLAMA);
  t.is(model.getSubmodule('layers.1.mlp.up_proj'), model.layers[1].mlp.up_proj);
  t.is(model.getSubmodule('norm'), model.norm);
  const old = model.layers[1].mlp.up_proj;
  const replacement = new nn.Linear(8, 12, { bias: true });
  model.setSubmodule('layers.1.mlp.up_proj', replacement);
  t.is(model.layers[1].mlp.up_proj, replacement);
  t.true(model.namedParameters().some(([n]) => n === 'layers.1.mlp.up_proj.bias'));
  model.setSubmodule('layers.0', model.layers[1]);
  t.is(model.layers[0], model.layers[1]);
  for (const bad of ['layers.2', 'layers.x', 'layers.0.nothing', 'layers', 'norm.weight', 'cfg', '', 'layers.0.mlp.up_proj.weight.x']) {
    assertCode(t, () => model.getSubmodule(bad), 'ERR_ARG', undefined);
  }
  assertCode(t, () => model.setSubmodule('norm', {} as nn.Module), 'ERR_ARG');
  assertCode(t, () => model.setSubmodule('nope', replacement), 'ERR_ARG');
  old.dispose();
  model.dispose();
});

test('train() / eval() reach every submodule; call() runs forward', (t) => {
  const model = new TinyLlama(LLAMA);
  t.true(model.modules().every((m) => m.training), 'modules start in training mode');
  t.is(model.eval(), model);
  t.true(model.modules().every((m) => !m.training));
  model.layers[1].train();
  t.deepEqual(model.namedModules().filter(([, m]) => m.training).map(([n]) => n).filter((n) => !n.startsWith('layers.1')), []);
  t.true(model.layers[1].mlp.down_proj.training);
  model.train(true);
  t.true(model.modules().every((m) => m.training));
  assertCode(t, () => model.train('no' as unknown as boolean), 'ERR_ARG');
  const lin = new nn.Linear(3, 2);
  const x = ig.ones([1, 3]);
  const [a, b] = [lin.call(x), lin.forward(x)];
  t.deepEqual(a.toArray(), b.toArray());
  for (const u of [a, b, x]) u.dispose();
  lin.dispose();
  model.dispose();
});

test('apply() visits children before their parent, each module once per path', (t) => {
  const model = new TinyLlama({ ...LLAMA, numLayers: 1 });
  const names = new Map(model.namedModules().map(([n, m]) => [m, n]));
  const visited: string[] = [];
  t.is(model.apply((m) => visited.push(names.get(m) as string)), model);
  t.deepEqual(visited, [
    'embed_tokens',
    'layers.0.self_attn.q_proj', 'layers.0.self_attn.k_proj', 'layers.0.self_attn.v_proj', 'layers.0.self_attn.o_proj', 'layers.0.self_attn',
    'layers.0.mlp.gate_proj', 'layers.0.mlp.up_proj', 'layers.0.mlp.down_proj', 'layers.0.mlp',
    'layers.0.input_layernorm', 'layers.0.post_attention_layernorm', 'layers.0',
    'norm', 'lm_head', 'rotary_emb', '',
  ]);
  // freezing every Linear through apply
  model.apply((m) => {
    if (m instanceof nn.Linear) m.requiresGrad_(false);
  });
  t.deepEqual(model.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n),
    ['embed_tokens.weight', 'layers.0.input_layernorm.weight', 'layers.0.post_attention_layernorm.weight', 'norm.weight']);
  model.dispose();
});

test('requiresGrad_(false) freezes every parameter; numParameters({ trainableOnly })', (t) => {
  const model = new TinyLlama(LLAMA);
  const total = model.numParameters();
  t.true(model.parameters().every((p) => p.requiresGrad), 'parameters require grad');
  t.is(model.numParameters({ trainableOnly: true }), total);
  t.is(model.requiresGrad_(false), model);
  t.true(model.parameters().every((p) => !p.requiresGrad));
  t.is(model.numParameters({ trainableOnly: true }), 0);
  t.is(model.numParameters(), total);
  model.layers[1].self_attn.requiresGrad_();
  const trainable = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n);
  t.deepEqual(trainable, llamaLayerNames(1).slice(0, 4));
  t.is(model.numParameters({ trainableOnly: true }), 64 + 32 + 32 + 64);
  assertCode(t, () => model.requiresGrad_(1 as unknown as boolean), 'ERR_ARG');
  model.dispose();
});

test('stateDict round trip into a fresh model: same outputs; the parameters stay the same objects', (t) => {
  ig.manualSeed(1);
  const a = new SmallEncoder();
  ig.manualSeed(2);
  const b = new SmallEncoder();
  const x = ids(2, 6, a.vocab);
  const [ya, yb0] = [a.call(x), b.call(x)];
  t.notDeepEqual(ya.toArray(), yb0.toArray(), 'different seeds give different models');
  const objects = b.parameters();
  const sd = a.stateDict();
  t.deepEqual(b.loadStateDict(sd), { missingKeys: [], unexpectedKeys: [] });
  t.true(b.parameters().every((p, i) => p === objects[i]));
  t.deepEqual(snapshot(b), snapshot(a));
  const yb = b.call(x);
  t.deepEqual(Array.from(yb.data() as Float32Array), Array.from(ya.data() as Float32Array), 'outputs equal');
  // the state dict aliases the parameters: a later load into `a` shows through it
  const key = 'blocks.1.attn.o_proj.weight';
  const quarter = ig.full(sd.get(key)!.shape.slice(), 0.25);
  a.loadStateDict({ [key]: quarter }, { strict: false });
  t.true(refOf(sd.get(key)!).data.every((v) => v === 0.25));
  quarter.dispose();
  // disposing the state dict frees none of the model's tensors
  for (const v of sd.values()) v.dispose();
  t.false(a.parameters().some((p) => p.isDisposed));
  for (const u of [x, ya, yb0, yb]) u.dispose();
  a.dispose();
  b.dispose();
});

test('tidy(): a model built inside survives; a forward inside leaves nothing behind; state dict aliases are collected', (t) => {
  const before = live();
  const model = ig.tidy(() => new SmallEncoder());
  t.false(model.parameters().some((p) => p.isDisposed), 'the parameters outlive the tidy that built them');
  t.false(model.buffers().some((p) => p.isDisposed));
  const x = ids(1, 5, model.vocab);
  ig.noGrad(() => model.call(x)).dispose(); // grows the rotary tables once
  const level = live();
  ig.tidy(() => {
    model.call(x);
    model.stateDict();
  });
  t.is(live(), level, 'nothing left by the forward or the state dict');
  // (a recorded forward also keeps the graph its output needs for backward)
  const y = ig.noGrad(() => model.call(x));
  t.is(live(), level + 1, 'a forward outside tidy, without recording, leaves only its output');
  y.dispose();
  x.dispose();
  model.dispose();
  t.is(live(), before, 'dispose() freed every parameter and buffer');
  t.true(model.parameters().every((p) => p.isDisposed));
});

test('using: a module is disposed at the end of its scope', (t) => {
  const before = live();
  let params: Tensor[];
  {
    using lin = new nn.Linear(4, 4);
    params = lin.parameters();
  }
  t.true(params.every((p) => p.isDisposed));
  t.is(live(), before);
});

/** A model, a state dict for it whose every value differs from the model's, and the model's values. */
function loadCase() {
  ig.manualSeed(3);
  const model = new SmallEncoder();
  const sd = new Map(model.namedParameters().map(([n, p]) => [n, ig.randLike(p)]));
  return { model, sd, values: snapshot(model) };
}

function cleanup(model: nn.Module, sd: Map<string, Tensor>): void {
  for (const v of sd.values()) v.dispose();
  model.dispose();
}

test('loadStateDict: a missing key, an unexpected key: ERR_ARG naming them; nothing changed', (t) => {
  const { model, sd, values } = loadCase();
  const missing = new Map(sd);
  missing.delete('blocks.0.attn.k_proj.weight');
  assertCode(t, () => model.loadStateDict(missing), 'ERR_ARG', /missing keys: blocks\.0\.attn\.k_proj\.weight/);
  t.deepEqual(snapshot(model), values);
  const extra = new Map(sd);
  const stray = ig.zeros([2]);
  extra.set('blocks.0.attn.rotary.inv_freq', stray);
  assertCode(t, () => model.loadStateDict(extra), 'ERR_ARG', /unexpected keys: blocks\.0\.attn\.rotary\.inv_freq/);
  t.deepEqual(snapshot(model), values);
  stray.dispose();
  cleanup(model, sd);
});

test('loadStateDict: a wrong shape: ERR_SHAPE; a wrong dtype: ERR_DTYPE; nothing changed', (t) => {
  const { model, sd, values } = loadCase();
  const key = 'head.weight';
  const right = sd.get(key)!;
  const wrongShape = ig.zeros([right.shape[1], right.shape[0]]);
  sd.set(key, wrongShape);
  assertCode(t, () => model.loadStateDict(sd), 'ERR_SHAPE', /head\.weight.*\[16, 5\].*\[5, 16\]/);
  assertCode(t, () => model.loadStateDict(sd, { strict: false }), 'ERR_SHAPE');
  t.deepEqual(snapshot(model), values);
  const wrongDtype = right.to('float64');
  sd.set(key, wrongDtype);
  assertCode(t, () => model.loadStateDict(sd), 'ERR_DTYPE', /head\.weight.*float64.*float32/);
  t.deepEqual(snapshot(model), values);
  sd.set(key, right);
  wrongShape.dispose();
  wrongDtype.dispose();
  cleanup(model, sd);
});

test('loadStateDict: bad values and containers; disposed tensors; nothing changed', (t) => {
  const { model, sd, values } = loadCase();
  const key = 'embed.weight';
  const right = sd.get(key)!;
  assertCode(t, () => model.loadStateDict(new Map([...sd, [key, [1, 2] as unknown as Tensor]])), 'ERR_ARG', /embed\.weight/);
  assertCode(t, () => model.loadStateDict(null as unknown as Map<string, Tensor>), 'ERR_ARG');
  assertCode(t, () => model.loadStateDict([] as unknown as Map<string, Tensor>), 'ERR_ARG');
  assertCode(t, () => model.loadStateDict(sd, { strict: 'yes' as unknown as boolean }), 'ERR_ARG');
  const gone = right.clone();
  gone.dispose();
  assertCode(t, () => model.loadStateDict(new Map([...sd, [key, gone]])), 'ERR_DISPOSED');
  t.deepEqual(snapshot(model), values);
  // a plain object works as well as a Map
  t.deepEqual(model.loadStateDict(Object.fromEntries(sd)), { missingKeys: [], unexpectedKeys: [] });
  t.deepEqual(refOf(model.embed.weight).data, refOf(right).data);
  cleanup(model, sd);
});

test('loadStateDict: strict = false loads what matches and reports the rest', (t) => {
  const { model, sd, values } = loadCase();
  const partial = new Map([...sd].filter(([n]) => n.startsWith('blocks.1.')));
  const stray = ig.zeros([3]);
  partial.set('lm_head.weight', stray);
  const result = model.loadStateDict(partial, { strict: false });
  t.deepEqual(result.unexpectedKeys, ['lm_head.weight']);
  t.deepEqual(result.missingKeys, values.map(([n]) => n).filter((n) => !n.startsWith('blocks.1.')));
  const now = new Map(snapshot(model));
  for (const [name, v] of values) {
    if (name.startsWith('blocks.1.')) t.deepEqual(now.get(name), Array.from(refOf(sd.get(name)!).data), name);
    else t.deepEqual(now.get(name), v, name);
  }
  stray.dispose();
  cleanup(model, sd);
});

test('loadStateDict loads persistent buffers and checks them too', (t) => {
  class WithStats extends nn.Module {
    lin = new nn.Linear(2, 2);
    constructor() {
      super();
      this.registerBuffer('running_mean', ig.zeros([2]));
    }
    forward(x: Tensor): Tensor {
      return this.lin.call(x);
    }
  }
  const m = new WithStats();
  const sd = m.stateDict();
  t.deepEqual([...sd.keys()], ['running_mean', 'lin.weight', 'lin.bias']);
  const stats = ig.tensor([1.5, -2]);
  m.loadStateDict(new Map([...sd, ['running_mean', stats]]));
  t.deepEqual((m as unknown as { running_mean: Tensor }).running_mean.toArray(), [1.5, -2]);
  const bad = ig.zeros([3]);
  assertCode(t, () => m.loadStateDict(new Map([...sd, ['running_mean', bad]])), 'ERR_SHAPE', /running_mean/);
  for (const v of [...sd.values(), stats, bad]) v.dispose();
  m.dispose();
});

test('a disposed model: ERR_DISPOSED from forward, stateDict and loadStateDict', (t) => {
  const lin = new nn.Linear(2, 2);
  const sd = lin.stateDict();
  const x = ig.ones([2]);
  lin.dispose();
  assertCode(t, () => lin.call(x), 'ERR_DISPOSED');
  const level = live();
  assertCode(t, () => lin.stateDict(), 'ERR_DISPOSED');
  t.is(live(), level, 'a failed stateDict leaves no aliases behind');
  assertCode(t, () => lin.loadStateDict(sd), 'ERR_DISPOSED');
  for (const v of [...sd.values(), x]) v.dispose();
});

test('backward reaches every trainable parameter of a model (float64 gradients checked by finite differences); frozen ones get none', (t) => {
  ig.manualSeed(5);
  const model = new TinyLlama({ ...LLAMA, dtype: 'float64' });
  const x = ids(2, 5, LLAMA.vocabSize);
  const target = ids(2, 5, LLAMA.vocabSize);
  const loss = () => ig.crossEntropy(model.call(x).view(10, LLAMA.vocabSize), target.view(10));
  const frozen = new Set(['embed_tokens.weight', ...llamaLayerNames(0)]);
  model.embed_tokens.requiresGrad_(false);
  model.layers[0].requiresGrad_(false);
  ig.tidy(() => loss().backward());
  for (const [name, p] of model.namedParameters()) {
    if (frozen.has(name)) {
      t.is(p.grad, null, `${name} is frozen`);
    } else {
      t.deepEqual([p.grad?.shape, p.grad?.dtype], [p.shape, 'float64'], name);
      t.true(refOf(p.grad!).data.some((v) => v !== 0), `${name} gets a non-zero gradient`);
    }
  }
  // the gradients of a few parameters (one of each kind) against finite differences
  for (const name of ['layers.1.self_attn.q_proj.weight', 'layers.1.mlp.down_proj.weight', 'layers.1.input_layernorm.weight', 'norm.weight']) {
    const p = model.getSubmodule(name.slice(0, name.lastIndexOf('.'))) as nn.Module & Record<string, Tensor>;
    const original = p.weight;
    t.true(
      ig.gradcheck((w) => {
        p.weight = w;
        try {
          return loss();
        } finally {
          p.weight = original;
        }
      }, [original]),
      name,
    );
  }
  for (const u of [x, target]) u.dispose();
  model.dispose();
});

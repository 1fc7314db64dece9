/**
 * LlamaModel / LlamaForCausalLM: Hugging Face's parameter names, logits and loss against a
 * float64 reference written from transformers' formulas, tied heads, and checkpoint folders
 * (single file, sharded, dtypes) with every refusal checked before anything is loaded.
 */
import test from 'ava';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as ig from '../../lib';
import { LlamaForCausalLM, Tensor, io } from '../../lib';
import { Ref, Rng, assertClose, assertCode, refOf, tempDir } from '../helpers';
import { randomizeParameters } from './models';
import { AttentionWeights, refAdd, refAttention, refLinear, refRmsNorm, refSwiGLU } from './reference';

const TINY: io.LlamaConfigInput = { vocabSize: 13, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, rmsNormEps: 1e-5, ropeTheta: 500 };

function tinyModel(rng: Rng, config: Partial<io.LlamaConfigInput> = {}, dtype: ig.DType = 'float64'): LlamaForCausalLM {
  const m = new LlamaForCausalLM({ ...TINY, ...config }, { dtype });
  randomizeParameters(m, rng, -0.5, 0.5);
  return m;
}

function ids(rows: number[][]): Tensor {
  return ig.tensor(rows, { dtype: 'int64' });
}

function randomIds(rng: Rng, batch: number, seq: number, vocab: number): number[][] {
  return Array.from({ length: batch }, () => Array.from({ length: seq }, () => rng.int(0, vocab - 1)));
}

/**
 * transformers' LlamaForCausalLM in float64: embedding rows, per layer
 * x + attn(rmsnorm(x)) then x + mlp(rmsnorm(x)), the final norm and the head. The rotary tables
 * (checked against transformers' formula in the attention tests) and the mask are given.
 */
function refLogits(m: LlamaForCausalLM, tokens: number[][], cos: Ref, sin: Ref, mask: ((b: number, h: number, i: number, j: number) => number) | null): Ref {
  const c = m.config;
  const params = new Map(m.namedParameters().map(([n, p]) => [n, refOf(p)]));
  const w = (name: string) => params.get(name)!;
  const [B, L, H] = [tokens.length, tokens[0].length, c.hiddenSize];
  const emb = w('model.embed_tokens.weight');
  let x: Ref = { shape: [B, L, H], data: Float64Array.from({ length: B * L * H }, (_, k) => emb.data[tokens[Math.floor(k / (L * H))][Math.floor(k / H) % L] * H + (k % H)]) };
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `model.layers.${l}`;
    const proj = (n: string) => w(`${p}.self_attn.${n}_proj.weight`);
    const bias = (n: string) => params.get(`${p}.self_attn.${n}_proj.bias`) ?? null;
    const weights: AttentionWeights = { q: proj('q'), k: proj('k'), v: proj('v'), o: proj('o'), qb: bias('q'), kb: bias('k'), vb: bias('v'), ob: bias('o') };
    const shape = { heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim };
    x = refAdd(x, refAttention(refRmsNorm(x, w(`${p}.input_layernorm.weight`), c.rmsNormEps), weights, shape, cos, sin, mask));
    const mlp = (n: string) => w(`${p}.mlp.${n}_proj.weight`);
    x = refAdd(x, refSwiGLU(refRmsNorm(x, w(`${p}.post_attention_layernorm.weight`), c.rmsNormEps), mlp('gate'), mlp('up'), mlp('down')));
  }
  return refLinear(refRmsNorm(x, w('model.norm.weight'), c.rmsNormEps), c.tieWordEmbeddings ? emb : w('lm_head.weight'));
}

/** The rotary tables of `positions` [B][L] from the model's embedding, as [B, L, headDim] references. */
function ropeRefs(m: LlamaForCausalLM, positions: number[][]): { cos: Ref; sin: Ref } {
  return ig.tidy(() => {
    const pe = m.model.rotary_emb.call(ids(positions), 'float64');
    return { cos: refOf(pe.cos), sin: refOf(pe.sin) };
  });
}

/** transformers' causal-LM loss in float64: logits[b, i] against labels[b, i + 1], -100 ignored, mean over the counted. */
function refLoss(logits: Ref, labels: number[][]): number {
  const [B, L, V] = logits.shape;
  let total = 0;
  let count = 0;
  for (let b = 0; b < B; b++) {
    for (let i = 0; i + 1 < L; i++) {
      const target = labels[b][i + 1];
      if (target === -100) continue;
      const row = logits.data.subarray((b * L + i) * V, (b * L + i + 1) * V);
      const top = Math.max(...row);
      const lse = top + Math.log(row.reduce((s, v) => s + Math.exp(v - top), 0));
      total += lse - row[target];
      count++;
    }
  }
  return total / count;
}

const TOL: [number, number] = [1e-10, 1e-12];

test("parameters are named and shaped as transformers' LlamaForCausalLM", (t) => {
  const m = new LlamaForCausalLM({ ...TINY, numHiddenLayers: 1, attentionBias: true, mlpBias: true, headDim: 6 });
  const names = m.namedParameters().map(([n, p]) => `${n} [${p.shape.join(', ')}]`);
  t.deepEqual(names, [
    'model.embed_tokens.weight [13, 16]',
    'model.layers.0.self_attn.q_proj.weight [24, 16]',
    'model.layers.0.self_attn.q_proj.bias [24]',
    'model.layers.0.self_attn.k_proj.weight [12, 16]',
    'model.layers.0.self_attn.k_proj.bias [12]',
    'model.layers.0.self_attn.v_proj.weight [12, 16]',
    'model.layers.0.self_attn.v_proj.bias [12]',
    'model.layers.0.self_attn.o_proj.weight [16, 24]',
    'model.layers.0.self_attn.o_proj.bias [16]',
    'model.layers.0.mlp.gate_proj.weight [24, 16]',
    'model.layers.0.mlp.gate_proj.bias [24]',
    'model.layers.0.mlp.up_proj.weight [24, 16]',
    'model.layers.0.mlp.up_proj.bias [24]',
    'model.layers.0.mlp.down_proj.weight [16, 24]',
    'model.layers.0.mlp.down_proj.bias [16]',
    'model.layers.0.input_layernorm.weight [16]',
    'model.layers.0.post_attention_layernorm.weight [16]',
    'model.norm.weight [16]',
    'lm_head.weight [13, 16]',
  ]);
  t.deepEqual(m.namedBuffers().map(([n]) => n), [], 'no buffer until the rotary tables are built, and they are not persistent');
  m.dispose();
});

test('logits and loss match a float64 reference (GQA, biases, padding mask, positions, ignored labels)', (t) => {
  const rng = new Rng(1);
  for (const config of [{}, { attentionBias: true, headDim: 6, numKeyValueHeads: 1 }, { tieWordEmbeddings: true, numKeyValueHeads: 4 }]) {
    const m = tinyModel(rng, config);
    const [B, L] = [2, 5];
    const tokens = randomIds(rng, B, L, 13);
    const labels = tokens.map((row) => row.map((v) => (rng.next() < 0.3 ? -100 : v)));
    labels[0][1] = 7;
    const out = m.call(ids(tokens), { labels: ids(labels) });
    const { cos, sin } = ropeRefs(m, [0, 1].map(() => [0, 1, 2, 3, 4]));
    const expected = refLogits(m, tokens, cos, sin, null);
    assertClose(t, out.logits, expected, TOL, `logits ${JSON.stringify(config)}`);
    t.is(out.loss!.dtype, 'float64');
    t.true(Math.abs(out.loss!.item() - refLoss(expected, labels)) < 1e-10, `loss ${JSON.stringify(config)}`);
    const before = ig.memory();
    ig.tidy(() => m.call(ids(tokens), { labels: ids(labels) }).loss!.backward());
    ig.tidy(() => {
      m.call(ids(tokens), { attentionMask: ids(tokens.map((r) => r.map(() => 1))) });
    });
    t.like(ig.memory(), { tensors: before.tensors + m.parameters().length, views: before.views + m.parameters().length }, 'a step in tidy() leaves the gradients only');
    for (const p of m.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }

    // left padding on row 1 and per-row positions
    const keep = [[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]];
    const positions = [[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]];
    const padded = m.call(ids(tokens), { attentionMask: ids(keep), positionIds: ids(positions) });
    const rope = ropeRefs(m, positions);
    const mask = (b: number, _h: number, i: number, j: number) => (j <= i && keep[b][j] === 1 ? 0 : -Number.MAX_VALUE);
    assertClose(t, padded.logits, refLogits(m, tokens, rope.cos, rope.sin, mask), TOL, `padding ${JSON.stringify(config)}`);
    t.is(padded.loss, null);
    m.dispose();
  }
});

test('float32 and bfloat16 models follow the float64 one; the loss is float32', (t) => {
  const rng = new Rng(2);
  const m64 = tinyModel(rng);
  const tokens = randomIds(rng, 2, 6, 13);
  const ref = ig.tidy(() => refOf(m64.call(ids(tokens)).logits));
  for (const [dtype, tol] of [['float32', [1e-4, 1e-4]], ['bfloat16', [0.1, 0.1]]] as [ig.DType, [number, number]][]) {
    const m = new LlamaForCausalLM(TINY, { dtype });
    ig.tidy(() => m.loadStateDict(new Map([...m64.stateDict()].map(([n, p]) => [n, p.to(dtype)]))));
    ig.tidy(() => {
      const out = m.call(ids(tokens), { labels: ids(tokens) });
      t.is(out.logits.dtype, dtype);
      t.is(out.loss!.dtype, 'float32');
      assertClose(t, out.logits, ref, tol, dtype);
    });
    m.dispose();
  }
  m64.dispose();
});

test('a tied head is the embedding tensor itself: one parameter, one gradient', (t) => {
  const rng = new Rng(3);
  const m = tinyModel(rng, { tieWordEmbeddings: true }, 'float32');
  t.is(m.lm_head.weight, m.model.embed_tokens.weight);
  t.false(m.namedParameters().some(([n]) => n === 'lm_head.weight'));
  t.is(m.numParameters(), new LlamaForCausalLM({ ...TINY, tieWordEmbeddings: false }).numParameters() - 13 * 16);
  t.true(m.stateDict().has('lm_head.weight'), 'the state dict lists both names, as PyTorch');
  const tokens = ids(randomIds(rng, 1, 4, 13));
  ig.tidy(() => m.call(tokens, { labels: tokens }).loss!.backward());
  const grad = m.model.embed_tokens.weight.grad!;
  t.truthy(grad);
  // the gradient holds the head's part too: rows of tokens never seen as inputs still move
  const seen = new Set((tokens.toArray() as number[][])[0]);
  const rows = grad.toArray() as number[][];
  t.true(rows.some((row, v) => !seen.has(v) && row.some((g) => g !== 0)));
  m.dispose();
});

test('bad inputs', (t) => {
  const m = tinyModel(new Rng(4), {}, 'float32');
  assertCode(t, () => m.call(ig.tensor([[1, 2]])), 'ERR_DTYPE', /inputIds must be int32 or int64/);
  assertCode(t, () => m.call(ids([[1, 2]]).view(2)), 'ERR_SHAPE', /inputIds must be \[batch, seq\]/);
  assertCode(t, () => m.call(ids([[1, 13]])), 'ERR_INDEX');
  assertCode(t, () => m.call(ids([[1, 2]]), { labels: ids([[1, 2, 3]]) }), 'ERR_SHAPE', /labels must have the shape of inputIds/);
  assertCode(t, () => m.call(ids([[1, 2]]), { attentionMask: ids([[1]]) }), 'ERR_SHAPE', /attentionMask must be \[1, 2\]/);
  assertCode(t, () => m.call(ids([[1, 2]]), { positionIds: ids([[0, 1, 2]]) }), 'ERR_SHAPE', /positionIds must be/);
  assertCode(t, () => new LlamaForCausalLM({ ...TINY, numKeyValueHeads: 3 }), 'ERR_ARG');
  m.dispose();
});

// ---------------------------------------------------------------------------------------------
// Checkpoint folders

/** Every parameter's values by name. */
function weights(m: LlamaForCausalLM): Map<string, number[]> {
  return new Map(m.namedParameters().map(([n, p]) => [n, Array.from(refOf(p).data)]));
}

test('save and load round trips: untied and tied heads, logits bit for bit, files as transformers writes them', (t) => {
  const rng = new Rng(5);
  for (const tie of [false, true]) {
    const dir = tempDir(t);
    const m = tinyModel(rng, { tieWordEmbeddings: tie }, 'float32');
    m.savePretrained(dir);
    t.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
    const header = io.readSafetensorsHeader(path.join(dir, 'model.safetensors'));
    t.deepEqual(header.metadata, { format: 'pt' });
    t.deepEqual([...header.entries.keys()].sort(), m.namedParameters().map(([n]) => n).sort());
    t.is(header.entries.has('lm_head.weight'), !tie, 'a tied head is saved once, as the embedding');
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    t.like(config, { model_type: 'llama', architectures: ['LlamaForCausalLM'], tie_word_embeddings: tie, torch_dtype: 'float32', num_key_value_heads: 2, rope_theta: 500 });

    const state = ig.getRngState();
    const back = LlamaForCausalLM.fromPretrained(dir);
    t.deepEqual(ig.getRngState(), state, 'loading draws nothing from the global generator');
    t.false(back.training, 'loaded in evaluation mode');
    t.deepEqual(back.config, { ...m.config, torchDtype: 'float32' }, 'the config, with the dtype of the saved weights');
    t.is(back.lm_head.weight === back.model.embed_tokens.weight, tie);
    t.deepEqual(weights(back), weights(m));
    const tokens = ids(randomIds(rng, 2, 5, 13));
    ig.tidy(() => t.deepEqual(back.call(tokens).logits.data(), m.call(tokens).logits.data()));
    m.dispose();
    back.dispose();
  }
});

test('dtypes: saved in bfloat16, loaded as the config says or as asked', (t) => {
  const dir = tempDir(t);
  const m = tinyModel(new Rng(6), {}, 'float32');
  m.savePretrained(dir, { dtype: 'bfloat16' });
  t.is(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
  t.is(io.readSafetensorsHeader(path.join(dir, 'model.safetensors')).entries.get('model.norm.weight')!.dtype, 'bfloat16');
  const auto = LlamaForCausalLM.fromPretrained(dir, { dtype: 'auto' });
  t.is(auto.model.layers[1].mlp.up_proj.weight.dtype, 'bfloat16');
  const wide = LlamaForCausalLM.fromPretrained(dir);
  t.is(wide.model.layers[1].mlp.up_proj.weight.dtype, 'float32', 'float32 by default, as transformers');
  const expected = ig.tidy(() => refOf(m.model.embed_tokens.weight.to('bfloat16')));
  assertClose(t, wide.model.embed_tokens.weight, expected, [0, 0]);
  for (const x of [m, auto, wide]) x.dispose();
});

test('sharded save and load: index, shard names, stale files removed', (t) => {
  const dir = tempDir(t);
  const rng = new Rng(7);
  const m = tinyModel(rng, {}, 'float32');
  const params = m.namedParameters();
  const total = params.reduce((s, [, p]) => s + 4 * p.numel, 0);
  m.savePretrained(dir, { maxShardSize: 2000 });
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
  t.is(index.metadata.total_size, total);
  t.deepEqual(Object.keys(index.weight_map), params.map(([n]) => n).sort(), 'every tensor, names sorted');
  const shards = [...new Set(Object.values(index.weight_map) as string[])].sort();
  t.true(shards.length > 2);
  shards.forEach((s, i) => t.is(s, `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`));
  for (const s of shards) {
    const bytes = [...io.readSafetensorsHeader(path.join(dir, s)).entries.values()].reduce((a, e) => a + e.dataOffsets[1] - e.dataOffsets[0], 0);
    const alone = [...io.readSafetensorsHeader(path.join(dir, s)).entries.keys()].length === 1;
    t.true(bytes <= 2000 || alone, `${s} holds ${bytes} bytes`);
  }
  // the greedy grouping in model order: a shard closes when the next tensor would overflow it
  const order = params.map(([n]) => index.weight_map[n]);
  t.deepEqual(order, order.slice().sort(), 'shards follow the model order');
  t.false(fs.existsSync(path.join(dir, 'model.safetensors')));
  const back = LlamaForCausalLM.fromPretrained(dir);
  t.deepEqual(weights(back), weights(m));
  back.dispose();
  // a size as a string, then one file again: the shards and the index go
  m.savePretrained(dir, { maxShardSize: '3KB' });
  t.true(fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).length > 1);
  m.savePretrained(dir);
  t.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
  for (const bad of [0, -5, '5 parsecs', '']) assertCode(t, () => m.savePretrained(dir, { maxShardSize: bad }), 'ERR_ARG');
  m.dispose();
});

/** Rewrites the checkpoint's only weight file with `edit` applied to its tensors. */
function editWeights(dir: string, edit: (tensors: Map<string, Tensor>) => void): void {
  const file = path.join(dir, 'model.safetensors');
  const { tensors } = io.readSafetensors(file);
  edit(tensors);
  io.writeSafetensors(file, tensors, { format: 'pt' });
  for (const x of tensors.values()) x.dispose();
}

test('refused checkpoints name the problem, load nothing and leak nothing', (t) => {
  const rng = new Rng(8);
  const m = tinyModel(rng, {}, 'float32');
  const base = tempDir(t);
  const fresh = (name: string) => {
    const dir = path.join(base, name);
    m.savePretrained(dir);
    return dir;
  };
  const check = (dir: string, code: ig.ErrorCode, message: RegExp) => {
    const before = ig.memory();
    const state = ig.getRngState();
    assertCode(t, () => LlamaForCausalLM.fromPretrained(dir), code, message);
    t.deepEqual(ig.memory(), before, `nothing left behind: ${message}`);
    t.deepEqual(ig.getRngState(), state);
  };
  check(path.join(base, 'nowhere'), 'ERR_IO', /folder .*nowhere does not exist/);
  const noConfig = fresh('no-config');
  fs.rmSync(path.join(noConfig, 'config.json'));
  check(noConfig, 'ERR_IO', /cannot read .*no-config\/config\.json/);
  const noWeights = fresh('no-weights');
  fs.rmSync(path.join(noWeights, 'model.safetensors'));
  check(noWeights, 'ERR_IO', /no model\.safetensors or model\.safetensors\.index\.json in .*no-weights/);
  fs.writeFileSync(path.join(noWeights, 'pytorch_model.bin'), 'pickle');
  check(noWeights, 'ERR_IO', /found pytorch_model\.bin: only safetensors weights are read/);

  // a config that disagrees with the weights
  const wider = fresh('wider');
  const cfg = JSON.parse(fs.readFileSync(path.join(wider, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(wider, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 32 }));
  check(wider, 'ERR_SHAPE', /'model\.layers\.0\.mlp\.gate_proj\.weight' \(file \[24, 16\], the config needs \[32, 16\]\)/);
  const deeper = fresh('deeper');
  fs.writeFileSync(path.join(deeper, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 3 }));
  check(deeper, 'ERR_IO', /missing tensors: model\.layers\.2\.self_attn\.q_proj\.weight, .*nothing was loaded/);
  const tied = fresh('tied-config');
  fs.writeFileSync(path.join(tied, 'config.json'), JSON.stringify({ ...cfg, tie_word_embeddings: true }));
  const loaded = LlamaForCausalLM.fromPretrained(tied);
  t.is(loaded.lm_head.weight, loaded.model.embed_tokens.weight, 'a tied config may meet a file that still holds lm_head.weight');
  loaded.dispose();

  // tensors added, removed or of the wrong kind
  const extra = fresh('extra');
  editWeights(extra, (ts) => ts.set('model.layers.0.self_attn.q_proj.lora_A.weight', ig.zeros([2, 16])));
  check(extra, 'ERR_IO', /unexpected tensors: model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight/);
  const missing = fresh('missing');
  editWeights(missing, (ts) => {
    ts.get('model.norm.weight')!.dispose();
    ts.delete('model.norm.weight');
  });
  check(missing, 'ERR_IO', /missing tensors: model\.norm\.weight/);
  const ints = fresh('ints');
  editWeights(ints, (ts) => ts.set('model.norm.weight', ig.zeros([16], { dtype: 'int32' })));
  check(ints, 'ERR_IO', /must be floating-point: 'model\.norm\.weight' \(int32\)/);
  const oldRope = fresh('old-rope');
  editWeights(oldRope, (ts) => ts.set('model.layers.0.self_attn.rotary_emb.inv_freq', ig.zeros([2])));
  const withRope = LlamaForCausalLM.fromPretrained(oldRope);
  t.pass('old checkpoints with rotary inv_freq buffers load');
  withRope.dispose();

  // sharded checkpoints whose index does not match its shards
  const sharded = path.join(base, 'sharded');
  m.savePretrained(sharded, { maxShardSize: 2000 });
  const indexFile = path.join(sharded, 'model.safetensors.index.json');
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
  const first = index.weight_map['model.embed_tokens.weight'];
  fs.writeFileSync(indexFile, JSON.stringify({ ...index, weight_map: { ...index.weight_map, 'model.norm.weight': first } }));
  check(sharded, 'ERR_IO', new RegExp(`puts tensor 'model\\.norm\\.weight' in ${first.replace(/\./g, '\\.')}, but it is in model-`));
  fs.writeFileSync(indexFile, JSON.stringify({ ...index, weight_map: { ...index.weight_map, 'model.norm.weight': 'gone.safetensors' } }));
  check(sharded, 'ERR_IO', /shard \(listed in model\.safetensors\.index\.json\) .*gone\.safetensors does not exist/);
  fs.writeFileSync(indexFile, JSON.stringify({ ...index, weight_map: { ...index.weight_map, 'model.norm.weight': '../x.safetensors' } }));
  check(sharded, 'ERR_IO', /names "\.\.\/x\.safetensors", which is not a file name/);
  fs.writeFileSync(indexFile, '{"metadata": {}}');
  check(sharded, 'ERR_IO', /must hold a weight_map/);
  m.dispose();
});

test('savePretrained refuses a model with LoRA layers', (t) => {
  const m = tinyModel(new Rng(9), {}, 'float32');
  ig.applyLora(m, { r: 2, targetModules: ['q_proj'] });
  assertCode(t, () => m.savePretrained(tempDir(t)), 'ERR_ARG', /q_proj\.base_layer\.weight.* are not LLaMA's; merge LoRA adapters first/);
  m.dispose();
});

// ---------------------------------------------------------------------------------------------
// transformers itself

const PYTHON = process.env.IGNIS_BENCH_TORCH_PYTHON || '/usr/bin/python3';
const hasTransformers = spawnSync(PYTHON, ['-c', 'import transformers, torch'], { encoding: 'utf8' }).status === 0;

const HF_PEER = `
import json, sys, torch
from transformers import LlamaForCausalLM
ours, theirs, tokens = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ids = torch.tensor(tokens)
model = LlamaForCausalLM.from_pretrained(ours, torch_dtype=torch.float32).eval()
with torch.no_grad():
    out = model(ids, labels=ids)
torch.manual_seed(0)
mine = LlamaForCausalLM(model.config).eval()
mine.save_pretrained(theirs)
with torch.no_grad():
    mine_out = mine(ids)
json.dump({'logits': out.logits.flatten().tolist(), 'loss': out.loss.item(), 'theirs': mine_out.logits.flatten().tolist()}, sys.stdout)
`;

(hasTransformers ? test : test.skip)(
  hasTransformers ? 'logits and loss match transformers both ways' : `logits and loss match transformers (skipped: ${PYTHON} cannot import transformers)`,
  (t) => {
    const dir = tempDir(t);
    const rng = new Rng(10);
    const m = tinyModel(rng, { tieWordEmbeddings: false }, 'float32');
    m.savePretrained(path.join(dir, 'ours'));
    const tokens = randomIds(rng, 2, 6, 13);
    const res = spawnSync(PYTHON, ['-c', HF_PEER, path.join(dir, 'ours'), path.join(dir, 'theirs'), JSON.stringify(tokens)], { encoding: 'utf8', maxBuffer: 64 << 20 });
    t.is(res.status, 0, res.stderr);
    const hf = JSON.parse(res.stdout) as { logits: number[]; loss: number; theirs: number[] };
    const shape = [2, 6, 13];
    ig.tidy(() => {
      const out = m.call(ids(tokens), { labels: ids(tokens) });
      assertClose(t, out.logits, { shape, data: Float64Array.from(hf.logits) }, [1e-4, 1e-5], 'ignis vs transformers');
      t.true(Math.abs(out.loss!.item() - hf.loss) < 1e-5);
      const theirs = LlamaForCausalLM.fromPretrained(path.join(dir, 'theirs'));
      assertClose(t, theirs.call(ids(tokens)).logits, { shape, data: Float64Array.from(hf.theirs) }, [1e-4, 1e-5], 'a model saved by transformers');
      theirs.dispose();
    });
    m.dispose();
  },
);

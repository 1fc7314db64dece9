/**
 * PEFT adapter files: the exact file names, keys and config PEFT writes, save/load round trips,
 * adapters that do not fit refused with the model unchanged, files written by PEFT's rules by
 * hand, and merging into a model that saves as transformers loads it.
 */
import test from 'ava';
import * as fs from 'fs';
import * as path from 'path';
import * as ig from '../../lib';
import { LlamaForCausalLM, LoraLinear, Tensor, io, lora } from '../../lib';
import { Rng, assertClose, assertCode, randomTensor, tempDir } from '../helpers';
import { randomizeParameters, snapshot } from '../nn/models';

const TINY: io.LlamaConfigInput = { vocabSize: 17, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 };

/** A tiny LLaMA saved to `dir` (so that fresh copies of the same base can be loaded). */
function baseModel(rng: Rng, dir: string, config: Partial<io.LlamaConfigInput> = {}): LlamaForCausalLM {
  const m = new LlamaForCausalLM({ ...TINY, ...config });
  randomizeParameters(m, rng, -0.5, 0.5);
  m.savePretrained(dir);
  return m;
}

/** Gives every adapter matrix random values (B starts at zero, which would hide mistakes). */
function randomizeAdapters(m: ig.nn.Module, rng: Rng): void {
  ig.tidy(() => {
    const values = new Map(
      m.namedParameters().filter(([n]) => n.includes('.lora_')).map(([n, p]) => [n, randomTensor(rng, p.shape.slice(), p.dtype, 'contiguous', -0.3, 0.3).t]),
    );
    m.loadStateDict(values, { strict: false });
  });
}

function logits(m: LlamaForCausalLM, tokens: Tensor): Float32Array {
  return ig.tidy(() => m.call(tokens).logits.data() as Float32Array);
}

const TOKENS = (): Tensor => ig.tensor([[1, 5, 9, 2, 16, 3], [4, 4, 0, 11, 7, 8]], { dtype: 'int64' });

/** The keys PEFT 0.13+ writes into adapter_config.json for a LoRA adapter. */
const PEFT_KEYS = [
  'alpha_pattern', 'auto_mapping', 'base_model_name_or_path', 'bias', 'exclude_modules', 'fan_in_fan_out', 'inference_mode', 'init_lora_weights',
  'layer_replication', 'layers_pattern', 'layers_to_transform', 'loftq_config', 'lora_alpha', 'lora_bias', 'lora_dropout', 'megatron_config',
  'megatron_core', 'modules_to_save', 'peft_type', 'r', 'rank_pattern', 'revision', 'target_modules', 'task_type', 'use_dora', 'use_rslora',
];

test("saveAdapter writes PEFT's files, keys and config; loadAdapter gives the same outputs", (t) => {
  const rng = new Rng(1);
  const baseDir = tempDir(t);
  const m = baseModel(rng, baseDir);
  lora.applyLora(m, { r: 4, alpha: 8, dropout: 0.05, targetModules: ['q_proj', 'v_proj'] });
  randomizeAdapters(m, rng);
  m.eval();
  const tokens = TOKENS();
  const expected = logits(m, tokens);
  const dir = tempDir(t);
  lora.saveAdapter(m, dir, { baseModelNameOrPath: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0' });

  t.deepEqual(fs.readdirSync(dir).sort(), ['adapter_config.json', 'adapter_model.safetensors']);
  const text = fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8');
  const config = JSON.parse(text);
  t.deepEqual(Object.keys(config), PEFT_KEYS, 'the keys PEFT writes, sorted as json.dumps(sort_keys=True)');
  t.like(config, {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r: 4,
    lora_alpha: 8,
    lora_dropout: 0.05,
    use_rslora: false,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    modules_to_save: null,
    base_model_name_or_path: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
    target_modules: ['q_proj', 'v_proj'],
    use_dora: false,
  });
  t.true(text.endsWith('}\n'));
  const header = io.readSafetensorsHeader(path.join(dir, 'adapter_model.safetensors'));
  t.deepEqual(header.metadata, { format: 'pt' });
  const keys = [0, 1].flatMap((l) => ['q_proj', 'v_proj'].flatMap((p) => ['A', 'B'].map((s) => `base_model.model.model.layers.${l}.self_attn.${p}.lora_${s}.weight`)));
  t.deepEqual([...header.entries.keys()].sort(), keys.sort(), 'PEFT names, without the adapter name');
  t.deepEqual(header.entries.get('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight')!.shape, [8, 4]);
  t.deepEqual(header.entries.get('base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight')!.shape, [4, 16]);

  // into a fresh copy of the base model
  const fresh = LlamaForCausalLM.fromPretrained(baseDir);
  const state = ig.getRngState();
  const summary = lora.loadAdapter(fresh, dir);
  t.deepEqual(ig.getRngState(), state, 'loading draws nothing from the global generator');
  t.deepEqual(summary.targeted, [0, 1].flatMap((l) => ['q_proj', 'v_proj'].map((p) => `model.layers.${l}.self_attn.${p}`)));
  t.is(summary.trainable, 0, 'inference mode by default');
  const layer = fresh.model.layers[0].self_attn.q_proj as unknown as LoraLinear;
  t.true(layer instanceof LoraLinear);
  t.deepEqual(layer.adapterOptions(), { r: 4, alpha: 8, dropout: 0.05, rsLora: false, scaling: 2 });
  t.deepEqual(logits(fresh, tokens), expected, 'the same logits, bit for bit');

  // trainable, under another name, with rsLora and full paths for a partial targeting
  const other = LlamaForCausalLM.fromPretrained(baseDir);
  lora.applyLora(other, { r: 2, alpha: 3, rsLora: true, targetModules: /model\.layers\.1\.mlp\.(up|down)_proj/, adapterName: 'style' });
  randomizeAdapters(other, rng);
  const otherDir = tempDir(t);
  lora.saveAdapter(other, otherDir, { adapterName: 'style' });
  const otherConfig = JSON.parse(fs.readFileSync(path.join(otherDir, 'adapter_config.json'), 'utf8'));
  t.like(otherConfig, { r: 2, lora_alpha: 3, use_rslora: true, lora_dropout: 0.0, base_model_name_or_path: null });
  t.regex(fs.readFileSync(path.join(otherDir, 'adapter_config.json'), 'utf8'), /"lora_dropout": 0\.0,/);
  t.deepEqual(otherConfig.target_modules, ['model.layers.1.mlp.up_proj', 'model.layers.1.mlp.down_proj'], 'full paths when the short names would select more');
  const again = LlamaForCausalLM.fromPretrained(baseDir);
  const s2 = lora.loadAdapter(again, otherDir, { adapterName: 'style', trainable: true });
  t.is(s2.trainable, 2 * (2 * 16 + 24 * 2) , 'the adapters train, nothing else');
  t.is((again.model.layers[1].mlp.up_proj as unknown as LoraLinear).scaling('style'), 3 / Math.sqrt(2));
  other.eval();
  t.deepEqual(logits(again.eval(), tokens), logits(other, tokens));
  for (const x of [m, fresh, other, again, tokens]) x.dispose();
});

test('adapters that do not fit are refused and the model is unchanged', (t) => {
  const rng = new Rng(2);
  const baseDir = tempDir(t);
  const base = baseModel(rng, baseDir);
  // adapters made on other models
  const make = (config: Partial<io.LlamaConfigInput>, targets: ig.lora.TargetModules, r = 4) => {
    const m = new LlamaForCausalLM({ ...TINY, ...config });
    lora.applyLora(m, { r, targetModules: targets });
    const dir = tempDir(t);
    lora.saveAdapter(m, dir);
    m.dispose();
    return dir;
  };
  const wider = make({ hiddenSize: 32 }, ['q_proj']);
  const deeper = make({ numHiddenLayers: 3 }, ['q_proj']);
  const good = make({}, ['q_proj', 'o_proj']);
  const editConfig = (edit: Record<string, unknown>) => {
    const dir = tempDir(t);
    for (const f of fs.readdirSync(good)) fs.copyFileSync(path.join(good, f), path.join(dir, f));
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ ...config, ...edit }));
    return dir;
  };
  const before = snapshot(base);
  const cases: [string, string, ig.ErrorCode, RegExp][] = [
    ['another size', wider, 'ERR_SHAPE', /'base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight' \(file \[4, 32\], the model needs \[4, 16\]\)/],
    ['another depth', deeper, 'ERR_IO', /tensors for no targeted layer of the model: base_model\.model\.model\.layers\.2\.self_attn\.q_proj\.lora_\*\.weight/],
    ['another architecture', editConfig({ target_modules: ['c_attn', 'c_proj'] }), 'ERR_IO', /match no Linear layer of the model/],
    ['targets without weights', editConfig({ target_modules: ['q_proj', 'o_proj', 'k_proj'] }), 'ERR_IO', /missing tensors: base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight/],
    ['another rank', editConfig({ r: 8 }), 'ERR_SHAPE', /file \[4, 16\], the model needs \[8, 16\]/],
    ['not LoRA', editConfig({ peft_type: 'IA3' }), 'ERR_IO', /peft_type is "IA3"; only LoRA adapters/],
    ['DoRA', editConfig({ use_dora: true }), 'ERR_IO', /use_dora true is not supported/],
    ['trained biases', editConfig({ bias: 'all' }), 'ERR_IO', /bias "all" is not supported/],
    ['saved modules', editConfig({ modules_to_save: ['lm_head'] }), 'ERR_IO', /modules_to_save \["lm_head"\] is not supported/],
    ['rank pattern', editConfig({ rank_pattern: { q_proj: 8 } }), 'ERR_IO', /rank_pattern .* is not supported/],
    ['bad r', editConfig({ r: 0 }), 'ERR_IO', /r must be a positive integer/],
    ['bad targets', editConfig({ target_modules: 7 }), 'ERR_IO', /target_modules must be a list/],
  ];
  for (const [what, dir, code, message] of cases) {
    const state = ig.getRngState();
    const memory = ig.memory();
    assertCode(t, () => lora.loadAdapter(base, dir), code, message);
    t.deepEqual(snapshot(base), before, `${what}: the model is unchanged`);
    t.false(base.modules().some((m) => m instanceof LoraLinear), what);
    t.true(base.parameters().every((p) => p.requiresGrad), `${what}: nothing frozen`);
    t.deepEqual(ig.memory(), memory, `${what}: nothing allocated`);
    t.deepEqual(ig.getRngState(), state);
  }
  const noConfig = tempDir(t);
  assertCode(t, () => lora.loadAdapter(base, noConfig), 'ERR_IO', /adapter config .*adapter_config\.json does not exist/);
  assertCode(t, () => lora.loadAdapter(base, path.join(noConfig, 'nope')), 'ERR_IO', /does not exist/);
  const binOnly = editConfig({});
  fs.rmSync(path.join(binOnly, 'adapter_model.safetensors'));
  fs.writeFileSync(path.join(binOnly, 'adapter_model.bin'), 'pickle');
  assertCode(t, () => lora.loadAdapter(base, binOnly), 'ERR_IO', /found adapter_model\.bin/);
  // a second adapter of the same name
  lora.loadAdapter(base, good);
  const adapted = snapshot(base);
  assertCode(t, () => lora.loadAdapter(base, good), 'ERR_ARG', /already has an adapter 'default'/);
  t.deepEqual(snapshot(base), adapted);
  lora.loadAdapter(base, good, { adapterName: 'second' });
  t.deepEqual((base.model.layers[0].self_attn.q_proj as unknown as LoraLinear).adapterNames, ['default', 'second']);
  assertCode(t, () => lora.saveAdapter(base, tempDir(t), { adapterName: 'none' }), 'ERR_ARG', /no LoRA layer has an adapter named 'none'/);
  base.dispose();
});

test('a file laid out by PEFT, with a regular expression as target_modules, loads', (t) => {
  const rng = new Rng(3);
  const baseDir = tempDir(t);
  const m = baseModel(rng, baseDir, { numHiddenLayers: 1 });
  const dir = tempDir(t);
  // the config as PEFT 0.19 wrote one (keys ignis does not know are ignored)
  fs.writeFileSync(
    path.join(dir, 'adapter_config.json'),
    JSON.stringify({
      alora_invocation_tokens: null, alpha_pattern: {}, arrow_config: null, auto_mapping: null, base_model_name_or_path: 'tiny', bias: 'none',
      corda_config: null, ensure_weight_tying: false, eva_config: null, exclude_modules: null, fan_in_fan_out: false, inference_mode: true,
      init_lora_weights: true, layer_replication: null, layers_pattern: null, layers_to_transform: null, loftq_config: {}, lora_alpha: 16,
      lora_bias: false, lora_dropout: 0.0, megatron_config: null, megatron_core: 'megatron.core', modules_to_save: null, peft_type: 'LORA',
      peft_version: '0.19.1', qalora_group_size: 16, r: 2, rank_pattern: {}, revision: null, target_modules: '.*\\.(gate|down)_proj',
      target_parameters: null, task_type: 'CAUSAL_LM', trainable_token_indices: null, use_bdlora: null, use_dora: false, use_qalora: false, use_rslora: false,
    }),
  );
  const weights = ig.tidy(() => {
    const w = new Map<string, Tensor>();
    for (const [p, inF, outF] of [['gate_proj', 16, 24], ['down_proj', 24, 16]] as const) {
      w.set(`base_model.model.model.layers.0.mlp.${p}.lora_A.weight`, ig.keep(randomTensor(rng, [2, inF], 'bfloat16').t));
      w.set(`base_model.model.model.layers.0.mlp.${p}.lora_B.weight`, ig.keep(randomTensor(rng, [outF, 2], 'bfloat16').t));
    }
    return w;
  });
  io.writeSafetensors(path.join(dir, 'adapter_model.safetensors'), weights, { format: 'pt' });
  t.deepEqual(lora.readAdapterConfig(dir), { r: 2, loraAlpha: 16, loraDropout: 0, useRslora: false, targetModules: /.*\.(gate|down)_proj/, baseModelNameOrPath: 'tiny' });
  const summary = lora.loadAdapter(m, dir);
  t.deepEqual(summary.targeted, ['model.layers.0.mlp.gate_proj', 'model.layers.0.mlp.down_proj']);
  const gate = m.model.layers[0].mlp.gate_proj as unknown as LoraLinear;
  const { a, b } = gate.adapterWeights();
  t.is(a.dtype, 'float32', 'bfloat16 weights converted to the adapters dtype');
  assertClose(t, b, { shape: [24, 2], data: Float64Array.from(weights.get('base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight')!.to('float64').data() as Float64Array) }, [0, 0]);
  t.is(gate.scaling(), 8);
  for (const x of weights.values()) x.dispose();
  m.dispose();
});

test('mergeAndUnload folds the adapter in: the same outputs, plain Linear layers, a checkpoint transformers can load', (t) => {
  const rng = new Rng(4);
  const m = baseModel(rng, tempDir(t));
  lora.applyLora(m, { r: 4, alpha: 16, targetModules: 'all-linear' });
  randomizeAdapters(m, rng);
  m.eval();
  const tokens = TOKENS();
  const withAdapter = logits(m, tokens);
  const adapterDir = tempDir(t);
  lora.saveAdapter(m, adapterDir);
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(adapterDir, 'adapter_config.json'), 'utf8')).target_modules, ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
  const restored = lora.mergeAndUnload(m);
  t.is(restored.length, 14);
  t.false(m.modules().some((x) => x instanceof LoraLinear));
  t.true(m.namedParameters().every(([n]) => !n.includes('lora_') && !n.includes('base_layer')));
  const merged = logits(m, tokens);
  assertClose(t, ig.tensor(merged), { shape: [merged.length], data: Float64Array.from(withAdapter) }, [1e-4, 1e-5], 'merged vs adapter');
  const dir = tempDir(t);
  m.savePretrained(dir);
  const back = LlamaForCausalLM.fromPretrained(dir);
  t.deepEqual(logits(back, tokens), merged);
  for (const x of [m, back, tokens]) x.dispose();
});

/**
 * PEFT's adapter files: `adapter_config.json` (a LoraConfig as PEFT writes it) and
 * `adapter_model.safetensors` (`base_model.model.<module path>.lora_A.weight` /
 * `.lora_B.weight`: PEFT's names with the adapter name dropped), so that adapters trained here
 * load in PEFT and adapters from PEFT load here.
 */
import * as fs from 'fs';
import * as path from 'path';
import { isFloat } from '../dtype';
import { fail } from '../errors';
import { checkDir, checkFile, io, isFile, pythonJson, readJson, writeTextAtomic } from '../io/files';
import { PT_METADATA } from '../io/checkpoint';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../io/safetensors';
import { tidy } from '../memory';
import { Linear } from '../nn/layers';
import { listNames, Module } from '../nn/module';
import { fmtShape, sameShape } from '../ops/check';
import { getRngState, setRngState } from '../ops/creation';
import { Tensor } from '../tensor';
import { applyLora, findTargets, LoraSummary, TargetModules } from './apply';
import { AdapterConfig, checkAdapterName, LoraLinear } from './layer';

/** PEFT's config file of an adapter. */
export const ADAPTER_CONFIG_NAME = 'adapter_config.json';
/** PEFT's weights file of an adapter. */
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';
/** PEFT's prefix of every key: the PeftModel's `base_model` (LoraModel) holding `model`. */
const PREFIX = 'base_model.model.';
const KEY = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/;

/** Options of {@link saveAdapter}. */
export interface SaveAdapterOptions {
  /** The adapter to save (default 'default'). */
  adapterName?: string;
  /** `base_model_name_or_path` in the config: the model the adapter was trained on (default null). */
  baseModelNameOrPath?: string | null;
}

/** Options of {@link loadAdapter}. */
export interface LoadAdapterOptions {
  /** The name the adapter gets in the model (default 'default'). */
  adapterName?: string;
  /** Whether the adapter's weights require grad, to train further (default false: PEFT's inference mode). */
  trainable?: boolean;
}

/** The adapter settings of a PEFT LoraConfig that ignis reads. */
export interface PeftLoraConfig {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  useRslora: boolean;
  targetModules: TargetModules;
  baseModelNameOrPath: string | null;
}

/** The LoRA layers holding adapter `name`, with their paths. */
function adapterLayers(model: Module, name: string): [string, LoraLinear][] {
  return model.namedModules().filter((e): e is [string, LoraLinear] => e[1] instanceof LoraLinear && e[1].adapterNames.includes(name));
}

/**
 * The target_modules to write: the layers' last names when they select exactly these layers in
 * the model (as PEFT users write them, `['q_proj', 'v_proj']`), else every full path.
 */
function targetNames(model: Module, paths: string[], op: string): string[] {
  const short = [...new Set(paths.map((p) => p.slice(p.lastIndexOf('.') + 1)))].sort();
  const selected = findTargets(model, short, op).map(([p]) => p);
  return selected.length === paths.length && selected.every((p, i) => p === paths[i]) ? short : paths.slice();
}

/** The adapter_config.json PEFT writes for these settings. */
function peftConfigJson(c: AdapterConfig, targetModules: string[], baseModel: string | null): string {
  const dict = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: 'none',
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: c.alpha,
    lora_bias: false,
    lora_dropout: c.dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: c.r,
    rank_pattern: {},
    revision: null,
    target_modules: targetModules,
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: c.rsLora,
  };
  return pythonJson(dict, ['lora_dropout']);
}

/**
 * Saves one adapter of a model as PEFT saves a LoRA adapter: `adapter_config.json` (peft_type
 * LORA, r, lora_alpha, lora_dropout, use_rslora, target_modules, bias 'none', task_type
 * CAUSAL_LM, inference_mode true, and PEFT's other keys with their defaults) and
 * `adapter_model.safetensors` with PEFT's keys (`base_model.model.<path>.lora_A.weight`), the
 * weights in their own dtype. Every layer's adapter must share r, alpha, dropout and rsLora
 * (ERR_ARG otherwise). The folder is created if needed; each file is written atomically.
 */
export function saveAdapter(model: Module, dir: string, opts: SaveAdapterOptions = {}): void {
  const op = 'saveAdapter';
  if (!(model instanceof Module)) fail('ERR_ARG', `${op}: expected a Module`);
  if (typeof dir !== 'string' || dir === '') fail('ERR_ARG', `${op}: expected a folder path`);
  if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', `${op}: options must be an object`);
  const name = opts.adapterName ?? 'default';
  checkAdapterName(op, name);
  const baseModel = opts.baseModelNameOrPath ?? null;
  if (baseModel !== null && typeof baseModel !== 'string') fail('ERR_ARG', `${op}: baseModelNameOrPath must be a string`);
  const layers = adapterLayers(model, name);
  if (layers.length === 0) fail('ERR_ARG', `${op}: no LoRA layer has an adapter named '${name}'`);
  const config = layers[0][1].adapterOptions(name);
  for (const [p, layer] of layers) {
    const c = layer.adapterOptions(name);
    if (c.r !== config.r || c.alpha !== config.alpha || c.dropout !== config.dropout || c.rsLora !== config.rsLora) {
      fail('ERR_ARG', `${op}: the adapter '${name}' of '${p}' has r ${c.r}, alpha ${c.alpha}, dropout ${c.dropout}, rsLora ${c.rsLora}, unlike '${layers[0][0]}' (r ${config.r}, alpha ${config.alpha}, dropout ${config.dropout}, rsLora ${config.rsLora}); one adapter file holds one configuration`);
    }
  }
  const paths = layers.map(([p]) => p);
  const tensors = new Map<string, Tensor>();
  for (const [p, layer] of layers) {
    const { a, b } = layer.adapterWeights(name);
    tensors.set(`${PREFIX}${p}.lora_A.weight`, a);
    tensors.set(`${PREFIX}${p}.lora_B.weight`, b);
  }
  const targets = targetNames(model, paths, op);
  io(op, 'cannot create the folder', dir, () => fs.mkdirSync(dir, { recursive: true }));
  writeSafetensors(path.join(dir, ADAPTER_WEIGHTS_NAME), tensors, PT_METADATA);
  writeTextAtomic(op, path.join(dir, ADAPTER_CONFIG_NAME), peftConfigJson(config, targets, baseModel));
}

/** Reads and checks a PEFT adapter_config.json: a LoRA adapter with the settings ignis implements. */
export function readAdapterConfig(dir: string): PeftLoraConfig {
  const op = 'readAdapterConfig';
  checkDir(op, dir);
  const file = path.join(dir, ADAPTER_CONFIG_NAME);
  const c = readJson(op, checkFile(op, file, 'adapter config')) as Record<string, unknown>;
  const bad = (what: string): never => fail('ERR_IO', `${op}: ${file}: ${what}`);
  if (typeof c !== 'object' || c === null || Array.isArray(c)) bad('must hold a JSON object');
  if (c.peft_type !== 'LORA') bad(`peft_type is ${JSON.stringify(c.peft_type)}; only LoRA adapters ("LORA") are supported`);
  const { r, lora_alpha: alpha, lora_dropout: dropout = 0, use_rslora: rsLora = false, target_modules: targets } = c;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) bad(`r must be a positive integer, got ${JSON.stringify(r)}`);
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) bad(`lora_alpha must be a number, got ${JSON.stringify(alpha)}`);
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) bad(`lora_dropout must be a number in [0, 1), got ${JSON.stringify(dropout)}`);
  if (typeof rsLora !== 'boolean') bad(`use_rslora must be true or false, got ${JSON.stringify(rsLora)}`);
  // settings that change the math or the files beyond what ignis implements
  const unsupported: [string, (v: unknown) => boolean][] = [
    ['bias', (v) => v === undefined || v === 'none'],
    ['use_dora', (v) => !v],
    ['fan_in_fan_out', (v) => !v],
    ['lora_bias', (v) => !v],
    ['modules_to_save', (v) => v == null || (Array.isArray(v) && v.length === 0)],
    ['layers_to_transform', (v) => v == null],
    ['layer_replication', (v) => v == null],
    ['rank_pattern', (v) => v == null || (typeof v === 'object' && Object.keys(v).length === 0)],
    ['alpha_pattern', (v) => v == null || (typeof v === 'object' && Object.keys(v).length === 0)],
    ['exclude_modules', (v) => v == null || (Array.isArray(v) && v.length === 0)],
    ['target_parameters', (v) => v == null],
  ];
  for (const [key, ok] of unsupported) if (!ok(c[key])) bad(`${key} ${JSON.stringify(c[key])} is not supported`);
  let targetModules: TargetModules;
  if (Array.isArray(targets) && targets.length > 0 && targets.every((t) => typeof t === 'string' && t !== '')) {
    targetModules = targets as string[];
  } else if (targets === 'all-linear') {
    targetModules = 'all-linear';
  } else if (typeof targets === 'string' && targets !== '') {
    // PEFT matches a string as a regular expression against the whole module path
    try {
      targetModules = new RegExp(targets);
    } catch {
      bad(`target_modules ${JSON.stringify(targets)} is not a regular expression ignis can use`);
    }
  } else {
    bad(`target_modules must be a list of module names or a regular expression, got ${JSON.stringify(targets)}`);
  }
  const baseModel = c.base_model_name_or_path;
  return {
    r: r as number,
    loraAlpha: alpha as number,
    loraDropout: dropout as number,
    useRslora: rsLora as boolean,
    targetModules: targetModules!,
    baseModelNameOrPath: typeof baseModel === 'string' ? baseModel : null,
  };
}

/**
 * Loads a PEFT LoRA adapter (`adapter_config.json` + `adapter_model.safetensors`) into `model`
 * as adapter `opts.adapterName`, made active. Everything is checked before the model changes:
 * the config (LoRA, with settings ignis implements: ERR_IO otherwise), that `target_modules`
 * selects Linear layers of this model and that the file holds A and B for exactly those layers
 * (ERR_IO listing missing and unexpected tensors: an adapter for another architecture), and
 * every shape (A [r, in], B [out, r]: ERR_SHAPE naming the tensor and both shapes: another
 * size). Then LoRA is applied with the config's r, lora_alpha, lora_dropout and use_rslora (the
 * global random state is left as it was) and the weights are copied in, converted to the
 * adapters' dtype. As PEFT, the rest of the model is frozen; the adapter trains only with
 * `trainable`. Returns applyLora's summary.
 */
export function loadAdapter(model: Module, dir: string, opts: LoadAdapterOptions = {}): LoraSummary {
  const op = 'loadAdapter';
  if (!(model instanceof Module)) fail('ERR_ARG', `${op}: expected a Module`);
  if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', `${op}: options must be an object`);
  const name = opts.adapterName ?? 'default';
  checkAdapterName(op, name);
  const trainable = opts.trainable ?? false;
  if (typeof trainable !== 'boolean') fail('ERR_ARG', `${op}: trainable must be a boolean`);
  const config = readAdapterConfig(dir);
  const file = path.join(dir, ADAPTER_WEIGHTS_NAME);
  if (!isFile(file)) {
    const other = isFile(path.join(dir, 'adapter_model.bin')) ? ' (found adapter_model.bin: only safetensors weights are read)' : '';
    fail('ERR_IO', `${op}: adapter weights ${file} do not exist${other}`);
  }
  const { entries } = readSafetensorsHeader(file);

  const targets = findTargets(model, config.targetModules, op);
  if (targets.length === 0) fail('ERR_IO', `${op}: target_modules ${String(config.targetModules)} of ${dir} match no Linear layer of the model; nothing was loaded`);
  const inFile = new Map<string, string[]>();
  const strange: string[] = [];
  for (const key of entries.keys()) {
    const m = KEY.exec(key);
    if (m === null) strange.push(key);
    else inFile.set(m[1], [...(inFile.get(m[1]) ?? []), m[2]]);
  }
  const targetPaths = new Set(targets.map(([p]) => p));
  const missing = targets.flatMap(([p]) => ['A', 'B'].filter((s) => !inFile.get(p)?.includes(s)).map((s) => `${PREFIX}${p}.lora_${s}.weight`));
  const unexpected = [...strange, ...[...inFile.keys()].filter((p) => !targetPaths.has(p)).map((p) => `${PREFIX}${p}.lora_*.weight`)];
  if (missing.length > 0 || unexpected.length > 0) {
    const parts = [];
    if (missing.length > 0) parts.push(`missing tensors: ${listNames(missing)}`);
    if (unexpected.length > 0) parts.push(`tensors for no targeted layer of the model: ${listNames(unexpected)}`);
    fail('ERR_IO', `${op}: the adapter in ${dir} does not fit the model (${parts.join('; ')}); the model is unchanged`);
  }
  const badShapes: string[] = [];
  for (const [p, m] of targets) {
    if (m instanceof LoraLinear && m.adapterNames.includes(name)) fail('ERR_ARG', `${op}: the module at '${p}' already has an adapter '${name}'`);
    const base = m instanceof LoraLinear ? m.base_layer : (m as Linear);
    for (const [side, shape] of [['A', [config.r, base.inFeatures]], ['B', [base.outFeatures, config.r]]] as const) {
      const key = `${PREFIX}${p}.lora_${side}.weight`;
      const entry = entries.get(key)!;
      if (!isFloat(entry.dtype)) fail('ERR_IO', `${op}: ${file}: '${key}' must be floating-point, got ${entry.dtype}`);
      if (!sameShape(entry.shape, shape)) badShapes.push(`'${key}' (file ${fmtShape(entry.shape)}, the model needs ${fmtShape(shape)})`);
    }
  }
  if (badShapes.length > 0) fail('ERR_SHAPE', `${op}: the adapter in ${dir} does not fit the model's sizes: ${listNames(badShapes, 5)}; the model is unchanged`);

  const { tensors } = readSafetensors(file);
  try {
    const paths = targets.map(([p]) => p);
    const exactly = new RegExp(paths.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'));
    // the initial adapters are overwritten: their draws must not move the global generator
    const rng = getRngState();
    let summary: LoraSummary;
    try {
      summary = applyLora(model, { r: config.r, alpha: config.loraAlpha, dropout: config.loraDropout, rsLora: config.useRslora, targetModules: exactly, adapterName: name });
    } finally {
      setRngState(rng);
    }
    tidy(() => {
      for (const p of paths) {
        const layer = model.getSubmodule(p) as LoraLinear;
        const { a, b } = layer.adapterWeights(name);
        layer.loadStateDict(
          new Map([
            [`lora_A.${name}.weight`, tensors.get(`${PREFIX}${p}.lora_A.weight`)!.to(a.dtype).to(a.device)],
            [`lora_B.${name}.weight`, tensors.get(`${PREFIX}${p}.lora_B.weight`)!.to(b.dtype).to(b.device)],
          ]),
          { strict: false },
        );
        a.requiresGrad_(trainable);
        b.requiresGrad_(trainable);
      }
    });
    return { ...summary, trainable: model.numParameters({ trainableOnly: true }) };
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

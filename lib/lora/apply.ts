/**
 * PEFT-style targeting: {@link applyLora} puts {@link LoraLinear} layers in place of a model's
 * matching `nn.Linear` modules and freezes everything else; model-level adapter switching and
 * {@link mergeLora} (PEFT's merge_and_unload).
 */
import { fail } from '../errors';
import { Linear } from '../nn/layers';
import { Module } from '../nn/module';
import { adapterConfig, checkAdapterName, LoraAdapterOptions, LoraLinear } from './layer';

/**
 * Which Linear modules get adapters, with PEFT's semantics:
 * - a list of names: a module whose path is the name or ends with `.` + name
 *   (`['q_proj', 'v_proj']`, or `['mlp.up_proj']`);
 * - a RegExp: matched against the whole path (as PEFT's re.fullmatch);
 * - `'all-linear'`: every Linear except an output head named `lm_head`.
 */
export type TargetModules = string[] | RegExp | 'all-linear';

/** Options of {@link applyLora}. */
export interface LoraConfig extends LoraAdapterOptions {
  /** The modules to adapt. */
  targetModules: TargetModules;
  /** The adapter's name (default 'default'). */
  adapterName?: string;
}

/** What {@link applyLora} returns: PEFT's print_trainable_parameters numbers, and the adapted paths. */
export interface LoraSummary {
  /** Elements of the parameters that require grad. */
  trainable: number;
  /** Elements of every parameter (adapters included). */
  total: number;
  /** The paths of the adapted modules, in model order. */
  targeted: string[];
}

function targetMatcher(targets: TargetModules): (path: string) => boolean {
  const op = 'applyLora';
  if (targets === 'all-linear') return (path) => path !== 'lm_head' && !path.endsWith('.lm_head');
  if (targets instanceof RegExp) {
    const whole = new RegExp(`^(?:${targets.source})$`, targets.flags.replace(/[gy]/g, ''));
    return (path) => whole.test(path);
  }
  if (!Array.isArray(targets) || targets.length === 0 || !targets.every((n) => typeof n === 'string' && n !== '')) {
    fail('ERR_ARG', `${op}: targetModules must be a non-empty list of module names, a RegExp or 'all-linear', got ${String(targets)}`);
  }
  return (path) => targets.some((n) => path === n || path.endsWith(`.${n}`));
}

/**
 * @internal The modules of `model` that `targets` selects, with their paths, in model order:
 * Linear layers, and LoRA layers (not the modules inside them). A matched module of another
 * kind is ERR_ARG, unless `targets` is 'all-linear'.
 */
export function findTargets(model: Module, targets: TargetModules, op: string): [string, Linear | LoraLinear][] {
  const matches = targetMatcher(targets);
  const targeted: [string, Linear | LoraLinear][] = [];
  const inside: string[] = [];
  for (const [path, m] of model.namedModules()) {
    if (path === '' || inside.some((p) => path.startsWith(`${p}.`))) continue;
    if (m instanceof LoraLinear) inside.push(path);
    if (!matches(path)) continue;
    if (m instanceof Linear || m instanceof LoraLinear) targeted.push([path, m]);
    else if (targets !== 'all-linear') fail('ERR_ARG', `${op}: the module at '${path}' is a ${m.constructor.name}; only Linear modules can be adapted`);
  }
  return targeted;
}

/** The LoRA layers of a model with their paths. */
function loraLayers(model: Module, op: string): [string, LoraLinear][] {
  if (!(model instanceof Module)) fail('ERR_ARG', `${op}: expected a Module`);
  return model.namedModules().filter((e): e is [string, LoraLinear] => e[1] instanceof LoraLinear);
}

/**
 * Adds a LoRA adapter to every Linear of `model` that `config.targetModules` matches
 * (replacing it by a {@link LoraLinear} in place; a module that already is one gets a further
 * adapter), makes that adapter the active one, and freezes every other parameter (PEFT's
 * bias = 'none'). ERR_ARG when nothing matches, when a matched module is not a Linear or
 * already has the adapter, or for bad options; the model is left unchanged when it throws.
 * Returns the trainable and total parameter counts and the adapted paths.
 */
export function applyLora(model: Module, config: LoraConfig): LoraSummary {
  const op = 'applyLora';
  if (!(model instanceof Module)) fail('ERR_ARG', `${op}: expected a Module`);
  if (typeof config !== 'object' || config === null) fail('ERR_ARG', `${op}: expected a config with targetModules`);
  const { targetModules, adapterName = 'default', ...adapter } = config;
  checkAdapterName(op, adapterName);
  adapterConfig(op, adapter);
  const targeted = findTargets(model, targetModules, op);
  if (targeted.length === 0) fail('ERR_ARG', `${op}: no Linear module matches targetModules ${String(targetModules)}`);
  for (const [path, m] of targeted) {
    if (m instanceof LoraLinear && m.adapterNames.includes(adapterName)) fail('ERR_ARG', `${op}: the module at '${path}' already has an adapter '${adapterName}'`);
  }
  model.requiresGrad_(false);
  for (const [path, m] of targeted) {
    if (m instanceof LoraLinear) {
      m.addAdapter(adapterName, adapter);
      m.setAdapter(adapterName);
    } else {
      model.setSubmodule(path, new LoraLinear(m as Linear, { ...adapter, adapterName }));
    }
  }
  setAdapter(model, adapterName);
  return {
    trainable: model.numParameters({ trainableOnly: true }),
    total: model.numParameters(),
    targeted: targeted.map(([p]) => p),
  };
}

/** Makes `name` the active adapter of every LoRA layer that has it (ERR_ARG if none has). */
export function setAdapter(model: Module, name: string): void {
  const layers = loraLayers(model, 'setAdapter').filter(([, l]) => l.adapterNames.includes(name));
  if (layers.length === 0) fail('ERR_ARG', `setAdapter: no LoRA layer has an adapter named '${String(name)}'`);
  for (const [, l] of layers) l.setAdapter(name);
}

/** Turns every LoRA layer of `model` to its base computation (see {@link LoraLinear.disableAdapters}). */
export function disableAdapters(model: Module): void {
  for (const [, l] of loraLayers(model, 'disableAdapters')) l.disableAdapters();
}

/** Turns the adapters of every LoRA layer of `model` back on. */
export function enableAdapters(model: Module): void {
  for (const [, l] of loraLayers(model, 'enableAdapters')) l.enableAdapters();
}

/**
 * PEFT's merge_and_unload: merges each LoRA layer's active adapter (unless one is merged
 * already; disabled or not) into its base weight
 * (safe merge: NaN or Inf refused with ERR_ARG) and puts the plain Linear back in its place;
 * the adapters are dropped (and disposed). Returns the paths restored.
 */
export function mergeLora(model: Module): string[] {
  const layers = loraLayers(model, 'mergeLora');
  for (const [, l] of layers) if (l.mergedAdapters.length === 0) l.merge();
  for (const [path, l] of layers) {
    model.setSubmodule(path, l.base_layer);
    l.lora_A.dispose();
    l.lora_B.dispose();
  }
  return layers.map(([p]) => p);
}

/**
 * The base of every layer: a tree of modules holding named parameters and buffers, with
 * PyTorch's `nn.Module` semantics and names (so that `stateDict()` keys match Hugging Face
 * checkpoints).
 *
 * Members are found by discovery, as PyTorch's `__setattr__` finds them: a module's own
 * enumerable properties, in the order they were defined (class fields in declaration order),
 * are its members, named by their property name.
 * - a property holding a {@link Module} is a submodule;
 * - a property holding a tensor made by {@link parameter} is a parameter;
 * - a property named with {@link Module.registerBuffer} is a buffer;
 * - an array of modules or parameters gives members named `name.0`, `name.1`, ... (as
 *   PyTorch's ModuleList: `layers.0.mlp.up_proj.weight`);
 * - anything else (numbers, options, plain tensors, `#private` fields) is not a member.
 * Replacing a submodule is a plain assignment (or {@link Module.setSubmodule} for a path).
 * A module must not hold one of its ancestors in a property (ERR_ARG when walked).
 */
import { noGrad } from '../autograd/graph';
import { checkDevice, Device } from '../device';
import { DType, isFloat } from '../dtype';
import { ErrorCode, fail } from '../errors';
import { keep } from '../memory';
import { core } from '../native';
import { checkTensor, fmtShape, sameShape } from '../ops/check';
import { Tensor, wrap } from '../tensor';

/** The tensors made by {@link parameter}: what discovery counts as parameters. */
const PARAMETERS = new WeakSet<Tensor>();

/**
 * Marks `t` as a parameter (as PyTorch's `nn.Parameter`): a leaf that requires grad (unless
 * `requiresGrad` is false), exempt from the enclosing tidy() scopes, counted as a parameter when
 * a module holds it in a property. Floating-point tensors only (ERR_DTYPE). Returns `t`.
 */
export function parameter(t: Tensor, requiresGrad = true): Tensor {
  checkTensor(t, 'parameter');
  if (!isFloat(t.dtype)) fail('ERR_DTYPE', `parameter: expected a floating-point tensor, got ${t.dtype}`);
  t.requiresGrad_(requiresGrad);
  PARAMETERS.add(keep(t));
  return t;
}

/** Whether `t` was made a parameter by {@link parameter}. */
export function isParameter(t: unknown): boolean {
  return t instanceof Tensor && PARAMETERS.has(t);
}

/** A state dict: names (`layers.0.mlp.up_proj.weight`) to tensors, in the module's order. */
export type StateDict = Map<string, Tensor>;

/** Options of {@link Module.loadStateDict}. */
export interface LoadStateDictOptions {
  /** Every key of the model must be given and no other (default true); shapes and dtypes are always checked. */
  strict?: boolean;
}

/** The keys that a non-strict {@link Module.loadStateDict} skipped. */
export interface LoadStateDictResult {
  /** Keys of the model absent from the state dict (left unchanged). */
  missingKeys: string[];
  /** Keys of the state dict that the model does not have (ignored). */
  unexpectedKeys: string[];
}

/** Options of {@link Module.registerBuffer}. */
export interface BufferOptions {
  /** Whether the buffer belongs to {@link Module.stateDict} (default true). */
  persistent?: boolean;
}

function join(prefix: string, name: string): string {
  return prefix === '' ? name : `${prefix}.${name}`;
}

/** @internal At most `max` names, then how many more. */
export function listNames(names: readonly string[], max = 10): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown} and ${names.length - max} more` : shown;
}

/**
 * A layer or a model: subclasses define their members in the constructor and compute in
 * {@link Module.forward}; run them with {@link Module.call}. See the file's header for how
 * members are found. Modules start in training mode.
 */
export abstract class Module {
  /** Training mode (true) or evaluation mode (false): see {@link Module.train}. */
  training = true;
  /** Buffer names, registered in order, to whether they are persistent. */
  readonly #buffers = new Map<string, boolean>();

  /** The computation. Call it through {@link Module.call}. */
  abstract forward(...args: never[]): unknown;

  /** Runs {@link Module.forward} with these arguments. */
  call(...args: Parameters<this['forward']>): ReturnType<this['forward']> {
    return (this.forward as (...a: unknown[]) => ReturnType<this['forward']>)(...args);
  }

  /** Own members as [name, value], arrays flattened to `name.i`, in property order. */
  *#members(): Generator<[string, unknown]> {
    for (const key of Object.keys(this)) {
      const value: unknown = (this as Record<string, unknown>)[key];
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) yield [`${key}.${i}`, value[i]];
      } else {
        yield [key, value];
      }
    }
  }

  /** Own parameters, then own buffers (`persistentOnly`: those of the state dict), as [name, tensor, isBuffer]. */
  *#ownTensors(persistentOnly: boolean): Generator<[string, Tensor, boolean]> {
    for (const [name, value] of this.#members()) {
      if (value instanceof Tensor && PARAMETERS.has(value) && !this.#buffers.has(name)) yield [name, value, false];
    }
    for (const [name, persistent] of this.#buffers) {
      const value: unknown = (this as Record<string, unknown>)[name];
      if (value instanceof Tensor && (persistent || !persistentOnly)) yield [name, value, true];
    }
  }

  /** Own submodules as [name, module] (a module held twice is listed twice). */
  *#submodules(): Generator<[string, Module]> {
    for (const [name, value] of this.#members()) if (value instanceof Module) yield [name, value];
  }

  /**
   * Every module of the tree with its path, this one first ('') then depth first, each path
   * separately (a shared module is visited under each of its names).
   */
  *#walk(op: string, prefix = '', ancestors = new Set<Module>()): Generator<[string, Module]> {
    yield [prefix, this];
    ancestors.add(this);
    for (const [name, child] of this.#submodules()) {
      const path = join(prefix, name);
      if (ancestors.has(child)) fail('ERR_ARG', `${op}: the module at '${path}' is one of its own ancestors`);
      yield* child.#walk(op, path, ancestors);
    }
    ancestors.delete(this);
  }

  /** Tensors of the tree with their names, each tensor once (at its first name). */
  #namedTensors(op: string, buffers: boolean, persistentOnly = false): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [prefix, m] of this.#walk(op)) {
      for (const [name, t, isBuffer] of m.#ownTensors(persistentOnly)) {
        if (isBuffer !== buffers || seen.has(t)) continue;
        seen.add(t);
        out.push([join(prefix, name), t]);
      }
    }
    return out;
  }

  /**
   * Makes the property `name` a buffer (state that is not trained, such as running statistics
   * or tables) and sets it to `t` (exempt from tidy scopes), or to null. Persistent buffers
   * belong to the state dict. Register again to replace it (the old tensor is not disposed).
   */
  registerBuffer(name: string, t: Tensor | null, opts: BufferOptions = {}): void {
    if (typeof name !== 'string' || name === '' || name.includes('.')) {
      fail('ERR_ARG', `registerBuffer: name must be a non-empty string without '.', got ${String(name)}`);
    }
    const current: unknown = (this as Record<string, unknown>)[name];
    if (!this.#buffers.has(name) && (current instanceof Module || isParameter(current))) {
      fail('ERR_ARG', `registerBuffer: '${name}' already holds a ${current instanceof Module ? 'submodule' : 'parameter'}`);
    }
    const persistent = opts.persistent ?? true;
    if (typeof persistent !== 'boolean') fail('ERR_ARG', `registerBuffer: persistent must be a boolean, got ${typeof persistent}`);
    if (t !== null) keep(checkTensor(t, 'registerBuffer', `buffer '${name}'`));
    this.#buffers.set(name, persistent);
    (this as Record<string, unknown>)[name] = t;
  }

  /** Parameters of the tree, named by path, each once, in order (own members first, then submodules). */
  namedParameters(): [string, Tensor][] {
    return this.#namedTensors('namedParameters', false);
  }

  /** The tensors of {@link Module.namedParameters}: what an optimizer updates. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /**
   * Buffers of the tree, named by path, each once: persistent or not, or with `persistentOnly`
   * those of the state dict (not the caches a module derives and may resize, such as rotary tables).
   */
  namedBuffers(opts: { persistentOnly?: boolean } = {}): [string, Tensor][] {
    return this.#namedTensors('namedBuffers', true, opts.persistentOnly === true);
  }

  /** The tensors of {@link Module.namedBuffers}. */
  buffers(opts: { persistentOnly?: boolean } = {}): Tensor[] {
    return this.namedBuffers(opts).map(([, t]) => t);
  }

  /** Every module of the tree with its path, this one first (''), each module once, depth first. */
  namedModules(): [string, Module][] {
    const seen = new Set<Module>();
    const out: [string, Module][] = [];
    for (const [path, m] of this.#walk('namedModules')) {
      if (seen.has(m)) continue;
      seen.add(m);
      out.push([path, m]);
    }
    return out;
  }

  /** The modules of {@link Module.namedModules}. */
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** Direct submodules with their names, each once. */
  namedChildren(): [string, Module][] {
    const seen = new Set<Module>();
    const out: [string, Module][] = [];
    for (const [name, m] of this.#submodules()) {
      if (seen.has(m)) continue;
      seen.add(m);
      out.push([name, m]);
    }
    return out;
  }

  /** The modules of {@link Module.namedChildren}. */
  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  /** The container (a module or an array) and key of the last segment of `path`, checked to hold a module there. */
  #resolve(path: string, op: string): [Record<string, unknown>, string] {
    if (typeof path !== 'string' || path === '') fail('ERR_ARG', `${op}: expected a non-empty path such as 'layers.0.mlp'`);
    const segments = path.split('.');
    let container = this as Record<string, unknown>;
    for (let i = 0; ; i++) {
      const seg = segments[i];
      const owns = Array.isArray(container) ? /^\d+$/.test(seg) && Number(seg) < container.length : Object.keys(container).includes(seg);
      const value = owns ? container[seg] : undefined;
      const here = segments.slice(0, i + 1).join('.');
      if (i === segments.length - 1) {
        if (!(value instanceof Module)) fail('ERR_ARG', `${op}: no submodule at '${here}'`);
        return [container, seg];
      }
      if (!(value instanceof Module) && !Array.isArray(value)) fail('ERR_ARG', `${op}: no submodule at '${here}'`);
      container = value as unknown as Record<string, unknown>;
    }
  }

  /** The submodule at `path` (such as `layers.0.self_attn.q_proj`); ERR_ARG if there is none. */
  getSubmodule(path: string): Module {
    const [container, key] = this.#resolve(path, 'getSubmodule');
    return container[key] as Module;
  }

  /**
   * Replaces the submodule at `path` by `module` (the old one is not disposed): how adapters are
   * put in place. The path must name an existing submodule (ERR_ARG otherwise).
   */
  setSubmodule(path: string, module: Module): void {
    if (!(module instanceof Module)) fail('ERR_ARG', 'setSubmodule: expected a Module');
    const [container, key] = this.#resolve(path, 'setSubmodule');
    container[key] = module;
  }

  /** Sets training mode (true) or evaluation mode (false) on this module and every submodule; returns this. */
  train(mode = true): this {
    if (typeof mode !== 'boolean') fail('ERR_ARG', `train: mode must be a boolean, got ${typeof mode}`);
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Evaluation mode: `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  /** Calls `fn` on every submodule (depth first, children before their parent) and then on this; returns this. */
  apply(fn: (m: Module) => void): this {
    for (const child of this.children()) child.apply(fn);
    fn(this);
    return this;
  }

  /** Makes every parameter require grad (or, with false, freezes them all); returns this. */
  requiresGrad_(flag = true): this {
    if (typeof flag !== 'boolean') fail('ERR_ARG', `requiresGrad_: flag must be a boolean, got ${typeof flag}`);
    for (const p of this.parameters()) p.requiresGrad_(flag);
    return this;
  }

  /** The number of parameter elements (each shared parameter once); only those that require grad with `trainableOnly`. */
  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!opts.trainableOnly || p.requiresGrad) n += p.numel;
    return n;
  }

  /**
   * Parameters and persistent buffers by name, in order: per module its parameters, then its
   * buffers, then its submodules'. A tensor held under two names (tied weights) appears under
   * both. The values are aliases: new tensors sharing the parameters' memory (so they show
   * later updates), without history. They belong to the caller: dispose them (or make them
   * inside tidy()); that never frees the model's memory.
   */
  stateDict(): StateDict {
    const tensors = this.#persistentTensors('stateDict');
    for (const t of tensors.values()) t.handle('stateDict');
    const out: StateDict = new Map();
    for (const [name, t] of tensors) out.set(name, wrap(core.alias(t.handle('stateDict')), t.shape, t.dtype, t.device));
    return out;
  }

  /** The tensors of the state dict by name (the model's own, not aliases). */
  #persistentTensors(op: string): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [prefix, m] of this.#walk(op)) {
      for (const [name, t] of m.#ownTensors(true)) out.set(join(prefix, name), t);
    }
    return out;
  }

  /**
   * Copies the tensors of `stateDict` (a Map or a plain object, as {@link Module.stateDict}
   * gives) into this model's parameters and persistent buffers, in place: the tensors stay the
   * same objects, so an optimizer holding them stays valid. Everything is checked before any
   * copy, so a load that throws changes nothing: with `strict` (the default), missing and
   * unexpected keys (ERR_ARG); always, each tensor's shape (ERR_SHAPE), dtype (ERR_DTYPE, no
   * conversion: convert the tensors first) and device (ERR_DEVICE). Returns the keys that a
   * non-strict load skipped.
   */
  loadStateDict(stateDict: StateDict | Record<string, Tensor>, opts: LoadStateDictOptions = {}): LoadStateDictResult {
    const op = 'loadStateDict';
    const strict = opts.strict ?? true;
    if (typeof strict !== 'boolean') fail('ERR_ARG', `${op}: strict must be a boolean, got ${typeof strict}`);
    const given = stateDictEntries(stateDict, op);
    const targets = this.#persistentTensors(op);
    const missingKeys = [...targets.keys()].filter((k) => !given.has(k));
    const unexpectedKeys = [...given.keys()].filter((k) => !targets.has(k));
    if (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
      const parts = [];
      if (missingKeys.length > 0) parts.push(`missing keys: ${listNames(missingKeys)}`);
      if (unexpectedKeys.length > 0) parts.push(`unexpected keys: ${listNames(unexpectedKeys)}`);
      fail('ERR_ARG', `${op}: the state dict does not match the model (${parts.join('; ')}); nothing was loaded`);
    }
    const pairs: [string, Tensor, Tensor][] = [];
    for (const [key, dst] of targets) {
      const src = given.get(key);
      if (src === undefined) continue;
      checkTensor(src, op, `'${key}'`);
      checkTensor(dst, op, `the model's '${key}'`);
      pairs.push([key, dst, src]);
    }
    const checkAll = (code: ErrorCode, kind: string, describe: (dst: Tensor, src: Tensor) => string | null): void => {
      const bad: string[] = [];
      for (const [key, dst, src] of pairs) {
        const problem = describe(dst, src);
        if (problem !== null) bad.push(`'${key}' ${problem}`);
      }
      if (bad.length > 0) fail(code, `${op}: ${kind} mismatch for ${listNames(bad, 5)}; nothing was loaded`);
    };
    checkAll('ERR_SHAPE', 'shape', (d, s) => (sameShape(d.shape, s.shape) ? null : `(given ${fmtShape(s.shape)}, the model has ${fmtShape(d.shape)})`));
    checkAll('ERR_DTYPE', 'dtype', (d, s) => (d.dtype === s.dtype ? null : `(given ${s.dtype}, the model has ${d.dtype})`));
    checkAll('ERR_DEVICE', 'device', (d, s) => (d.device === s.device ? null : `(given on ${s.device}, the model is on ${d.device})`));
    for (const [, dst, src] of pairs) copyInPlace(dst, src, op);
    return { missingKeys, unexpectedKeys };
  }

  /**
   * Moves every parameter and buffer of the tree to `device` ('cpu', 'cuda', 'cuda:N') in place:
   * each is replaced by a copy there (a parameter keeps its requiresGrad; a tensor held by
   * several members moves once) and the old one is disposed. Returns this. Make optimizers
   * after moving the model.
   */
  to(device: Device): this {
    const target = checkDevice(device, 'Module.to');
    const moved = new Map<Tensor, Tensor>();
    for (const [, m] of this.#walk('Module.to')) {
      for (const [name, t, isBuffer] of [...m.#ownTensors(false)]) {
        if (t.device === target) continue;
        let copy = moved.get(t);
        if (!copy) {
          const data = noGrad(() => t.detach().to(target));
          copy = isBuffer ? keep(data) : parameter(data, t.requiresGrad);
          moved.set(t, copy);
        }
        const [key, index] = name.split('.');
        const self = m as unknown as Record<string, unknown>;
        if (index === undefined) self[key] = copy;
        else (self[key] as unknown[])[Number(index)] = copy;
      }
    }
    for (const t of moved.keys()) t.dispose();
    return this;
  }

  /** Frees every parameter and buffer of the tree now; the module cannot be used afterwards. */
  dispose(): void {
    for (const [, m] of this.#walk('dispose')) {
      for (const [, t] of m.#ownTensors(false)) t.dispose();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** @internal The entries of a state dict given as a Map or a plain object, values checked to be tensors. */
export function stateDictEntries(sd: unknown, op: string): Map<string, Tensor> {
  let entries: [string, unknown][];
  if (sd instanceof Map) {
    entries = [...(sd as Map<unknown, unknown>)].map(([k, v]) => {
      if (typeof k !== 'string') fail('ERR_ARG', `${op}: state dict keys must be strings, got ${typeof k}`);
      return [k, v];
    });
  } else if (typeof sd === 'object' && sd !== null && !Array.isArray(sd) && !(sd instanceof Tensor)) {
    entries = Object.entries(sd);
  } else {
    fail('ERR_ARG', `${op}: expected a Map or an object of name -> Tensor`);
  }
  for (const [key, value] of entries) {
    if (!(value instanceof Tensor)) fail('ERR_ARG', `${op}: the value of '${key}' must be a Tensor, got ${value === null ? 'null' : typeof value}`);
  }
  return new Map(entries as [string, Tensor][]);
}

/** dst <- src elementwise, in dst's memory, recording nothing (shapes, dtypes and devices checked). */
function copyInPlace(dst: Tensor, src: Tensor, op: string): void {
  core.copyInto(dst.handle(op), src.handle(op));
}

/** @internal The dtype option of a layer, checked (floating-point, default float32). */
export function floatDtype(dtype: DType | undefined, op: string): DType {
  const d = dtype ?? 'float32';
  if (typeof d !== 'string' || !isFloat(d as DType)) fail('ERR_DTYPE', `${op}: dtype must be a floating-point dtype, got ${String(d)}`);
  return d;
}

/** @internal A size option of a layer: a non-negative integer (ERR_ARG otherwise). */
export function checkSize(v: unknown, op: string, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) fail('ERR_ARG', `${op}: ${name} must be a non-negative integer, got ${String(v)}`);
  return v;
}

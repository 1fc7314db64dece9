/** The optimizer base: parameter groups with per-group options, per-parameter state, state dicts. */
import { DType, dtypeSize, isFloat } from '../dtype';
import { isCapturing, replayScalar } from '../cuda';
import { ErrorCode, fail } from '../errors';
import { keep } from '../memory';
import { checkTensor, fmtShape, sameShape } from '../ops/check';
import { Tensor } from '../tensor';

/** A parameter group as passed to an optimizer: its params, and options that differ from the optimizer's. */
export type ParamGroupSpec<O> = { params: Tensor[] } & Partial<O>;

/** What an optimizer optimizes: a plain array of params (one group), or groups with their own options. */
export type Params<O> = Tensor[] | ParamGroupSpec<O>[];

/** A parameter group: its params and its options, which may be changed between steps (a scheduler sets `lr`). */
export type ParamGroup<O> = { params: Tensor[] } & O;

/** One parameter's optimizer state: buffers (tensors of the param's shape) and step counts. */
export type ParamState = Record<string, Tensor | number>;

/** What {@link Optimizer.stateDict} returns and {@link Optimizer.loadStateDict} takes, as PyTorch's. */
export interface OptimizerStateDict {
  /**
   * The state of each param that has one, by param index: params are numbered 0, 1, ... across
   * the groups in order. The tensors are copies that belong to the caller.
   */
  state: Record<number, ParamState>;
  /** Each group's options, and `params`: the indices of its params. */
  paramGroups: Record<string, unknown>[];
}

/** The entries of one param's state: buffers ('tensor') and non-negative integer counts ('count'). */
export type StateSpec = Readonly<Record<string, 'tensor' | 'count'>>;

/** The dtype of optimizer state for a param of `dtype`: float32 for bfloat16/float16 params, else the param's. */
export function stateDtype(dtype: DType): DType {
  return dtype === 'bfloat16' || dtype === 'float16' ? 'float32' : dtype;
}

/** A finite number at least `min` (below `below` when given), or ERR_ARG naming `op` and `name`. */
export function checkRange(value: unknown, op: string, name: string, min: number, below = Infinity): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value >= below) {
    const range = Number.isFinite(below) ? `in [${min}, ${below})` : Number.isFinite(min) ? `a finite number >= ${min}` : 'a finite number';
    fail('ERR_ARG', `${op}: ${name} must be ${range}, got ${String(value)}`);
  }
  return value;
}

/** Whether `value` is a plain object (`{...}`), not an array, class instance or null. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype;
}

/** `value` as an object with exactly the keys `expected`, or ERR_ARG naming what is missing or extra. */
export function checkKeys(value: unknown, expected: readonly string[], op: string, what: string): Record<string, unknown> {
  if (!isPlainObject(value)) fail('ERR_ARG', `${op}: ${what} must be a plain object`);
  const missing = expected.filter((k) => !Object.prototype.hasOwnProperty.call(value, k));
  if (missing.length) fail('ERR_ARG', `${op}: ${what} is missing ${missing.join(', ')}`);
  const extra = Object.keys(value).filter((k) => !expected.includes(k));
  if (extra.length) fail('ERR_ARG', `${op}: ${what} has unexpected key(s) ${extra.join(', ')}; expected ${expected.join(', ')}`);
  return value;
}

function disposeState(s: ParamState): void {
  for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
}

/**
 * The base of the optimizers, as torch.optim.Optimizer: parameter groups with per-group options
 * (`paramGroups[i].lr` and the rest may change between steps), per-parameter state created on
 * a param's first step, `step()`, `zeroGrad()`, `stateDict()` / `loadStateDict()` and `dispose()`.
 * Parameters are updated in place: their storage is written, the Tensor objects stay the same.
 * A param whose `grad` is null is skipped by a step. State tensors are exempt from {@link tidy}
 * scopes (a tidy around `step()` is safe); `dispose()` frees them.
 */
export abstract class Optimizer<O extends { lr: number }> {
  /** The options of groups that do not set their own. */
  readonly defaults: Readonly<O>;
  readonly paramGroups: ParamGroup<O>[] = [];
  /** Each param's state, once it has one. */
  protected readonly state = new Map<Tensor, ParamState>();
  private disposed = false;

  /**
   * @param name Names the optimizer in error messages.
   * @param defaults Every option's default value.
   * @param stateSpec The entries of a param's state, as stateDict() gives them.
   */
  protected constructor(
    protected readonly name: string,
    params: Params<O>,
    defaults: O,
    options: Partial<O> | undefined,
    private readonly stateSpec: StateSpec,
  ) {
    const overrides = options === undefined ? {} : this.checkOverrides(options, 'options', Object.keys(defaults));
    this.defaults = this.checkOptions({ ...defaults, ...overrides } as Record<string, unknown>, '');
    if (!Array.isArray(params)) fail('ERR_ARG', `${name}: params must be an array of Tensors or of parameter groups`);
    if (params.length === 0) fail('ERR_ARG', `${name}: got an empty parameter list`);
    if (params.every((p) => p instanceof Tensor)) this.addParamGroup({ params: params as Tensor[] } as ParamGroupSpec<O>);
    else for (const group of params) this.addParamGroup(group as ParamGroupSpec<O>);
  }

  /**
   * Validates a complete set of options (`prefix` names where they come from in messages) and
   * returns a normalised copy holding only the option keys.
   */
  protected abstract checkOptions(options: Record<string, unknown>, prefix: string): O;

  /**
   * One step over the params of one group that have a grad (already validated). `lrSlot` is -1,
   * or, while a CUDA graph captures the step, the graph's per-replay scalar holding the group's
   * lr as it is at each replay (for the native step's `lrSlot`).
   */
  protected abstract update(options: O, params: Tensor[], grads: Tensor[], lrSlot: number): void;

  /** Adds a group of params, with options that differ from the optimizer's defaults. */
  addParamGroup(group: ParamGroupSpec<O>): void {
    const op = this.name;
    const where = `paramGroups[${this.paramGroups.length}]`;
    if (!isPlainObject(group) || !Array.isArray(group.params)) {
      fail('ERR_ARG', `${op}: ${where} must be an object { params: Tensor[], ...options } (or pass a plain array of Tensors)`);
    }
    const { params, ...rest } = group;
    const overrides = this.checkOverrides(rest, where);
    const seen = new Set(this.paramGroups.flatMap((g) => g.params));
    params.forEach((p, i) => {
      checkTensor(p, op, `${where}.params[${i}]`);
      if (!isFloat(p.dtype)) fail('ERR_DTYPE', `${op}: ${where}.params[${i}] must be a floating-point tensor, got ${p.dtype}`);
      if (!p.isContiguous()) {
        fail('ERR_ARG', `${op}: ${where}.params[${i}] of shape ${fmtShape(p.shape)} is not contiguous; params are updated in place and must be`);
      }
      if (seen.has(p)) fail('ERR_ARG', `${op}: ${where}.params[${i}] appears more than once among the parameter groups`);
      seen.add(p);
    });
    const options = this.checkOptions({ ...this.defaults, ...overrides }, `${where}.`);
    this.paramGroups.push({ params: params.slice(), ...options });
  }

  /**
   * Updates every param that has a grad, in place, one native call per group. Everything is
   * validated before the first update (each group's options, each grad's shape, dtype and
   * device), so a step that fails validation has changed nothing.
   */
  step(): void {
    const op = `${this.name}.step`;
    this.checkLive(op);
    const work = this.paramGroups.map((group, g) => {
      const options = this.checkOptions(group, `paramGroups[${g}].`);
      const params: Tensor[] = [];
      const grads: Tensor[] = [];
      group.params.forEach((p, i) => {
        // messages are built only on failure: this loop runs for every param at every step
        const what = () => `param ${i} of group ${g}`;
        if (p.isDisposed) fail('ERR_DISPOSED', `${op}: ${what()} was disposed`);
        const grad = p.grad;
        if (grad === null) return;
        if (!(grad instanceof Tensor)) fail('ERR_ARG', `${op}: the grad of ${what()} must be a Tensor or null`);
        if (grad.isDisposed) fail('ERR_DISPOSED', `${op}: the grad of ${what()} was disposed`);
        if (!sameShape(grad.shape, p.shape)) {
          fail('ERR_SHAPE', `${op}: the grad of ${what()} has shape ${fmtShape(grad.shape)}, the param ${fmtShape(p.shape)}`);
        }
        if (grad.dtype !== p.dtype) fail('ERR_DTYPE', `${op}: the grad of ${what()} is ${grad.dtype}, the param ${p.dtype}`);
        if (grad.device !== p.device) fail('ERR_DEVICE', `${op}: the grad of ${what()} is on ${grad.device}, the param on ${p.device}`);
        params.push(p);
        grads.push(grad);
      });
      return { options, params, grads };
    });
    work.forEach(({ options, params, grads }, g) => {
      if (params.length === 0) return;
      const group = this.paramGroups[g];
      const read = () => this.checkOptions(group, `paramGroups[${g}].`).lr;
      this.update(options, params, grads, isCapturing(params[0].device) ? replayScalar(params[0].device, read) : -1);
    });
  }

  /** Sets every param's grad to null, disposing the grad tensors (PyTorch's `zero_grad(set_to_none=True)`). */
  zeroGrad(): void {
    for (const group of this.paramGroups) {
      for (const p of group.params) {
        p.grad?.dispose();
        p.grad = null;
      }
    }
  }

  /**
   * The state of each param (`init` makes a new one for params without), for one native update
   * in `run`: new states are kept only once `run` returns, and freed if it throws.
   */
  protected withStates(params: Tensor[], init: (p: Tensor) => ParamState, run: (states: ParamState[], isNew: boolean[]) => void): void {
    const isNew = params.map((p) => !this.state.has(p));
    if (params.some((p, i) => isNew[i] && isCapturing(p.device))) {
      fail('ERR_CUDA', `${this.name}.step: the optimizer state would be created inside a CUDA graph capture; run one step before capturing`);
    }
    const states = params.map((p, i) => (isNew[i] ? init(p) : (this.state.get(p) as ParamState)));
    try {
      run(states, isNew);
    } catch (err) {
      states.forEach((s, i) => isNew[i] && disposeState(s));
      throw err;
    }
    params.forEach((p, i) => isNew[i] && this.state.set(p, states[i]));
  }

  /**
   * The optimizer's state, as torch's `optimizer.state_dict()`: copies of every state tensor (the
   * caller owns and disposes them), step counts, and each group's options with its param indices.
   */
  stateDict(): OptimizerStateDict {
    this.checkLive(`${this.name}.stateDict`);
    const index = new Map<Tensor, number>();
    const paramGroups = this.paramGroups.map((group) => {
      const params = group.params.map((p) => {
        index.set(p, index.size);
        return index.size - 1;
      });
      return { ...this.optionsOf(group), params };
    });
    const state: Record<number, ParamState> = {};
    for (const [p, s] of this.state) {
      const copy: ParamState = {};
      for (const [key, value] of Object.entries(s)) copy[key] = value instanceof Tensor ? value.clone() : value;
      state[index.get(p) as number] = copy;
    }
    return { state, paramGroups };
  }

  /**
   * Loads a state dict from {@link stateDict} (of an optimizer of the same kind over params of the
   * same shapes, grouped the same way). Everything is checked before anything is loaded — the keys
   * (missing or extra), the group and param counts, the options, and each state tensor's shape
   * (ERR_SHAPE), dtype (ERR_DTYPE) and device — so a failed load leaves the optimizer as it was.
   * The tensors are copied: the caller may dispose `stateDict` afterwards.
   */
  loadStateDict(stateDict: OptimizerStateDict): void {
    const op = `${this.name}.loadStateDict`;
    this.checkLive(op);
    const sd = checkKeys(stateDict, ['state', 'paramGroups'], op, 'the state dict');
    const groups = sd.paramGroups;
    if (!Array.isArray(groups)) fail('ERR_ARG', `${op}: paramGroups must be an array`);
    if (groups.length !== this.paramGroups.length) {
      fail('ERR_ARG', `${op}: the state dict has ${groups.length} parameter group(s), the optimizer ${this.paramGroups.length}`);
    }
    const optionKeys = Object.keys(this.defaults);
    const byId = new Map<number, Tensor>();
    const options = groups.map((group, g) => {
      const where = `paramGroups[${g}]`;
      const entry = checkKeys(group, [...optionKeys, 'params'], op, where);
      const ids = entry.params;
      const params = this.paramGroups[g].params;
      if (!Array.isArray(ids) || ids.length !== params.length) {
        fail('ERR_ARG', `${op}: ${where}.params must list ${params.length} param indices, got ${Array.isArray(ids) ? ids.length : String(ids)}`);
      }
      ids.forEach((id, i) => {
        if (!Number.isInteger(id) || id < 0) fail('ERR_ARG', `${op}: ${where}.params[${i}] must be a non-negative integer, got ${String(id)}`);
        if (byId.has(id)) fail('ERR_ARG', `${op}: param index ${id} appears more than once in paramGroups`);
        byId.set(id, params[i]);
      });
      return this.checkOptions(entry, `${where}.`);
    });
    const state = sd.state;
    if (!isPlainObject(state)) fail('ERR_ARG', `${op}: state must be a plain object keyed by param index`);
    const entries = Object.entries(state).map(([key, value]) => {
      const param = byId.get(Number(key));
      if (param === undefined || String(Number(key)) !== key) fail('ERR_ARG', `${op}: state has an entry for ${key}, which is not a param index of paramGroups`);
      this.checkLoadedState(value, param, op, `state[${key}]`);
      return [param, value as ParamState] as const;
    });
    // Everything is valid: copy, then swap (a failed copy frees what it made and changes nothing).
    const loaded = new Map<Tensor, ParamState>();
    try {
      for (const [param, s] of entries) {
        const copy: ParamState = {};
        loaded.set(param, copy);
        for (const key of Object.keys(this.stateSpec)) {
          const v = s[key];
          copy[key] = v instanceof Tensor ? keep(v.clone()) : v;
        }
      }
    } catch (err) {
      for (const s of loaded.values()) disposeState(s);
      throw err;
    }
    for (const s of this.state.values()) disposeState(s);
    this.state.clear();
    for (const [param, s] of loaded) this.state.set(param, s);
    options.forEach((o, g) => Object.assign(this.paramGroups[g], o));
  }

  /** Bytes of the state tensors this optimizer holds now. */
  stateBytes(): number {
    let bytes = 0;
    for (const s of this.state.values()) for (const v of Object.values(s)) if (v instanceof Tensor) bytes += v.numel * dtypeSize(v.dtype);
    return bytes;
  }

  /** Frees the optimizer's state; the optimizer cannot step afterwards. Idempotent. */
  dispose(): void {
    for (const s of this.state.values()) disposeState(s);
    this.state.clear();
    this.disposed = true;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Options given as overrides: only known option keys (their values are checked with the rest). */
  private checkOverrides(options: unknown, where: string, known = Object.keys(this.defaults)): Partial<O> {
    if (!isPlainObject(options)) fail('ERR_ARG', `${this.name}: ${where} must be a plain object`);
    for (const key of Object.keys(options)) {
      if (!known.includes(key)) fail('ERR_ARG', `${this.name}: unknown option ${key} in ${where}; expected ${known.join(', ')}`);
    }
    return options as Partial<O>;
  }

  /** A copy of a group's options as they are (arrays copied too). */
  private optionsOf(group: ParamGroup<O>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(this.defaults)) {
      const value = (group as Record<string, unknown>)[key];
      out[key] = Array.isArray(value) ? value.slice() : value;
    }
    return out;
  }

  private checkLoadedState(value: unknown, param: Tensor, op: string, where: string): void {
    const s = checkKeys(value, Object.keys(this.stateSpec), op, where);
    for (const [key, kind] of Object.entries(this.stateSpec)) {
      const v = s[key];
      const what = `${where}.${key}`;
      if (kind === 'count') {
        if (!Number.isInteger(v) || (v as number) < 0) fail('ERR_ARG', `${op}: ${what} must be a non-negative integer, got ${String(v)}`);
        continue;
      }
      checkTensor(v, op, what);
      const t = v as Tensor;
      const check = (ok: boolean, code: ErrorCode, got: string, expected: string) => {
        if (!ok) fail(code, `${op}: ${what} is ${got}, the param of shape ${fmtShape(param.shape)} needs ${expected}`);
      };
      check(sameShape(t.shape, param.shape), 'ERR_SHAPE', `of shape ${fmtShape(t.shape)}`, `shape ${fmtShape(param.shape)}`);
      check(t.dtype === stateDtype(param.dtype), 'ERR_DTYPE', t.dtype, stateDtype(param.dtype));
      check(t.device === param.device, 'ERR_DEVICE', `on ${t.device}`, param.device);
    }
  }

  private checkLive(op: string): void {
    if (this.disposed) fail('ERR_DISPOSED', `${op}: the optimizer was disposed`);
  }
}

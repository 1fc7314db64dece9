/**
 * A LoRA layer with PEFT's math and names: a frozen base `nn.Linear` (`base_layer.weight`,
 * `base_layer.bias`) plus named adapters `lora_A.<name>.weight` `[r, in]` and
 * `lora_B.<name>.weight` `[out, r]`, so that state dicts match PEFT's keys inside the layer.
 * `y = base(x) + s * dropout(x) A^T B^T`, `s = alpha / r` (`alpha / sqrt(r)` with rsLoRA),
 * computed by the fused {@link loraLinear}.
 */
import { DType, isFloat } from '../dtype';
import { fail } from '../errors';
import { Linear } from '../nn/layers';
import { Module, parameter } from '../nn/module';
import { loraAdapters, loraDropoutMask, loraLinear, loraMerge, loraScaling, loraUnmerge } from '../ops/lora';
import { Tensor } from '../tensor';

/** Options of one adapter ({@link LoraLinear.addAdapter}). */
export interface LoraAdapterOptions {
  /** The rank (default 8). */
  r?: number;
  /** The scaling numerator (default 8, as PEFT's lora_alpha). */
  alpha?: number;
  /** Dropout probability on the LoRA path, in training mode only (default 0). */
  dropout?: number;
  /** Rank-stabilised scaling `alpha / sqrt(r)` (default false). */
  rsLora?: boolean;
  /**
   * The adapters' dtype. Default: the base weight's dtype when it is float32 or float64, else
   * float32 (a 16-bit base gets float32 adapters, as PEFT's autocast_adapter_dtype).
   */
  dtype?: DType;
}

/** Options of {@link LoraLinear}: the first adapter's options and its name. */
export interface LoraLinearOptions extends LoraAdapterOptions {
  /** The first adapter's name (default 'default'). */
  adapterName?: string;
}

/** What is known of one adapter besides its weights. */
export interface AdapterConfig {
  r: number;
  alpha: number;
  dropout: number;
  rsLora: boolean;
  /** `alpha / r`, or `alpha / sqrt(r)` with rsLora. */
  scaling: number;
}

/** One adapter matrix, held as `weight` so that its name is `lora_A.<name>.weight`. */
class LoraWeight extends Module {
  weight: Tensor;

  constructor(weight: Tensor) {
    super();
    this.weight = parameter(weight);
  }

  forward(): never {
    fail('ERR_ARG', 'LoraLinear: an adapter matrix is not callable; call the LoraLinear layer');
  }
}

/** The adapters of one side (A or B), as PEFT's ModuleDict: a property per adapter name. */
class AdapterDict extends Module {
  forward(): never {
    fail('ERR_ARG', 'LoraLinear: an adapter dict is not callable; call the LoraLinear layer');
  }

  get(name: string): LoraWeight {
    return (this as unknown as Record<string, LoraWeight>)[name];
  }

  set(name: string, w: LoraWeight): void {
    (this as unknown as Record<string, LoraWeight>)[name] = w;
  }
}

function checkOption(op: string, name: string, v: unknown, ok: boolean, what: string): void {
  if (!ok) fail('ERR_ARG', `${op}: ${name} must be ${what}, got ${String(v)}`);
}

/** An empty adapter dict: the names it already has (`training`, its methods) cannot name adapters. */
const RESERVED = new AdapterDict();

/**
 * @internal Checks an adapter name: an identifier (letters, digits, '_', '-') not starting with a
 * digit, and not a name a module already uses.
 */
export function checkAdapterName(op: string, name: unknown): asserts name is string {
  if (typeof name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) {
    fail('ERR_ARG', `${op}: adapter name must be a non-empty identifier (letters, digits, '_', '-'), got ${String(name)}`);
  }
  if (name in RESERVED) fail('ERR_ARG', `${op}: '${name}' is a reserved name`);
}

/** @internal Checks an adapter's options (not its dtype) and gives its configuration with defaults. */
export function adapterConfig(op: string, opts: LoraAdapterOptions): AdapterConfig {
  const r = opts.r ?? 8;
  const alpha = opts.alpha ?? 8;
  const dropout = opts.dropout ?? 0;
  const rsLora = opts.rsLora ?? false;
  checkOption(op, 'r', r, typeof r === 'number' && Number.isInteger(r) && r >= 1, 'a positive integer');
  checkOption(op, 'alpha', alpha, typeof alpha === 'number' && Number.isFinite(alpha), 'a finite number');
  checkOption(op, 'dropout', dropout, typeof dropout === 'number' && dropout >= 0 && dropout < 1, 'a number in [0, 1)');
  checkOption(op, 'rsLora', rsLora, typeof rsLora === 'boolean', 'a boolean');
  if (opts.dtype !== undefined && (typeof opts.dtype !== 'string' || !isFloat(opts.dtype))) {
    fail('ERR_DTYPE', `${op}: dtype must be a floating-point dtype, got ${String(opts.dtype)}`);
  }
  return { r, alpha, dropout, rsLora, scaling: loraScaling(alpha, r, rsLora) };
}

/**
 * A LoRA-adapted linear layer (PEFT's `lora.Linear`). The base layer is frozen
 * (`requiresGrad_(false)` on its weight and bias); adapters start with A Kaiming-uniform and
 * B zero, so the layer starts equal to its base. One adapter is active at a time
 * ({@link LoraLinear.setAdapter}); only the active adapter requires grad.
 */
export class LoraLinear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  base_layer: Linear;
  lora_A: AdapterDict;
  lora_B: AdapterDict;
  readonly #configs = new Map<string, AdapterConfig>();
  #active = '';
  #disabled = false;
  /** The adapters merged into the base weight, in merge order. */
  #merged: string[] = [];

  constructor(base: Linear, opts: LoraLinearOptions = {}) {
    super();
    if (!(base instanceof Linear)) fail('ERR_ARG', 'LoraLinear: expected an nn.Linear base layer');
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
    this.base_layer = base;
    this.lora_A = new AdapterDict();
    this.lora_B = new AdapterDict();
    base.requiresGrad_(false);
    const { adapterName = 'default', ...adapter } = opts;
    this.addAdapter(adapterName, adapter);
    this.train(base.training);
  }

  /** The adapter names, in the order they were added. */
  get adapterNames(): string[] {
    return [...this.#configs.keys()];
  }

  /** The active adapter's name. */
  get activeAdapter(): string {
    return this.#active;
  }

  /** Whether the adapters are disabled (the layer computes its base only). */
  get adaptersDisabled(): boolean {
    return this.#disabled;
  }

  /** The adapters merged into the base weight, in merge order. */
  get mergedAdapters(): string[] {
    return this.#merged.slice();
  }

  /** The scaling `alpha / r` (or `alpha / sqrt(r)`) of an adapter (default the active one). */
  scaling(name = this.#active): number {
    return this.#config(name, 'scaling').scaling;
  }

  /** The options of an adapter (default the active one): r, alpha, dropout, rsLora and the scaling. */
  adapterOptions(name = this.#active): AdapterConfig {
    return { ...this.#config(name, 'adapterOptions') };
  }

  #config(name: string, op: string): AdapterConfig {
    const c = this.#configs.get(name);
    if (c === undefined) fail('ERR_ARG', `LoraLinear.${op}: no adapter named '${String(name)}' (adapters: ${this.adapterNames.join(', ')})`);
    return c;
  }

  /**
   * Adds an adapter `name` (A Kaiming-uniform, B zeros, on the base layer's device). The first one added becomes active;
   * later ones are added frozen and inactive until {@link LoraLinear.setAdapter}.
   */
  addAdapter(name: string, opts: LoraAdapterOptions = {}): void {
    const op = 'LoraLinear.addAdapter';
    checkAdapterName(op, name);
    if (this.#configs.has(name)) fail('ERR_ARG', `${op}: adapter '${name}' already exists`);
    const config = adapterConfig(op, opts);
    const baseDtype = this.base_layer.weight.dtype;
    const dtype = opts.dtype ?? (baseDtype === 'float64' || baseDtype === 'float32' ? baseDtype : 'float32');
    const { a, b } = loraAdapters(this.inFeatures, this.outFeatures, config.r, { dtype, device: this.base_layer.weight.device });
    this.lora_A.set(name, new LoraWeight(a));
    this.lora_B.set(name, new LoraWeight(b));
    this.#configs.set(name, config);
    if (this.#active === '') this.#active = name;
    const trainable = name === this.#active;
    a.requiresGrad_(trainable);
    b.requiresGrad_(trainable);
  }

  /** A's and B's weights of an adapter (default the active one). */
  adapterWeights(name = this.#active): { a: Tensor; b: Tensor } {
    this.#config(name, 'adapterWeights');
    return { a: this.lora_A.get(name).weight, b: this.lora_B.get(name).weight };
  }

  /**
   * Makes `name` the active adapter: it alone requires grad. A merged layer is unmerged first
   * (as PEFT does).
   */
  setAdapter(name: string): void {
    this.#config(name, 'setAdapter');
    if (this.#merged.length > 0) this.unmerge();
    this.#active = name;
    for (const n of this.#configs.keys()) {
      const { a, b } = this.adapterWeights(n);
      a.requiresGrad_(n === name);
      b.requiresGrad_(n === name);
    }
  }

  /** The layer computes its base only (unmerging first if merged), until {@link LoraLinear.enableAdapters}. */
  disableAdapters(): void {
    if (this.#merged.length > 0) this.unmerge();
    this.#disabled = true;
  }

  /** Turns the adapters back on after {@link LoraLinear.disableAdapters}. */
  enableAdapters(): void {
    this.#disabled = false;
  }

  /**
   * Folds adapters (default the active one) into the base weight: `W += s * B A`. Safe merge:
   * an adapter whose delta holds NaN or Inf is refused (ERR_ARG) and W is left as it was.
   * Merging an adapter that is already merged is ERR_ARG.
   */
  merge(names: string[] = [this.#active]): void {
    if (!Array.isArray(names)) fail('ERR_ARG', 'LoraLinear.merge: expected a list of adapter names');
    for (const name of names) {
      this.#config(name, 'merge');
      if (this.#merged.includes(name)) fail('ERR_ARG', `LoraLinear.merge: adapter '${name}' is already merged`);
    }
    for (const name of names) {
      const { a, b } = this.adapterWeights(name);
      loraMerge(this.base_layer.weight, a, b, this.scaling(name));
      this.#merged.push(name);
    }
  }

  /** Takes every merged adapter back out of the base weight (exact up to rounding); nothing if none is merged. */
  unmerge(): void {
    while (this.#merged.length > 0) {
      const name = this.#merged[this.#merged.length - 1];
      const { a, b } = this.adapterWeights(name);
      loraUnmerge(this.base_layer.weight, a, b, this.scaling(name));
      this.#merged.pop();
    }
  }

  /** The base layer alone on x, converting x to its dtype and the result back if they differ. */
  #baseForward(x: Tensor): Tensor {
    const w = this.base_layer.weight;
    if (x.dtype === w.dtype) return this.base_layer.call(x);
    return this.base_layer.call(x.to(w.dtype)).to(x.dtype);
  }

  /**
   * x `[..., in]` -> `[..., out]`: the base layer, plus the active adapter unless the adapters
   * are disabled or merged. x is computed in the adapters' dtype on the LoRA path and the result
   * has x's dtype. Dropout applies in training mode only.
   */
  forward(x: Tensor): Tensor {
    if (!(x instanceof Tensor)) fail('ERR_ARG', 'LoraLinear: expected a Tensor input');
    if (this.#disabled || this.#merged.length > 0) return this.#baseForward(x);
    const { a, b } = this.adapterWeights();
    const { dropout, scaling } = this.#config(this.#active, 'forward');
    const xl = x.dtype === a.dtype ? x : x.to(a.dtype);
    const mask = this.training && dropout > 0 ? loraDropoutMask(xl.shape.slice(), dropout, { dtype: a.dtype, device: xl.device }) : null;
    try {
      const y = loraLinear(xl, this.base_layer.weight, this.base_layer.bias, a, b, scaling, { dropoutMask: mask });
      return y.dtype === x.dtype ? y : y.to(x.dtype);
    } finally {
      mask?.dispose();
    }
  }
}

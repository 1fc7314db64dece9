/**
 * Sharded frozen weights (FSDP / ZeRO-3 for LoRA fine-tuning): each rank stores 1/worldSize of
 * every frozen Linear and Embedding weight; a unit's weights (one decoder block, the embedding,
 * the head) are all-gathered just before its forward and freed right after, gathered again for
 * its backward and freed after it; with prefetch the next unit's gather runs on the comm thread
 * while the current unit computes. Trainable parameters (the adapters) stay replicated.
 *
 * How the backward gets a weight back: the gathered weights are registered with
 * {@link setRefetch}, so that the linear ops record nodes that fetch them again when their
 * backward runs instead of saving them; identity nodes at each unit's input and output mark
 * where the backward enters the unit (gather it, prefetch the one before) and leaves it (free
 * it). A unit whose input needs no gradient (the first block after a frozen embedding) has no
 * node to mark its end: its weights, gathered when the backward enters it, stay until its next
 * forward uses them (or another unit is gathered ahead in their place). Every rank runs the
 * same program, so the gathers are issued in the same order everywhere.
 */
import { isGradEnabled, record, setRefetch } from '../autograd/graph';
import { DType, dtypeSize } from '../dtype';
import { fail } from '../errors';
import { keep, tidy } from '../memory';
import { core } from '../native';
import { Embedding, Linear } from '../nn/layers';
import { LlamaForCausalLM, LlamaModel } from '../nn/models/llama';
import { isParameter, listNames, LoadStateDictOptions, Module, parameter, StateDict } from '../nn/module';
import { empty, zeros } from '../ops/creation';
import { Tensor, wrap } from '../tensor';
import { allGather } from './collectives';
import { group } from './group';
import { Work } from './work';

/** Options of {@link shardFrozenWeights}. */
export interface ShardOptions {
  /**
   * Issue the next unit's all-gather while the current one computes (the previous one's during
   * the backward), default true. Off, each unit is gathered when it starts.
   */
  prefetch?: boolean;
  /** Frozen weights of fewer elements stay replicated (default 0: every frozen Linear and Embedding weight is sharded). */
  minNumel?: number;
}

/** What {@link ShardedWeights.stats} reports. */
export interface ShardStats {
  /** The ranks the weights are sharded across. */
  worldSize: number;
  /** The units' paths in forward order (`model.embed_tokens`, `model.layers.0`, ..., `lm_head`). */
  units: string[];
  /** Sharded weights (a tied weight counts once). */
  tensors: number;
  /** Their bytes in full (what each rank held before). */
  fullBytes: number;
  /** Bytes of shards this rank stores: about fullBytes / worldSize (plus padding, and a tied weight once per unit using it). */
  shardBytes: number;
  /** All-gathers issued so far (one per unit and dtype each time a unit is gathered). */
  gathers: number;
  /** Bytes those gathers produced. */
  gatheredBytes: number;
  /** Milliseconds the JS thread spent waiting for gathers to finish (with prefetch, the part the compute did not hide); on CUDA tensors the device's stream waits instead, and this stays near 0. */
  waitMs: number;
}

/** One sharded weight and the module properties that held it (two for a tied weight). */
interface ShardedTensor {
  name: string;
  owners: [Module, string][];
  shape: number[];
  dtype: DType;
  numel: number;
}

/**
 * The weights of one unit of one dtype, laid out one after another in a flat buffer padded to a
 * multiple of worldSize; rank r stores the r-th equal part.
 */
interface FlatGroup {
  dtype: DType;
  pieces: { tensor: ShardedTensor; offset: number }[];
  shard: Tensor;
  /** The gathered buffer while the unit is gathered, and its gather while in flight. */
  full: Tensor | null;
  work: Work<Tensor> | null;
}

/** A part of the model whose weights are gathered and freed together. */
interface Unit {
  name: string;
  index: number;
  module: Module;
  groups: FlatGroup[];
  /** Forwards and backward windows running now: the weights are readable while positive. */
  holds: number;
  /** Full-shaped views of the gathered buffers, once the gathers finished. */
  views: Map<ShardedTensor, Tensor> | null;
}

/** Whether the unit's gathers were issued (and its buffers not freed since). */
function isGathered(unit: Unit): boolean {
  return unit.groups[0].full !== null;
}

/**
 * A unit's backward, between its output's node and its input's: open (the unit held) or not, or
 * null when its input needs no gradient (no input node to close it).
 */
interface Window {
  open: boolean | null;
}

/** Every module of a live sharding, to refuse sharding it (or a part of it) twice. */
const SHARDED = new WeakMap<Module, ShardedWeights>();

/** The modules whose forward is a unit: LLaMA's embedding, blocks and head; else the root's children holding sharded weights. */
function unitModules(model: Module, holds: (m: Module) => boolean): Module[] {
  if (model instanceof LlamaForCausalLM) return [model.model.embed_tokens, ...model.model.layers, model.lm_head];
  if (model instanceof LlamaModel) return [model.embed_tokens, ...model.layers];
  if (model instanceof Linear || model instanceof Embedding) return [model];
  return model.children().filter((c) => c.modules().some(holds));
}

/** Sets `key` of `obj` to a non-enumerable value or accessor and returns how to put the own property back. */
function override(obj: object, key: string, desc: PropertyDescriptor): () => void {
  const own = Object.getOwnPropertyDescriptor(obj, key);
  Object.defineProperty(obj, key, { configurable: true, enumerable: false, ...desc });
  return () => {
    if (own) Object.defineProperty(obj, key, own);
    else delete (obj as Record<string, unknown>)[key];
  };
}

/** The value of the module property holding `tensor` (its first owner's). */
function weightOf(tensor: ShardedTensor): Tensor {
  const [m, key] = tensor.owners[0];
  return (m as unknown as Record<string, Tensor>)[key];
}

/** This rank's part of `list` (weights of one dtype) laid out one after another, padded to a multiple of n. */
function flatShard(list: ShardedTensor[], n: number, rank: number): FlatGroup {
  let total = 0;
  const pieces = list.map((tensor) => {
    const piece = { tensor, offset: total };
    total += tensor.numel;
    return piece;
  });
  const size = Math.ceil(total / n);
  const [lo, hi] = [rank * size, (rank + 1) * size];
  const device = weightOf(list[0]).device;
  const shard = keep(zeros([size], { dtype: list[0].dtype, device }));
  tidy(() => {
    for (const { tensor, offset } of pieces) {
      const [from, to] = [Math.max(offset, lo), Math.min(offset + tensor.numel, hi)];
      if (to > from) {
        const [dst, src] = [shard.narrow(0, from - lo, to - from), weightOf(tensor).reshape(-1).narrow(0, from - offset, to - from)];
        core.copyInto(dst.handle('dist.shardFrozenWeights'), src.handle('dist.shardFrozenWeights'));
      }
    }
  });
  return { dtype: list[0].dtype, pieces, shard, full: null, work: null };
}

/**
 * The frozen weights of a model sharded across the ranks by {@link shardFrozenWeights}. While
 * it lives, the model runs forward and backward as before, each rank storing only its shards.
 *
 * What the model shows meanwhile: the sharded weights are no longer members of their modules
 * (`parameters()`, `namedParameters()` and DDP do not see them; what they list is replicated
 * and equal on every rank: the adapters, norms, biases and any trainable weight). Reading a
 * sharded weight (`layer.weight`) works inside its unit's forward and backward only; outside,
 * it is ERR_DIST, as are `stateDict()` and `savePretrained()` on modules holding sharded
 * weights, `loadStateDict()` of a dict naming one (other tensors, such as the adapters, load),
 * `mergeLora` / `LoraLinear.merge` and `createCache` (generation). Call
 * {@link ShardedWeights.dispose} (on every rank) to gather the full weights back first;
 * `lora.saveAdapter` and the trainable state of `train` checkpoints work as they are. The
 * shards belong to this object, not to the model: `model.dispose()` leaves them to it.
 */
export class ShardedWeights {
  readonly #units: Unit[];
  readonly #tensors: ShardedTensor[];
  readonly #worldSize: number;
  readonly #prefetch: boolean;
  readonly #restore: (() => void)[] = [];
  readonly #modules: Module[];
  /** A unit gathered ahead of its use (no holds yet). */
  #ahead: Unit | null = null;
  /** The last unit whose forward recorded boundaries: the one the backward reaches next. */
  #lastTracked: Unit | null = null;
  #disposed = false;
  #gathers = 0;
  #gatheredBytes = 0;
  #waitMs = 0;

  /** @internal Use {@link shardFrozenWeights}. */
  constructor(model: Module, tensors: ShardedTensor[], unitModules: [string, Module][], prefetch: boolean) {
    const op = 'dist.shardFrozenWeights';
    const g = group(op);
    const [n, rank] = [g.env.worldSize, g.env.rank];
    this.#worldSize = n;
    this.#prefetch = prefetch;
    this.#tensors = tensors;
    this.#modules = model.modules();
    const unitOf = new Map<Module, Unit>();
    this.#units = unitModules.map(([name, module], index) => {
      const unit: Unit = { name, index, module, groups: [], holds: 0, views: null };
      for (const m of module.modules()) unitOf.set(m, unit);
      return unit;
    });
    for (const unit of this.#units) {
      const mine = tensors.filter((t) => t.owners.some(([m]) => unitOf.get(m) === unit));
      // one flat shard per dtype and device
      const kindOf = (t: ShardedTensor) => `${t.dtype} ${weightOf(t).device}`;
      for (const kind of new Set(mine.map(kindOf))) unit.groups.push(flatShard(mine.filter((t) => kindOf(t) === kind), n, rank));
    }
    // the full weights go; each owner's property reads the gathered weight of its own unit
    for (const tensor of tensors) {
      const original = weightOf(tensor);
      for (const [m, key] of tensor.owners) {
        const unit = unitOf.get(m) as Unit;
        override(m, key, {
          get: () => this.#read(unit, tensor),
          set: () => fail('ERR_DIST', `${tensor.name}: cannot assign a weight sharded by dist.shardFrozenWeights; dispose() the sharding first`),
        });
      }
      original.dispose();
    }
    for (const unit of this.#units) {
      const forward = unit.module.forward as (...args: unknown[]) => unknown;
      this.#restore.push(override(unit.module, 'forward', { writable: true, value: (...args: unknown[]) => this.#forward(unit, forward, args) }));
    }
    // what would read every weight refuses rather than miss the sharded ones; loads of other
    // tensors (the adapters) go through
    const ownerKeys = new Map<Module, string[]>();
    for (const t of tensors) for (const [m, key] of t.owners) ownerKeys.set(m, [...(ownerKeys.get(m) ?? []), key]);
    const refusal = (method: string, what: string) =>
      `${method}: ${what} sharded across ${n} ranks (dist.shardFrozenWeights); call dispose() on the sharding, on every rank, to gather them back first`;
    for (const m of this.#modules) {
      const sharded = new Set(m.namedModules().flatMap(([path, x]) => (ownerKeys.get(x) ?? []).map((key) => (path === '' ? key : `${path}.${key}`))));
      if (sharded.size === 0) continue;
      for (const method of ['stateDict', 'savePretrained']) {
        if (typeof (m as unknown as Record<string, unknown>)[method] !== 'function') continue;
        this.#restore.push(override(m, method, { writable: true, value: () => fail('ERR_DIST', refusal(method, 'the frozen weights of this model are')) }));
      }
      const load = m.loadStateDict;
      const loadUnsharded = (sd: StateDict | Record<string, Tensor>, opts?: LoadStateDictOptions) => {
        const hit = [...(sd instanceof Map ? sd.keys() : Object.keys(sd ?? {}))].filter((k) => sharded.has(k));
        if (hit.length > 0) fail('ERR_DIST', refusal('loadStateDict', `${listNames(hit, 5)} ${hit.length > 1 ? 'are' : 'is'}`));
        return load.call(m, sd, opts);
      };
      this.#restore.push(override(m, 'loadStateDict', { writable: true, value: loadUnsharded }));
    }
    for (const m of this.#modules) SHARDED.set(m, this);
  }

  /** What is sharded, what this rank stores and what the gathers cost so far. */
  stats(): ShardStats {
    let shardBytes = 0;
    for (const u of this.#units) for (const g of u.groups) shardBytes += g.shard.numel * dtypeSize(g.dtype);
    return {
      worldSize: this.#worldSize,
      units: this.#units.map((u) => u.name),
      tensors: this.#tensors.length,
      fullBytes: this.#tensors.reduce((s, t) => s + t.numel * dtypeSize(t.dtype), 0),
      shardBytes,
      gathers: this.#gathers,
      gatheredBytes: this.#gatheredBytes,
      waitMs: this.#waitMs,
    };
  }

  /** Whether {@link ShardedWeights.dispose} ran. */
  get isDisposed(): boolean {
    return this.#disposed;
  }

  /**
   * Gathers the full weights back into the model (frozen parameters again, tied weights one
   * tensor again), puts the modules back as they were and frees the shards. A collective: every
   * rank calls it, at the same point. Graphs recorded while sharded cannot be backpropagated
   * afterwards. A second call does nothing.
   */
  dispose(): void {
    if (this.#disposed) return;
    const restored = new Map<ShardedTensor, Tensor>();
    for (const unit of this.#units) {
      for (const [tensor, view] of this.#materialize(unit)) if (!restored.has(tensor)) restored.set(tensor, parameter(view.clone(), false));
      this.#free(unit);
      for (const g of unit.groups) g.shard.dispose();
    }
    this.#disposed = true;
    for (const [tensor, full] of restored) {
      for (const [m, key] of tensor.owners) Object.defineProperty(m, key, { configurable: true, enumerable: true, writable: true, value: full });
    }
    for (const restore of this.#restore.splice(0)) restore();
    for (const m of this.#modules) SHARDED.delete(m);
    this.#ahead = this.#lastTracked = null;
  }

  /** {@link ShardedWeights.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** A sharded weight read through its module: the gathered tensor while its unit runs, else ERR_DIST. */
  #read(unit: Unit, tensor: ShardedTensor): Tensor {
    if (unit.holds === 0) {
      fail(
        'ERR_DIST',
        `${tensor.name} ${JSON.stringify(tensor.shape)} is sharded across ${this.#worldSize} ranks by dist.shardFrozenWeights and exists in full ` +
          `only during the forward and backward of ${unit.name}; call dispose() on the sharding (on every rank) to gather the weights back`,
      );
    }
    return this.#materialize(unit).get(tensor) as Tensor;
  }

  /** Issues the unit's all-gathers (into new buffers) unless it is gathered already. */
  #gather(unit: Unit): void {
    if (isGathered(unit)) return;
    for (const g of unit.groups) {
      g.full = keep(empty([g.shard.numel * this.#worldSize], { dtype: g.dtype, device: g.shard.device }));
      g.work = allGather(g.shard, { out: g.full });
      this.#gathers++;
      this.#gatheredBytes += g.full.numel * dtypeSize(g.dtype);
    }
  }

  /** The unit's full weights: gathered (or the gather in flight waited for) now if needed. */
  #materialize(unit: Unit): Map<ShardedTensor, Tensor> {
    if (this.#disposed) fail('ERR_DIST', `${unit.name}: the sharding was disposed; a graph recorded while the weights were sharded cannot be backpropagated after dispose()`);
    if (unit.views !== null) return unit.views;
    this.#gather(unit);
    const views = new Map<ShardedTensor, Tensor>();
    for (const g of unit.groups) {
      const t0 = performance.now();
      g.work!.wait();
      this.#waitMs += performance.now() - t0;
      g.work = null;
      for (const { tensor, offset } of g.pieces) {
        const view = keep(tidy(() => g.full!.narrow(0, offset, tensor.numel).reshape(tensor.shape)));
        setRefetch(view, () => this.#materialize(unit).get(tensor) as Tensor);
        views.set(tensor, view);
      }
    }
    unit.views = views;
    if (this.#ahead === unit) this.#ahead = null;
    return views;
  }

  /** Frees the unit's gathered weights (after its gather, if one is in flight). */
  #free(unit: Unit): void {
    for (const view of unit.views?.values() ?? []) view.dispose();
    unit.views = null;
    for (const g of unit.groups) {
      g.work?.wait();
      g.work = null;
      g.full?.dispose();
      g.full = null;
    }
    if (this.#ahead === unit) this.#ahead = null;
  }

  #hold(unit: Unit): void {
    unit.holds++;
    this.#materialize(unit);
  }

  #drop(unit: Unit): void {
    if (--unit.holds === 0 && !this.#disposed) this.#free(unit);
  }

  /** With prefetch, starts gathering `unit` ahead of its use. */
  #prefetchUnit(unit: Unit | null): void {
    if (this.#prefetch && unit !== null) this.#gatherAhead(unit);
  }

  /** Starts gathering `unit` ahead of its use, unless it is gathered; a unit gathered ahead earlier and still unused is freed. */
  #gatherAhead(unit: Unit): void {
    if (isGathered(unit)) return;
    if (this.#ahead !== null && this.#ahead.holds === 0) this.#free(this.#ahead);
    this.#gather(unit);
    this.#ahead = unit;
  }

  /** A unit's forward: its weights held around the module's own forward, and boundary nodes recorded for the backward. */
  #forward(unit: Unit, forward: (...args: unknown[]) => unknown, args: unknown[]): unknown {
    const trainable = unit.module.parameters().some((p) => p.requiresGrad);
    const tracked = isGradEnabled() && (trainable || args.some((a) => a instanceof Tensor && a.requiresGrad));
    const window: Window = { open: false };
    let previous: Unit | null = null;
    if (tracked) {
      previous = this.#lastTracked !== null && this.#lastTracked.index < unit.index ? this.#lastTracked : null;
      this.#lastTracked = unit;
      const i = args.findIndex((a) => a instanceof Tensor && a.requiresGrad);
      if (i >= 0) args = args.map((a, j) => (j === i ? this.#unitInput(unit, a as Tensor, window) : a));
      else window.open = null;
    }
    let out: unknown;
    try {
      this.#hold(unit);
      this.#prefetchUnit(this.#units[unit.index + 1] ?? null);
      out = forward.apply(unit.module, args);
    } finally {
      this.#drop(unit);
    }
    if (tracked && out instanceof Tensor && out.requiresGrad) return this.#unitOutput(unit, out, previous, window);
    return out;
  }

  /** x as a new tensor whose backward, run once the unit's backward is done, frees the unit. */
  #unitInput(unit: Unit, x: Tensor, window: Window): Tensor {
    const out = wrap(core.alias(x.handle('dist.shardFrozenWeights')), x.shape, x.dtype, x.device);
    record(out, `${unit.name} input`, [x], [], (g) => {
      if (window.open) {
        window.open = false;
        this.#drop(unit);
      }
      return [g];
    });
    return out;
  }

  /** y as a new tensor whose backward, run before the unit's, gathers the unit and prefetches the one before. */
  #unitOutput(unit: Unit, y: Tensor, previous: Unit | null, window: Window): Tensor {
    const out = wrap(core.alias(y.handle('dist.shardFrozenWeights')), y.shape, y.dtype, y.device);
    record(out, `${unit.name} output`, [y], [], (g) => {
      if (window.open === null) {
        this.#gatherAhead(unit);
      } else if (!window.open) {
        this.#hold(unit);
        window.open = true;
      }
      this.#prefetchUnit(previous);
      return [g];
    });
    return out;
  }
}

/**
 * Shards the frozen weights of `model` across the ranks of the process group (FSDP / ZeRO-3
 * for LoRA fine-tuning). Every rank calls it on the same model with the same weights (the same
 * seed or checkpoint), after `applyLora` and before the optimizer is built from
 * `parameters()`; it returns the {@link ShardedWeights}.
 *
 * What is sharded: the weight of every Linear (LoRA base layers and the LM head included) and
 * Embedding that is a frozen parameter (requiresGrad false) of at least `minNumel` elements.
 * Norm weights, biases and trainable parameters stay replicated. Each rank keeps 1/worldSize of
 * every unit's weights (flattened per unit and dtype, padded to a multiple of worldSize); the
 * full weights are freed. A tied weight (LLaMA's tieWordEmbeddings) is sharded into each unit
 * using it.
 *
 * Units, gathered and freed together: for LlamaForCausalLM (LlamaModel) the embedding, each
 * decoder block and the head; for a Linear or Embedding, itself; for another module, each of its
 * direct children holding sharded weights, in property order (the order their forwards run in,
 * for prefetch to help; any order is correct). Units must be called through their forward.
 *
 * ERR_DIST without a process group; ERR_ARG for a model (or part of one) already sharded, for
 * bad options, and when there is nothing to shard.
 */
export function shardFrozenWeights(model: Module, opts: ShardOptions = {}): ShardedWeights {
  const op = 'dist.shardFrozenWeights';
  group(op);
  if (!(model instanceof Module)) fail('ERR_ARG', `${op}: expected a Module`);
  if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', `${op}: options must be an object`);
  for (const key of Object.keys(opts)) if (key !== 'prefetch' && key !== 'minNumel') fail('ERR_ARG', `${op}: unknown option ${key}; expected prefetch, minNumel`);
  const prefetch = opts.prefetch ?? true;
  if (typeof prefetch !== 'boolean') fail('ERR_ARG', `${op}: prefetch must be a boolean, got ${String(prefetch)}`);
  const minNumel = opts.minNumel ?? 0;
  if (typeof minNumel !== 'number' || !Number.isInteger(minNumel) || minNumel < 0) fail('ERR_ARG', `${op}: minNumel must be an integer >= 0, got ${String(minNumel)}`);
  const named = model.namedModules();
  if (named.some(([, m]) => SHARDED.has(m))) fail('ERR_ARG', `${op}: the model (or a module of it) is sharded already; dispose() that sharding first`);
  // the frozen weights, each once with every module property holding it
  const byTensor = new Map<Tensor, ShardedTensor>();
  for (const [path, m] of named) {
    if (!(m instanceof Linear || m instanceof Embedding)) continue;
    const w = m.weight;
    if (!isParameter(w) || w.requiresGrad || w.numel < minNumel || w.numel === 0) continue;
    w.handle(op);
    const name = path === '' ? 'weight' : `${path}.weight`;
    const known = byTensor.get(w);
    if (known) known.owners.push([m, 'weight']);
    else byTensor.set(w, { name, owners: [[m, 'weight']], shape: w.shape.slice(), dtype: w.dtype, numel: w.numel });
  }
  const tensors = [...byTensor.values()];
  if (tensors.length === 0) {
    fail('ERR_ARG', `${op}: the model has no frozen Linear or Embedding weight${minNumel > 0 ? ` of at least ${minNumel} elements` : ''} to shard (freeze the base weights first: applyLora does)`);
  }
  const owners = new Set(tensors.flatMap((t) => t.owners.map(([m]) => m)));
  const holds = (m: Module) => owners.has(m);
  const units = unitModules(model, holds).filter((u) => u.modules().some(holds));
  const pathOf = new Map(named.map(([p, m]) => [m, p]));
  const seen = new Map<Module, Module>();
  for (const u of units) {
    for (const m of u.modules()) {
      const other = seen.get(m);
      if (other !== undefined) fail('ERR_ARG', `${op}: the module at '${pathOf.get(m)}' belongs to two units ('${pathOf.get(other)}' and '${pathOf.get(u)}')`);
      seen.set(m, u);
    }
  }
  const outside = tensors.filter((t) => t.owners.some(([m]) => !seen.has(m)));
  if (outside.length > 0) fail('ERR_ARG', `${op}: ${outside[0].name} is in none of the units (${units.map((u) => pathOf.get(u)).join(', ')})`);
  return new ShardedWeights(model, tensors, units.map((u) => [pathOf.get(u) || '(model)', u]), prefetch);
}

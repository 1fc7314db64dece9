/**
 * ZeRO stage 1: the optimizer's state sharded across the data-parallel ranks, each rank
 * updating its share of the parameters and sending the results to the others.
 */
import { fail } from '../errors';
import { checkTensor } from '../ops/check';
import type { Optimizer, OptimizerStateDict, ParamGroup, ParamGroupSpec, Params } from '../optim/optimizer';
import { Tensor } from '../tensor';
import { broadcastTensors } from './flat';
import { group } from './group';

/** An optimizer class of `optim` (AdamW, SGD, ...): what {@link ZeroRedundancyOptimizer} wraps. */
export type OptimizerClass<O extends { lr: number }> = new (params: Params<O>, options?: Partial<O>) => Optimizer<O>;

/** Options of {@link ZeroRedundancyOptimizer} itself. */
export interface ZeroOptions {
  /** The most bytes of parameters one broadcast of updated parameters carries, in MiB (default 25). */
  bucketCapMB?: number;
}

const OP = 'ZeroRedundancyOptimizer';

/** A group's options: everything but its params. */
function withoutParams<O extends object>(g: ParamGroup<O>): Partial<O> {
  const options: Record<string, unknown> = { ...g };
  delete options.params;
  return options as Partial<O>;
}

/**
 * Assigns each tensor to one of `n` ranks, balancing their element counts: largest first (ties
 * in order), each to the rank with the fewest elements so far (ties to the lowest rank). The same
 * on every rank.
 */
export function partitionBySize(tensors: readonly Tensor[], n: number): number[] {
  const owner = new Array<number>(tensors.length);
  const load = new Array<number>(n).fill(0);
  const order = tensors.map((_, i) => i).sort((a, b) => tensors[b].numel - tensors[a].numel || a - b);
  for (const i of order) {
    let best = 0;
    for (let r = 1; r < n; r++) if (load[r] < load[best]) best = r;
    owner[i] = best;
    load[best] += tensors[i].numel;
  }
  return owner;
}

/**
 * ZeRO-1 optimizer sharding, as `torch.distributed.optim.ZeroRedundancyOptimizer`: the
 * parameters are partitioned across the ranks by size ({@link partitionBySize}); each rank keeps
 * an inner optimizer (`new optimizerClass(itsParams, options)`) for its own partition only, so
 * the optimizer state takes about 1/worldSize of its memory on each rank. `step()` updates this
 * rank's partition from its gradients (averaged by {@link DistributedDataParallel}, so the same
 * everywhere), then each rank broadcasts its updated parameters to the others: afterwards every
 * rank holds the same parameters, as after a plain `optimizer.step()` on each. Construct and step
 * on every rank, with the same params in the same order.
 *
 * It looks like an {@link Optimizer} to a training loop: `paramGroups` (every param, and the
 * options a scheduler changes, such as `lr`, which the next step passes to the inner optimizer),
 * `step()`, `zeroGrad()` (every param's grad), `dispose()`. Checkpoints: {@link localStateDict}
 * holds this rank's shard only; a consolidated {@link stateDict} (the whole state on one rank) is
 * not implemented and raises ERR_ARG.
 */
export class ZeroRedundancyOptimizer<O extends { lr: number }> {
  /** Every param, grouped as given, with each group's options (change them between steps, as on any optimizer). */
  readonly paramGroups: ParamGroup<O>[];
  /** The optimizer over this rank's partition (its groups mirror {@link paramGroups}, with this rank's params only). */
  readonly optimizer: Optimizer<O>;
  /** Each param's owner rank, in the order of the params across the groups. */
  readonly owners: readonly number[];
  private readonly partitions: Tensor[][];
  private readonly capBytes: number;

  constructor(params: Params<O>, optimizerClass: OptimizerClass<O>, options?: Partial<O>, zeroOptions: ZeroOptions = {}) {
    const g = group(OP);
    if (typeof optimizerClass !== 'function') fail('ERR_ARG', `${OP}: expected an optimizer class (AdamW, SGD, ...)`);
    if (!Array.isArray(params) || params.length === 0) fail('ERR_ARG', `${OP}: params must be a non-empty array of Tensors or of parameter groups`);
    const { bucketCapMB = 25 } = zeroOptions;
    if (typeof bucketCapMB !== 'number' || !(bucketCapMB > 0) || !Number.isFinite(bucketCapMB)) {
      fail('ERR_ARG', `${OP}: bucketCapMB must be a positive number, got ${String(bucketCapMB)}`);
    }
    this.capBytes = Math.max(1, Math.floor(bucketCapMB * 1024 * 1024));
    const specs = (params as unknown[]).every((p) => p instanceof Tensor)
      ? [{ params: params as Tensor[] }]
      : (params as ParamGroupSpec<O>[]);
    const all: Tensor[] = [];
    specs.forEach((spec, i) => {
      if (spec === null || typeof spec !== 'object' || !Array.isArray(spec.params)) {
        fail('ERR_ARG', `${OP}: paramGroups[${i}] must be an object { params: Tensor[], ...options }`);
      }
      spec.params.forEach((p, j) => all.push(checkTensor(p, OP, `paramGroups[${i}].params[${j}]`)));
    });
    if (new Set(all).size !== all.length) fail('ERR_ARG', `${OP}: a param appears more than once among the parameter groups`);

    const n = g.env.worldSize;
    const me = g.env.rank;
    this.owners = partitionBySize(all, n);
    this.partitions = Array.from({ length: n }, () => []);
    all.forEach((p, i) => this.partitions[this.owners[i]].push(p));
    const mine = new Set(this.partitions[me]);
    // every group, with this rank's params only (possibly none): the inner optimizer checks the options
    this.optimizer = new optimizerClass(
      specs.map((spec) => ({ ...spec, params: spec.params.filter((p) => mine.has(p)) })) as ParamGroupSpec<O>[],
      options,
    );
    this.paramGroups = specs.map((spec, i) => ({ ...this.optionsOf(i), params: spec.params.slice() }) as ParamGroup<O>);
  }

  /** Bytes of optimizer state on this rank (about 1/worldSize of an unsharded optimizer's once every param has stepped). */
  stateBytes(): number {
    return this.optimizer.stateBytes();
  }

  /** The params this rank updates. */
  get localParams(): Tensor[] {
    return this.partitions[group(OP).env.rank].slice();
  }

  /**
   * Updates this rank's partition (params without a grad are skipped, as by any optimizer) with
   * the current options of {@link paramGroups}, then copies each rank's updated params to every
   * rank. A collective: call it on every rank.
   */
  step(): void {
    const inner = this.optimizer.paramGroups;
    this.paramGroups.forEach((g, i) => Object.assign(inner[i], withoutParams(g)));
    this.optimizer.step();
    this.partitions.forEach((owned, r) => {
      if (owned.length > 0) broadcastTensors(owned, r, this.capBytes, `${OP}.step`);
    });
  }

  /** Sets the grad of every param (not only this rank's) to null, disposing it. */
  zeroGrad(): void {
    for (const g of this.paramGroups) {
      for (const p of g.params) {
        p.grad?.dispose();
        p.grad = null;
      }
    }
  }

  /** The inner optimizer's state dict: this rank's shard of the state (its param indices count this rank's params only). */
  localStateDict(): OptimizerStateDict {
    return this.optimizer.stateDict();
  }

  /** Loads a shard saved by {@link localStateDict} on the same rank of a world of the same size. */
  loadLocalStateDict(stateDict: OptimizerStateDict): void {
    this.optimizer.loadStateDict(stateDict);
    this.paramGroups.forEach((g, i) => Object.assign(g, this.optionsOf(i)));
  }

  /** Not implemented: the state is sharded; use {@link localStateDict} on every rank. */
  stateDict(): OptimizerStateDict {
    fail('ERR_ARG', `${OP}.stateDict: consolidating the sharded state on one rank is not implemented; save localStateDict() on every rank`);
  }

  /** Frees this rank's optimizer state. */
  dispose(): void {
    this.optimizer.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** A copy of the inner optimizer's options of group i. */
  private optionsOf(i: number): Partial<O> {
    return structuredClone(withoutParams(this.optimizer.paramGroups[i]));
  }
}

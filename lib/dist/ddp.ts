/**
 * Data-parallel training: every rank holds the whole model, computes on its part of the batch,
 * and the gradients are averaged over the ranks in buckets while backward still runs.
 */
import { currentBackward, queueBackwardCallback } from '../autograd/backward';
import type { RemovableHandle } from '../autograd/graph';
import { fail } from '../errors';
import { keep, tidy } from '../memory';
import { core } from '../native';
import { Module } from '../nn/module';
import { tensor } from '../ops/creation';
import { clone } from '../ops/views';
import { Tensor } from '../tensor';
import { allReduce } from './collectives';
import { broadcastTensors, FlatBuffer, groupBySize } from './flat';
import { group } from './group';
import { Work } from './work';

/** Options of {@link DistributedDataParallel}. */
export interface DistributedDataParallelOptions {
  /** The most bytes of gradients one reduction carries, in MiB (default 25, as PyTorch's). */
  bucketCapMB?: number;
  /**
   * Also copy rank 0's persistent buffers to every rank before each forward, as PyTorch's
   * `broadcast_buffers` (for buffers that training changes, such as running statistics).
   * Default false: they are copied once, at construction (ignis's models hold constant
   * tables only). Non-persistent buffers are caches each rank derives: never copied.
   */
  broadcastBuffers?: boolean;
}

/** What the last synced backward's gradient reduction did ({@link DistributedDataParallel.lastSyncStats}). */
export interface SyncStats {
  /** Buckets reduced (one reduction each). */
  buckets: number;
  /** Of those, the ones launched while backward still ran (the rest were launched at its end). */
  launchedEarly: number;
  /** Bytes reduced on this rank. */
  bytes: number;
  /** From the first bucket launched to the end of the walk: the backward time communication could hide behind. */
  windowMs: number;
  /**
   * Time backward spent at its end waiting for the reductions: communication that was not hidden,
   * and any wait for slower ranks to reach the last buckets.
   */
  waitMs: number;
  /** What the same reductions take on their own (see {@link DistributedDataParallel.measureCommunication}). */
  commMs: number;
  /** `1 - waitMs / commMs`, clamped to [0, 1]: the share of communication hidden behind backward. */
  hiddenShare: number;
}

interface Bucket {
  params: Tensor[];
  /** The params' gradients end to end, then one flag per param: 1 where this rank had a gradient. */
  flat: FlatBuffer;
}

/** One synced backward's reduction in progress. */
interface Round {
  backward: number;
  /** Per bucket: params whose gradient is not final yet. */
  pending: number[];
  /** Buckets launched so far (they launch in order, so that every rank issues the same sequence). */
  launched: number;
  works: Work<Tensor>[];
  firstLaunchAt: number;
  launchedEarly: number;
}

const OP = 'DistributedDataParallel';

function now(): number {
  return performance.now();
}

/**
 * Wraps a module for data-parallel training, as `torch.nn.parallel.DistributedDataParallel`:
 * call it as the module (`ddp.call(...)` / `ddp.forward(...)`), backward as usual, then step the
 * optimizer on every rank. Each rank's loss must be a mean over its own part of the batch: the
 * gradients are averaged over the ranks, which then equals the mean over the whole batch.
 *
 * - Construction (on every rank, after `dist.init()`, blocking) copies rank 0's parameters and
 *   buffers to every rank, and checks with one reduction per bucket that every rank built the
 *   same buckets.
 * - The trainable parameters (`requiresGrad`) are assigned to buckets of one dtype and at most
 *   `bucketCapMB` each, in reverse registration order (about the order backward finishes them).
 *   When backward has accumulated the gradient of every parameter of a bucket (post-accumulate
 *   hooks), the gradients are copied into the bucket's flat buffer and an averaging all-reduce
 *   starts on the comm thread, so communication overlaps with the rest of backward. Buckets
 *   start in order on every rank. At the end of backward, the remaining buckets start, every
 *   reduction is waited for and the averages are copied back into each `.grad`: backward returns
 *   with the gradients synchronized.
 * - A parameter that got no gradient in a backward counts as zero in its bucket (it never holds
 *   back the others, nothing hangs, as PyTorch's `find_unused_parameters` without its extra graph
 *   walk); it gets the average of the ranks that had one (a `.grad` even where it had none, so
 *   every rank steps the same), and keeps no `.grad` where no rank had one.
 * - {@link noSync} accumulates gradients locally (gradient accumulation); the next synced
 *   backward reduces the accumulated sums.
 * - Every rank must run the same number of synced backwards (a collective sequence); a rank that
 *   is gone makes the others' backward fail with ERR_TIMEOUT / ERR_DIST naming it.
 */
export class DistributedDataParallel<M extends Module = Module> {
  readonly module: M;
  /** Bytes of gradients per reduction at most. */
  readonly bucketCapBytes: number;
  readonly broadcastBuffers: boolean;
  /** What the last synced backward's reduction did, or null before the first. */
  lastSyncStats: SyncStats | null = null;
  private readonly buckets: Bucket[];
  private readonly place = new Map<Tensor, number>();
  private readonly hooks: RemovableHandle[];
  private round: Round | null = null;
  private syncing = true;
  private commMs = 0;
  private disposed = false;

  constructor(module: M, options: DistributedDataParallelOptions = {}) {
    if (!(module instanceof Module)) fail('ERR_ARG', `${OP}: expected a Module`);
    if (options === null || typeof options !== 'object') fail('ERR_ARG', `${OP}: options must be an object`);
    for (const key of Object.keys(options)) {
      if (key !== 'bucketCapMB' && key !== 'broadcastBuffers') fail('ERR_ARG', `${OP}: unknown option ${key}; expected bucketCapMB, broadcastBuffers`);
    }
    const { bucketCapMB = 25, broadcastBuffers = false } = options;
    if (typeof bucketCapMB !== 'number' || !(bucketCapMB > 0) || !Number.isFinite(bucketCapMB)) {
      fail('ERR_ARG', `${OP}: bucketCapMB must be a positive number, got ${String(bucketCapMB)}`);
    }
    if (typeof broadcastBuffers !== 'boolean') fail('ERR_ARG', `${OP}: broadcastBuffers must be a boolean`);
    group(OP); // ERR_DIST before init()
    this.module = module;
    this.bucketCapBytes = Math.max(1, Math.floor(bucketCapMB * 1024 * 1024));
    this.broadcastBuffers = broadcastBuffers;

    const params = module.parameters();
    broadcastTensors([...params, ...this.liveBuffers()], 0, this.bucketCapBytes, OP);
    const trainable = params.filter((p) => p.requiresGrad).reverse();
    this.buckets = groupBySize(trainable, this.bucketCapBytes).map((members, b) => {
      members.forEach((p) => this.place.set(p, b));
      const flat = new FlatBuffer(
        members.map((p) => p.shape),
        members[0].dtype,
        members[0].device,
        members.length,
      );
      core.fill(flat.buffer.handle(OP), 0);
      return { params: members, flat };
    });
    try {
      this.measureCommunication(1);
    } catch (e) {
      this.releaseBuckets();
      throw e;
    }
    this.hooks = trainable.map((p) => p.registerPostAccumulateGradHook((leaf) => this.onGradReady(leaf)));
  }

  /** The number of gradient buckets (reductions per synced backward). */
  get numBuckets(): number {
    return this.buckets.length;
  }

  /** Runs the module's forward (after copying rank 0's buffers, with `broadcastBuffers`). */
  forward(...args: Parameters<M['forward']>): ReturnType<M['forward']> {
    this.checkLive('forward');
    this.finishStaleRound();
    if (this.broadcastBuffers) broadcastTensors(this.liveBuffers(), 0, this.bucketCapBytes, OP);
    return this.module.call(...args);
  }

  /** Same as {@link forward}. */
  call(...args: Parameters<M['forward']>): ReturnType<M['forward']> {
    return this.forward(...args);
  }

  /**
   * Runs `fn` with gradient synchronization off: backwards inside only accumulate into `.grad`
   * on this rank, and the next synced backward averages the accumulated sums (gradient
   * accumulation without a reduction per micro-batch, as PyTorch's `no_sync()`). `fn` may return
   * a Promise: synchronization resumes once it settles.
   */
  noSync<T>(fn: () => T): T {
    if (typeof fn !== 'function') fail('ERR_ARG', `${OP}.noSync: expected a function`);
    const previous = this.syncing;
    this.syncing = false;
    let result: T;
    try {
      result = fn();
    } catch (e) {
      this.syncing = previous;
      throw e;
    }
    if (result instanceof Promise) return result.finally(() => (this.syncing = previous)) as T;
    this.syncing = previous;
    return result;
  }

  /**
   * Times the reduction of every bucket on its own (blocking, nothing to overlap with), the
   * median of `reps` rounds, in ms; {@link SyncStats.commMs} reports it from then on. A
   * collective: call it on every rank. Construction measures one round.
   */
  measureCommunication(reps = 3): number {
    this.checkLive('measureCommunication');
    if (!Number.isInteger(reps) || reps < 1) fail('ERR_ARG', `${OP}.measureCommunication: reps must be an integer >= 1, got ${String(reps)}`);
    this.finishStaleRound();
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = now();
      for (const b of this.buckets) allReduce(b.flat.buffer, { op: 'avg' }).wait();
      this.reducedFlags();
      times.push(now() - t0);
    }
    times.sort((a, b) => a - b);
    this.commMs = times[reps >> 1];
    return this.commMs;
  }

  /** Removes the hooks and frees the buckets (after the reduction in flight, if any); the module stays as it is. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const h of this.hooks) h.remove();
    try {
      for (const w of this.round?.works ?? []) w.wait();
    } finally {
      this.round = null;
      this.releaseBuckets();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // Non-persistent buffers are caches each rank derives, possibly at different sizes (rotary tables).
  private liveBuffers(): Tensor[] {
    return this.module.buffers({ persistentOnly: true }).filter((t) => !t.isDisposed);
  }

  private releaseBuckets(): void {
    for (const b of this.buckets) b.flat.dispose();
  }

  private checkLive(op: string): void {
    if (this.disposed) fail('ERR_DISPOSED', `${OP}.${op}: the wrapper was disposed`);
  }

  /** A param's gradient is final for this backward. */
  private onGradReady(p: Tensor): void {
    if (!this.syncing) return;
    const backward = currentBackward();
    if (this.round?.backward !== backward) {
      this.finishStaleRound();
      this.round = {
        backward,
        pending: this.buckets.map((b) => b.params.length),
        launched: 0,
        works: [],
        firstLaunchAt: 0,
        launchedEarly: 0,
      };
      queueBackwardCallback(() => this.finishRound());
    }
    const round = this.round as Round;
    round.pending[this.place.get(p) as number]--;
    while (round.launched < this.buckets.length && round.pending[round.launched] === 0) {
      this.launch(round);
      round.launchedEarly++;
    }
  }

  /** Starts the reduction of the next bucket in order: gradients (zeros where none) and flags. */
  private launch(round: Round): void {
    const { params, flat } = this.buckets[round.launched++];
    const grads = params.map((p) => (p.grad === null || p.grad.isDisposed ? null : p.grad));
    flat.pack(grads, OP);
    const flags = tensor(
      grads.map((g) => (g === null ? 0 : 1)),
      { dtype: flat.dtype, device: flat.device },
    );
    try {
      core.copyInto(flat.tail.handle(OP), flags.handle(OP));
    } finally {
      flags.dispose();
    }
    if (round.works.length === 0) round.firstLaunchAt = now();
    round.works.push(allReduce(flat.buffer, { op: 'avg' }));
  }

  /** At the end of a synced backward: starts what is left, waits for everything, copies the averages back. */
  private finishRound(): void {
    const round = this.round as Round;
    const walkEnd = now();
    let waitMs = 0;
    let had: Float64Array[];
    try {
      while (round.launched < this.buckets.length) this.launch(round);
      const t0 = now();
      for (const w of round.works) w.wait();
      had = this.reducedFlags();
      waitMs = now() - t0;
    } finally {
      this.round = null;
    }
    let bytes = 0;
    this.buckets.forEach(({ params, flat }, b) => {
      bytes += flat.bytes;
      params.forEach((p, i) => {
        if (had[b][i] === 0) return; // no rank had a gradient
        const averaged = flat.views[i];
        if (p.grad === null || p.grad.isDisposed) p.grad = keep(clone(averaged));
        else core.copyInto(p.grad.handle(OP), averaged.handle(OP));
      });
    });
    const commMs = this.commMs;
    this.lastSyncStats = {
      buckets: this.buckets.length,
      launchedEarly: round.launchedEarly,
      bytes,
      windowMs: walkEnd - round.firstLaunchAt,
      waitMs,
      commMs,
      hiddenShare: commMs > 0 ? Math.min(1, Math.max(0, 1 - waitMs / commMs)) : 0,
    };
  }

  /**
   * Each bucket's reduced flags (non-zero where some rank had the param's gradient), read on the
   * host once the reductions waited for are done: on CUDA tensors `wait()` only orders the
   * device's stream, and this read is where the host waits for them.
   */
  private reducedFlags(): Float64Array[] {
    return this.buckets.map((b) => tidy(() => b.flat.tail.to('float64').data() as Float64Array));
  }

  /**
   * A round left by a backward that failed on this rank: its remaining buckets are reduced (and
   * the results dropped), so that this rank issues the same collectives as the others.
   */
  private finishStaleRound(): void {
    const round = this.round;
    if (round === null || round.backward === currentBackward()) return;
    this.round = null;
    while (round.launched < this.buckets.length) this.launch(round);
    for (const w of round.works) w.wait();
  }
}

/**
 * The training loop of a causal language model: batches drawn in a seeded order, gradient
 * accumulation weighted by tokens, clipping, AdamW with warmup and cosine decay, evaluation on
 * held-out data, and a state that resumes the exact same run.
 */
import { fail } from '../errors';
import { noGrad } from '../autograd/graph';
import { tidy } from '../memory';
import { getRngState, setRngState } from '../ops/creation';
import type { RngState } from '../ops/creation';
import { AdamW } from '../optim/adamw';
import { clipGradNorm, clipGradNormTensor } from '../optim/clip';
import type { OptimizerStateDict } from '../optim/optimizer';
import { cosineScheduleWithWarmup, LRScheduler } from '../optim/schedule';
import type { LRSchedulerStateDict } from '../optim/schedule';
import { Tensor } from '../tensor';
import { Module } from '../nn/module';
import { collate, shuffled } from '../data/dataset';
import type { Batch, Example } from '../data/dataset';
import { tensor, zeros } from '../ops/creation';
import { graph as cudaGraph } from '../cuda';
import type { CudaGraph } from '../cuda';
import * as dist from '../dist';
import { checkDevice, Device } from '../device';

/** What the trainer needs of a model: a module whose forward takes token ids and labels and gives the mean loss. */
export interface CausalLM extends Module {
  forward(inputIds: Tensor, opts: { labels: Tensor }): { loss: Tensor | null };
}

/** Options of {@link Trainer}. */
export interface TrainerOptions {
  model: CausalLM;
  /** Training examples (drawn in a new seeded order each epoch). */
  train: Example[];
  /** Held-out examples for {@link Trainer.evaluate} (may be empty). */
  heldOut?: Example[];
  /** The token id that pads short examples. */
  padId: number;
  /** Examples per micro-batch. */
  batchSize: number;
  /** Micro-batches per optimizer step (default 1). */
  gradAccum?: number;
  /** Optimizer steps in all. */
  totalSteps: number;
  /** Peak learning rate. */
  lr: number;
  /** Steps of linear warmup before the cosine decay (default 0). */
  warmupSteps?: number;
  /** AdamW's decoupled weight decay (default 0). */
  weightDecay?: number;
  /** Gradients are clipped to this total norm (default 1; Infinity turns clipping off). */
  maxGradNorm?: number;
  /** Fixes the order of the examples (default 0). */
  seed?: number;
  /**
   * Data-parallel training over the process group (default: when `dist.init()` made a group of
   * more than one rank). `batchSize` is then per rank: each step's micro-batch k holds
   * `batchSize * worldSize` examples and rank r trains on its r-th share, so N ranks take the
   * same steps as one process with N times the batch. Gradients are averaged by
   * {@link dist.DistributedDataParallel} during backward; only the last micro-batch of a step
   * communicates.
   */
  distributed?: boolean;
  /**
   * Where the batches go: collated on the CPU, each is moved there before the forward (default:
   * the device of the model's first parameter, so a model moved with `.to('cuda')` trains on it).
   */
  device?: Device;
  /**
   * Capture the training step into a CUDA graph and replay it (a CUDA device and one process):
   * the GPU then runs a whole step from one launch instead of waiting for the host to issue each
   * op, which is what bounds small models. The shapes a graph replays never change, so every
   * micro-batch is padded to `batchSize` rows of the longest training example. The first step
   * (and the first after {@link Trainer.loadStateDict}) runs eagerly, which creates the
   * optimizer state; the next is captured, and the later ones replay it. Each replay reads the
   * scheduled learning rate and draws fresh dropout masks. Default false.
   */
  cudaGraph?: boolean;
}

/** What one optimizer step did. */
export interface StepResult {
  /** The step's number, from 1. */
  step: number;
  /** The mean loss over the step's learned tokens. */
  loss: number;
  /** Tokens learned in the step. */
  tokens: number;
  /** Tokens fed through the model in the step (padding included). */
  inputTokens: number;
  /** The learning rate the step used. */
  lr: number;
  /** The gradients' total norm before clipping. */
  gradNorm: number;
}

/** The loss on held-out data. */
export interface EvalResult {
  /** Mean loss per learned token. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  tokens: number;
}

/** What {@link Trainer.stateDict} returns: everything to resume the same run (the model's weights aside). */
export interface TrainerState {
  step: number;
  optimizer: OptimizerStateDict;
  scheduler: LRSchedulerStateDict;
  rng: RngState;
}

/** The tensors a captured step reads and writes (see {@link TrainerOptions.cudaGraph}). */
interface StaticStep {
  /** Micro-batch k's inputs and labels, [batchSize, length] on the device. */
  inputIds: Tensor[];
  labels: Tensor[];
  /** [gradAccum]: micro-batch k's share of the step's learned tokens (its loss weight). */
  weights: Tensor;
  /** Captured at the second step after a reset; null before. */
  graph: CudaGraph<StaticStepOutput> | null;
  /** Whether the eager step before the capture has run. */
  warm: boolean;
}

/** What a static step leaves on the device: the step's mean loss and the gradient norm. */
interface StaticStepOutput {
  loss: Tensor;
  gradNorm: Tensor | null;
}

/** `value` if it is a positive number (an integer unless `integer` is false), else ERR_ARG naming `op` and `name`. */
export function checkPositive(value: unknown, op: string, name: string, integer = true): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    fail('ERR_ARG', `${op}: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${String(value)}`);
  }
  return value;
}

/**
 * Trains the model's trainable parameters (those with `requiresGrad`). Step k (from 0) uses
 * micro-batches k * gradAccum ... k * gradAccum + gradAccum - 1 of an endless sequence that
 * walks the training examples in a fresh seeded order per epoch, so a run resumed from
 * {@link stateDict} draws the same batches as one never stopped. Each micro-batch's loss is
 * weighted by its share of the step's learned tokens, so accumulation gives the same gradient
 * as one big batch.
 */
export class Trainer {
  readonly model: CausalLM;
  readonly totalSteps: number;
  readonly batchSize: number;
  readonly gradAccum: number;
  readonly params: Tensor[];
  /** The device the batches are moved to: the model's. */
  readonly device: Device;
  readonly optimizer: AdamW;
  readonly scheduler: LRScheduler;
  readonly #train: Example[];
  readonly #heldOut: Example[];
  readonly #padId: number;
  readonly #seed: number;
  readonly #maxGradNorm: number;
  readonly #rank: number;
  readonly #worldSize: number;
  readonly #ddp: dist.DistributedDataParallel | null;
  #order: { epoch: number; order: number[] } = { epoch: -1, order: [] };
  #step = 0;
  /** With cudaGraph: the longest training example, the length micro-batches are padded to. */
  readonly #staticLength: number;
  #static: StaticStep | null = null;

  constructor(opts: TrainerOptions) {
    this.model = opts.model;
    this.#train = opts.train;
    this.#heldOut = opts.heldOut ?? [];
    if (this.#train.length === 0) fail('ERR_ARG', 'Trainer: no training examples');
    this.#padId = opts.padId;
    this.batchSize = checkPositive(opts.batchSize, 'Trainer', 'batchSize');
    this.gradAccum = checkPositive(opts.gradAccum ?? 1, 'Trainer', 'gradAccum');
    this.totalSteps = checkPositive(opts.totalSteps, 'Trainer', 'totalSteps');
    this.#seed = opts.seed ?? 0;
    this.#maxGradNorm = opts.maxGradNorm ?? 1;
    this.params = this.model.parameters().filter((p) => p.requiresGrad);
    if (this.params.length === 0) fail('ERR_ARG', 'Trainer: the model has no trainable parameters');
    this.device = checkDevice(opts.device ?? this.params[0].device, 'Trainer');
    const distributed = opts.distributed ?? (dist.isInitialized() && dist.worldSize() > 1);
    if (typeof distributed !== 'boolean') fail('ERR_ARG', 'Trainer: distributed must be a boolean');
    this.#rank = distributed ? dist.rank() : 0;
    this.#worldSize = distributed ? dist.worldSize() : 1;
    this.#ddp = distributed ? new dist.DistributedDataParallel(this.model) : null;
    const cudaGraph = opts.cudaGraph ?? false;
    if (typeof cudaGraph !== 'boolean') fail('ERR_ARG', 'Trainer: cudaGraph must be a boolean');
    if (cudaGraph && this.device === 'cpu') fail('ERR_ARG', 'Trainer: cudaGraph needs a CUDA device, the trainer is on cpu');
    if (cudaGraph && this.#ddp !== null) fail('ERR_ARG', 'Trainer: cudaGraph trains in one process, not distributed');
    this.#staticLength = cudaGraph ? Math.max(...this.#train.map((e) => e.inputIds.length)) : 0;
    this.optimizer = new AdamW(this.params, { lr: opts.lr, weightDecay: opts.weightDecay ?? 0 });
    this.scheduler = cosineScheduleWithWarmup(this.optimizer, {
      warmupSteps: Math.min(opts.warmupSteps ?? 0, this.totalSteps),
      totalSteps: this.totalSteps,
    });
  }

  /** Optimizer steps done. */
  get step(): number {
    return this.#step;
  }

  /** Micro-batches in one pass over the training examples (each of `batchSize` examples per rank). */
  get batchesPerEpoch(): number {
    return Math.ceil(this.#train.length / (this.batchSize * this.#worldSize));
  }

  /** This rank's examples of micro-batch `m` of the endless sequence (possibly none at an epoch's end). */
  #microBatch(m: number): Example[] {
    const perEpoch = this.batchesPerEpoch;
    const epoch = Math.floor(m / perEpoch);
    if (this.#order.epoch !== epoch) this.#order = { epoch, order: shuffled(this.#train.length, this.#seed + epoch) };
    const start = ((m % perEpoch) * this.#worldSize + this.#rank) * this.batchSize;
    return this.#order.order.slice(start, start + this.batchSize).map((i) => this.#train[i]);
  }

  /**
   * Runs `fn` on a two-token batch: what a rank without examples computes (and then ignores or
   * weights by 0), so that every rank runs the same forwards and backwards, whose collectives
   * (gradient reductions, sharded weights' gathers) need all of them.
   */
  #idle<T>(fn: (batch: Batch) => T): T {
    const batch = this.#collate([this.#idleExample()]);
    try {
      return fn(batch);
    } finally {
      batch.inputIds.dispose();
      batch.labels.dispose();
    }
  }

  /** Two padding tokens, the second learned: the smallest batch with a finite loss. */
  #idleExample(): Example {
    return { inputIds: [this.#padId, this.#padId], labels: [this.#padId, this.#padId] };
  }

  /** The examples collated (on the CPU), then moved to the trainer's device. */
  #collate(examples: Example[]): Batch {
    const batch = collate(examples, this.#padId);
    if (this.device === 'cpu') return batch;
    try {
      return { ...batch, inputIds: batch.inputIds.to(this.device), labels: batch.labels.to(this.device) };
    } finally {
      batch.inputIds.dispose();
      batch.labels.dispose();
    }
  }

  /**
   * `values` combined over the ranks training together (`op`: sum, the default, or max), in
   * float64; themselves in a single process. Every rank must call it at the same point.
   */
  reduceOverRanks(values: number[], op: 'sum' | 'max' = 'sum'): number[] {
    if (this.#ddp === null) return values;
    return tidy(() => Array.from(dist.allReduce(tensor(values, { dtype: 'float64' }), { op }).wait().data() as Float64Array));
  }

  /** One optimizer step over `gradAccum` micro-batches (on every rank, in step, when distributed). */
  trainStep(): StepResult {
    if (this.#step >= this.totalSteps) fail('ERR_ARG', `Trainer: all ${this.totalSteps} steps are done`);
    this.model.train();
    const batches = Array.from({ length: this.gradAccum }, (_, k) => this.#microBatch(this.#step * this.gradAccum + k));
    const lr = this.optimizer.paramGroups[0].lr;
    const result = this.#staticLength > 0 ? this.#staticStep(batches) : this.#eagerStep(batches);
    this.scheduler.step();
    this.#step++;
    return { step: this.#step, lr, ...result };
  }

  #eagerStep(batches: Example[][]): Omit<StepResult, 'step' | 'lr'> {
    let lossSum = 0;
    const collated: (Batch | null)[] = [];
    let tokens = 0;
    let inputTokens = 0;
    try {
      for (const examples of batches) collated.push(examples.length ? this.#collate(examples) : null);
      for (const b of collated) {
        tokens += b?.tokens ?? 0;
        inputTokens += b?.inputIds.numel ?? 0;
      }
      const [total] = this.reduceOverRanks([tokens]);
      // Gradients are averaged over the ranks: each rank's share is weighted by worldSize.
      const weight = this.#worldSize / total;
      collated.forEach((batch, k) => {
        const run = () => tidy(() => {
          if (batch !== null && batch.tokens > 0) {
            const loss = this.#loss(batch.inputIds, batch.labels);
            lossSum += loss.item() * batch.tokens;
            loss.mul(batch.tokens * weight).backward();
          } else if (this.#ddp !== null) {
            this.#idle((idle) => this.#loss(idle.inputIds, idle.labels).mul(0).backward());
          }
        });
        if (this.#ddp !== null && k < collated.length - 1) this.#ddp.noSync(run);
        else run();
      });
    } finally {
      for (const b of collated) {
        b?.inputIds.dispose();
        b?.labels.dispose();
      }
    }
    const gradNorm = Number.isFinite(this.#maxGradNorm) ? clipGradNorm(this.params, this.#maxGradNorm) : NaN;
    this.optimizer.step();
    this.optimizer.zeroGrad();
    [lossSum, tokens, inputTokens] = this.reduceOverRanks([lossSum, tokens, inputTokens]);
    return { loss: tokens ? lossSum / tokens : NaN, tokens, inputTokens, gradNorm };
  }

  /**
   * A step of fixed shapes (cudaGraph): the micro-batches are copied into the static inputs,
   * then the step runs eagerly, is captured, or is replayed. A micro-batch without learned
   * tokens (no examples, or only ignored labels) gets a two-token batch weighted 0: its own mean
   * loss would be 0/0, whose NaN a weight of 0 does not cancel (the eager step skips it).
   */
  #staticStep(batches: Example[][]): Omit<StepResult, 'step' | 'lr'> {
    const s = (this.#static ??= this.#makeStaticStep());
    let tokens = 0;
    const counts: number[] = [];
    const shape = { rows: this.batchSize, length: this.#staticLength };
    batches.forEach((examples, k) => {
      let batch = examples.length ? collate(examples, this.#padId, shape) : null;
      const learned = batch?.tokens ?? 0;
      if (batch === null || learned === 0) {
        batch?.inputIds.dispose();
        batch?.labels.dispose();
        batch = collate([this.#idleExample()], this.#padId, shape);
      }
      try {
        s.inputIds[k].copy_(batch.inputIds);
        s.labels[k].copy_(batch.labels);
      } finally {
        batch.inputIds.dispose();
        batch.labels.dispose();
      }
      counts.push(learned);
      tokens += learned;
    });
    const inputTokens = this.gradAccum * this.batchSize * this.#staticLength;
    // nothing to learn: no update, as the eager step (whose params then have no grad)
    if (tokens === 0) return { loss: NaN, tokens, inputTokens, gradNorm: Number.isFinite(this.#maxGradNorm) ? 0 : NaN };
    tidy(() => s.weights.copy_(tensor(counts.map((n) => n / tokens), { dtype: s.weights.dtype })));
    let output: StaticStepOutput;
    if (!s.warm) {
      output = this.#forwardBackwardStep(s);
      s.warm = true;
    } else {
      s.graph ??= cudaGraph(() => this.#forwardBackwardStep(s), { device: this.device });
      s.graph.replay();
      output = s.graph.output;
    }
    const loss = output.loss.item();
    const gradNorm = output.gradNorm?.item() ?? NaN;
    if (s.graph === null) {
      output.loss.dispose();
      output.gradNorm?.dispose();
    }
    return { loss, tokens, inputTokens, gradNorm };
  }

  /** The captured work: every micro-batch's weighted forward and backward, clipping, the update. */
  #forwardBackwardStep(s: StaticStep): StaticStepOutput {
    return tidy(() => {
      const losses = s.inputIds.map((inputIds, k) => {
        const weighted = this.#loss(inputIds, s.labels[k]).mul(s.weights.narrow(0, k, 1).reshape([]));
        weighted.backward();
        return weighted.detach();
      });
      const gradNorm = Number.isFinite(this.#maxGradNorm) ? clipGradNormTensor(this.params, this.#maxGradNorm) : null;
      this.optimizer.step();
      this.optimizer.zeroGrad();
      return { loss: losses.reduce((sum, loss) => sum.add(loss)), gradNorm };
    });
  }

  #makeStaticStep(): StaticStep {
    const shape = [this.batchSize, this.#staticLength];
    const ids = () => Array.from({ length: this.gradAccum }, () => zeros(shape, { dtype: 'int64', device: this.device }));
    const lossDtype = this.params[0].dtype === 'float64' ? 'float64' : 'float32';
    return {
      inputIds: ids(),
      labels: ids(),
      weights: zeros([this.gradAccum], { dtype: lossDtype, device: this.device }),
      graph: null,
      warm: false,
    };
  }

  /** Drops the captured step (the optimizer state it updates was replaced): the next step runs eagerly again. */
  #resetStaticStep(): void {
    const s = this.#static;
    if (s === null) return;
    if (s.graph !== null) {
      s.graph.dispose();
      s.graph.output.loss.dispose();
      s.graph.output.gradNorm?.dispose();
    }
    s.graph = null;
    s.warm = false;
  }

  #loss(inputIds: Tensor, labels: Tensor): Tensor {
    const { loss } = this.model.forward(inputIds, { labels });
    if (!(loss instanceof Tensor)) fail('ERR_INTERNAL', 'Trainer: the model gave no loss for labels');
    return loss;
  }

  /**
   * The mean loss per learned token over the held-out examples (in eval mode, without
   * gradients). When distributed, the ranks share the batches and every rank gets the result.
   */
  evaluate(): EvalResult {
    if (this.#heldOut.length === 0) fail('ERR_ARG', 'Trainer.evaluate: no held-out examples');
    const wasTraining = this.model.training;
    this.model.eval();
    let lossSum = 0;
    let tokens = 0;
    try {
      const stride = this.batchSize * this.#worldSize;
      for (let first = 0; first < this.#heldOut.length; first += stride) {
        const start = first + this.#rank * this.batchSize;
        if (start >= this.#heldOut.length) {
          this.#idle((idle) => noGrad(() => tidy(() => this.#loss(idle.inputIds, idle.labels))));
          continue;
        }
        const batch = this.#collate(this.#heldOut.slice(start, start + this.batchSize));
        try {
          // a rank computes even a batch without tokens: the others' forwards may need it
          if (batch.tokens === 0 && this.#ddp === null) continue;
          const loss = noGrad(() => tidy(() => this.#loss(batch.inputIds, batch.labels).item()));
          if (batch.tokens === 0) continue;
          lossSum += loss * batch.tokens;
          tokens += batch.tokens;
        } finally {
          batch.inputIds.dispose();
          batch.labels.dispose();
        }
      }
    } finally {
      this.model.train(wasTraining);
    }
    [lossSum, tokens] = this.reduceOverRanks([lossSum, tokens]);
    const loss = lossSum / tokens;
    return { loss, perplexity: Math.exp(loss), tokens };
  }

  /**
   * The state to resume from: steps done, the optimizer's state (its tensors are copies the
   * caller disposes), the scheduler's, and the global random generator's (dropout masks).
   */
  stateDict(): TrainerState {
    return { step: this.#step, optimizer: this.optimizer.stateDict(), scheduler: this.scheduler.stateDict(), rng: getRngState() };
  }

  /** Restores a state from {@link stateDict}; the model's trainable weights must be restored by the caller. */
  loadStateDict(state: TrainerState): void {
    if (!Number.isInteger(state.step) || state.step < 0 || state.step > this.totalSteps) {
      fail('ERR_ARG', `Trainer.loadStateDict: step ${state.step} is outside [0, ${this.totalSteps}]`);
    }
    this.optimizer.loadStateDict(state.optimizer);
    this.#resetStaticStep();
    this.scheduler.loadStateDict(state.scheduler);
    setRngState(state.rng);
    this.#step = state.step;
  }

  /** This process's rank and the number of ranks training together (0 and 1 unless distributed). */
  get world(): { rank: number; size: number } {
    return { rank: this.#rank, size: this.#worldSize };
  }

  /** Frees the optimizer's state, the captured step and its inputs, and removes the data-parallel hooks. */
  dispose(): void {
    this.#resetStaticStep();
    if (this.#static !== null) for (const t of [...this.#static.inputIds, ...this.#static.labels, this.#static.weights]) t.dispose();
    this.#static = null;
    this.optimizer.dispose();
    this.#ddp?.dispose();
  }
}

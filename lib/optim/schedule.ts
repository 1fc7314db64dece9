/** Learning-rate schedules driving `optimizer.paramGroups[i].lr`, as torch's LambdaLR and transformers' schedules. */
import { fail } from '../errors';
import { checkKeys } from './optimizer';

/** What a scheduler drives: anything with parameter groups that have an `lr` (every {@link Optimizer}). */
export interface LrOptimizer {
  paramGroups: { lr: number }[];
}

/** The learning-rate factor at a step (0 at construction, then +1 per scheduler step). */
export type LrLambda = (step: number) => number;

/** What {@link LRScheduler.stateDict} returns. */
export interface LRSchedulerStateDict {
  /** Steps taken (0 right after construction). */
  lastStep: number;
  /** Each group's learning rate when the scheduler was made. */
  baseLrs: number[];
}

/**
 * Sets each group's `lr` to `baseLr * lambda(step)`, as torch.optim.lr_scheduler.LambdaLR: the
 * base lrs are the groups' lrs at construction, which applies step 0; call `step()` after each
 * `optimizer.step()`. One lambda for every group, or one per group.
 */
export class LRScheduler {
  readonly optimizer: LrOptimizer;
  private readonly lambdas: LrLambda[];
  private baseLrs: number[];
  private step_ = 0;
  private lastLrs: number[] = [];

  constructor(optimizer: LrOptimizer, lrLambda: LrLambda | LrLambda[]) {
    const op = 'LRScheduler';
    if (optimizer === null || typeof optimizer !== 'object' || !Array.isArray(optimizer.paramGroups)) {
      fail('ERR_ARG', `${op}: expected an optimizer (an object with paramGroups)`);
    }
    const groups = optimizer.paramGroups;
    groups.forEach((g, i) => {
      if (typeof g?.lr !== 'number' || !Number.isFinite(g.lr)) fail('ERR_ARG', `${op}: paramGroups[${i}].lr must be a finite number`);
    });
    const lambdas = Array.isArray(lrLambda) ? lrLambda : groups.map(() => lrLambda);
    if (lambdas.length !== groups.length) fail('ERR_ARG', `${op}: got ${lambdas.length} lr lambdas for ${groups.length} parameter groups`);
    if (!lambdas.every((f) => typeof f === 'function')) fail('ERR_ARG', `${op}: lrLambda must be a function or an array of functions`);
    this.optimizer = optimizer;
    this.lambdas = lambdas;
    this.baseLrs = groups.map((g) => g.lr);
    this.moveTo(0, this.baseLrs);
  }

  /** Steps taken (0 right after construction). */
  get lastStep(): number {
    return this.step_;
  }

  /** Advances one step and sets the groups' lrs. */
  step(): void {
    this.moveTo(this.step_ + 1, this.baseLrs);
  }

  /** The lrs set by the last step (or by the constructor), one per group. */
  getLastLr(): number[] {
    return this.lastLrs.slice();
  }

  /** The step count and base lrs (the lambdas are code: the resumed scheduler must be made the same way). */
  stateDict(): LRSchedulerStateDict {
    return { lastStep: this.step_, baseLrs: this.baseLrs.slice() };
  }

  /** Restores a state from {@link stateDict} (validated first) and sets the groups' lrs to match it. */
  loadStateDict(stateDict: LRSchedulerStateDict): void {
    const op = 'LRScheduler.loadStateDict';
    const sd = checkKeys(stateDict, ['lastStep', 'baseLrs'], op, 'the state dict');
    const { lastStep, baseLrs } = sd;
    if (!Number.isInteger(lastStep) || (lastStep as number) < 0) fail('ERR_ARG', `${op}: lastStep must be a non-negative integer, got ${String(lastStep)}`);
    if (!Array.isArray(baseLrs) || baseLrs.length !== this.baseLrs.length) {
      fail('ERR_ARG', `${op}: baseLrs must hold ${this.baseLrs.length} learning rate(s), one per parameter group`);
    }
    if (!baseLrs.every((lr) => typeof lr === 'number' && Number.isFinite(lr))) fail('ERR_ARG', `${op}: baseLrs must hold finite numbers`);
    this.moveTo(lastStep as number, baseLrs.slice());
  }

  /** Sets the lrs of `step` (every lambda checked first: a bad value changes nothing). */
  private moveTo(step: number, baseLrs: number[]): void {
    const lrs = baseLrs.map((base, i) => {
      const f = this.lambdas[i](step);
      if (typeof f !== 'number' || !Number.isFinite(f)) fail('ERR_ARG', `LRScheduler: the lr lambda gave ${String(f)} at step ${step}; expected a finite number`);
      return base * f;
    });
    this.step_ = step;
    this.baseLrs = baseLrs;
    this.lastLrs = lrs;
    this.optimizer.paramGroups.forEach((g, i) => (g.lr = lrs[i]));
  }
}

/** Options of the warmup schedules. */
export interface WarmupOptions {
  /** Steps over which the lr rises linearly from 0 to its base value. */
  warmupSteps: number;
}

/** Options of the schedules that decay to 0 at `totalSteps`. */
export interface DecayOptions extends WarmupOptions {
  /** Training steps in all, warmup included. */
  totalSteps: number;
}

/** Options of {@link cosineScheduleWithWarmup}. */
export interface CosineOptions extends DecayOptions {
  /** Cosine periods over the decay: 0.5 (the default) goes from the base lr down to 0 once. */
  numCycles?: number;
}

function checkSteps(value: unknown, op: string, name: string): number {
  if (!Number.isInteger(value) || (value as number) < 0) fail('ERR_ARG', `${op}: ${name} must be a non-negative integer, got ${String(value)}`);
  return value as number;
}

function warmup(step: number, warmupSteps: number): number {
  return step / Math.max(1, warmupSteps);
}

/** The lr rises linearly from 0 over `warmupSteps`, then stays at its base value (transformers' get_constant_schedule_with_warmup). */
export function constantScheduleWithWarmup(optimizer: LrOptimizer, opts: WarmupOptions): LRScheduler {
  const op = 'constantScheduleWithWarmup';
  const w = checkSteps(checkKeys(opts, ['warmupSteps'], op, 'options').warmupSteps, op, 'warmupSteps');
  return new LRScheduler(optimizer, (step) => (step < w ? warmup(step, w) : 1));
}

function decayOptions(opts: unknown, op: string, keys: string[]): { w: number; total: number } {
  const o = checkKeys(opts, keys, op, 'options');
  const w = checkSteps(o.warmupSteps, op, 'warmupSteps');
  const total = checkSteps(o.totalSteps, op, 'totalSteps');
  if (total < w) fail('ERR_ARG', `${op}: totalSteps (${total}) must be at least warmupSteps (${w})`);
  return { w, total };
}

/**
 * The lr rises linearly from 0 over `warmupSteps`, then falls linearly to 0 at `totalSteps` and
 * stays there (transformers' get_linear_schedule_with_warmup).
 */
export function linearScheduleWithWarmup(optimizer: LrOptimizer, opts: DecayOptions): LRScheduler {
  const { w, total } = decayOptions(opts, 'linearScheduleWithWarmup', ['warmupSteps', 'totalSteps']);
  return new LRScheduler(optimizer, (step) => (step < w ? warmup(step, w) : Math.max(0, (total - step) / Math.max(1, total - w))));
}

/**
 * The lr rises linearly from 0 over `warmupSteps`, then follows a cosine from its base value to 0
 * at `totalSteps` (transformers' get_cosine_schedule_with_warmup; past totalSteps the cosine
 * goes on, as there).
 */
export function cosineScheduleWithWarmup(optimizer: LrOptimizer, opts: CosineOptions): LRScheduler {
  const op = 'cosineScheduleWithWarmup';
  const keys = Object.prototype.hasOwnProperty.call(opts ?? {}, 'numCycles') ? ['warmupSteps', 'totalSteps', 'numCycles'] : ['warmupSteps', 'totalSteps'];
  const { w, total } = decayOptions(opts, op, keys);
  const cycles = opts.numCycles ?? 0.5;
  if (typeof cycles !== 'number' || !Number.isFinite(cycles) || cycles <= 0) fail('ERR_ARG', `${op}: numCycles must be a positive number, got ${String(cycles)}`);
  return new LRScheduler(optimizer, (step) => {
    if (step < w) return warmup(step, w);
    const progress = (step - w) / Math.max(1, total - w);
    return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress)));
  });
}

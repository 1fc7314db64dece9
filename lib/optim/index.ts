/**
 * Optimizers (SGD, AdamW), gradient clipping and learning-rate schedules. Exported as the
 * `optim` namespace; {@link SGD}, {@link AdamW} and {@link clipGradNorm} also at the top level.
 */
export { Optimizer } from './optimizer';
export type { OptimizerStateDict, ParamGroup, ParamGroupSpec, ParamState, Params, StateSpec } from './optimizer';
export { AdamW } from './adamw';
export type { AdamWOptions } from './adamw';
export { SGD } from './sgd';
export type { SGDOptions } from './sgd';
export { clipGradNorm, clipGradNormTensor } from './clip';
export type { ClipGradNormOptions } from './clip';
export { LRScheduler, constantScheduleWithWarmup, linearScheduleWithWarmup, cosineScheduleWithWarmup } from './schedule';
export type { LrOptimizer, LrLambda, LRSchedulerStateDict, WarmupOptions, DecayOptions, CosineOptions } from './schedule';

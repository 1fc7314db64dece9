/**
 * Training: {@link finetune} (LoRA fine-tuning end to end), the {@link Trainer} loop it uses,
 * training checkpoints and the loss curve. Exported as the `train` namespace.
 * @packageDocumentation
 */
export { finetune, BUILTIN_MODEL, BUILTIN_DATA, BUILTIN_DEMO } from './finetune';
export type { FinetuneOptions, FinetuneResult, ProgressEvent, Sample } from './finetune';
export { Trainer } from './trainer';
export type { CausalLM, TrainerOptions, StepResult, EvalResult, TrainerState } from './trainer';
export { saveTrainingState, loadTrainingState, findTrainingState } from './state';
export type { CheckpointInfo } from './state';
export { lossCurveSvg } from './plot';
export type { Series } from './plot';

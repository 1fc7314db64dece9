/**
 * LoRA fine-tuning: the {@link LoraLinear} layer and PEFT-style targeting ({@link applyLora}).
 * Exported as the `lora` namespace.
 * @packageDocumentation
 */
export { LoraLinear } from './layer';
export type { LoraAdapterOptions, LoraLinearOptions } from './layer';
export { applyLora, setAdapter, disableAdapters, enableAdapters, mergeLora } from './apply';
export type { TargetModules, LoraConfig, LoraSummary } from './apply';

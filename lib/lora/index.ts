/**
 * LoRA fine-tuning: the {@link LoraLinear} layer, PEFT-style targeting ({@link applyLora}) and
 * PEFT's adapter files ({@link saveAdapter}, {@link loadAdapter}).
 * Exported as the `lora` namespace.
 * @packageDocumentation
 */
export { LoraLinear } from './layer';
export type { AdapterConfig, LoraAdapterOptions, LoraLinearOptions } from './layer';
export { applyLora, setAdapter, disableAdapters, enableAdapters, mergeLora } from './apply';
/** PEFT's name for {@link mergeLora}: folds the adapters into the base weights and puts plain Linear layers back. */
export { mergeLora as mergeAndUnload } from './apply';
export type { TargetModules, LoraConfig, LoraSummary } from './apply';
export { saveAdapter, loadAdapter, readAdapterConfig } from './peft';
export type { SaveAdapterOptions, LoadAdapterOptions, PeftLoraConfig } from './peft';

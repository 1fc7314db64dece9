/**
 * Files that other tools read and write: safetensors weights and Hugging Face `config.json`.
 * Exported as the `io` namespace.
 * @packageDocumentation
 */
export { readSafetensors, readSafetensorsHeader, writeSafetensors } from './safetensors';
export type { ReadSafetensorsOptions, SafetensorsContent, SafetensorsEntry, SafetensorsHeader } from './safetensors';
export { readConfig, llamaConfig, toHfConfig, writeConfig } from './config';
export type { LlamaConfig, LlamaConfigInput } from './config';

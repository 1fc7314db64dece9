/**
 * Complete models with Hugging Face's names and checkpoint files. Exported as `nn.models`; the
 * models are also exported at the top level.
 * @packageDocumentation
 */
export { LlamaModel, LlamaForCausalLM } from './llama';
export type {
  LlamaModelOptions,
  LlamaForwardOptions,
  CausalLMForwardOptions,
  CausalLMOutput,
  FromPretrainedOptions,
  SavePretrainedOptions,
} from './llama';

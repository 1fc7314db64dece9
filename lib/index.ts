/**
 * ignis: tensors, autograd and fused LoRA fine-tuning for Node.js.
 * @packageDocumentation
 */
export { Tensor } from './tensor';
export type { Device, NestedArray } from './tensor';
export type { DType, DataArray } from './dtype';
export { IgnisError } from './errors';
export type { ErrorCode } from './errors';
export { tidy, keep, memory, peakMemory, resetPeakMemory, setNumThreads, getNumThreads } from './memory';
export type { MemoryInfo } from './memory';
export { noGrad, enableGrad, isGradEnabled } from './autograd/graph';
export type { BackwardOptions } from './autograd/backward';
export type { PostAccumulateGradHook, RemovableHandle } from './autograd/graph';
export { gradcheck } from './autograd/gradcheck';
export type { GradcheckOptions } from './autograd/gradcheck';
export * from './ops/creation';
export * from './ops/views';
export * from './ops/elementwise';
export * from './ops/reduce';
export { variance as var } from './ops/reduce';
export * from './ops/matmul';
export * from './ops/softmax';
export * from './ops/norm';
export * from './ops/indexing';
export * from './ops/loss';
export * from './ops/attention';
/** Optimizers, gradient clipping and learning-rate schedules. */
export * as optim from './optim';
/** The optimizers and clipGradNorm, also found in {@link optim}. */
export { SGD, AdamW, clipGradNorm, clipGradNormTensor } from './optim';
export * as nn from './nn';
/** The LLaMA models, also found in `nn.models`. */
export { LlamaModel, LlamaForCausalLM } from './nn/models';
/** CUDA devices, streams, events, memory statistics and the matmul precision. */
export * as cuda from './cuda';
export { autocast, autocastDtype } from './autocast';
export type { AutocastDType } from './autocast';
export * from './ops/lora';
/** LoRA layers and PEFT-style targeting. */
export * as lora from './lora';
/** The LoRA layer and applyLora, also found in {@link lora}. */
export { LoraLinear, applyLora } from './lora';
/** safetensors files and Hugging Face config.json. */
export * as io from './io';
/** Tokenizers, dataset files and batches. */
export * as data from './data';
export { Tokenizer } from './data/tokenizer';
/** Training loops and LoRA fine-tuning end to end. */
export * as train from './train';
/** LoRA fine-tuning end to end, also found in {@link train}. */
export { finetune } from './train/finetune';
export type { FinetuneOptions, FinetuneResult } from './train/finetune';
/** Text generation with a KV cache. */
export { generate } from './generate';
export type { GenerateOptions, GenerateResult, GenerativeLM } from './generate';
/** Distributed training: process groups, collectives, the store and the launcher. */
export * as dist from './dist';

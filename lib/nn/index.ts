/**
 * Modules: the {@link Module} base (named parameters and buffers, modes, state dicts), basic
 * layers, and the parts of a LLaMA-style decoder. Exported as the `nn` namespace.
 * @packageDocumentation
 */
export { Module, parameter, isParameter } from './module';
export type { StateDict, LoadStateDictOptions, LoadStateDictResult, BufferOptions } from './module';
export { Linear, Embedding, LayerNorm, RMSNorm, Dropout } from './layers';
export type { LinearOptions, EmbeddingOptions, LayerNormOptions, RMSNormOptions } from './layers';
export { RotaryEmbedding, CausalSelfAttention, rotateHalf, applyRotary, causalMask } from './attention';
export type { PositionEmbeddings, RotaryOptions, AttentionOptions } from './attention';
export { SwiGLU } from './mlp';
export type { SwiGLUOptions } from './mlp';
export { KVCache, LayerKVCache } from './cache';
export type { KVCacheOptions, CachedKeysValues } from './cache';
export { DecoderBlock } from './decoder';
export type { DecoderBlockOptions } from './decoder';
/** Complete models (LLaMA) with Hugging Face's names and files. */
export * as models from './models';

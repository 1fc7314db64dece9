/**
 * Training data: tokenizers, dataset files, examples and batches. Exported as the `data` namespace.
 * @packageDocumentation
 */
export { Tokenizer } from './tokenizer';
export type { EncodeOptions, DecodeOptions } from './tokenizer';
export { IGNORE_INDEX, readRecords, tokenizeRecords, splitExamples, collate, shuffled, seededRandom } from './dataset';
export type { TextRecord, Example, TokenizeOptions, Batch } from './dataset';
export { DistributedSampler } from './sampler';
export type { DistributedSamplerOptions } from './sampler';

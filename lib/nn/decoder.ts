/** The pre-norm decoder block of LLaMA-style models. */
import { DType } from '../dtype';
import { fail } from '../errors';
import { tidy } from '../memory';
import { add } from '../ops/elementwise';
import { Tensor } from '../tensor';
import { CausalSelfAttention, PositionEmbeddings } from './attention';
import { LayerKVCache } from './cache';
import { RMSNorm } from './layers';
import { checkSize, floatDtype, Module } from './module';
import { SwiGLU } from './mlp';

/** Options of {@link DecoderBlock} (Hugging Face's LlamaConfig fields, camelCased). */
export interface DecoderBlockOptions {
  hiddenSize: number;
  intermediateSize: number;
  numAttentionHeads: number;
  /** Key/value heads, dividing numAttentionHeads (default numAttentionHeads). */
  numKeyValueHeads?: number;
  /** Size of a head (default hiddenSize / numAttentionHeads). */
  headDim?: number;
  /** The RMSNorms' eps (`rms_norm_eps`, default 1e-6). */
  rmsNormEps?: number;
  /** Whether the attention projections have a bias (default false). */
  attentionBias?: boolean;
  /** Whether the MLP projections have a bias (default false). */
  mlpBias?: boolean;
  /** The parameters' dtype (default float32). */
  dtype?: DType;
}

/**
 * A pre-norm transformer decoder block, as Hugging Face's LlamaDecoderLayer (parameters
 * `self_attn.*`, `mlp.*`, `input_layernorm.weight`, `post_attention_layernorm.weight`):
 * `h = x + self_attn(input_layernorm(x))`, then `h + mlp(post_attention_layernorm(h))`.
 */
export class DecoderBlock extends Module {
  self_attn: CausalSelfAttention;
  mlp: SwiGLU;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;

  constructor(opts: DecoderBlockOptions) {
    super();
    const op = 'DecoderBlock';
    if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', `${op}: expected options { hiddenSize, intermediateSize, numAttentionHeads, ... }`);
    const hidden = checkSize(opts.hiddenSize, op, 'hiddenSize');
    const dtype = floatDtype(opts.dtype, op);
    const eps = opts.rmsNormEps ?? 1e-6;
    this.self_attn = new CausalSelfAttention({
      hiddenSize: hidden,
      numAttentionHeads: opts.numAttentionHeads,
      numKeyValueHeads: opts.numKeyValueHeads,
      headDim: opts.headDim,
      attentionBias: opts.attentionBias,
      dtype,
    });
    this.mlp = new SwiGLU(hidden, opts.intermediateSize, { bias: opts.mlpBias ?? false, dtype });
    this.input_layernorm = new RMSNorm(hidden, { eps, dtype });
    this.post_attention_layernorm = new RMSNorm(hidden, { eps, dtype });
  }

  /**
   * x [batch, seq, hiddenSize] -> the same shape. `positionEmbeddings`, `attentionMask` and the
   * layer's KV `cache` (for generation) as {@link CausalSelfAttention.forward}.
   */
  forward(x: Tensor, positionEmbeddings: PositionEmbeddings, attentionMask: Tensor | null = null, cache: LayerKVCache | null = null): Tensor {
    return tidy(() => {
      const h = add(x, this.self_attn.call(this.input_layernorm.call(x), positionEmbeddings, attentionMask, cache));
      return add(h, this.mlp.call(this.post_attention_layernorm.call(h)));
    });
  }
}

/** The gated feed-forward block of LLaMA-style models. */
import { DType } from '../dtype';
import { fail } from '../errors';
import { tidy } from '../memory';
import { mul, silu } from '../ops/elementwise';
import { Tensor } from '../tensor';
import { Linear } from './layers';
import { checkSize, floatDtype, Module } from './module';

/** Options of {@link SwiGLU}. */
export interface SwiGLUOptions {
  /** Whether the three projections have a bias (`mlp_bias`, default false). */
  bias?: boolean;
  /** The parameters' dtype (default float32). */
  dtype?: DType;
}

/**
 * The SwiGLU feed-forward block, as Hugging Face's LlamaMLP:
 * `down_proj(silu(gate_proj(x)) * up_proj(x))`, with gate_proj and up_proj
 * [intermediateSize, hiddenSize] and down_proj [hiddenSize, intermediateSize].
 */
export class SwiGLU extends Module {
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;

  constructor(hiddenSize: number, intermediateSize: number, opts: SwiGLUOptions = {}) {
    super();
    this.hiddenSize = checkSize(hiddenSize, 'SwiGLU', 'hiddenSize');
    this.intermediateSize = checkSize(intermediateSize, 'SwiGLU', 'intermediateSize');
    if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', 'SwiGLU: options must be an object');
    const linearOpts = { bias: opts.bias ?? false, dtype: floatDtype(opts.dtype, 'SwiGLU') };
    this.gate_proj = new Linear(hiddenSize, intermediateSize, linearOpts);
    this.up_proj = new Linear(hiddenSize, intermediateSize, linearOpts);
    this.down_proj = new Linear(intermediateSize, hiddenSize, linearOpts);
  }

  /** x [..., hiddenSize] -> [..., hiddenSize]. */
  forward(x: Tensor): Tensor {
    return tidy(() => this.down_proj.call(mul(silu(this.gate_proj.call(x)), this.up_proj.call(x))));
  }
}

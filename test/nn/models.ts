/** Small models built from the nn layers, shared by the nn tests. Not a test file. */
import * as ig from '../../lib';
import { DType, Tensor, nn } from '../../lib';
import { Rng, randomTensor, refOf } from '../helpers';

/** A LLaMA-shaped model: the names of Hugging Face's LlamaModel plus lm_head. */
export class TinyLlama extends nn.Module {
  embed_tokens: nn.Embedding;
  layers: nn.DecoderBlock[];
  norm: nn.RMSNorm;
  lm_head: nn.Linear;
  rotary_emb: nn.RotaryEmbedding;

  constructor(readonly cfg: nn.DecoderBlockOptions & { vocabSize: number; numLayers: number }) {
    super();
    const dtype = cfg.dtype;
    this.embed_tokens = new nn.Embedding(cfg.vocabSize, cfg.hiddenSize, { dtype });
    this.layers = Array.from({ length: cfg.numLayers }, () => new nn.DecoderBlock(cfg));
    this.norm = new nn.RMSNorm(cfg.hiddenSize, { eps: cfg.rmsNormEps ?? 1e-6, dtype });
    this.lm_head = new nn.Linear(cfg.hiddenSize, cfg.vocabSize, { bias: false, dtype });
    this.rotary_emb = new nn.RotaryEmbedding(cfg.headDim ?? cfg.hiddenSize / cfg.numAttentionHeads);
  }

  /** ids [batch, seq] -> logits [batch, seq, vocab]. */
  forward(ids: Tensor): Tensor {
    return ig.tidy(() => {
      let h = this.embed_tokens.call(ids);
      const positions = ig.arange(ids.shape[1]).view(1, -1);
      const pe = this.rotary_emb.call(positions, h.dtype);
      const mask = nn.causalMask(ids.shape[1], { dtype: h.dtype });
      for (const layer of this.layers) h = layer.call(h, pe, mask);
      return this.lm_head.call(this.norm.call(h));
    });
  }
}

/** One pre-norm attention block without an MLP (only ops that need no unary kernels). */
export class AttentionBlock extends nn.Module {
  norm: nn.LayerNorm;
  attn: nn.CausalSelfAttention;
  out: nn.Linear;

  constructor(hidden: number, dtype: DType = 'float32') {
    super();
    this.norm = new nn.LayerNorm(hidden, { dtype });
    this.attn = new nn.CausalSelfAttention({ hiddenSize: hidden, numAttentionHeads: 4, numKeyValueHeads: 2, dtype });
    this.out = new nn.Linear(hidden, hidden, { dtype });
  }

  forward(x: Tensor, pe: nn.PositionEmbeddings): Tensor {
    return ig.tidy(() => this.out.call(x.add(this.attn.call(this.norm.call(x), pe))));
  }
}

/** An embedding, attention blocks and a head: a model whose forward runs on every branch. */
export class SmallEncoder extends nn.Module {
  embed: nn.Embedding;
  blocks: AttentionBlock[];
  final_norm: nn.RMSNorm;
  head: nn.Linear;
  rope: nn.RotaryEmbedding;

  constructor(readonly vocab = 13, readonly hidden = 16, dtype: DType = 'float32') {
    super();
    this.embed = new nn.Embedding(vocab, hidden, { dtype });
    this.blocks = [new AttentionBlock(hidden, dtype), new AttentionBlock(hidden, dtype)];
    this.final_norm = new nn.RMSNorm(hidden, { eps: 1e-6, dtype });
    this.head = new nn.Linear(hidden, 5, { dtype });
    this.rope = new nn.RotaryEmbedding(hidden / 4);
  }

  /** ids [batch, seq] -> [batch, seq, 5]. */
  forward(ids: Tensor): Tensor {
    return ig.tidy(() => {
      let h = this.embed.call(ids);
      const pe = this.rope.call(ig.arange(ids.shape[1]), h.dtype);
      for (const block of this.blocks) h = block.call(h, pe);
      return this.head.call(this.final_norm.call(h));
    });
  }
}

/** The names of a LLaMA checkpoint's decoder layer l (Hugging Face's order). */
export function llamaLayerNames(l: number): string[] {
  const p = `layers.${l}`;
  return [
    ...['q_proj', 'k_proj', 'v_proj', 'o_proj'].map((n) => `${p}.self_attn.${n}.weight`),
    ...['gate_proj', 'up_proj', 'down_proj'].map((n) => `${p}.mlp.${n}.weight`),
    `${p}.input_layernorm.weight`,
    `${p}.post_attention_layernorm.weight`,
  ];
}

/** Every parameter's values, by name. */
export function snapshot(m: nn.Module): [string, number[]][] {
  return m.namedParameters().map(([name, t]) => [name, Array.from(refOf(t).data)]);
}

/** Loads uniform values in [lo, hi) into every parameter (through loadStateDict). */
export function randomizeParameters(m: nn.Module, rng: Rng, lo = -1, hi = 1): void {
  ig.tidy(() => {
    const values = new Map(m.namedParameters().map(([name, p]) => [name, randomTensor(rng, p.shape.slice(), p.dtype, 'contiguous', lo, hi).t]));
    m.loadStateDict(values, { strict: false });
  });
}

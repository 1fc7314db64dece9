/**
 * Causal self-attention as LLaMA computes it (Hugging Face's LlamaAttention): rotary position
 * embeddings with the rotate_half convention, grouped-query heads, and the fused
 * {@link scaledDotProductAttention} (scaled scores, causal or additive mask, softmax, values)
 * between the projections; a {@link LayerKVCache} for generation.
 */
import { checkDevice, Device } from '../device';
import { DType, isFloat, isInt } from '../dtype';
import { fail } from '../errors';
import { tidy } from '../memory';
import { scaledDotProductAttention } from '../ops/attention';
import { checkNumber, checkTensor, fmtShape, sameShape } from '../ops/check';
import { tensor } from '../ops/creation';
import { add, mul } from '../ops/elementwise';
import { cat, embedding } from '../ops/indexing';
import { max, min } from '../ops/reduce';
import { Tensor } from '../tensor';
import { LayerKVCache } from './cache';
import { Linear } from './layers';
import { checkSize, floatDtype, Module } from './module';

/** The cos and sin tables of {@link RotaryEmbedding}, each [..., dim] for positions [...]. */
export interface PositionEmbeddings {
  cos: Tensor;
  sin: Tensor;
}

/** Options of {@link RotaryEmbedding}. */
export interface RotaryOptions {
  /** The base of the frequencies (`rope_theta`, default 10000). */
  theta?: number;
}

/** Options of {@link RotaryEmbedding.forward}. */
export interface RotaryForwardOptions {
  /**
   * The highest position in `positionIds`, when the caller knows it (a model making positions
   * past .. past + seq - 1 itself). The positions are then not read back to the host (no device
   * sync, so the call can be captured in a CUDA graph); an out-of-range position is still caught
   * by the table lookup (ERR_INDEX, eagerly).
   */
  maxPosition?: number;
}

/**
 * Rotary position embeddings as Hugging Face's LlamaRotaryEmbedding computes them (default rope
 * type): inverse frequencies 1 / theta^(2i / dim) for i < dim / 2, angles position * invFreq,
 * each angle used twice (`cat(freqs, freqs)`) so that the tables pair element j with element
 * j + dim / 2 ({@link rotateHalf}). Everything is computed in float32 with HF's roundings, then
 * converted to the requested dtype. The tables are cached per position (non-persistent buffers
 * `cos_cached` and `sin_cached`, grown on demand) on the positions' device: `Module.to` moves
 * them, and positions on another device rebuild them there. Tables outgrown on a CUDA device are
 * kept while the module lives (a captured CUDA graph may still read them; the smaller ones add
 * up to less than the current tables).
 */
export class RotaryEmbedding extends Module {
  readonly dim: number;
  readonly theta: number;
  /** The inverse frequencies (float32 values), dim / 2 of them. */
  readonly invFreq: Float32Array;
  /** Rows cached in the tables. */
  #length = 0;
  /** Tables replaced on a CUDA device: kept, as a captured CUDA graph may still read them. */
  readonly #replaced: Tensor[] = [];

  constructor(dim: number, opts: RotaryOptions = {}) {
    super();
    this.dim = checkSize(dim, 'RotaryEmbedding', 'dim');
    if (dim === 0 || dim % 2 !== 0) fail('ERR_ARG', `RotaryEmbedding: dim must be a positive even number, got ${dim}`);
    const theta = checkNumber(opts.theta ?? 10000, 'RotaryEmbedding', 'theta');
    if (!(theta > 0) || !Number.isFinite(theta)) fail('ERR_ARG', `RotaryEmbedding: theta must be a finite positive number, got ${theta}`);
    this.theta = theta;
    // HF: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), each step in float32
    const f = Math.fround;
    this.invFreq = Float32Array.from({ length: dim / 2 }, (_, i) => f(1 / f(theta ** f((2 * i) / dim))));
    this.registerBuffer('cos_cached', null, { persistent: false });
    this.registerBuffer('sin_cached', null, { persistent: false });
  }

  /**
   * The tables of the positions start .. start + length - 1 on `device` (a model's own positions
   * past .. past + seq - 1), each [1, length, dim] of `dtype` (default float32): in float32, views
   * of the cached tables, so nothing is looked up or read back and the call can be captured in a
   * CUDA graph once the tables hold the positions (they grow on the host otherwise).
   */
  positionRange(start: number, length: number, device: Device = 'cpu', dtype: DType = 'float32'): PositionEmbeddings {
    const op = 'RotaryEmbedding.positionRange';
    checkSize(start, op, 'start');
    checkSize(length, op, 'length');
    floatDtype(dtype, op);
    this.#grow(start + length, checkDevice(device, op));
    const holder = this as unknown as Record<'cos_cached' | 'sin_cached', Tensor>;
    return tidy(() => ({
      cos: holder.cos_cached.narrow(0, start, length).view(1, length, this.dim).to(dtype),
      sin: holder.sin_cached.narrow(0, start, length).view(1, length, this.dim).to(dtype),
    }));
  }

  /** Makes the tables hold at least `length` positions, on `device`. */
  #grow(length: number, device: Device): void {
    const holder = this as unknown as Record<'cos_cached' | 'sin_cached', Tensor | null>;
    const here = holder.cos_cached?.device === device;
    if (here && length <= this.#length) return;
    const rows = Math.max(length, here ? 2 * this.#length : 0);
    const { dim } = this;
    const half = dim / 2;
    const cosData = new Float32Array(rows * dim);
    const sinData = new Float32Array(rows * dim);
    for (let p = 0; p < rows; p++) {
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(p * this.invFreq[i]);  // the float32 product HF's matmul gives
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        cosData[p * dim + i] = cosData[p * dim + half + i] = c;
        sinData[p * dim + i] = sinData[p * dim + half + i] = s;
      }
    }
    const old = [holder.cos_cached, holder.sin_cached];
    this.registerBuffer('cos_cached', tensor(cosData, { shape: [rows, dim], device }), { persistent: false });
    this.registerBuffer('sin_cached', tensor(sinData, { shape: [rows, dim], device }), { persistent: false });
    for (const t of old) {
      if (t !== null && t.device !== 'cpu') this.#replaced.push(t);
      else t?.dispose();
    }
    this.#length = rows;
  }

  /**
   * The cos and sin tables for integer positions of any shape (LLaMA: [batch, seq]): each
   * [...positions.shape, dim], of `dtype` (default float32), on the positions' device.
   * Positions must be >= 0 (ERR_INDEX). Without `opts.maxPosition` the lowest and highest
   * positions are read back to the host (a device sync).
   */
  forward(positionIds: Tensor, dtype: DType = 'float32', opts: RotaryForwardOptions = {}): PositionEmbeddings {
    const op = 'RotaryEmbedding';
    checkTensor(positionIds, op, 'positionIds');
    if (!isInt(positionIds.dtype)) fail('ERR_DTYPE', `${op}: positionIds must be int32 or int64, got ${positionIds.dtype}`);
    floatDtype(dtype, op);
    if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', `${op}: options must be an object`);
    let highest = 0;
    if (opts.maxPosition !== undefined) {
      highest = checkSize(opts.maxPosition, op, 'maxPosition');
    } else if (positionIds.numel > 0) {
      let lowest: number;
      [lowest, highest] = tidy(() => [min(positionIds).item(), max(positionIds).item()]);
      if (lowest < 0) fail('ERR_INDEX', `${op}: positions must be >= 0, got ${lowest}`);
    }
    this.#grow(highest + 1, positionIds.device);
    const holder = this as unknown as Record<'cos_cached' | 'sin_cached', Tensor>;
    return tidy(() => ({
      cos: embedding(positionIds, holder.cos_cached).to(dtype),
      sin: embedding(positionIds, holder.sin_cached).to(dtype),
    }));
  }
}

/** `cat(-x2, x1)` of the two halves x1, x2 of the last dim (even; ERR_SHAPE otherwise), as HF's rotate_half. */
export function rotateHalf(x: Tensor): Tensor {
  checkTensor(x, 'rotateHalf');
  const d = x.ndim === 0 ? 0 : x.shape[x.ndim - 1];
  if (x.ndim === 0 || d % 2 !== 0) fail('ERR_SHAPE', `rotateHalf: the last dim must be even, got shape ${fmtShape(x.shape)}`);
  return tidy(() => cat([mul(x.narrow(-1, d / 2, d / 2), -1), x.narrow(-1, 0, d / 2)], -1));
}

/** `x * cos + rotateHalf(x) * sin`: HF's apply_rotary_pos_emb for one tensor; cos and sin broadcast to x. */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return tidy(() => add(mul(x, cos), mul(rotateHalf(x), sin)));
}

/** The additive causal mask [seqLen, seqLen] (on `opts.device`, default the CPU): 0 where key j <= query i, -Infinity above the diagonal. */
export function causalMask(seqLen: number, opts: { dtype?: DType; device?: Device } = {}): Tensor {
  const n = checkSize(seqLen, 'causalMask', 'seqLen');
  const dtype = floatDtype(opts.dtype, 'causalMask');
  const data = new Float32Array(n * n);
  for (let i = 0; i < n; i++) data.fill(-Infinity, i * n + i + 1, (i + 1) * n);
  return tidy(() => tensor(data, { shape: [n, n], device: opts.device ?? 'cpu' }).to(dtype));
}

/** Options of {@link CausalSelfAttention} (Hugging Face's LlamaConfig fields, camelCased). */
export interface AttentionOptions {
  hiddenSize: number;
  numAttentionHeads: number;
  /** Key/value heads, dividing numAttentionHeads (default numAttentionHeads; 1 is multi-query attention). */
  numKeyValueHeads?: number;
  /** Size of a head (default hiddenSize / numAttentionHeads); even, for the rotary embedding. */
  headDim?: number;
  /** Whether the four projections have a bias (default false). */
  attentionBias?: boolean;
  /** The parameters' dtype (default float32). */
  dtype?: DType;
}

/**
 * Causal multi-head self-attention with grouped-query heads and rotary position embeddings, as
 * LLaMA's (parameters `q_proj`, `k_proj`, `v_proj`, `o_proj`). Each group of
 * numAttentionHeads / numKeyValueHeads query heads shares one key/value head (query head h uses
 * key/value head floor(h / group), as HF's repeat_kv), read in place by the fused attention op,
 * not copied. The heads are views of the projections ([batch, seq, heads, headDim] transposed),
 * and the attention output comes back in the layout the output projection reads: no copies
 * between the four projections.
 */
export class CausalSelfAttention extends Module {
  readonly hiddenSize: number;
  readonly numAttentionHeads: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;

  constructor(opts: AttentionOptions) {
    super();
    const op = 'CausalSelfAttention';
    if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', `${op}: expected options { hiddenSize, numAttentionHeads, ... }`);
    const hidden = checkSize(opts.hiddenSize, op, 'hiddenSize');
    const heads = checkSize(opts.numAttentionHeads, op, 'numAttentionHeads');
    const kvHeads = checkSize(opts.numKeyValueHeads ?? heads, op, 'numKeyValueHeads');
    if (heads === 0 || kvHeads === 0 || heads % kvHeads !== 0) {
      fail('ERR_ARG', `${op}: numKeyValueHeads (${kvHeads}) must be positive and divide numAttentionHeads (${heads})`);
    }
    if (opts.headDim === undefined && hidden % heads !== 0) {
      fail('ERR_ARG', `${op}: hiddenSize (${hidden}) must be divisible by numAttentionHeads (${heads}), or give headDim`);
    }
    const headDim = checkSize(opts.headDim ?? hidden / heads, op, 'headDim');
    if (headDim === 0 || headDim % 2 !== 0) fail('ERR_ARG', `${op}: headDim must be a positive even number, got ${headDim}`);
    this.hiddenSize = hidden;
    this.numAttentionHeads = heads;
    this.numKeyValueHeads = kvHeads;
    this.headDim = headDim;
    const linearOpts = { bias: opts.attentionBias ?? false, dtype: floatDtype(opts.dtype, op) };
    this.q_proj = new Linear(hidden, heads * headDim, linearOpts);
    this.k_proj = new Linear(hidden, kvHeads * headDim, linearOpts);
    this.v_proj = new Linear(hidden, kvHeads * headDim, linearOpts);
    this.o_proj = new Linear(heads * headDim, hidden, linearOpts);
  }

  /**
   * x [batch, seq, hiddenSize] -> [batch, seq, hiddenSize].
   *
   * - `positionEmbeddings`: the cos and sin tables of the seq new positions ([seq, headDim] or
   *   [batch or 1, seq, headDim]), from a {@link RotaryEmbedding} of dim headDim. With a cache
   *   holding `past` positions, they are those of positions past..past + seq - 1.
   * - `attentionMask`: null (default) for causal attention, computed without a mask tensor (and
   *   skipping the hidden half of the scores). Otherwise an additive float mask that replaces the
   *   causal one (so it must hide the future itself), over the keys of all positions attended
   *   to, kv = past + seq: [seq, kv] or [batch or 1, 1 or numAttentionHeads, seq, kv]. A row
   *   that hides every key gives zeros.
   * - `cache`: a layer's {@link LayerKVCache} (from `KVCache.layer(i)`) for generation: the new
   *   keys and values are written into it, and the queries attend to every cached position
   *   plus the new ones (causally: new token i sees positions <= past + i). Checked before
   *   anything is computed or written (ERR_SHAPE, ERR_DTYPE, ERR_INDEX when it is full); it
   *   keeps no gradient history, so run generation under `noGrad` (ERR_GRAD otherwise).
   */
  forward(x: Tensor, positionEmbeddings: PositionEmbeddings, attentionMask: Tensor | null = null, cache: LayerKVCache | null = null): Tensor {
    const op = 'CausalSelfAttention';
    checkTensor(x, op);
    if (x.ndim !== 3 || x.shape[2] !== this.hiddenSize) {
      fail('ERR_SHAPE', `${op}: expected input [batch, seq, ${this.hiddenSize}], got ${fmtShape(x.shape)}`);
    }
    const [batch, seq] = x.shape;
    const { cos, sin } = this.#checkPositions(positionEmbeddings, batch, seq, op);
    if (cache !== null) this.#checkCache(cache, x, seq, op);
    const keyLength = (cache?.length ?? 0) + seq;
    if (attentionMask !== null) this.#checkMask(attentionMask, batch, seq, keyLength, op);
    const hd = this.headDim;
    return tidy(() => {
      // rotary on [batch, seq, heads, headDim], then the heads as [batch, heads, seq, headDim] views
      const table = (t: Tensor) => t.to(x.dtype).reshape(t.ndim === 2 ? 1 : t.shape[0], seq, 1, hd);
      const [c, s] = [table(cos), table(sin)];
      const heads = (t: Tensor, n: number) => t.view(batch, seq, n, hd);
      const q = applyRotary(heads(this.q_proj.call(x), this.numAttentionHeads), c, s).transpose(1, 2);
      let k = applyRotary(heads(this.k_proj.call(x), this.numKeyValueHeads), c, s).transpose(1, 2);
      let v = heads(this.v_proj.call(x), this.numKeyValueHeads).transpose(1, 2);
      if (cache !== null) ({ keys: k, values: v } = cache.update(k, v));
      const out = scaledDotProductAttention(q, k, v, attentionMask === null ? { causal: true } : { mask: attentionMask.to(x.dtype) });
      // out is laid out as [batch, seq, heads, headDim]: this reshape is a view
      return this.o_proj.call(out.transpose(1, 2).reshape(batch, seq, this.numAttentionHeads * hd));
    });
  }

  #checkPositions(pe: PositionEmbeddings, batch: number, seq: number, op: string): PositionEmbeddings {
    if (typeof pe !== 'object' || pe === null) fail('ERR_ARG', `${op}: positionEmbeddings must be { cos, sin } from a RotaryEmbedding`);
    for (const name of ['cos', 'sin'] as const) {
      const t = checkTensor(pe[name], op, `positionEmbeddings.${name}`);
      if (!isFloat(t.dtype)) fail('ERR_DTYPE', `${op}: positionEmbeddings.${name} must be floating-point, got ${t.dtype}`);
      const ok = (t.ndim === 2 || (t.ndim === 3 && (t.shape[0] === batch || t.shape[0] === 1))) && sameShape(t.shape.slice(-2), [seq, this.headDim]);
      if (!ok) {
        fail('ERR_SHAPE', `${op}: positionEmbeddings.${name} must be [${seq}, ${this.headDim}] or [${batch} or 1, ${seq}, ${this.headDim}], got ${fmtShape(t.shape)}`);
      }
    }
    return pe;
  }

  #checkCache(cache: LayerKVCache, x: Tensor, seq: number, op: string): void {
    if (!(cache instanceof LayerKVCache)) fail('ERR_ARG', `${op}: cache must be a LayerKVCache (KVCache.layer(i))`);
    if (cache.numKeyValueHeads !== this.numKeyValueHeads || cache.headDim !== this.headDim || cache.valueHeadDim !== this.headDim) {
      fail('ERR_SHAPE', `${op}: the KV cache holds ${cache.numKeyValueHeads} heads of ${cache.headDim} (values ${cache.valueHeadDim}), the layer ${this.numKeyValueHeads} of ${this.headDim}`);
    }
    if (cache.dtype !== x.dtype) fail('ERR_DTYPE', `${op}: the KV cache holds ${cache.dtype}, the input is ${x.dtype}`);
    if (cache.device !== x.device) fail('ERR_DEVICE', `${op}: the KV cache is on ${cache.device}, the input on ${x.device}`);
    cache.checkRoom(x.shape[0], seq, op);
  }

  #checkMask(mask: Tensor, batch: number, seq: number, keys: number, op: string): void {
    checkTensor(mask, op, 'attentionMask');
    if (!isFloat(mask.dtype)) fail('ERR_DTYPE', `${op}: attentionMask must be an additive float mask, got ${mask.dtype}`);
    const s = mask.shape;
    const ok =
      (mask.ndim === 2 && sameShape(s, [seq, keys])) ||
      (mask.ndim === 4 && (s[0] === batch || s[0] === 1) && (s[1] === 1 || s[1] === this.numAttentionHeads) && sameShape(s.slice(2), [seq, keys]));
    if (!ok) {
      fail('ERR_SHAPE', `${op}: attentionMask must be [${seq}, ${keys}] or [${batch} or 1, 1 or ${this.numAttentionHeads}, ${seq}, ${keys}], got ${fmtShape(s)}`);
    }
  }
}

/**
 * Fused scaled dot-product attention, `softmax(scale * q k^T + mask) v`, with causal masking and
 * grouped-query heads, forward and backward as single native calls that never materialise the
 * [Lq, Lk] scores or probabilities (flash-attention style).
 */
import { castForProduct, withCasts } from '../autocast';
import { needsGrad, record } from '../autograd/graph';
import { isFloat } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { checkNumber, checkSameDevice, checkTensor, fmtShape } from './check';
import { to } from './views';

interface AttentionNative {
  attentionForward(q: NativeHandle, k: NativeHandle, v: NativeHandle, mask: NativeHandle | null, causal: boolean, scale: number): [NativeHandle, NativeHandle];
  attentionBackward(
    dout: NativeHandle,
    q: NativeHandle,
    k: NativeHandle,
    v: NativeHandle,
    out: NativeHandle,
    lse: NativeHandle,
    mask: NativeHandle | null,
    causal: boolean,
    scale: number,
  ): [NativeHandle, NativeHandle, NativeHandle];
}
const native = addon as AttentionNative;

const OP = 'scaledDotProductAttention';

/** Options of {@link scaledDotProductAttention}. */
export interface AttentionOpOptions {
  /**
   * Causal masking with bottom-right alignment: query i sits at key position Lk - Lq + i and
   * sees the keys j <= Lk - Lq + i. With Lq == Lk this is the usual lower-triangular mask; with
   * one new token against a KV cache (Lq = 1) it sees every key. Default false.
   */
  causal?: boolean;
  /** The factor of the scores, default 1 / sqrt(D). */
  scale?: number;
  /**
   * An additive float mask of the query's dtype, broadcastable to [B, H, Lq, Lk] (e.g. [Lq, Lk]
   * or [B, 1, Lq, Lk] for padding), added to the scaled scores (-Infinity hides a key).
   * Combined with `causal` when both are given. It gets no gradient.
   */
  mask?: Tensor | null;
}

/** The query's sizes, checked against the key and value. */
interface Sizes {
  batch: number;
  heads: number;
  qLen: number;
  kLen: number;
  headDim: number;
  valueDim: number;
}

function checkInputs(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null): Sizes {
  const inputs = { query: q, key: k, value: v };
  for (const [name, t] of Object.entries(inputs)) checkTensor(t, OP, name);
  checkSameDevice(OP, q, k, v, ...(mask ? [mask] : []));
  for (const [name, t] of Object.entries(inputs)) {
    if (!isFloat(t.dtype)) fail('ERR_DTYPE', `${OP}: ${name} must be a floating-point tensor, got ${t.dtype}`);
  }
  if (k.dtype !== q.dtype || v.dtype !== q.dtype) {
    fail('ERR_DTYPE', `${OP}: query, key and value must have one dtype, got ${q.dtype}, ${k.dtype} and ${v.dtype}`);
  }
  for (const [name, t] of Object.entries(inputs)) {
    if (t.ndim !== 4) fail('ERR_SHAPE', `${OP}: ${name} must have 4 dims [batch, heads, length, head dim], got shape ${fmtShape(t.shape)}`);
  }
  const shapes = `query ${fmtShape(q.shape)}, key ${fmtShape(k.shape)}, value ${fmtShape(v.shape)}`;
  const [batch, heads, qLen, headDim] = q.shape;
  const [, kvHeads, kLen] = k.shape;
  const valueDim = v.shape[3];
  if (k.shape[0] !== batch || v.shape[0] !== batch) fail('ERR_SHAPE', `${OP}: the batch sizes differ (${shapes})`);
  if (v.shape[1] !== kvHeads) fail('ERR_SHAPE', `${OP}: key and value have different head counts (${shapes})`);
  if (heads === 0 || kvHeads === 0 || heads % kvHeads !== 0) {
    fail('ERR_SHAPE', `${OP}: the key/value heads (${kvHeads}) must be positive and divide the query heads (${heads}) (${shapes})`);
  }
  if (v.shape[2] !== kLen) fail('ERR_SHAPE', `${OP}: key and value have different lengths (${shapes})`);
  if (k.shape[3] !== headDim) fail('ERR_SHAPE', `${OP}: query and key have different head dims (${shapes})`);
  if (headDim === 0 || valueDim === 0) fail('ERR_SHAPE', `${OP}: head dims must be positive (${shapes})`);
  if (mask) {
    if (mask.dtype !== q.dtype) fail('ERR_DTYPE', `${OP}: the mask must have the query's dtype ${q.dtype}, got ${mask.dtype}`);
    const target = [batch, heads, qLen, kLen];
    const fits = mask.ndim <= 4 && mask.shape.every((d, i) => d === 1 || d === target[4 - mask.ndim + i]);
    if (!fits) fail('ERR_SHAPE', `${OP}: the mask of shape ${fmtShape(mask.shape)} does not broadcast to ${fmtShape(target)} (${shapes})`);
  }
  return { batch, heads, qLen, kLen, headDim, valueDim };
}

/**
 * Scaled dot-product attention, as PyTorch's `F.scaled_dot_product_attention`:
 * `softmax(scale * q k^T + mask) v` over the keys, per batch and head, fused into one native
 * call that keeps neither the scores nor the probabilities.
 *
 * - q [B, H, Lq, D], k [B, Hkv, Lk, D], v [B, Hkv, Lk, Dv], one float dtype (float32, float64,
 *   bfloat16, float16; the 16-bit ones computed with float32 accumulation), any strides:
 *   `.transpose(1, 2)` views of [B, L, heads, D] projections are read in place.
 * - Grouped-query heads: H must be a multiple of Hkv, and query head h reads key/value head
 *   floor(h / (H / Hkv)), without copying or repeating k and v (Hkv = 1 is multi-query).
 * - `causal` (bottom-right aligned, see {@link AttentionOpOptions.causal}) skips the tiles of
 *   keys above the diagonal entirely; `mask` adds an additive float mask.
 * - A query row that sees no key at all (every score -Infinity, or Lk - Lq + i < 0 under
 *   `causal`) gives an output row of zeros (not NaN), and zero gradients.
 *
 * Returns [B, H, Lq, Dv] laid out in memory as q is: for a q that is a `.transpose(1, 2)` view
 * of [B, Lq, H, D], the output is [B, Lq, H, Dv] in memory, so that
 * `out.transpose(1, 2).reshape(B, Lq, H * Dv)` is a view; contiguous otherwise. Differentiable
 * for q, k and v (not the mask; the gradients come in their inputs' layouts): the backward
 * recomputes the probabilities tile by tile from q, k and the per-row logsumexp (float32, or
 * float64 for float64 inputs), the only extra tensor the graph keeps.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOpOptions = {}): Tensor {
  if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', `${OP}: options must be an object`);
  const mask = opts.mask ?? null;
  if (mask !== null) checkTensor(mask, OP, 'mask');
  if ([q, k, v].every((t) => t instanceof Tensor)) {
    const cast = castForProduct(to, q, k, v, mask);
    if (cast.some((t, i) => t !== [q, k, v, mask][i])) {
      return withCasts(cast, [q, k, v, mask], () => scaledDotProductAttention(cast[0], cast[1], cast[2], { ...opts, mask: cast[3] }));
    }
  }
  const causal = opts.causal ?? false;
  if (typeof causal !== 'boolean') fail('ERR_ARG', `${OP}: causal must be a boolean, got ${typeof causal}`);
  const sizes = checkInputs(q, k, v, mask);
  const scale = opts.scale === undefined ? 1 / Math.sqrt(sizes.headDim) : checkNumber(opts.scale, OP, 'scale');
  if (!Number.isFinite(scale)) fail('ERR_ARG', `${OP}: scale must be a finite number, got ${scale}`);
  const maskHandle = mask ? mask.handle(OP) : null;
  const [hout, hlse] = native.attentionForward(q.handle(OP), k.handle(OP), v.handle(OP), maskHandle, causal, scale);
  const { batch, heads, qLen, valueDim } = sizes;
  const out = wrap(hout, [batch, heads, qLen, valueDim], q.dtype, q.device);
  const lse = wrap(hlse, [batch, heads, qLen], q.dtype === 'float64' ? 'float64' : 'float32', q.device);
  if (needsGrad(q, k, v)) {
    const saved = mask ? [q, k, v, out, lse, mask] : [q, k, v, out, lse];
    record(out, OP, [q, k, v], saved, (g, [sq, sk, sv, sout, slse, smask]) => {
      const handles = native.attentionBackward(
        g.handle(OP),
        sq.handle(OP),
        sk.handle(OP),
        sv.handle(OP),
        sout.handle(OP),
        slse.handle(OP),
        smask ? smask.handle(OP) : null,
        causal,
        scale,
      );
      return handles.map((h, i) => wrap(h, [sq, sk, sv][i].shape, q.dtype, q.device));
    });
  }
  lse.dispose();
  return out;
}

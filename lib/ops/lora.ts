/**
 * The fused LoRA linear layer, with PEFT's formula:
 * `y = x W^T (+ bias) + s * dropout(x) A^T B^T`, `s = alpha / r` (`alpha / sqrt(r)` with rsLoRA),
 * for an input x `[..., in]`, a frozen base weight W `[out, in]`, adapters A `[r, in]` and
 * B `[out, r]`. Forward and backward are single native calls whose LoRA terms are added into
 * the base products' outputs by the GEMMs themselves (beta = 1), and no gradient is computed
 * for W. Also merging the adapter into W and back.
 */
import { castForProduct, withCasts } from '../autocast';
import { frozenOperand, needsGrad, record } from '../autograd/graph';
import type { Device } from '../device';
import { DType, isFloat } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { checkNumber, checkSameDevice, checkShape, checkTensor, fmtShape, sameShape } from './check';
import { rand, zeros } from './creation';
import { add, mul } from './elementwise';
import { sumToShape } from './reduce';
import { to } from './views';

interface LoraNative {
  loraLinearForward(
    x: NativeHandle,
    w: NativeHandle,
    bias: NativeHandle | null,
    a: NativeHandle,
    b: NativeHandle,
    scale: number,
    mask: NativeHandle | null,
  ): [NativeHandle, NativeHandle];
  loraLinearBackward(
    dy: NativeHandle,
    x: NativeHandle,
    w: NativeHandle,
    a: NativeHandle,
    b: NativeHandle,
    xa: NativeHandle,
    scale: number,
    mask: NativeHandle | null,
    needInputGrad: boolean,
  ): [NativeHandle | null, NativeHandle, NativeHandle];
  loraMerge(w: NativeHandle, a: NativeHandle, b: NativeHandle, scale: number): void;
  loraUnmerge(w: NativeHandle, a: NativeHandle, b: NativeHandle, scale: number): void;
  loraDropoutMask(uniform: NativeHandle, p: number): NativeHandle;
}
const native = addon as LoraNative;

/** Options of {@link loraLinearForward}. */
export interface LoraForwardOptions {
  /**
   * Dropout on the LoRA path only (as PEFT does): a tensor of the input's dtype that broadcasts
   * to x's shape, holding 0 or 1 / (1 - p) (see {@link loraDropoutMask}), multiplied into x
   * before A. Omitted or null: no dropout.
   */
  dropoutMask?: Tensor | null;
}

/** Options of {@link loraLinearBackward}. */
export interface LoraBackwardOptions {
  /** The dropout mask the forward used, if any. */
  dropoutMask?: Tensor | null;
  /** Whether to compute dx (default true); false skips its two GEMMs and returns dx = null. */
  needInputGrad?: boolean;
}

/** What {@link loraLinearForward} returns. */
export interface LoraForwardResult {
  /** The layer's output `[..., out]`. */
  y: Tensor;
  /** `dropout(x) A^T` `[..., r]`, saved for the backward so that it is not recomputed. */
  xa: Tensor;
}

/** What {@link loraLinearBackward} returns. */
export interface LoraGrads {
  /** The input's gradient `[..., in]`, or null when not asked for. */
  dx: Tensor | null;
  /** A's gradient `[r, in]`. */
  da: Tensor;
  /** B's gradient `[out, r]`. */
  db: Tensor;
}

/** Sizes of a validated layer. */
interface Layer {
  out: number;
  inFeatures: number;
  r: number;
  lead: number[];
}

function checkFloat(op: string, name: string, t: Tensor): void {
  if (!isFloat(t.dtype)) fail('ERR_DTYPE', `${op}: ${name} must be a floating-point tensor, got ${t.dtype}`);
}

/** `t` must have the input's dtype (shared by the mask, dy and xa). */
function checkInputDtype(op: string, name: string, t: Tensor, x: Tensor): void {
  if (t.dtype !== x.dtype) fail('ERR_DTYPE', `${op}: ${name} must have the input's dtype ${x.dtype}, got ${t.dtype}`);
}

const isHalf = (dtype: DType) => dtype === 'bfloat16' || dtype === 'float16';

function checkScale(op: string, scale: unknown): number {
  const s = checkNumber(scale, op, 'scale');
  if (!Number.isFinite(s)) fail('ERR_ARG', `${op}: scale must be a finite number, got ${s}`);
  return s;
}

/** W `[out, in]`, A `[r, in]` with r >= 1, B `[out, r]`: tensors, one device, float, A and B of one dtype. */
function checkAdapter(op: string, w: Tensor, a: Tensor, bMat: Tensor): Omit<Layer, 'lead'> {
  checkTensor(w, op, 'weight');
  checkTensor(a, op, 'A');
  checkTensor(bMat, op, 'B');
  checkSameDevice(op, w, a, bMat);
  checkFloat(op, 'weight', w);
  checkFloat(op, 'A', a);
  if (bMat.dtype !== a.dtype) fail('ERR_DTYPE', `${op}: A and B must have one dtype, got ${a.dtype} and ${bMat.dtype}`);
  if (w.ndim !== 2) fail('ERR_SHAPE', `${op}: weight must have 2 dims [out, in], got shape ${fmtShape(w.shape)}`);
  const [out, inFeatures] = w.shape;
  if (a.ndim !== 2 || a.shape[1] !== inFeatures || a.shape[0] < 1) {
    fail('ERR_SHAPE', `${op}: A of shape ${fmtShape(a.shape)} does not match weight of shape ${fmtShape(w.shape)} (expected [r, ${inFeatures}] with r >= 1)`);
  }
  const r = a.shape[0];
  if (bMat.ndim !== 2 || bMat.shape[0] !== out || bMat.shape[1] !== r) {
    fail('ERR_SHAPE', `${op}: B of shape ${fmtShape(bMat.shape)} does not match weight ${fmtShape(w.shape)} and A ${fmtShape(a.shape)} (expected [${out}, ${r}])`);
  }
  return { out, inFeatures, r };
}

/** The layer and the input x `[..., in]` with its optional dropout mask. */
function checkLayer(op: string, x: Tensor, w: Tensor, a: Tensor, bMat: Tensor, mask: Tensor | null | undefined): Layer {
  checkTensor(x, op, 'input');
  const sizes = checkAdapter(op, w, a, bMat);
  const hasMask = mask !== undefined && mask !== null;
  if (hasMask) checkTensor(mask, op, 'dropout mask');
  checkSameDevice(op, x, w, ...(hasMask ? [mask] : []));
  checkFloat(op, 'input', x);
  // A and B have x's dtype, or float32 with a 16-bit x
  if (a.dtype !== x.dtype && !(a.dtype === 'float32' && isHalf(x.dtype))) {
    fail('ERR_DTYPE', `${op}: A must have the input's dtype ${x.dtype}${isHalf(x.dtype) ? ' or float32' : ''}, got ${a.dtype}`);
  }
  if (hasMask) checkInputDtype(op, 'dropout mask', mask, x);
  if (x.ndim === 0) fail('ERR_SHAPE', `${op}: input must have at least 1 dim, got shape []`);
  if (x.shape[x.ndim - 1] !== sizes.inFeatures) {
    fail('ERR_SHAPE', `${op}: input of shape ${fmtShape(x.shape)} does not match weight of shape ${fmtShape(w.shape)} (in_features ${sizes.inFeatures})`);
  }
  if (hasMask) {
    const fits = mask.ndim <= x.ndim && mask.shape.every((d, i) => d === 1 || d === x.shape[x.ndim - mask.ndim + i]);
    if (!fits) {
      fail('ERR_SHAPE', `${op}: dropout mask of shape ${fmtShape(mask.shape)} does not broadcast to the input's shape ${fmtShape(x.shape)}`);
    }
  }
  return { ...sizes, lead: x.shape.slice(0, -1) };
}

/**
 * The forward of a LoRA linear layer (PEFT's formula):
 * `y = x W^T (+ bias) + scale * dropout(x) A^T B^T`.
 *
 * x `[..., in]` (any leading dims, any strides), W `[out, in]` frozen, bias `[out]` or null,
 * A `[r, in]`, bMat (B) `[out, r]`. x and the dropout mask share one float dtype, which the
 * results have; A and B have it too, or are float32 with a bfloat16/float16 x (converted for the
 * products; their gradients are then float32). float64 is computed in float64; on the CPU the
 * rest in float32, on CUDA 16-bit products run in their dtype with float32 accumulation, and
 * the adapters' gradients are summed in float32 either way. W and bias may have any
 * float dtype: a bfloat16 base weight with float32 adapters works, at the cost of converting W to
 * float32 on each call (one pass over W and a float32 temporary of out * in elements).
 *
 * Three GEMMs: xa = dropout(x) A^T, then x W^T and scale * xa B^T into one output (onto the
 * bias), the second added by its GEMM. Returns y and xa, which {@link loraLinearBackward} takes.
 */
export function loraLinearForward(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null | undefined,
  a: Tensor,
  bMat: Tensor,
  scale: number,
  opts: LoraForwardOptions = {},
): LoraForwardResult {
  const op = 'loraLinearForward';
  const mask = opts.dropoutMask ?? null;
  const { out, r, lead } = checkLayer(op, x, w, a, bMat, mask);
  const hasBias = bias !== undefined && bias !== null;
  if (hasBias) {
    checkTensor(bias, op, 'bias');
    checkSameDevice(op, x, bias);
    checkFloat(op, 'bias', bias);
    if (bias.ndim !== 1 || bias.shape[0] !== out) {
      fail('ERR_SHAPE', `${op}: bias of shape ${fmtShape(bias.shape)} does not match weight of shape ${fmtShape(w.shape)} (expected [${out}])`);
    }
  }
  const s = checkScale(op, scale);
  const [hy, hxa] = native.loraLinearForward(
    x.handle(op),
    w.handle(op),
    hasBias ? bias.handle(op) : null,
    a.handle(op),
    bMat.handle(op),
    s,
    mask ? mask.handle(op) : null,
  );
  return { y: wrap(hy, [...lead, out], x.dtype, x.device), xa: wrap(hxa, [...lead, r], x.dtype, x.device) };
}

/**
 * The backward of {@link loraLinearForward} for the output's gradient dy `[..., out]`, given the
 * forward's x, xa and dropout mask (m; all ones without one):
 * `G = dy B` (computed once, `[..., r]`), `dB = scale * dy^T xa`, `dA = scale * G^T (x * m)`,
 * `dx = dy W + scale * (G A) * m` (dropout's backward multiplies the LoRA term by the mask).
 * The two terms of dx go into one output, the second added by its GEMM (beta = 1); with a mask,
 * the LoRA term comes first, multiplied by m in place. No gradient for W.
 * dy and xa have the input's dtype; the gradients have x's and the adapters' dtype.
 */
export function loraLinearBackward(
  dy: Tensor,
  x: Tensor,
  w: Tensor,
  a: Tensor,
  bMat: Tensor,
  xa: Tensor,
  scale: number,
  opts: LoraBackwardOptions = {},
): LoraGrads {
  const op = 'loraLinearBackward';
  const mask = opts.dropoutMask ?? null;
  const needInputGrad = opts.needInputGrad ?? true;
  if (typeof needInputGrad !== 'boolean') fail('ERR_ARG', `${op}: needInputGrad must be a boolean, got ${typeof needInputGrad}`);
  const { out, inFeatures, r, lead } = checkLayer(op, x, w, a, bMat, mask);
  checkTensor(dy, op, 'output gradient');
  checkTensor(xa, op, 'saved xa');
  checkSameDevice(op, x, dy, xa);
  checkInputDtype(op, 'output gradient', dy, x);
  checkInputDtype(op, 'saved xa', xa, x);
  const expect = (name: string, t: Tensor, shape: number[]) => {
    if (!sameShape(t.shape, shape)) {
      fail('ERR_SHAPE', `${op}: ${name} of shape ${fmtShape(t.shape)} does not match the layer (expected ${fmtShape(shape)})`);
    }
  };
  expect('output gradient', dy, [...lead, out]);
  expect('saved xa', xa, [...lead, r]);
  const s = checkScale(op, scale);
  const [hdx, hda, hdb] = native.loraLinearBackward(
    dy.handle(op),
    x.handle(op),
    w.handle(op),
    a.handle(op),
    bMat.handle(op),
    xa.handle(op),
    s,
    mask ? mask.handle(op) : null,
    needInputGrad,
  );
  return {
    dx: hdx === null ? null : wrap(hdx, x.shape, x.dtype, x.device),
    da: wrap(hda, [r, inFeatures], a.dtype, a.device),
    db: wrap(hdb, [out, r], bMat.dtype, bMat.device),
  };
}

function mergeOp(op: 'loraMerge' | 'loraUnmerge', w: Tensor, a: Tensor, bMat: Tensor, scale: number): void {
  checkAdapter(op, w, a, bMat);
  const s = checkScale(op, scale);
  if (!w.isContiguous()) fail('ERR_ARG', `${op}: weight of shape ${fmtShape(w.shape)} must be contiguous (it is updated in place)`);
  native[op](w.handle(op), a.handle(op), bMat.handle(op), s);
}

/**
 * Folds the adapter into the base weight in place: `W += scale * B A`. W must be contiguous, of
 * any float dtype (a 16-bit W is summed in float32 and rounded once). Safe merge: the delta is
 * computed first and, if it holds NaN or Inf, ERR_ARG is thrown with W left untouched.
 */
export function loraMerge(w: Tensor, a: Tensor, bMat: Tensor, scale: number): void {
  mergeOp('loraMerge', w, a, bMat, scale);
}

/**
 * Undoes {@link loraMerge}: `W -= scale * B A`, in place, with the same checks. W comes back
 * exactly only up to rounding (a 16-bit W is rounded once per merge and once per unmerge).
 */
export function loraUnmerge(w: Tensor, a: Tensor, bMat: Tensor, scale: number): void {
  mergeOp('loraUnmerge', w, a, bMat, scale);
}

/** PEFT's scaling: `alpha / r`, or `alpha / sqrt(r)` with rsLoRA. */
export function loraScaling(alpha: number, r: number, useRsLora = false): number {
  const op = 'loraScaling';
  checkNumber(alpha, op, 'alpha');
  if (!Number.isFinite(alpha)) fail('ERR_ARG', `${op}: alpha must be a finite number, got ${alpha}`);
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) fail('ERR_ARG', `${op}: r must be a positive integer, got ${String(r)}`);
  return useRsLora ? alpha / Math.sqrt(r) : alpha / r;
}

/**
 * A dropout mask for {@link loraLinearForward}: each element is 1 / (1 - p) with probability
 * 1 - p, else 0 (all zeros for p = 1), drawn with {@link rand} from the seeded global generator.
 * dtype defaults to float32 and must be the input's; device (default the CPU) too.
 */
export function loraDropoutMask(shape: number[], p: number, opts: { dtype?: DType; device?: Device } = {}): Tensor {
  const op = 'loraDropoutMask';
  checkShape(shape, op);
  checkNumber(p, op, 'p');
  if (!(p >= 0 && p <= 1)) fail('ERR_ARG', `${op}: p must be in [0, 1], got ${p}`);
  const uniform = rand(shape, { dtype: opts.dtype ?? 'float32', device: opts.device });
  try {
    return wrap(native.loraDropoutMask(uniform.handle(op), p), shape.slice(), uniform.dtype, uniform.device);
  } finally {
    uniform.dispose();
  }
}

/**
 * Fresh adapters initialised as PEFT does: A `[r, in]` Kaiming-uniform (with a = sqrt(5), as
 * torch.nn.Linear: uniform in ±1 / sqrt(in)) from the seeded global generator, and B
 * `[out, r]` zeros, so that the layer starts equal to its base. dtype defaults to float32, device
 * to the CPU (the draws are the same on every device).
 */
export function loraAdapters(inFeatures: number, outFeatures: number, r: number, opts: { dtype?: DType; device?: Device } = {}): { a: Tensor; b: Tensor } {
  const op = 'loraAdapters';
  for (const [name, v] of [['inFeatures', inFeatures], ['outFeatures', outFeatures], ['r', r]] as const) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail('ERR_ARG', `${op}: ${name} must be a positive integer, got ${String(v)}`);
  }
  const dtype = opts.dtype ?? 'float32';
  if (!isFloat(dtype)) fail('ERR_DTYPE', `${op}: expected a floating-point dtype, got ${String(dtype)}`);
  const bound = 1 / Math.sqrt(inFeatures);
  const { device } = opts;
  const uniform = rand([r, inFeatures], { dtype, device });
  const spread = mul(uniform, 2 * bound);
  uniform.dispose();
  const a = add(spread, -bound);
  spread.dispose();
  return { a, b: zeros([outFeatures, r], { dtype, device }) };
}

/**
 * The differentiable LoRA linear layer: {@link loraLinearForward}'s y, recorded for autograd.
 * Its backward is one {@link loraLinearBackward} call (dx only when x requires grad) giving the
 * gradients of x, A and B, and the bias's gradient (dy summed over the leading dims) when the
 * bias requires grad. W is frozen: no gradient is ever computed for it, and a W that requires
 * grad while recording is refused with ERR_GRAD (freeze it with `requiresGrad_(false)`, or use
 * `linear` plus the composed ops to train it).
 */
export function loraLinear(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null | undefined,
  a: Tensor,
  bMat: Tensor,
  scale: number,
  opts: LoraForwardOptions = {},
): Tensor {
  const op = 'loraLinear';
  const hasBias = bias !== undefined && bias !== null;
  const mask = opts.dropoutMask ?? null;
  if ([x, w, a, bMat, ...(hasBias ? [bias] : []), ...(mask ? [mask] : [])].every((t) => t instanceof Tensor)) {
    const originals = [x, w, bias, mask, a, bMat];
    // float32 adapters stay float32: the layer takes them with a 16-bit input and returns their
    // gradients summed in float32, without two casts and their backward
    const cast = castForProduct(to, ...originals.slice(0, a.dtype === 'float32' ? 4 : 6));
    if (cast.some((t, i) => t !== originals[i])) {
      const [cx, cw, cbias, cmask, ca = a, cb = bMat] = cast;
      return withCasts(cast, originals, () => loraLinear(cx!, cw!, cbias, ca!, cb!, scale, { dropoutMask: cmask }));
    }
  }
  const recording = needsGrad(x, a, bMat) || (hasBias && needsGrad(bias));
  if (recording && w instanceof Tensor && w.requiresGrad) {
    fail('ERR_GRAD', `${op}: the base weight of shape ${fmtShape(w.shape)} requires grad, but W is frozen in a LoRA layer (call requiresGrad_(false) on it)`);
  }
  const { y, xa } = loraLinearForward(x, w, bias, a, bMat, scale, { dropoutMask: mask });
  if (!recording) {
    xa.dispose();
    return y;
  }
  const out = w.shape[0];
  const weight = frozenOperand(w);
  const saved = [x, a, bMat, xa, ...(mask ? [mask] : []), ...weight.saved];
  const biasDtype = hasBias ? bias.dtype : x.dtype;
  record(y, op, [x, hasBias ? bias : null, a, bMat], saved, (g, kept, needs) => {
    const [sx, sa, sb, sxa] = kept;
    const smask = mask ? kept[4] : null;
    const grads = loraLinearBackward(g, sx, weight.get(kept), sa, sb, sxa, scale, { dropoutMask: smask, needInputGrad: needs[0] });
    return [grads.dx, needs[1] ? sumToShape(g, [out], biasDtype) : null, grads.da, grads.db];
  });
  xa.dispose();
  return y;
}

/** Normalisation layers' math: layerNorm, rmsNorm (PyTorch's F.layer_norm and F.rms_norm). */
import { castToFloat32, withCasts } from '../autocast';
import { needsGrad, record } from '../autograd/graph';
import { isFloat } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { checkNumber, checkSameDevice, checkShape, checkTensor, fmtShape, sameShape } from './check';
import { to } from './views';

/** Inside autocast: the 16-bit tensors among `inputs` cast to float32 (the others as they are). */
function widened(inputs: (Tensor | null | undefined)[]): (Tensor | null | undefined)[] {
  return inputs.map((t) => (t instanceof Tensor ? castToFloat32(to, t) : t));
}

interface NormNative {
  layerNorm(x: NativeHandle, normalizedShape: number[], weight: NativeHandle | null, bias: NativeHandle | null, eps: number): NativeHandle;
  rmsNorm(x: NativeHandle, normalizedShape: number[], weight: NativeHandle | null, eps: number | null): NativeHandle;
  layerNormWithStats(x: NativeHandle, normalizedShape: number[], weight: NativeHandle | null, bias: NativeHandle | null, eps: number): [NativeHandle, NativeHandle, NativeHandle];
  rmsNormWithStats(x: NativeHandle, normalizedShape: number[], weight: NativeHandle | null, eps: number | null): [NativeHandle, NativeHandle];
  layerNormBackward(
    grad: NativeHandle, x: NativeHandle, normalizedShape: number[], weight: NativeHandle | null, mean: NativeHandle, rstd: NativeHandle,
    wantX: boolean, wantWeight: boolean, wantBias: boolean,
  ): (NativeHandle | null)[];
  rmsNormBackward(
    grad: NativeHandle, x: NativeHandle, normalizedShape: number[], weight: NativeHandle | null, rstd: NativeHandle,
    wantX: boolean, wantWeight: boolean,
  ): (NativeHandle | null)[];
}
const native = addon as NormNative;

/**
 * Wraps a norm's output and its per-row statistics (float32, float64 for float64 x; shape: x's
 * leading dims) from a `*WithStats` call; records the fused native backward, which gets
 * [x, ...statistics, weight?] back as saved tensors and returns handles for x, weight, bias.
 */
function recordNorm(
  op: string,
  handles: NativeHandle[],
  x: Tensor,
  shape: number[],
  inputs: (Tensor | null | undefined)[],
  backward: (g: Tensor, saved: Tensor[], needs: readonly boolean[]) => (NativeHandle | null)[],
): Tensor {
  const out = wrap(handles[0], x.shape, x.dtype, x.device);
  const xShape = x.shape;
  const rows = xShape.slice(0, x.ndim - shape.length);
  const stats = handles.slice(1).map((h) => wrap(h, rows, x.dtype === 'float64' ? 'float64' : 'float32', x.device));
  try {
    const weight = inputs[1];
    record(out, op, inputs, [x, ...stats, ...(weight ? [weight] : [])], (g, saved, needs) => {
      const results = backward(g, saved, needs);
      return results.map((h, k) => (h === null ? null : wrap(h, k === 0 ? xShape : shape, g.dtype, g.device)));
    });
  } finally {
    for (const t of stats) t.dispose();
  }
  return out;
}

/** Checks x against normalizedShape (its trailing dims) and returns that shape as a list. */
function checkNormInput(x: Tensor, normalizedShape: unknown, op: string): number[] {
  checkTensor(x, op);
  if (!isFloat(x.dtype)) fail('ERR_DTYPE', `${op}: expected a floating-point tensor, got ${x.dtype}`);
  const shape = checkShape(typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape, op);
  if (shape.length === 0) fail('ERR_SHAPE', `${op}: normalizedShape must have at least one dim`);
  if (shape.length > x.ndim || !sameShape(x.shape.slice(x.ndim - shape.length), shape)) {
    fail('ERR_SHAPE', `${op}: input of shape ${fmtShape(x.shape)} does not end with normalizedShape ${fmtShape(shape)}`);
  }
  return shape;
}

/** The handle of an optional weight or bias, after checking it against x. */
function affineHandle(p: Tensor | null | undefined, what: string, x: Tensor, shape: number[], op: string): NativeHandle | null {
  if (p === null || p === undefined) return null;
  checkTensor(p, op, what);
  checkSameDevice(op, x, p);
  if (!sameShape(p.shape, shape)) {
    fail('ERR_SHAPE', `${op}: ${what} of shape ${fmtShape(p.shape)} does not match normalizedShape ${fmtShape(shape)}`);
  }
  if (p.dtype !== x.dtype) fail('ERR_DTYPE', `${op}: ${what} is ${p.dtype} but the input is ${x.dtype}`);
  return p.handle(op);
}

function checkEps(eps: unknown, op: string): number {
  const e = checkNumber(eps, op, 'eps');
  if (!(e >= 0) || !Number.isFinite(e)) fail('ERR_ARG', `${op}: eps must be a finite number >= 0, got ${e}`);
  return e;
}

/**
 * Layer normalisation over the trailing dims given by `normalizedShape` (a size or a list):
 * (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance. `weight` and `bias`
 * are optional and must have shape `normalizedShape` and x's dtype. Float tensors; 16-bit
 * floats are computed in float32. The backward is one native call for x, weight and bias,
 * from per-row statistics the forward keeps when it records.
 */
export function layerNorm(x: Tensor, normalizedShape: number | number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const op = 'layerNorm';
  const wide = widened([x, weight, bias]);
  if (wide.some((t, i) => t !== [x, weight, bias][i])) {
    return withCasts(wide, [x, weight, bias], () => layerNorm(wide[0]!, normalizedShape, wide[1], wide[2], eps));
  }
  const shape = checkNormInput(x, normalizedShape, op);
  const w = affineHandle(weight, 'weight', x, shape, op);
  const b = affineHandle(bias, 'bias', x, shape, op);
  const e = checkEps(eps, op);
  if (!needsGrad(x, weight, bias)) return wrap(native.layerNorm(x.handle(op), shape, w, b, e), x.shape, x.dtype, x.device);
  const hasWeight = w !== null;
  return recordNorm(op, native.layerNormWithStats(x.handle(op), shape, w, b, e), x, shape, [x, weight, bias], (g, saved, needs) => {
    const [input, mean, rstd, wt] = saved;
    return native.layerNormBackward(
      g.handle(op), input.handle(op), shape, hasWeight ? wt.handle(op) : null, mean.handle(op), rstd.handle(op), needs[0], needs[1], needs[2],
    );
  });
}

/**
 * RMS normalisation over the trailing dims given by `normalizedShape`:
 * x / sqrt(mean(x^2) + eps) * weight. `eps` defaults to the machine epsilon of x's dtype, as
 * PyTorch's F.rms_norm. Float tensors; 16-bit floats are computed in float32. The backward is one
 * native call for x and weight.
 */
export function rmsNorm(x: Tensor, normalizedShape: number | number[], weight?: Tensor | null, eps?: number): Tensor {
  const op = 'rmsNorm';
  const wide = widened([x, weight]);
  if (wide.some((t, i) => t !== [x, weight][i])) return withCasts(wide, [x, weight], () => rmsNorm(wide[0]!, normalizedShape, wide[1], eps));
  const shape = checkNormInput(x, normalizedShape, op);
  const w = affineHandle(weight, 'weight', x, shape, op);
  const e = eps === undefined ? null : checkEps(eps, op);
  if (!needsGrad(x, weight)) return wrap(native.rmsNorm(x.handle(op), shape, w, e), x.shape, x.dtype, x.device);
  const hasWeight = w !== null;
  return recordNorm(op, native.rmsNormWithStats(x.handle(op), shape, w, e), x, shape, [x, weight], (g, saved, needs) => {
    const [input, rstd, wt] = saved;
    return native.rmsNormBackward(g.handle(op), input.handle(op), shape, hasWeight ? wt.handle(op) : null, rstd.handle(op), needs[0], needs[1]);
  });
}

/** Normalisation layers' math: layerNorm, rmsNorm (PyTorch's F.layer_norm and F.rms_norm). */
import { isFloat } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { checkNumber, checkSameDevice, checkShape, checkTensor, fmtShape, sameShape } from './check';

interface NormNative {
  layerNorm(x: NativeHandle, normalizedShape: number[], weight: NativeHandle | null, bias: NativeHandle | null, eps: number): NativeHandle;
  rmsNorm(x: NativeHandle, normalizedShape: number[], weight: NativeHandle | null, eps: number | null): NativeHandle;
}
const native = addon as NormNative;

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
 * floats are computed in float32.
 */
export function layerNorm(x: Tensor, normalizedShape: number | number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const op = 'layerNorm';
  const shape = checkNormInput(x, normalizedShape, op);
  const w = affineHandle(weight, 'weight', x, shape, op);
  const b = affineHandle(bias, 'bias', x, shape, op);
  const h = native.layerNorm(x.handle(op), shape, w, b, checkEps(eps, op));
  return wrap(h, x.shape, x.dtype, x.device);
}

/**
 * RMS normalisation over the trailing dims given by `normalizedShape`:
 * x / sqrt(mean(x^2) + eps) * weight. `eps` defaults to the machine epsilon of x's dtype, as
 * PyTorch's F.rms_norm. Float tensors; 16-bit floats are computed in float32.
 */
export function rmsNorm(x: Tensor, normalizedShape: number | number[], weight?: Tensor | null, eps?: number): Tensor {
  const op = 'rmsNorm';
  const shape = checkNormInput(x, normalizedShape, op);
  const w = affineHandle(weight, 'weight', x, shape, op);
  const h = native.rmsNorm(x.handle(op), shape, w, eps === undefined ? null : checkEps(eps, op));
  return wrap(h, x.shape, x.dtype, x.device);
}

/** Gradient clipping by total norm, as torch.nn.utils.clip_grad_norm_. */
import { fail } from '../errors';
import { checkTensor } from '../ops/check';
import { isFloat } from '../dtype';
import { Tensor, wrap } from '../tensor';
import { native } from './native';
import { isPlainObject } from './optimizer';

/** Options of {@link clipGradNorm}. */
export interface ClipGradNormOptions {
  /** Throw ERR_ARG when the total norm is NaN or infinite (the grads are then left as they are). Default false. */
  errorIfNonfinite?: boolean;
}

/** The distinct grads of `params` (checked: float, one device), after checking the shared arguments. */
function gradsOf(op: string, params: Tensor | readonly Tensor[], maxNorm: number, normType: number): Tensor[] {
  const list = params instanceof Tensor ? [params] : params;
  if (!Array.isArray(list)) fail('ERR_ARG', `${op}: params must be a Tensor or an array of Tensors`);
  if (typeof maxNorm !== 'number' || !(maxNorm >= 0)) fail('ERR_ARG', `${op}: maxNorm must be a number >= 0, got ${String(maxNorm)}`);
  if (typeof normType !== 'number' || !(normType > 0)) fail('ERR_ARG', `${op}: normType must be a positive number or Infinity, got ${String(normType)}`);
  const grads: Tensor[] = [];
  list.forEach((p, i) => {
    checkTensor(p, op, `params[${i}]`);
    if (p.grad === null) return;
    checkTensor(p.grad, op, `the grad of params[${i}]`);
    if (!isFloat(p.grad.dtype)) fail('ERR_DTYPE', `${op}: the grad of params[${i}] must be a floating-point tensor, got ${p.grad.dtype}`);
    if (p.grad.device !== (grads[0] ?? p.grad).device) fail('ERR_DEVICE', `${op}: the grads are on different devices`);
    if (!grads.includes(p.grad)) grads.push(p.grad);  // a grad shared by two params counts (and is scaled) once
  });
  return grads;
}

/**
 * Scales the grads of `params` in place so that their total norm (all grads taken together as
 * one vector) is at most `maxNorm`, as torch.nn.utils.clip_grad_norm_, and returns the total norm
 * before clipping (0 when no param has a grad). `normType` is p > 0 for the p-norm or Infinity for
 * the largest absolute value. The grads are multiplied by `maxNorm / (norm + 1e-6)` when that is
 * below 1 (or NaN: a NaN norm makes every grad NaN, as in PyTorch), and left untouched otherwise.
 * The norm is summed natively in float64. Also exported at the top level. It reads the norm on
 * the host: inside a CUDA graph capture use {@link clipGradNormTensor}.
 */
export function clipGradNorm(params: Tensor | readonly Tensor[], maxNorm: number, normType = 2, opts?: ClipGradNormOptions): number {
  const op = 'clipGradNorm';
  if (opts !== undefined && !isPlainObject(opts)) fail('ERR_ARG', `${op}: options must be a plain object`);
  for (const key of Object.keys(opts ?? {})) if (key !== 'errorIfNonfinite') fail('ERR_ARG', `${op}: unknown option ${key}; expected errorIfNonfinite`);
  const errorIfNonfinite = opts?.errorIfNonfinite ?? false;
  if (typeof errorIfNonfinite !== 'boolean') fail('ERR_ARG', `${op}: errorIfNonfinite must be a boolean`);
  const grads = gradsOf(op, params, maxNorm, normType);
  if (grads.length === 0) return 0;
  const handles = grads.map((g) => g.handle(op));
  const total = native.totalNorm(handles, normType);
  if (errorIfNonfinite && !Number.isFinite(total)) {
    fail('ERR_ARG', `${op}: the total ${normType}-norm of the gradients is ${total}; pass errorIfNonfinite: false to clip anyway`);
  }
  const coef = maxNorm / (total + 1e-6);
  if (!(coef >= 1)) native.scaleInPlace(handles, coef);
  return total;
}

/**
 * {@link clipGradNorm} without reading the norm on the host, as PyTorch's clip_grad_norm_ does
 * on a GPU: the norm and the factor stay on the grads' device, so a CUDA graph can capture it.
 * Returns the total norm before clipping as a 0-dim float32 tensor on that device (the caller
 * disposes it), or null when no param has a grad.
 */
export function clipGradNormTensor(params: Tensor | readonly Tensor[], maxNorm: number, normType = 2): Tensor | null {
  const op = 'clipGradNormTensor';
  const grads = gradsOf(op, params, maxNorm, normType);
  if (grads.length === 0) return null;
  const h = native.clipByTotalNorm(grads.map((g) => g.handle(op)), maxNorm, normType);
  return wrap(h, [], 'float32', grads[0].device);
}

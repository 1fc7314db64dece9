/** softmax and logSoftmax along a dim. */
import { isFloat } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { checkTensor, normalizeDim } from './check';

interface SoftmaxNative {
  softmax(t: NativeHandle, dim: number, log: boolean): NativeHandle;
}
const native = addon as SoftmaxNative;

function softmaxOp(t: Tensor, dim: number, log: boolean): Tensor {
  const name = log ? 'logSoftmax' : 'softmax';
  checkTensor(t, name);
  const d = normalizeDim(dim, t.ndim, name);
  if (!isFloat(t.dtype)) fail('ERR_DTYPE', `${name}: expected a floating-point tensor, got ${t.dtype}`);
  return wrap(native.softmax(t.handle(name), d, log), t.shape, t.dtype, t.device);
}

/**
 * exp(t) / sum(exp(t)) along `dim`, computed stably (the row maximum is subtracted first).
 * Float tensors; 16-bit floats are computed in float32. A row of -inf gives NaN, as PyTorch.
 */
export function softmax(t: Tensor, dim: number): Tensor {
  return softmaxOp(t, dim, false);
}

/** log(softmax(t, dim)), computed directly (t - max - log(sum(exp(t - max)))). */
export function logSoftmax(t: Tensor, dim: number): Tensor {
  return softmaxOp(t, dim, true);
}

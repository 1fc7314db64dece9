/** softmax and logSoftmax along a dim. */
import { castToFloat32, withCasts } from '../autocast';
import { needsGrad, record } from '../autograd/graph';
import { isFloat } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { checkTensor, normalizeDim } from './check';
import { mul, sub } from './elementwise';
import { sum } from './reduce';
import { to } from './views';

interface SoftmaxNative {
  softmax(t: NativeHandle, dim: number, log: boolean): NativeHandle;
}
const native = addon as SoftmaxNative;

function softmaxOp(t: Tensor, dim: number, log: boolean): Tensor {
  const name = log ? 'logSoftmax' : 'softmax';
  checkTensor(t, name);
  const wide = castToFloat32(to, t);
  if (wide !== t) return withCasts([wide], [t], () => softmaxOp(wide, dim, log));
  const d = normalizeDim(dim, t.ndim, name);
  if (!isFloat(t.dtype)) fail('ERR_DTYPE', `${name}: expected a floating-point tensor, got ${t.dtype}`);
  const out = wrap(native.softmax(t.handle(name), d, log), t.shape, t.dtype, t.device);
  if (needsGrad(t)) {
    if (log) {
      // g - softmax(x) * sum(g): the probabilities are recomputed from the saved input
      record(out, name, [t], [t], (g, [x]) => [sub(g, mul(softmaxOp(x, d, false), sum(g, d, true)))]);
    } else {
      // y * (g - sum(g * y))
      record(out, name, [t], [out], (g, [y]) => [mul(y, sub(g, sum(mul(g, y), d, true)))]);
    }
  }
  return out;
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

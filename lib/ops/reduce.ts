/** Reductions over dims, with PyTorch's semantics and result dtypes. */
import { DType, isFloat } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { checkNumber, checkTensor, fmtShape, normalizeDims } from './check';

interface ReduceNative {
  reduce(op: number, t: NativeHandle, dims: number[] | null, keepdim: boolean, correction: number): NativeHandle;
}
const native = addon as ReduceNative;

/** Codes of native/kernels/reduce.h ReduceOp. */
const enum ReduceOp {
  Sum = 0,
  Mean,
  Var,
  LogSumExp,
  Max,
  Min,
  ArgMax,
  ArgMin,
}

const NAMES = ['sum', 'mean', 'var', 'logsumexp', 'max', 'min', 'argmax', 'argmin'];

function resultDtype(op: ReduceOp, dtype: DType): DType {
  if (op === ReduceOp.ArgMax || op === ReduceOp.ArgMin) return 'int64';
  if (op === ReduceOp.Sum && !isFloat(dtype)) return 'int64';
  return dtype;
}

/**
 * Validates and runs one reduction. `dim`: undefined or [] reduce every dim; a single-dim op
 * (max, argmax, ...) passes `single` and accepts only an integer.
 */
function reduceOp(op: ReduceOp, t: Tensor, dim: unknown, keepdim: unknown, single: boolean, correction = 0): Tensor {
  const name = NAMES[op];
  checkTensor(t, name);
  if (typeof keepdim !== 'boolean') fail('ERR_ARG', `${name}: keepdim must be a boolean, got ${typeof keepdim}`);
  if ((op === ReduceOp.Mean || op === ReduceOp.Var || op === ReduceOp.LogSumExp) && !isFloat(t.dtype)) {
    fail('ERR_DTYPE', `${name}: expected a floating-point tensor, got ${t.dtype}; convert it with .to('float32') first`);
  }
  if (single && dim !== undefined && typeof dim !== 'number') {
    fail('ERR_ARG', `${name}: dim must be an integer or undefined (every element)`);
  }
  const all = dim === undefined || (Array.isArray(dim) && dim.length === 0);
  const dims = all ? null : normalizeDims(dim as number | number[], t.ndim, name);
  const reduced = (d: number) => dims === null || dims.includes(d);
  if (single) {
    // max, min and their args have no value for an empty reduction
    const empty = dims === null ? t.numel === 0 : t.ndim > 0 && t.shape[dims[0]] === 0;
    if (empty) fail('ERR_SHAPE', `${name}: cannot reduce an empty dim (input shape ${fmtShape(t.shape)})`);
  }
  const shape: number[] = [];
  t.shape.forEach((size, d) => {
    if (!reduced(d)) shape.push(size);
    else if (keepdim) shape.push(1);
  });
  const h = native.reduce(op, t.handle(name), dims, keepdim, correction);
  return wrap(h, shape, resultDtype(op, t.dtype), t.device);
}

/**
 * Sum over `dim` (a dim, a list of dims, or every dim when undefined), keeping reduced dims as
 * size 1 when `keepdim`. Integer and bool tensors sum to int64; floats keep their dtype (16-bit
 * floats accumulate in float32). The sum of nothing is 0.
 */
export function sum(t: Tensor, dim?: number | number[], keepdim = false): Tensor {
  return reduceOp(ReduceOp.Sum, t, dim, keepdim, false);
}

/** Mean over `dim` (see {@link sum}); float tensors only. The mean of nothing is NaN. */
export function mean(t: Tensor, dim?: number | number[], keepdim = false): Tensor {
  return reduceOp(ReduceOp.Mean, t, dim, keepdim, false);
}

/**
 * Largest element along `dim` (values only), or of the whole tensor when `dim` is undefined.
 * NaN wins, as in PyTorch. Any dtype; an empty reduction is an ERR_SHAPE.
 */
export function max(t: Tensor, dim?: number, keepdim = false): Tensor {
  return reduceOp(ReduceOp.Max, t, dim, keepdim, true);
}

/** Smallest element along `dim` or of the whole tensor (see {@link max}). */
export function min(t: Tensor, dim?: number, keepdim = false): Tensor {
  return reduceOp(ReduceOp.Min, t, dim, keepdim, true);
}

/**
 * int64 index of the first largest element along `dim` (a NaN counts as largest), or its flat
 * row-major index when `dim` is undefined.
 */
export function argmax(t: Tensor, dim?: number, keepdim = false): Tensor {
  return reduceOp(ReduceOp.ArgMax, t, dim, keepdim, true);
}

/** int64 index of the first smallest element (see {@link argmax}). */
export function argmin(t: Tensor, dim?: number, keepdim = false): Tensor {
  return reduceOp(ReduceOp.ArgMin, t, dim, keepdim, true);
}

/**
 * Variance over `dim` (see {@link sum}): the sum of squared deviations from the mean divided by
 * max(0, N - correction); `correction = 1` (the default) is Bessel's, 0 the biased variance.
 * Float tensors only. Exported as `var` too.
 */
export function variance(t: Tensor, dim?: number | number[], keepdim = false, correction = 1): Tensor {
  checkNumber(correction, 'var', 'correction');
  if (!Number.isFinite(correction)) fail('ERR_ARG', `var: correction must be finite, got ${correction}`);
  return reduceOp(ReduceOp.Var, t, dim, keepdim, false, correction);
}

/**
 * log(sum(exp(t))) over `dim` (see {@link sum}), computed without overflow. Rows of -inf give
 * -inf; float tensors only.
 */
export function logsumexp(t: Tensor, dim: number | number[], keepdim = false): Tensor {
  return reduceOp(ReduceOp.LogSumExp, t, dim, keepdim, false);
}

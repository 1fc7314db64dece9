/** Reductions over dims, with PyTorch's semantics and result dtypes. */
import { needsGrad, record } from '../autograd/graph';
import { DType, isFloat } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { checkNumber, checkTensor, fmtShape, normalizeDims } from './check';
import { mul, sub } from './elementwise';
import { gatherBackward } from './indexing';
import { softmax } from './softmax';
import { expand, permute, reshape, to } from './views';

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
  const out = wrap(h, shape, resultDtype(op, t.dtype), t.device);
  if (needsGrad(t) && isFloat(out.dtype)) recordReduction(op, t, out, dims, correction);
  return out;
}

/** `shape` with the reduced dims (null: all) kept as size 1. */
function keptShape(shape: readonly number[], dims: number[] | null): number[] {
  return shape.map((size, d) => (dims === null || dims.includes(d) ? 1 : size));
}

/** A reduction's output gradient `g` broadcast back over the input's `shape` (a view). */
function expandBack(g: Tensor, shape: readonly number[], dims: number[] | null): Tensor {
  return expand(reshape(g, keptShape(shape, dims)), shape);
}

/** softmax of x over several dims at once (all when null): they are moved last and merged. */
function softmaxOver(x: Tensor, dims: number[] | null): Tensor {
  const all = x.shape.map((_, d) => d);
  const reduced = dims ?? all;
  if (reduced.length <= 1) return softmax(x, reduced.length === 1 ? reduced[0] : 0);
  const order = [...all.filter((d) => !reduced.includes(d)), ...reduced];
  const moved = permute(x, order);
  const rowLength = reduced.reduce((n, d) => n * x.shape[d], 1);
  const rows = reshape(moved, [...moved.shape.slice(0, order.length - reduced.length), rowLength]);
  const probs = reshape(softmax(rows, -1), moved.shape);
  return permute(probs, all.map((d) => order.indexOf(d)));
}

/** The gradient of max/min: all of g at the position argmax/argmin picks (the first extreme). */
function gradAtArg(g: Tensor, x: Tensor, dims: number[] | null, op: ReduceOp.Max | ReduceOp.Min): Tensor {
  if (x.ndim === 0) return g;
  const arg = op === ReduceOp.Max ? argmax : argmin;
  if (dims === null) {
    const flat = reshape(x, [x.numel]);
    return reshape(gatherBackward(reshape(g, [1]), 0, arg(flat, 0, true), flat.shape), x.shape);
  }
  return gatherBackward(reshape(g, keptShape(x.shape, dims)), dims[0], arg(x, dims[0], true), x.shape);
}

function recordReduction(op: ReduceOp, t: Tensor, out: Tensor, dims: number[] | null, correction: number): void {
  const name = NAMES[op];
  const shape = t.shape;
  const count = dims === null || t.ndim === 0 ? t.numel : dims.reduce((n, d) => n * shape[d], 1);
  switch (op) {
    case ReduceOp.Sum:
      return record(out, name, [t], [], (g) => [expandBack(g, shape, dims)]);
    case ReduceOp.Mean:
      return record(out, name, [t], [], (g) => [expandBack(mul(g, 1 / count), shape, dims)]);
    case ReduceOp.Var:
      // 2 (x - mean) / (N - correction)
      return record(out, name, [t], [t], (g, [x]) => {
        const centered = sub(x, mean(x, dims ?? undefined, true));
        return [mul(centered, expandBack(mul(g, 2 / Math.max(0, count - correction)), shape, dims))];
      });
    case ReduceOp.LogSumExp:
      return record(out, name, [t], [t], (g, [x]) => [mul(softmaxOver(x, dims), expandBack(g, shape, dims))]);
    case ReduceOp.Max:
    case ReduceOp.Min:
      return record(out, name, [t], [t], (g, [x]) => [gradAtArg(g, x, dims, op)]);
  }
}

/**
 * @internal The gradient `g` of a broadcast result summed down to an input's `shape` (over the
 * leading dims it lacks and the dims where it has size 1), in the input's `dtype`.
 */
export function sumToShape(g: Tensor, shape: readonly number[], dtype: DType): Tensor {
  const lead = g.ndim - shape.length;
  const dims: number[] = [];
  for (let d = 0; d < g.ndim; d++) if (d < lead || (shape[d - lead] === 1 && g.shape[d] !== 1)) dims.push(d);
  const summed = dims.length > 0 ? reshape(sum(g, dims, true), shape) : g;
  return summed.dtype === dtype ? summed : to(summed, dtype);
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
 * NaN wins, as in PyTorch. Any dtype; an empty reduction is an ERR_SHAPE. The gradient goes to
 * the position {@link argmax} picks (the first largest).
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

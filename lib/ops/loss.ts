/** Losses: crossEntropy (fused log-softmax + NLL), mseLoss. */
import { castToFloat32, withCasts } from '../autocast';
import { needsGrad, record } from '../autograd/graph';
import { dtypeCode, isFloat, isInt, promoteTypes } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { broadcastShapes, checkInt, checkNumber, checkSameDevice, checkTensor, fmtShape, sameShape } from './check';
import { mul, sub } from './elementwise';
import { sumToShape } from './reduce';
import { to } from './views';

interface LossNative {
  crossEntropy(logits: NativeHandle, target: NativeHandle, ignoreIndex: number, reduction: number, labelSmoothing: number): NativeHandle;
  crossEntropyWithStats(
    logits: NativeHandle, target: NativeHandle, ignoreIndex: number, reduction: number, labelSmoothing: number,
  ): [NativeHandle, NativeHandle, number, NativeHandle | null];
  crossEntropyBackward(
    grad: NativeHandle, logits: NativeHandle, target: NativeHandle, logsumexp: NativeHandle,
    ignoreIndex: number, reduction: number, labelSmoothing: number, counted: number, countedOnDevice: NativeHandle | null,
  ): NativeHandle;
  mseLoss(input: NativeHandle, target: NativeHandle, reduction: number, dtype: number): NativeHandle;
}
const native = addon as LossNative;

/** How a loss reduces its per-element values: their mean, their sum, or none (one value per element). */
export type Reduction = 'mean' | 'sum' | 'none';
/** Codes of native/kernels/loss.h Reduction. */
const REDUCTIONS: readonly Reduction[] = ['none', 'mean', 'sum'];

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Targets equal to this value add no loss and are not counted by 'mean'. Default -100. */
  ignoreIndex?: number;
  /** Default 'mean'. */
  reduction?: Reduction;
  /** In [0, 1]: how much of the uniform distribution over classes is mixed into the target. Default 0. */
  labelSmoothing?: number;
}

/** Options of {@link mseLoss}. */
export interface MseLossOptions {
  /** Default 'mean'. */
  reduction?: Reduction;
}

/** The options object of `op` (undefined gives {}), with no keys but `allowed`. */
function checkOptions<T extends object>(opts: unknown, allowed: readonly (keyof T & string)[], op: string): T {
  if (opts === undefined) return {} as T;
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) fail('ERR_ARG', `${op}: options must be an object`);
  for (const key of Object.keys(opts)) {
    if (!(allowed as readonly string[]).includes(key)) fail('ERR_ARG', `${op}: unknown option ${key}; expected ${allowed.join(', ')}`);
  }
  return opts as T;
}

function reductionCode(reduction: unknown, op: string): number {
  if (reduction === undefined) return REDUCTIONS.indexOf('mean');
  const code = REDUCTIONS.indexOf(reduction as Reduction);
  if (code < 0) fail('ERR_ARG', `${op}: reduction must be 'mean', 'sum' or 'none', got ${String(reduction)}`);
  return code;
}

/**
 * Cross-entropy between `logits` and class-index targets, as PyTorch's `F.cross_entropy`:
 * logits [N, C] with target [N], logits [C] with a 0-dim target, or logits [N, C, d1, ...] with
 * target [N, d1, ...]. `target` is int32 or int64, each value in [0, C) or `ignoreIndex`.
 * 'mean' divides by the number of targets that are not ignored (NaN when all are). Log-softmax
 * and the pick run fused, one pass per row, in float32 for 16-bit logits; the result has the
 * logits' dtype: 0-dim, or target's shape for reduction 'none'. The gradient (for the logits
 * only) is fused too: softmax minus the smoothed one-hot, scaled, from each row's logsumexp.
 *
 * A target out of range is ERR_INDEX (checked on the host: on a GPU, one device sync). While a
 * CUDA graph is captured (`ig.cuda.graph`) nothing can be read back: the mean's divisor and the
 * gradient's scale are then computed on the device, and a target out of range cannot raise: its
 * row counts as ignored and is added to the graph's `indexErrors()`.
 */
export function crossEntropy(logits: Tensor, target: Tensor, opts?: CrossEntropyOptions): Tensor {
  const op = 'crossEntropy';
  checkTensor(logits, op, 'logits');
  checkTensor(target, op, 'target');
  const wide = castToFloat32(to, logits);
  if (wide !== logits) return withCasts([wide], [logits], () => crossEntropy(wide, target, opts));
  const o = checkOptions<CrossEntropyOptions>(opts, ['ignoreIndex', 'reduction', 'labelSmoothing'], op);
  const ignoreIndex = o.ignoreIndex === undefined ? -100 : checkInt(o.ignoreIndex, op, 'ignoreIndex');
  const reduction = reductionCode(o.reduction, op);
  const smoothing = o.labelSmoothing === undefined ? 0 : checkNumber(o.labelSmoothing, op, 'labelSmoothing');
  if (!(smoothing >= 0 && smoothing <= 1)) fail('ERR_ARG', `${op}: labelSmoothing must be in [0, 1], got ${smoothing}`);
  checkSameDevice(op, logits, target);
  if (!isFloat(logits.dtype)) fail('ERR_DTYPE', `${op}: logits must be a floating-point tensor, got ${logits.dtype}`);
  if (!isInt(target.dtype)) {
    fail('ERR_DTYPE', `${op}: target must hold class indices (int32 or int64), got ${target.dtype}; probability targets are not supported`);
  }
  if (logits.ndim === 0) fail('ERR_SHAPE', `${op}: logits must have a class dim, got a 0-dim tensor`);
  const expected = logits.shape.filter((_, d) => d !== (logits.ndim === 1 ? 0 : 1));
  if (!sameShape(target.shape, expected)) {
    fail('ERR_SHAPE', `${op}: target of shape ${fmtShape(target.shape)} does not fit logits of shape ${fmtShape(logits.shape)}; expected target shape ${fmtShape(expected)}`);
  }
  const shape = REDUCTIONS[reduction] === 'none' ? target.shape.slice() : [];
  if (!needsGrad(logits)) {
    return wrap(native.crossEntropy(logits.handle(op), target.handle(op), ignoreIndex, reduction, smoothing), shape, logits.dtype, logits.device);
  }
  // The forward keeps each row's logsumexp for the fused backward: softmax - smoothed one-hot.
  // While a CUDA graph is captured the count of targets stays on the device (counted is -1).
  const [h, lseHandle, counted, countHandle] = native.crossEntropyWithStats(logits.handle(op), target.handle(op), ignoreIndex, reduction, smoothing);
  const out = wrap(h, shape, logits.dtype, logits.device);
  const lse = wrap(lseHandle, target.shape, logits.dtype === 'float64' ? 'float64' : 'float32', logits.device);
  const count = countHandle === null ? null : wrap(countHandle, [], 'int64', logits.device);
  try {
    record(out, op, [logits, target], count ? [logits, target, lse, count] : [logits, target, lse], (g, [x, labels, rowLse, rowCount]) => {
      const dx = native.crossEntropyBackward(
        g.handle(op), x.handle(op), labels.handle(op), rowLse.handle(op), ignoreIndex, reduction, smoothing, counted,
        rowCount?.handle(op) ?? null,
      );
      return [wrap(dx, x.shape, x.dtype, x.device), null];
    });
  } finally {
    lse.dispose();
    count?.dispose();
  }
  return out;
}

/**
 * Mean squared error, as PyTorch's `F.mse_loss`: (input - target)^2 with the two broadcast
 * together and converted to their promoted (floating-point) dtype, then reduced. Reduction
 * 'mean' or 'sum' gives a 0-dim tensor, computed in one pass with a float64 accumulator.
 */
export function mseLoss(input: Tensor, target: Tensor, opts?: MseLossOptions): Tensor {
  const op = 'mseLoss';
  checkTensor(input, op, 'input');
  checkTensor(target, op, 'target');
  const [wideInput, wideTarget] = [castToFloat32(to, input), castToFloat32(to, target)];
  if (wideInput !== input || wideTarget !== target) {
    return withCasts([wideInput, wideTarget], [input, target], () => mseLoss(wideInput, wideTarget, opts));
  }
  const reduction = reductionCode(checkOptions<MseLossOptions>(opts, ['reduction'], op).reduction, op);
  checkSameDevice(op, input, target);
  const dtype = promoteTypes(input.dtype, target.dtype);
  if (!isFloat(dtype)) fail('ERR_DTYPE', `${op}: expected floating-point tensors, got ${input.dtype} and ${target.dtype}`);
  const shape = broadcastShapes(input.shape, target.shape, op);
  const h = native.mseLoss(input.handle(op), target.handle(op), reduction, dtypeCode(dtype));
  const out = wrap(h, REDUCTIONS[reduction] === 'none' ? shape : [], dtype, input.device);
  if (needsGrad(input, target)) {
    const count = shape.reduce((n, d) => n * d, 1);
    const scale = REDUCTIONS[reduction] === 'mean' ? 2 / count : 2;
    const [inputMeta, targetMeta] = [input, target].map((t) => ({ shape: t.shape, dtype: t.dtype }));
    // d/dinput = scale * (input - target) * g, and its negative for the target
    record(out, op, [input, target], [input, target], (g, [x, y], needs) => {
      const grad = mul(mul(sub(x, y), g), scale);
      return [
        needs[0] ? sumToShape(grad, inputMeta.shape, inputMeta.dtype) : null,
        needs[1] ? sumToShape(mul(grad, -1), targetMeta.shape, targetMeta.dtype) : null,
      ];
    });
  }
  return out;
}

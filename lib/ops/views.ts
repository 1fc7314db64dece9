/** Views (no copy: reshape when possible, permute, narrow, slice, expand, ...) and conversions. */
import { needsGrad, record } from '../autograd/graph';
import { deviceCode } from '../device';
import { DType, DTYPES, checkDType, dtypeCode, isFloat } from '../dtype';
import { fail } from '../errors';
import { core, NativeHandle } from '../native';
import { Device, Tensor, wrap } from '../tensor';
import { checkDevice, checkInt, checkShape, checkTensor, fmtShape, normalizeDim } from './check';
import { zeros } from './creation';
import { sumToShape } from './reduce';

/** Records an op whose gradient is the output's, reshaped to t's shape (view, reshape, squeeze, ...). */
function recordReshape(out: Tensor, op: string, t: Tensor): Tensor {
  if (needsGrad(t)) {
    const shape = t.shape;
    record(out, op, [t], [], (g) => [reshape(g, shape)]);
  }
  return out;
}

/**
 * Records a view of part of t (narrow, slice, select): its gradient is zeros of t's shape with
 * the output's gradient in that part, which `part` views in a handle of that shape.
 */
function recordPart(out: Tensor, op: string, t: Tensor, part: (h: NativeHandle) => NativeHandle): Tensor {
  if (needsGrad(t)) {
    const { shape, dtype, device } = t;
    record(out, op, [t], [], (g) => {
      const grad = zeros(shape.slice(), { dtype, device });
      const view = part(grad.handle(op));
      try {
        core.copyInto(view, g.handle(op));
      } finally {
        core.dispose(view);
      }
      return [grad];
    });
  }
  return out;
}

/** Records an op whose gradient is the output's as it is (contiguous, clone, to a device). */
function recordIdentity(out: Tensor, op: string, t: Tensor): Tensor {
  if (needsGrad(t)) record(out, op, [t], [], (g) => [g]);
  return out;
}

/** Resolves one -1 in a target shape from the element count. */
function inferShape(t: Tensor, shape: readonly unknown[], op: string): number[] {
  const flat = (shape.length === 1 && Array.isArray(shape[0]) ? shape[0] : shape) as unknown[];
  let infer = -1;
  let known = 1;
  for (let i = 0; i < flat.length; i++) {
    const d = flat[i];
    if (d === -1 && infer < 0) {
      infer = i;
      continue;
    }
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) fail('ERR_ARG', `${op}: invalid shape ${fmtShape(flat as number[])}`);
    known *= d;
  }
  const out = flat as number[];
  if (infer >= 0) {
    if (known === 0 || t.numel % known !== 0) {
      fail('ERR_SHAPE', `${op}: shape ${fmtShape(out)} is invalid for a tensor of ${t.numel} elements`);
    }
    return out.map((d, i) => (i === infer ? t.numel / known : d));
  }
  if (known !== t.numel) fail('ERR_SHAPE', `${op}: shape ${fmtShape(out)} is invalid for a tensor of shape ${fmtShape(t.shape)}`);
  return out.slice();
}

/** The same elements in a new shape without copying (one dim may be -1); ERR_SHAPE when strides forbid it. */
export function view(t: Tensor, shape: readonly number[] | readonly [readonly number[]]): Tensor {
  checkTensor(t, 'view');
  const s = inferShape(t, shape, 'view');
  return recordReshape(wrap(core.view(t.handle('view'), s), s, t.dtype, t.device), 'view', t);
}

/** Like view, but copies when a view is impossible. */
export function reshape(t: Tensor, shape: readonly number[] | readonly [readonly number[]]): Tensor {
  checkTensor(t, 'reshape');
  const s = inferShape(t, shape, 'reshape');
  return recordReshape(wrap(core.reshape(t.handle('reshape'), s), s, t.dtype, t.device), 'reshape', t);
}

/** The dims reordered: dim i of the result is dim dims[i] of t (a view). */
export function permute(t: Tensor, dims: readonly number[] | readonly [readonly number[]]): Tensor {
  checkTensor(t, 'permute');
  const list = (dims.length === 1 && Array.isArray(dims[0]) ? dims[0] : dims) as number[];
  if (list.length !== t.ndim) fail('ERR_SHAPE', `permute: expected ${t.ndim} dims for shape ${fmtShape(t.shape)}, got ${fmtShape(list)}`);
  const norm = list.map((d) => normalizeDim(d, t.ndim, 'permute'));
  if (new Set(norm).size !== norm.length) fail('ERR_ARG', `permute: dims ${fmtShape(list)} repeat a dim`);
  const out = wrap(core.permute(t.handle('permute'), norm), norm.map((d) => t.shape[d]), t.dtype, t.device);
  if (needsGrad(t)) {
    const inverse = norm.map((_, i) => norm.indexOf(i));
    record(out, 'permute', [t], [], (g) => [permute(g, inverse)]);
  }
  return out;
}

/** dim0 and dim1 swapped (a view). */
export function transpose(t: Tensor, dim0: number, dim1: number): Tensor {
  checkTensor(t, 'transpose');
  const a = normalizeDim(dim0, t.ndim, 'transpose');
  const b = normalizeDim(dim1, t.ndim, 'transpose');
  const dims = Array.from({ length: t.ndim }, (_, i) => i);
  if (t.ndim > 0) [dims[a], dims[b]] = [b, a];
  return permute(t, dims);
}

/** Elements [start, start + length) of `dim`; a negative start counts from the end. */
export function narrow(t: Tensor, dim: number, start: number, length: number): Tensor {
  checkTensor(t, 'narrow');
  if (t.ndim === 0) fail('ERR_SHAPE', 'narrow: cannot narrow a 0-dim tensor');
  const d = normalizeDim(dim, t.ndim, 'narrow');
  let s = checkInt(start, 'narrow', 'start');
  const n = checkInt(length, 'narrow', 'length');
  const size = t.shape[d];
  if (s < 0) s += size;
  if (s < 0 || s > size || n < 0 || s + n > size) {
    fail('ERR_INDEX', `narrow: range [${s}, ${s + n}) is out of bounds for dim ${d} of size ${size}`);
  }
  const shape = t.shape.slice();
  shape[d] = n;
  const out = wrap(core.narrow(t.handle('narrow'), d, s, n), shape, t.dtype, t.device);
  return recordPart(out, 'narrow', t, (h) => core.narrow(h, d, s, n));
}

/** Python slicing `t[start:end:step]` along `dim` (clamped like Python; step > 0). */
export function slice(t: Tensor, dim: number, start = 0, end = Number.MAX_SAFE_INTEGER, step = 1): Tensor {
  checkTensor(t, 'slice');
  if (t.ndim === 0) fail('ERR_SHAPE', 'slice: cannot slice a 0-dim tensor');
  const d = normalizeDim(dim, t.ndim, 'slice');
  checkInt(start, 'slice', 'start');
  checkInt(end, 'slice', 'end');
  if (checkInt(step, 'slice', 'step') < 1) fail('ERR_ARG', `slice: step must be positive, got ${step}`);
  const size = t.shape[d];
  const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + size : i, 0), size);
  const [s, e] = [clamp(start), clamp(end)];
  const shape = t.shape.slice();
  shape[d] = e > s ? Math.ceil((e - s) / step) : 0;
  const out = wrap(core.slice(t.handle('slice'), d, start, end, step), shape, t.dtype, t.device);
  return recordPart(out, 'slice', t, (h) => core.slice(h, d, start, end, step));
}

/** The sub-tensor at `index` of `dim` (that dim removed). */
export function select(t: Tensor, dim: number, index: number): Tensor {
  checkTensor(t, 'select');
  if (t.ndim === 0) fail('ERR_SHAPE', 'select: cannot select from a 0-dim tensor');
  const d = normalizeDim(dim, t.ndim, 'select');
  const size = t.shape[d];
  const i = checkInt(index, 'select', 'index');
  if (i < -size || i >= size) fail('ERR_INDEX', `select: index ${i} is out of range for dim ${d} of size ${size}`);
  const at = i < 0 ? i + size : i;
  const selectIn = (h: NativeHandle) => {
    const narrowed = core.narrow(h, d, at, 1);
    try {
      return core.squeeze(narrowed, d);
    } finally {
      core.dispose(narrowed);
    }
  };
  const out = wrap(selectIn(t.handle('select')), t.shape.filter((_, k) => k !== d), t.dtype, t.device);
  return recordPart(out, 'select', t, selectIn);
}

/** Broadcasts size-1 dims (and new leading dims) to `shape` without copying; -1 keeps a size. */
export function expand(t: Tensor, shape: readonly number[] | readonly [readonly number[]]): Tensor {
  checkTensor(t, 'expand');
  const list = (shape.length === 1 && Array.isArray(shape[0]) ? shape[0] : shape) as number[];
  if (list.length < t.ndim) fail('ERR_SHAPE', `expand: cannot expand ${fmtShape(t.shape)} to ${fmtShape(list)}`);
  const lead = list.length - t.ndim;
  const target = list.map((d, i) => (d === -1 && i >= lead ? t.shape[i - lead] : d));
  checkShape(target, 'expand');
  const out = wrap(core.expand(t.handle('expand'), target), target, t.dtype, t.device);
  if (needsGrad(t)) {
    const { shape, dtype } = t;
    record(out, 'expand', [t], [], (g) => [sumToShape(g, shape, dtype)]);
  }
  return out;
}

/** Removes `dim` if its size is 1, or every size-1 dim when `dim` is omitted. */
export function squeeze(t: Tensor, dim?: number): Tensor {
  checkTensor(t, 'squeeze');
  if (dim === undefined) {
    return recordReshape(wrap(core.squeeze(t.handle('squeeze'), null), t.shape.filter((d) => d !== 1), t.dtype, t.device), 'squeeze', t);
  }
  const d = normalizeDim(dim, t.ndim, 'squeeze');
  const shape = t.ndim > 0 && t.shape[d] === 1 ? t.shape.filter((_, i) => i !== d) : t.shape.slice();
  return recordReshape(wrap(core.squeeze(t.handle('squeeze'), d), shape, t.dtype, t.device), 'squeeze', t);
}

/** A size-1 dim inserted at `dim` (in [-ndim - 1, ndim]; a view). */
export function unsqueeze(t: Tensor, dim: number): Tensor {
  checkTensor(t, 'unsqueeze');
  const d = normalizeDim(dim, t.ndim + 1, 'unsqueeze');
  const shape = t.shape.slice();
  shape.splice(d, 0, 1);
  return recordReshape(wrap(core.unsqueeze(t.handle('unsqueeze'), d), shape, t.dtype, t.device), 'unsqueeze', t);
}

/** Merges dims startDim..endDim into one (a view when possible). */
export function flatten(t: Tensor, startDim = 0, endDim = -1): Tensor {
  checkTensor(t, 'flatten');
  if (t.ndim === 0) return reshape(t, [1]);
  const s = normalizeDim(startDim, t.ndim, 'flatten');
  const e = normalizeDim(endDim, t.ndim, 'flatten');
  if (s > e) fail('ERR_ARG', `flatten: startDim ${startDim} comes after endDim ${endDim}`);
  const merged = t.shape.slice(s, e + 1).reduce((a, b) => a * b, 1);
  return reshape(t, [...t.shape.slice(0, s), merged, ...t.shape.slice(e + 1)]);
}

/** Views of consecutive pieces along `dim`: equal pieces of `sizeOrSizes` (the last may be smaller), or the listed sizes. */
export function split(t: Tensor, sizeOrSizes: number | readonly number[], dim = 0): Tensor[] {
  checkTensor(t, 'split');
  if (t.ndim === 0) fail('ERR_SHAPE', 'split: cannot split a 0-dim tensor');
  if (typeof sizeOrSizes !== 'number' && !Array.isArray(sizeOrSizes)) fail('ERR_ARG', 'split: expected a size or an array of sizes');
  const d = normalizeDim(dim, t.ndim, 'split');
  const total = t.shape[d];
  let sizes: number[];
  if (typeof sizeOrSizes === 'number') {
    const size = checkInt(sizeOrSizes, 'split', 'size');
    if (size <= 0) fail('ERR_ARG', `split: size must be positive, got ${size}`);
    sizes = [];
    for (let at = 0; at < total; at += size) sizes.push(Math.min(size, total - at));
    if (total === 0) sizes.push(0);
  } else {
    sizes = sizeOrSizes.map((s) => checkInt(s, 'split', 'size'));
    const sum = sizes.reduce((a, b) => a + b, 0);
    if (sizes.some((s) => s < 0) || sum !== total) {
      fail('ERR_SHAPE', `split: sizes ${fmtShape(sizes)} do not add up to ${total}, the size of dim ${d}`);
    }
  }
  let at = 0;
  return sizes.map((s) => {
    const piece = narrow(t, d, at, s);
    at += s;
    return piece;
  });
}

/**
 * Pieces of ceil(size / chunks) along `dim` (the last may be smaller, and there may be fewer
 * than `chunks`), as PyTorch's chunk; a dim of size 0 gives `chunks` empty pieces.
 */
export function chunk(t: Tensor, chunks: number, dim = 0): Tensor[] {
  checkTensor(t, 'chunk');
  const n = checkInt(chunks, 'chunk', 'chunks');
  if (n <= 0) fail('ERR_ARG', `chunk: chunks must be positive, got ${n}`);
  if (t.ndim === 0) fail('ERR_SHAPE', 'chunk: cannot chunk a 0-dim tensor');
  const d = normalizeDim(dim, t.ndim, 'chunk');
  if (t.shape[d] === 0) return split(t, new Array<number>(n).fill(0), d);
  return split(t, Math.ceil(t.shape[d] / n), d);
}

/** A contiguous tensor with the same elements (an alias when already contiguous). */
export function contiguous(t: Tensor): Tensor {
  checkTensor(t, 'contiguous');
  return recordIdentity(wrap(core.contiguous(t.handle('contiguous')), t.shape, t.dtype, t.device), 'contiguous', t);
}

/** A contiguous copy that shares nothing with `t`. */
export function clone(t: Tensor): Tensor {
  checkTensor(t, 'clone');
  return recordIdentity(wrap(core.clone(t.handle('clone')), t.shape, t.dtype, t.device), 'clone', t);
}

/** Converts to a dtype, or moves to a device. */
export function to(t: Tensor, target: DType | Device): Tensor {
  checkTensor(t, 'to');
  if (typeof target !== 'string' || !((DTYPES as readonly string[]).includes(target) || /^(cpu|cuda(:\d+)?)$/.test(target))) {
    fail('ERR_ARG', `to: expected a dtype (${DTYPES.join(', ')}) or a device ('cpu', 'cuda', 'cuda:N'), got ${String(target)}`);
  }
  if ((DTYPES as readonly string[]).includes(target)) {
    const dtype = checkDType(target, 'to');
    const out = wrap(core.toDtype(t.handle('to'), dtypeCode(dtype)), t.shape, dtype, t.device);
    // the gradient converted back; a conversion to an integer dtype is not differentiable
    if (isFloat(dtype) && needsGrad(t)) {
      const from = t.dtype;
      record(out, 'to', [t], [], (g) => [to(g, from)]);
    }
    return out;
  }
  const device = checkDevice(target, 'to');
  if (device === t.device) return recordIdentity(wrap(core.alias(t.handle('to')), t.shape, t.dtype, device), 'to', t);
  const out = wrap(core.toDevice(t.handle('to'), deviceCode(device)), t.shape, t.dtype, device);
  // the gradient moved back
  if (needsGrad(t)) {
    const from = t.device;
    record(out, 'to', [t], [], (g) => [to(g, from)]);
  }
  return out;
}

/** Creating tensors: from JS data, filled, ranges, identity, random (seeded Philox). */
import { DType, checkDType, dtypeCode, isFloat } from '../dtype';
import { fail } from '../errors';
import { core } from '../native';
import { Device, Tensor, wrap } from '../tensor';
import { checkDevice, checkShape, checkTensor, fmtShape } from './check';

/** Options of the creation functions. */
export interface CreationOptions {
  /** Default float32 (bool for boolean data; the array's own type for typed arrays). */
  dtype?: DType;
  /** Default 'cpu'. */
  device?: Device;
}

/** Options of {@link tensor}. */
export interface TensorOptions extends CreationOptions {
  /** For typed arrays: the shape to give the flat data (default: 1-D). */
  shape?: number[];
}

export type TensorData = number | boolean | TensorData[] | ArrayBufferView;

function options(op: string, opts: CreationOptions | undefined, fallback: DType): { dtype: DType; device: Device } {
  return {
    dtype: opts?.dtype === undefined ? fallback : checkDType(opts.dtype, op),
    device: opts?.device === undefined ? 'cpu' : checkDevice(opts.device, op),
  };
}

const NATIVE_ARRAY_DTYPES: [Function, DType][] = [
  [Float32Array, 'float32'],
  [Float64Array, 'float64'],
  [Int32Array, 'int32'],
  [BigInt64Array, 'int64'],
];

/** Shape of a nested array, checking that it is rectangular and holds numbers or booleans. */
function nestedShape(data: TensorData): number[] {
  const shape: number[] = [];
  let level: unknown = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0];
  }
  return shape;
}

function flatten(data: TensorData, shape: number[], out: (number | boolean)[], depth = 0): void {
  if (depth === shape.length) {
    if (typeof data !== 'number' && typeof data !== 'boolean') {
      fail('ERR_ARG', `tensor: expected numbers or booleans, found ${Array.isArray(data) ? 'a deeper array' : typeof data}`);
    }
    out.push(data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    fail('ERR_SHAPE', `tensor: nested arrays are ragged: expected length ${shape[depth]} at depth ${depth}`);
  }
  for (const item of data) flatten(item, shape, out, depth + 1);
}

/** Fills a typed array of `dtype` from JS values (bool: non-zero is true). */
function typedFrom(values: ArrayLike<number | boolean | bigint>, dtype: DType): ArrayBufferView {
  if (dtype === 'int64') return BigInt64Array.from(values as ArrayLike<number>, (v) => BigInt(Math.trunc(Number(v))));
  if (dtype === 'bool') return Uint8Array.from(values as ArrayLike<number>, (v) => (Number(v) !== 0 ? 1 : 0));
  if (dtype === 'int32') return Int32Array.from(values as ArrayLike<number>, (v) => Math.trunc(Number(v)));
  if (dtype === 'float64') return Float64Array.from(values as ArrayLike<number>, Number);
  return Float32Array.from(values as ArrayLike<number>, Number);
}

/** A tensor from bytes/values already laid out for `dtype` (16-bit floats go through float32). */
function fromValues(values: ArrayBufferView, shape: number[], dtype: DType, device: Device): Tensor {
  if ((dtype === 'bfloat16' || dtype === 'float16') && !(values instanceof Uint16Array)) {
    const wide = core.fromBuffer(values, shape, dtypeCode('float32'));
    try {
      return wrap(core.toDtype(wide, dtypeCode(dtype)), shape, dtype, device);
    } finally {
      core.dispose(wide);
    }
  }
  return wrap(core.fromBuffer(values, shape, dtypeCode(dtype)), shape, dtype, device);
}

/**
 * A tensor from a number, a boolean, nested arrays or a typed array (copied).
 * Nested numbers default to float32, booleans to bool; a typed array keeps its type
 * (Float32Array, Float64Array, Int32Array, BigInt64Array; others become float32). With
 * dtype bfloat16/float16, a Uint16Array is taken as raw 16-bit patterns, as `data()` returns them.
 */
export function tensor(data: TensorData, opts?: TensorOptions): Tensor {
  if (ArrayBuffer.isView(data)) {
    const own = NATIVE_ARRAY_DTYPES.find(([ctor]) => data instanceof ctor)?.[1];
    const { dtype, device } = options('tensor', opts, own ?? 'float32');
    const length = (data as unknown as ArrayLike<unknown>).length;
    if (length === undefined) fail('ERR_ARG', 'tensor: a DataView is not supported; pass a typed array');
    const shape = opts?.shape === undefined ? [length] : checkShape(opts.shape, 'tensor');
    if (shape.reduce((a, b) => a * b, 1) !== length) {
      fail('ERR_SHAPE', `tensor: ${length} elements do not fill shape ${fmtShape(shape)}`);
    }
    const rawHalf = (dtype === 'bfloat16' || dtype === 'float16') && data instanceof Uint16Array;
    const values =
      own === dtype || rawHalf || (dtype === 'bool' && data instanceof Uint8Array)
        ? data
        : typedFrom(data as unknown as ArrayLike<number>, isFloat(dtype) && dtype !== 'float64' ? 'float32' : dtype);
    return fromValues(values, shape, dtype, device);
  }
  if (data instanceof Tensor) fail('ERR_ARG', 'tensor: data is already a Tensor; use clone() or to()');
  const shape = nestedShape(data);
  const flat: (number | boolean)[] = [];
  flatten(data, shape, flat);
  const { dtype, device } = options('tensor', opts, typeof flat[0] === 'boolean' ? 'bool' : 'float32');
  const values = typedFrom(flat, isFloat(dtype) && dtype !== 'float64' ? 'float32' : dtype);
  return fromValues(values, shape, dtype, device);
}

/** An uninitialised tensor. */
export function empty(shape: number[], opts?: CreationOptions): Tensor {
  checkShape(shape, 'empty');
  const { dtype, device } = options('empty', opts, 'float32');
  return wrap(core.empty(shape, dtypeCode(dtype)), shape.slice(), dtype, device);
}

/** A tensor filled with `value`. */
export function full(shape: number[], value: number | boolean, opts?: CreationOptions): Tensor {
  if (typeof value !== 'number' && typeof value !== 'boolean') fail('ERR_ARG', `full: value must be a number, got ${typeof value}`);
  const t = empty(shape, { dtype: opts?.dtype ?? (typeof value === 'boolean' ? 'bool' : 'float32'), device: opts?.device });
  core.fill(t.handle('full'), Number(value));
  return t;
}

export function zeros(shape: number[], opts?: CreationOptions): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: number[], opts?: CreationOptions): Tensor {
  return full(shape, 1, opts);
}

function likeOptions(t: Tensor, op: string, opts?: CreationOptions): CreationOptions {
  checkTensor(t, op);
  return { dtype: opts?.dtype ?? t.dtype, device: opts?.device ?? t.device };
}

export function emptyLike(t: Tensor, opts?: CreationOptions): Tensor {
  return empty(t.shape.slice(), likeOptions(t, 'emptyLike', opts));
}

export function zerosLike(t: Tensor, opts?: CreationOptions): Tensor {
  return zeros(t.shape.slice(), likeOptions(t, 'zerosLike', opts));
}

export function onesLike(t: Tensor, opts?: CreationOptions): Tensor {
  return ones(t.shape.slice(), likeOptions(t, 'onesLike', opts));
}

export function fullLike(t: Tensor, value: number | boolean, opts?: CreationOptions): Tensor {
  return full(t.shape.slice(), value, likeOptions(t, 'fullLike', opts));
}

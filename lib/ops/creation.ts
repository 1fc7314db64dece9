/** Creating tensors: from JS data, filled, ranges, identity, random (seeded Philox). */
import { DType, checkDType, dtypeCode, isFloat } from '../dtype';
import { fail } from '../errors';
import { deviceCode } from '../device';
import { addon, core, NativeHandle } from '../native';
import { Device, Tensor, wrap } from '../tensor';
import { checkDevice, checkInt, checkNumber, checkShape, checkTensor, fmtShape } from './check';

/** Each takes a device code last (lib/device.ts deviceCode). */
interface CreationNative {
  arange(start: number, end: number, step: number, dtype: number, device: number): NativeHandle;
  linspace(start: number, end: number, steps: number, dtype: number, device: number): NativeHandle;
  eye(n: number, m: number, dtype: number, device: number): NativeHandle;
  rand(shape: number[], dtype: number, device: number): NativeHandle;
  randn(shape: number[], dtype: number, device: number): NativeHandle;
  randint(low: number, high: number, shape: number[], dtype: number, device: number): NativeHandle;
  getRngState(): { seed: bigint; offset: bigint };
  setRngState(seed: bigint, offset: bigint): void;
}
const native = addon as CreationNative;

/** Options of the creation functions. */
export interface CreationOptions {
  /** Default float32 (bool for boolean data; the array's own type for typed arrays). */
  dtype?: DType;
  /** Default 'cpu'. */
  device?: Device;
}

/** Options of the creation functions that can make a leaf for autograd. */
export interface LeafOptions extends CreationOptions {
  /**
   * Make the result a leaf that requires grad, as `requiresGrad_()` does afterwards (float
   * dtypes only: ERR_DTYPE otherwise). Default false.
   */
  requiresGrad?: boolean;
}

/** Options of {@link tensor}. */
export interface TensorOptions extends LeafOptions {
  /** For typed arrays: the shape to give the flat data (default: 1-D). */
  shape?: number[];
}

/** What {@link tensor} takes: a number, a boolean, nested arrays of them, or a typed array. */
export type TensorData = number | boolean | TensorData[] | ArrayBufferView;

function options(op: string, opts: CreationOptions | undefined, fallback: DType): { dtype: DType; device: Device } {
  return {
    dtype: opts?.dtype === undefined ? fallback : checkDType(opts.dtype, op),
    device: opts?.device === undefined ? 'cpu' : checkDevice(opts.device, op),
  };
}

/**
 * Whether `opts` asks for a leaf that requires grad. Checked before the tensor is made, so that
 * a bad flag (ERR_ARG) or a dtype that cannot require grad (ERR_DTYPE) allocates nothing.
 */
function wantsGrad(opts: LeafOptions | undefined, dtype: DType, op: string): boolean {
  const flag = opts?.requiresGrad;
  if (flag === undefined || flag === false) return false;
  if (flag !== true) fail('ERR_ARG', `${op}: requiresGrad must be a boolean, got ${typeof flag}`);
  if (!isFloat(dtype)) fail('ERR_DTYPE', `${op}: only floating-point tensors can require grad, got ${dtype}`);
  return true;
}

/** A fresh tensor, made a leaf that requires grad when `grad` is true. */
function leaf(t: Tensor, grad: boolean): Tensor {
  return grad ? t.requiresGrad_() : t;
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
    if (Array.isArray(data)) fail('ERR_SHAPE', `tensor: nested arrays are ragged: an array where depth ${depth} holds values`);
    if (typeof data !== 'number' && typeof data !== 'boolean') {
      fail('ERR_ARG', `tensor: expected numbers or booleans, found ${data === null ? 'null' : typeof data}`);
    }
    out.push(data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    fail('ERR_SHAPE', `tensor: nested arrays are ragged: expected length ${shape[depth]} at depth ${depth}`);
  }
  for (const item of data) flatten(item, shape, out, depth + 1);
}

const INT_RANGES = { int32: [-(2 ** 31), 2 ** 31 - 1], int64: [-(2 ** 63), 2 ** 63] } as const;

/** v truncated to an integer of `dtype`; NaN, infinities and values out of range are ERR_ARG, as in PyTorch. */
function toInteger(v: number | boolean | bigint, dtype: 'int32' | 'int64', op: string): number | bigint {
  const x = typeof v === 'bigint' ? v : Math.trunc(Number(v));
  const [lo, hi] = INT_RANGES[dtype];
  // int64's top is exclusive: 2^63 - 1 is not a double
  if (!(x >= lo && (dtype === 'int64' ? x < hi : x <= hi))) fail('ERR_ARG', `${op}: ${v} cannot be converted to ${dtype} without overflow`);
  return x;
}

/**
 * A typed array of `dtype` (float32 for the 16-bit floats) from JS values. Integer dtypes
 * truncate fractions and reject NaN, infinities and values out of range; bool takes non-zero
 * as true.
 */
function typedFrom(values: ArrayLike<number | boolean | bigint>, dtype: DType): ArrayBufferView {
  const n = values.length;
  if (dtype === 'int64') return BigInt64Array.from({ length: n }, (_, i) => BigInt(toInteger(values[i], dtype, 'tensor')));
  if (dtype === 'int32') return Int32Array.from({ length: n }, (_, i) => Number(toInteger(values[i], dtype, 'tensor')));
  if (dtype === 'bool') return Uint8Array.from(values as ArrayLike<number>, (v) => (v ? 1 : 0));
  const out = dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Number(values[i]);
  return out;
}

/**
 * A tensor from bytes/values already laid out for `dtype` (16-bit floats go through float32),
 * made in host memory and then moved to `device`.
 */
function fromValues(values: ArrayBufferView, shape: number[], dtype: DType, device: Device): Tensor {
  let h: NativeHandle;
  if ((dtype === 'bfloat16' || dtype === 'float16') && !(values instanceof Uint16Array)) {
    const wide = core.fromBuffer(values, shape, dtypeCode('float32'));
    try {
      h = core.toDtype(wide, dtypeCode(dtype));
    } finally {
      core.dispose(wide);
    }
  } else {
    h = core.fromBuffer(values, shape, dtypeCode(dtype));
  }
  if (device !== 'cpu') {
    const host = h;
    try {
      h = core.toDevice(host, deviceCode(device));
    } finally {
      core.dispose(host);
    }
  }
  return wrap(h, shape, dtype, device);
}

/**
 * A tensor from a number, a boolean, nested arrays or a typed array (copied).
 * Nested numbers default to float32, booleans (when all are) to bool; a typed array keeps its type
 * (Float32Array, Float64Array, Int32Array, BigInt64Array; others become float32). With
 * dtype bfloat16/float16, a Uint16Array is taken as raw 16-bit patterns, as `data()` returns them.
 * Integer dtypes truncate fractions; NaN, infinities and values out of range are ERR_ARG.
 * Ragged nested arrays are ERR_SHAPE. `requiresGrad: true` makes a leaf for autograd.
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
    const grad = wantsGrad(opts, dtype, 'tensor');
    const rawHalf = (dtype === 'bfloat16' || dtype === 'float16') && data instanceof Uint16Array;
    const values = own === dtype || rawHalf ? data : typedFrom(data as unknown as ArrayLike<number>, dtype);
    return leaf(fromValues(values, shape, dtype, device), grad);
  }
  if (data instanceof Tensor) fail('ERR_ARG', 'tensor: data is already a Tensor; use clone() or to()');
  const shape = nestedShape(data);
  const flat: (number | boolean)[] = [];
  flatten(data, shape, flat);
  const allBool = flat.length > 0 && flat.every((v) => typeof v === 'boolean');
  const { dtype, device } = options('tensor', opts, allBool ? 'bool' : 'float32');
  const grad = wantsGrad(opts, dtype, 'tensor');
  const values = typedFrom(flat, dtype);
  return leaf(fromValues(values, shape, dtype, device), grad);
}

/** A new tensor of `shape`, checked for `op`; filled with `value` unless it is undefined. */
function allocate(op: string, shape: number[], opts: LeafOptions | undefined, fallback: DType, value?: number): Tensor {
  checkShape(shape, op);
  const { dtype, device } = options(op, opts, fallback);
  const grad = wantsGrad(opts, dtype, op);
  const t = wrap(core.empty(shape, dtypeCode(dtype), deviceCode(device)), shape.slice(), dtype, device);
  if (value !== undefined) core.fill(t.handle(op), value);
  return leaf(t, grad);
}

/** An uninitialised tensor (`requiresGrad: true` makes a leaf for autograd). */
export function empty(shape: number[], opts?: LeafOptions): Tensor {
  return allocate('empty', shape, opts, 'float32');
}

/**
 * A tensor filled with `value` (default dtype: bool for a boolean, float32 otherwise);
 * `requiresGrad: true` makes a leaf for autograd.
 */
export function full(shape: number[], value: number | boolean, opts?: LeafOptions): Tensor {
  if (typeof value !== 'number' && typeof value !== 'boolean') fail('ERR_ARG', `full: value must be a number, got ${typeof value}`);
  const dtype = opts?.dtype === undefined ? undefined : checkDType(opts.dtype, 'full');
  if (dtype === 'int32' || dtype === 'int64') toInteger(value, dtype, 'full');
  return allocate('full', shape, opts, typeof value === 'boolean' ? 'bool' : 'float32', Number(value));
}

/** A tensor of zeros (`requiresGrad: true` makes a leaf for autograd). */
export function zeros(shape: number[], opts?: LeafOptions): Tensor {
  return allocate('zeros', shape, opts, 'float32', 0);
}

/** A tensor of ones (`requiresGrad: true` makes a leaf for autograd). */
export function ones(shape: number[], opts?: LeafOptions): Tensor {
  return allocate('ones', shape, opts, 'float32', 1);
}

function likeOptions(t: Tensor, op: string, opts?: CreationOptions): CreationOptions {
  checkTensor(t, op);
  return { dtype: opts?.dtype ?? t.dtype, device: opts?.device ?? t.device };
}

/** {@link empty} with t's shape, dtype and device (unless overridden). */
export function emptyLike(t: Tensor, opts?: CreationOptions): Tensor {
  const o = likeOptions(t, 'emptyLike', opts);
  return empty(t.shape.slice(), o);
}

/** {@link zeros} with t's shape, dtype and device (unless overridden). */
export function zerosLike(t: Tensor, opts?: CreationOptions): Tensor {
  const o = likeOptions(t, 'zerosLike', opts);
  return zeros(t.shape.slice(), o);
}

/** {@link ones} with t's shape, dtype and device (unless overridden). */
export function onesLike(t: Tensor, opts?: CreationOptions): Tensor {
  const o = likeOptions(t, 'onesLike', opts);
  return ones(t.shape.slice(), o);
}

/** {@link full} with t's shape, dtype and device (unless overridden). */
export function fullLike(t: Tensor, value: number | boolean, opts?: CreationOptions): Tensor {
  const o = likeOptions(t, 'fullLike', opts);
  return full(t.shape.slice(), value, o);
}

function isOptions(v: unknown): v is CreationOptions | undefined {
  return v === undefined || (typeof v === 'object' && v !== null && !Array.isArray(v));
}

/** A finite number argument, else ERR_ARG. */
function finite(v: unknown, op: string, name: string): number {
  const x = checkNumber(v, op, name);
  if (!Number.isFinite(x)) fail('ERR_ARG', `${op}: ${name} must be finite, got ${x}`);
  return x;
}

/** Whether the integer `v` is exact in `dtype` (floats: every integer up to |v| is). */
function fitsDtype(v: number, dtype: DType): boolean {
  const limits: Record<DType, [number, number]> = {
    float32: [-(2 ** 24), 2 ** 24],
    float64: [-(2 ** 53), 2 ** 53],
    bfloat16: [-256, 256],
    float16: [-2048, 2048],
    int32: [-(2 ** 31), 2 ** 31 - 1],
    int64: [-(2 ** 63), 2 ** 63 - 1],
    bool: [0, 1],
  };
  const [lo, hi] = limits[dtype];
  return v >= lo && v <= hi;
}

function rejectBool(dtype: DType, op: string): void {
  if (dtype === 'bool') fail('ERR_DTYPE', `${op}: not supported for bool tensors`);
}

/**
 * `[0, end)` or `[start, end)` in steps of `step` (default 1): ceil((end - start) / step)
 * elements. As in PyTorch, the dtype is int64 when every argument is an integer, float32
 * otherwise; integer dtypes truncate start, end and step first. A zero step, NaN or a step
 * pointing away from `end` is ERR_ARG.
 */
export function arange(end: number, opts?: CreationOptions): Tensor;
export function arange(start: number, end: number, opts?: CreationOptions): Tensor;
export function arange(start: number, end: number, step?: number, opts?: CreationOptions): Tensor;
export function arange(
  first: number,
  second?: number | CreationOptions,
  third?: number | CreationOptions,
  fourth?: CreationOptions,
): Tensor {
  let args: unknown[];
  let opts: unknown;
  if (isOptions(second)) {
    args = [0, first, 1];
    opts = second;
  } else if (isOptions(third)) {
    args = [first, second, 1];
    opts = third;
  } else {
    args = [first, second, third];
    opts = fourth;
  }
  if (!isOptions(opts)) fail('ERR_ARG', 'arange: options must be an object');
  const [start, end, step] = args.map((v, i) => checkNumber(v, 'arange', ['start', 'end', 'step'][i]));
  if ([start, end, step].some(Number.isNaN)) fail('ERR_ARG', `arange: arguments must not be NaN, got (${start}, ${end}, ${step})`);
  if (![start, end, step].every(Number.isFinite)) fail('ERR_ARG', `arange: arguments must be finite, got (${start}, ${end}, ${step})`);
  const integers = [start, end, step].every(Number.isInteger);
  const { dtype, device } = options('arange', opts, integers ? 'int64' : 'float32');
  rejectBool(dtype, 'arange');
  const [s, e, st] = isFloat(dtype) ? [start, end, step] : [start, end, step].map(Math.trunc);
  if (st === 0) fail('ERR_ARG', `arange: step must be nonzero${step !== 0 ? ` (${step} truncates to 0 for ${dtype})` : ''}`);
  if ((e - s) / st < 0) fail('ERR_ARG', `arange: the step ${step} goes away from end ${end} when starting at ${start}`);
  const length = Math.ceil((e - s) / st);
  if (!isFloat(dtype) && (!fitsDtype(s, dtype) || !fitsDtype(s + Math.max(length - 1, 0) * st, dtype))) {
    fail('ERR_ARG', `arange: values from ${s} in steps of ${st} do not fit in ${dtype}`);
  }
  return wrap(native.arange(start, end, step, dtypeCode(dtype), deviceCode(device)), [length], dtype, device);
}

/** `steps` evenly spaced values from `start` to `end`, both included (default dtype float32). */
export function linspace(start: number, end: number, steps: number, opts?: CreationOptions): Tensor {
  const a = finite(start, 'linspace', 'start');
  const b = finite(end, 'linspace', 'end');
  const n = checkInt(steps, 'linspace', 'steps');
  if (n < 0) fail('ERR_ARG', `linspace: steps must be non-negative, got ${n}`);
  const { dtype, device } = options('linspace', opts, 'float32');
  rejectBool(dtype, 'linspace');
  if (!isFloat(dtype) && (!fitsDtype(Math.trunc(a), dtype) || !fitsDtype(Math.trunc(b), dtype))) {
    fail('ERR_ARG', `linspace: [${a}, ${b}] does not fit in ${dtype}`);
  }
  return wrap(native.linspace(a, b, n, dtypeCode(dtype), deviceCode(device)), [n], dtype, device);
}

/** The n x m (default n x n) identity matrix: ones on the diagonal, zeros elsewhere. */
export function eye(n: number, m?: number | CreationOptions, opts?: CreationOptions): Tensor {
  if (isOptions(m)) [m, opts] = [n, m];
  const rows = checkInt(n, 'eye', 'n');
  const cols = checkInt(m, 'eye', 'm');
  checkShape([rows, cols], 'eye');
  const { dtype, device } = options('eye', opts, 'float32');
  return wrap(native.eye(rows, cols, dtypeCode(dtype), deviceCode(device)), [rows, cols], dtype, device);
}

function floatOptions(op: string, opts: CreationOptions | undefined): { dtype: DType; device: Device } {
  const o = options(op, opts, 'float32');
  if (!isFloat(o.dtype)) fail('ERR_DTYPE', `${op}: expected a floating-point dtype, got ${o.dtype}`);
  return o;
}

/**
 * Uniform samples in [0, 1) from the global generator (see {@link manualSeed}). float32 values
 * carry 24 random bits, float64 53, bfloat16 8 and float16 11, so none rounds up to 1.
 * `requiresGrad: true` makes a leaf for autograd.
 */
export function rand(shape: number[], opts?: LeafOptions): Tensor {
  checkShape(shape, 'rand');
  const { dtype, device } = floatOptions('rand', opts);
  const grad = wantsGrad(opts, dtype, 'rand');
  return leaf(wrap(native.rand(shape, dtypeCode(dtype), deviceCode(device)), shape.slice(), dtype, device), grad);
}

/** Standard normal samples (Box-Muller) from the global generator; `requiresGrad` as in {@link rand}. */
export function randn(shape: number[], opts?: LeafOptions): Tensor {
  checkShape(shape, 'randn');
  const { dtype, device } = floatOptions('randn', opts);
  const grad = wantsGrad(opts, dtype, 'randn');
  return leaf(wrap(native.randn(shape, dtypeCode(dtype), deviceCode(device)), shape.slice(), dtype, device), grad);
}

/**
 * Uniform integers in `[low, high)` (`low` defaults to 0 in the two-argument form), int64 by
 * default. Each draws 64 random bits x and takes low + floor(x * (high - low) / 2^64): the
 * probability of a value is off by at most (high - low) / 2^64 relative, under 1e-9 for any
 * range below 2^34. Any dtype but bool, where low and high - 1 are exact.
 */
export function randint(high: number, shape: number[], opts?: CreationOptions): Tensor;
export function randint(low: number, high: number, shape: number[], opts?: CreationOptions): Tensor;
export function randint(
  first: number,
  second: number | number[],
  third?: number[] | CreationOptions,
  fourth?: CreationOptions,
): Tensor {
  const [low, high, shape, opts] = Array.isArray(second)
    ? [0, first, second, third as CreationOptions | undefined]
    : [first, second, third, fourth];
  checkInt(low, 'randint', 'low');
  checkInt(high, 'randint', 'high');
  if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high)) fail('ERR_ARG', `randint: low and high must be safe integers`);
  checkShape(shape, 'randint');
  if (low >= high) fail('ERR_ARG', `randint: expected low < high, got low ${low} and high ${high}`);
  const { dtype, device } = options('randint', opts, 'int64');
  rejectBool(dtype, 'randint');
  if (!fitsDtype(low, dtype) || !fitsDtype(high - 1, dtype)) fail('ERR_ARG', `randint: [${low}, ${high}) does not fit in ${dtype}`);
  return wrap(native.randint(low, high, shape as number[], dtypeCode(dtype), deviceCode(device)), (shape as number[]).slice(), dtype, device);
}

/** {@link rand} with t's shape, dtype and device (unless overridden). */
export function randLike(t: Tensor, opts?: CreationOptions): Tensor {
  const o = likeOptions(t, 'randLike', opts);
  return rand(t.shape.slice(), o);
}

/** {@link randn} with t's shape, dtype and device (unless overridden). */
export function randnLike(t: Tensor, opts?: CreationOptions): Tensor {
  const o = likeOptions(t, 'randnLike', opts);
  return randn(t.shape.slice(), o);
}

/** {@link randint} with t's shape, dtype and device: `randintLike(t, high)` or `randintLike(t, low, high)`. */
export function randintLike(t: Tensor, lowOrHigh: number, high?: number | CreationOptions, opts?: CreationOptions): Tensor {
  const [low, top, given] = isOptions(high) ? [0, lowOrHigh, high] : [lowOrHigh, high, opts];
  const o = likeOptions(t, 'randintLike', given);
  return randint(low, top, t.shape.slice(), o);
}

/**
 * The state of the global generator: its seed and how many Philox blocks (of 128 bits) the
 * random ops have used since it was seeded. Save it to resume the exact stream with
 * {@link setRngState}.
 */
export interface RngState {
  seed: bigint;
  offset: bigint;
}

const TWO_64 = 1n << 64n;

function toUint64(v: unknown, op: string, name: string, allowNegative: boolean): bigint {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else fail('ERR_ARG', `${op}: ${name} must be a safe integer or a bigint, got ${String(v)}`);
  const min = allowNegative ? -(1n << 63n) : 0n;
  if (b < min || b >= TWO_64) fail('ERR_ARG', `${op}: ${name} ${b} is out of range [${min}, 2^64)`);
  return b < 0n ? b + TWO_64 : b;
}

/**
 * Seeds the global generator and restarts its stream, so the random ops that follow give the
 * same numbers on every run, thread count and device. A negative seed counts from 2^64, as in
 * PyTorch. A process starts as if seeded with 67280421310721.
 */
export function manualSeed(seed: number | bigint): void {
  native.setRngState(toUint64(seed, 'manualSeed', 'seed', true), 0n);
}

/** The global generator's state (see {@link RngState}). */
export function getRngState(): RngState {
  return native.getRngState();
}

/** Restores a state from {@link getRngState}: the random ops continue exactly from there. */
export function setRngState(state: RngState): void {
  if (typeof state !== 'object' || state === null) fail('ERR_ARG', 'setRngState: expected { seed, offset }');
  native.setRngState(toUint64(state.seed, 'setRngState', 'seed', false), toUint64(state.offset, 'setRngState', 'offset', false));
}

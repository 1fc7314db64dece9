/** Elementwise ops with NumPy broadcasting and PyTorch's type promotion. */
import { DType, isFloat, promoteTypes, promoteWithScalar } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { broadcastShapes, checkSameDevice, checkTensor } from './check';
import { to } from './views';

interface ElementwiseNative {
  binary(op: number, a: NativeHandle, b: NativeHandle): NativeHandle;
  binaryScalar(op: number, a: NativeHandle, scalar: number, reversed: boolean): NativeHandle;
}
const native = addon as ElementwiseNative;

/** Codes of native/kernels/elementwise.h BinaryOp. */
const enum BinaryOp {
  Add = 0,
  Sub,
  Mul,
  Div,
  Pow,
  Maximum,
  Minimum,
}

/** Runs fn on `t` converted to `dtype` (no copy when it already is), disposing the conversion. */
function withDtype<R>(t: Tensor, dtype: DType, fn: (h: NativeHandle) => R, op: string): R {
  if (t.dtype === dtype) return fn(t.handle(op));
  const converted = to(t, dtype);
  try {
    return fn(converted.handle(op));
  } finally {
    converted.dispose();
  }
}

function binaryOp(op: BinaryOp, name: string, a: Tensor | number, b: Tensor | number, trueDivide = false): Tensor {
  if (typeof a === 'number' && typeof b === 'number') fail('ERR_ARG', `${name}: at least one operand must be a Tensor`);
  if (typeof b === 'number' || typeof a === 'number') {
    const reversed = typeof a === 'number';
    const t = checkTensor(reversed ? b : a, name);
    const scalar = (reversed ? a : b) as number;
    if (typeof scalar !== 'number') fail('ERR_ARG', `${name}: operands must be Tensors or numbers`);
    let dtype = promoteWithScalar(t.dtype, scalar);
    if (trueDivide && !isFloat(dtype)) dtype = 'float32';
    if (dtype === 'bool') dtype = 'int64';
    const h = withDtype(t, dtype, (x) => native.binaryScalar(op, x, scalar, reversed), name);
    return wrap(h, t.shape, dtype, t.device);
  }
  checkTensor(a, name, 'first operand');
  checkTensor(b, name, 'second operand');
  checkSameDevice(name, a, b);
  const shape = broadcastShapes(a.shape, b.shape, name);
  let dtype = promoteTypes(a.dtype, b.dtype);
  if (trueDivide && !isFloat(dtype)) dtype = 'float32';
  if (dtype === 'bool') dtype = 'int64';
  const h = withDtype(a, dtype, (x) => withDtype(b, dtype, (y) => native.binary(op, x, y), name), name);
  return wrap(h, shape, dtype, a.device);
}

/** a + alpha * b. */
export function add(a: Tensor | number, b: Tensor | number, alpha?: number): Tensor {
  if (alpha === undefined || alpha === 1) return binaryOp(BinaryOp.Add, 'add', a, b);
  if (typeof b === 'number') return binaryOp(BinaryOp.Add, 'add', a, b * alpha);
  const scaled = mul(b, alpha);
  try {
    return binaryOp(BinaryOp.Add, 'add', a, scaled);
  } finally {
    scaled.dispose();
  }
}

/** a - alpha * b. */
export function sub(a: Tensor | number, b: Tensor | number, alpha?: number): Tensor {
  if (alpha === undefined || alpha === 1) return binaryOp(BinaryOp.Sub, 'sub', a, b);
  if (typeof b === 'number') return binaryOp(BinaryOp.Sub, 'sub', a, b * alpha);
  const scaled = mul(b, alpha);
  try {
    return binaryOp(BinaryOp.Sub, 'sub', a, scaled);
  } finally {
    scaled.dispose();
  }
}

export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  return binaryOp(BinaryOp.Mul, 'mul', a, b);
}

/** True division: integer inputs give float32. */
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  return binaryOp(BinaryOp.Div, 'div', a, b, true);
}

export function pow(a: Tensor | number, b: Tensor | number): Tensor {
  return binaryOp(BinaryOp.Pow, 'pow', a, b);
}

/** Elementwise maximum (NaN if either is NaN). */
export function maximum(a: Tensor | number, b: Tensor | number): Tensor {
  return binaryOp(BinaryOp.Maximum, 'maximum', a, b);
}

/** Elementwise minimum (NaN if either is NaN). */
export function minimum(a: Tensor | number, b: Tensor | number): Tensor {
  return binaryOp(BinaryOp.Minimum, 'minimum', a, b);
}


// UNWRITTEN (elementwise family, in progress): unary ops, comparisons, where, clamp, maskedFill.
const pending = (name: string): never => fail('ERR_INTERNAL', `${name}: not implemented yet`);
export const neg = (_t: Tensor): Tensor => pending('neg');
export const abs = (_t: Tensor): Tensor => pending('abs');
export const sqrt = (_t: Tensor): Tensor => pending('sqrt');
export const rsqrt = (_t: Tensor): Tensor => pending('rsqrt');
export const exp = (_t: Tensor): Tensor => pending('exp');
export const log = (_t: Tensor): Tensor => pending('log');
export const tanh = (_t: Tensor): Tensor => pending('tanh');
export const sigmoid = (_t: Tensor): Tensor => pending('sigmoid');
export const relu = (_t: Tensor): Tensor => pending('relu');
export const gelu = (_t: Tensor, _approximate: 'none' | 'tanh' = 'none'): Tensor => pending('gelu');
export const silu = (_t: Tensor): Tensor => pending('silu');
export const clamp = (_t: Tensor, _min?: number | null, _max?: number | null): Tensor => pending('clamp');
export const eq = (_a: Tensor | number, _b: Tensor | number): Tensor => pending('eq');
export const ne = (_a: Tensor | number, _b: Tensor | number): Tensor => pending('ne');
export const lt = (_a: Tensor | number, _b: Tensor | number): Tensor => pending('lt');
export const le = (_a: Tensor | number, _b: Tensor | number): Tensor => pending('le');
export const gt = (_a: Tensor | number, _b: Tensor | number): Tensor => pending('gt');
export const ge = (_a: Tensor | number, _b: Tensor | number): Tensor => pending('ge');
export const where = (_c: Tensor, _a: Tensor | number, _b: Tensor | number): Tensor => pending('where');
export const maskedFill = (_t: Tensor, _mask: Tensor, _value: number): Tensor => pending('maskedFill');

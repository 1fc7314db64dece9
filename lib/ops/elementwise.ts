/** Elementwise ops with NumPy broadcasting and PyTorch's type promotion. */
import { DType, isFloat, promoteTypes, promoteWithScalar } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { broadcastShapes, checkSameDevice, checkTensor } from './check';
import { to } from './views';
import { needsGrad, record } from '../autograd/graph';
import { full } from './creation';
import { sumToShape } from './reduce';

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

// --- gradients of the binary ops ---

interface ElementwiseBackwardNative {
  binaryBackward(op: number, grad: NativeHandle, self: NativeHandle, other: NativeHandle): NativeHandle;
}
const backwardNative = addon as ElementwiseBackwardNative;

/** binaryOp, recording its backward when an operand requires grad. */
function binaryOpWithGrad(op: BinaryOp, name: string, a: Tensor | number, b: Tensor | number, trueDivide = false): Tensor {
  const out = binaryOp(op, name, a, b, trueDivide);
  if (needsGrad(a, b)) recordBinary(op, name, out, a, b);
  return out;
}

/** Codes of native/kernels/elementwise_backward.h BinaryGrad. */
const enum BinaryGrad {
  PowBase = 0,
  PowExponent,
  Maximum,
  Minimum,
}

/** The gradient of `self` in `self op other` from the native kernel, in the broadcast shape. */
function binaryGrad(op: BinaryGrad, g: Tensor, self: Tensor | number, other: Tensor | number): Tensor {
  const name = 'binary backward';
  // operands in g's dtype; a number as a 0-dim tensor
  const asTensor = (x: Tensor | number) => {
    if (typeof x === 'number') return full([], x, { dtype: g.dtype, device: g.device });
    return x.dtype === g.dtype ? x : to(x, g.dtype);
  };
  const [s, o] = [asTensor(self), asTensor(other)];
  const h = backwardNative.binaryBackward(op, g.handle(name), s.handle(name), o.handle(name));
  return wrap(h, broadcastShapes(g.shape, broadcastShapes(s.shape, o.shape, name), name), g.dtype, g.device);
}

/**
 * Records the backward of `out = a op b` (one of them may be a number): each operand's gradient
 * is computed in out's dtype and broadcast shape, then summed down to its shape and dtype.
 */
function recordBinary(op: BinaryOp, name: string, out: Tensor, a: Tensor | number, b: Tensor | number): void {
  // The closure keeps the operands' shapes, dtypes and numbers, never the tensors themselves.
  const meta = [a, b].map((x) => (typeof x === 'number' ? x : { shape: x.shape, dtype: x.dtype }));
  const reduce = (g: Tensor, k: number) => {
    const { shape, dtype } = meta[k] as { shape: readonly number[]; dtype: DType };
    return sumToShape(g, shape, dtype);
  };
  // the operands again: numbers as they were, tensors from the node's saved aliases
  const values = (saved: Tensor[]): (Tensor | number)[] => {
    let next = 0;
    return meta.map((m) => (typeof m === 'number' ? m : saved[next++]));
  };
  // Each rule gives the gradient of operand k in the broadcast shape; add and sub save nothing.
  let saved = [a, b].filter((x): x is Tensor => typeof x !== 'number');
  let rule: (g: Tensor, x: Tensor | number, y: Tensor | number, k: number) => Tensor;
  switch (op) {
    case BinaryOp.Add:
      saved = [];
      rule = (g) => g;
      break;
    case BinaryOp.Sub:
      saved = [];
      rule = (g, _x, _y, k) => (k === 0 ? g : mul(g, -1));
      break;
    case BinaryOp.Mul:
      rule = (g, x, y, k) => mul(g, k === 0 ? y : x);
      break;
    case BinaryOp.Div:
      // d(x / y)/dy = -x / y^2
      rule = (g, x, y, k) => (k === 0 ? div(g, y) : mul(div(mul(g, x), mul(y, y)), -1));
      break;
    case BinaryOp.Pow:
      rule = (g, x, y, k) => (k === 0 ? binaryGrad(BinaryGrad.PowBase, g, x, y) : binaryGrad(BinaryGrad.PowExponent, g, y, x));
      break;
    case BinaryOp.Maximum:
    case BinaryOp.Minimum: {
      const kind = op === BinaryOp.Maximum ? BinaryGrad.Maximum : BinaryGrad.Minimum;
      rule = (g, x, y, k) => (k === 0 ? binaryGrad(kind, g, x, y) : binaryGrad(kind, g, y, x));
      break;
    }
  }
  record(out, name, [a, b], saved, (g, kept, needs) => {
    const [x, y] = kept.length > 0 ? values(kept) : [0, 0];
    return needs.map((needed, k) => (needed ? reduce(rule(g, x, y, k), k) : null));
  });
}

/** a + alpha * b. */
export function add(a: Tensor | number, b: Tensor | number, alpha?: number): Tensor {
  if (alpha === undefined || alpha === 1) return binaryOpWithGrad(BinaryOp.Add, 'add', a, b);
  if (typeof b === 'number') return binaryOpWithGrad(BinaryOp.Add, 'add', a, b * alpha);
  const scaled = mul(b, alpha);
  try {
    return binaryOpWithGrad(BinaryOp.Add, 'add', a, scaled);
  } finally {
    scaled.dispose();
  }
}

/** a - alpha * b. */
export function sub(a: Tensor | number, b: Tensor | number, alpha?: number): Tensor {
  if (alpha === undefined || alpha === 1) return binaryOpWithGrad(BinaryOp.Sub, 'sub', a, b);
  if (typeof b === 'number') return binaryOpWithGrad(BinaryOp.Sub, 'sub', a, b * alpha);
  const scaled = mul(b, alpha);
  try {
    return binaryOpWithGrad(BinaryOp.Sub, 'sub', a, scaled);
  } finally {
    scaled.dispose();
  }
}

export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  return binaryOpWithGrad(BinaryOp.Mul, 'mul', a, b);
}

/** True division: integer inputs give float32. */
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  return binaryOpWithGrad(BinaryOp.Div, 'div', a, b, true);
}

export function pow(a: Tensor | number, b: Tensor | number): Tensor {
  return binaryOpWithGrad(BinaryOp.Pow, 'pow', a, b);
}

/** Elementwise maximum (NaN if either is NaN). */
export function maximum(a: Tensor | number, b: Tensor | number): Tensor {
  return binaryOpWithGrad(BinaryOp.Maximum, 'maximum', a, b);
}

/** Elementwise minimum (NaN if either is NaN). */
export function minimum(a: Tensor | number, b: Tensor | number): Tensor {
  return binaryOpWithGrad(BinaryOp.Minimum, 'minimum', a, b);
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

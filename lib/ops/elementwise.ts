/**
 * Elementwise ops with NumPy broadcasting and PyTorch's type promotion: arithmetic, unary math
 * and activations, clamp, comparisons, where and maskedFill. A number that ends up stored in an
 * integer dtype must fit it exactly (ERR_ARG otherwise: nothing wraps silently).
 */
import { DType, dtypeCode, isFloat, promoteTypes, promoteWithScalar } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { broadcastShapes, checkNumber, checkSameDevice, checkTensor, fmtShape, sameShape } from './check';
import { to } from './views';
import { needsGrad, record } from '../autograd/graph';
import { full } from './creation';
import { sumToShape } from './reduce';

interface ElementwiseNative {
  binary(op: number, a: NativeHandle, b: NativeHandle): NativeHandle;
  binaryScalar(op: number, a: NativeHandle, scalar: number, reversed: boolean): NativeHandle;
  binaryBackward(op: number, grad: NativeHandle, self: NativeHandle, other: NativeHandle): NativeHandle;
  unary(op: number, a: NativeHandle): NativeHandle;
  clamp(a: NativeHandle, lo: number, hi: number): NativeHandle;
  compare(op: number, a: NativeHandle, b: NativeHandle): NativeHandle;
  compareScalar(op: number, a: NativeHandle, scalar: number): NativeHandle;
  where(
    condition: NativeHandle,
    a: NativeHandle | null,
    aValue: number,
    b: NativeHandle | null,
    bValue: number,
    dtype: number,
  ): NativeHandle;
  maskedFill(t: NativeHandle, mask: NativeHandle, value: number): NativeHandle;
  unaryBackward(op: number, grad: NativeHandle, saved: NativeHandle): NativeHandle;
  clampBackward(grad: NativeHandle, a: NativeHandle, lo: number, hi: number): NativeHandle;
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

/** Codes of native/kernels/elementwise.h UnaryOp. */
const enum UnaryOp {
  Neg = 0,
  Abs,
  Sqrt,
  Rsqrt,
  Exp,
  Log,
  Tanh,
  Sigmoid,
  Relu,
  Gelu,
  GeluTanh,
  Silu,
}

/** Codes of native/kernels/elementwise.h CompareOp. */
const enum CompareOp {
  Eq = 0,
  Ne,
  Lt,
  Le,
  Gt,
  Ge,
}

/**
 * Runs fn on the handles of `operands` converted to `dtype` (no copy for those already of it;
 * numbers give null), disposing the conversions afterwards.
 */
function withDtype<R>(
  operands: readonly (Tensor | number)[],
  dtype: DType,
  op: string,
  fn: (handles: (NativeHandle | null)[]) => R,
): R {
  const converted: Tensor[] = [];
  try {
    const handles = operands.map((x) => {
      if (typeof x === 'number') return null;
      if (x.dtype === dtype) return x.handle(op);
      const c = to(x, dtype);
      converted.push(c);
      return c.handle(op);
    });
    return fn(handles);
  } finally {
    for (const c of converted) c.dispose();
  }
}

/**
 * A number stored into an integer (or bool) dtype must fit it exactly: no silent wrapping or
 * truncation (PyTorch refuses overflow in clamp and maskedFill, but wraps in arithmetic).
 */
function checkScalarFits(value: number, dtype: DType, op: string): void {
  if (isFloat(dtype)) return;
  const limit = dtype === 'int32' ? 2 ** 31 : 2 ** 63;
  const fits = dtype === 'bool' ? value === 0 || value === 1 : Number.isInteger(value) && value >= -limit && value < limit;
  if (!fits) fail('ERR_ARG', `${op}: value ${value} cannot be converted to ${dtype} without overflow or rounding`);
}

/** The tensor and the number of a tensor-scalar op, or null when both are tensors (or neither is valid). */
function splitScalar(a: unknown, b: unknown, op: string): { t: Tensor; scalar: number; reversed: boolean } | null {
  const aNum = typeof a === 'number';
  const bNum = typeof b === 'number';
  if (aNum && bNum) fail('ERR_ARG', `${op}: at least one operand must be a Tensor`);
  if (!aNum && !bNum) return null;
  const t = checkTensor(aNum ? b : a, op, aNum ? 'second operand' : 'first operand');
  return { t, scalar: (aNum ? a : b) as number, reversed: aNum };
}

/** Checks two tensor operands; returns their broadcast shape. */
function checkPair(a: unknown, b: unknown, op: string): readonly number[] {
  const x = checkTensor(a, op, 'first operand');
  const y = checkTensor(b, op, 'second operand');
  if (x.device !== y.device) checkSameDevice(op, x, y);
  return sameShape(x.shape, y.shape) ? x.shape : broadcastShapes(x.shape, y.shape, op);
}

function binaryOp(op: BinaryOp, name: string, a: Tensor | number, b: Tensor | number, trueDivide = false): Tensor {
  const scalarCase = splitScalar(a, b, name);
  if (scalarCase) {
    const { t, scalar, reversed } = scalarCase;
    let dtype = promoteWithScalar(t.dtype, scalar);
    if (trueDivide && !isFloat(dtype)) dtype = 'float32';
    if (dtype === 'bool') dtype = 'int64';
    checkScalarFits(scalar, dtype, name);
    const h =
      t.dtype === dtype
        ? native.binaryScalar(op, t.handle(name), scalar, reversed)
        : withDtype([t], dtype, name, ([x]) => native.binaryScalar(op, x!, scalar, reversed));
    return wrap(h, t.shape, dtype, t.device);
  }
  const shape = checkPair(a, b, name);
  const [x, y] = [a as Tensor, b as Tensor];
  let dtype = promoteTypes(x.dtype, y.dtype);
  if (trueDivide && !isFloat(dtype)) dtype = 'float32';
  if (dtype === 'bool') dtype = 'int64';
  const h =
    x.dtype === dtype && y.dtype === dtype
      ? native.binary(op, x.handle(name), y.handle(name))
      : withDtype([x, y], dtype, name, ([hx, hy]) => native.binary(op, hx!, hy!));
  return wrap(h, shape, dtype, x.device);
}

// --- gradients of the binary ops ---

/** binaryOp, recording its backward when an operand requires grad. */
function binaryOpWithGrad(op: BinaryOp, name: string, a: Tensor | number, b: Tensor | number, trueDivide = false): Tensor {
  const out = binaryOp(op, name, a, b, trueDivide);
  if (needsGrad(a, b)) recordBinary(op, name, out, a, b);
  return out;
}

/** Codes of native/kernels/elementwise.h BinaryGrad. */
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
  const h = native.binaryBackward(op, g.handle(name), s.handle(name), o.handle(name));
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

/** a * b. */
export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  return binaryOpWithGrad(BinaryOp.Mul, 'mul', a, b);
}

/** True division: integer inputs give float32. */
export function div(a: Tensor | number, b: Tensor | number): Tensor {
  return binaryOpWithGrad(BinaryOp.Div, 'div', a, b, true);
}

/** a ** b (integer powers of integer tensors stay integers). */
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


// --- unary ---

function unaryOp(op: UnaryOp, name: string, t: Tensor): Tensor {
  checkTensor(t, name);
  let dtype = t.dtype;
  if (!isFloat(dtype)) {
    if (op === UnaryOp.Neg || op === UnaryOp.Abs || op === UnaryOp.Relu) {
      if (dtype === 'bool') fail('ERR_DTYPE', `${name}: not supported for bool tensors`);
    } else if (op === UnaryOp.Gelu || op === UnaryOp.GeluTanh || op === UnaryOp.Silu) {
      fail('ERR_DTYPE', `${name}: expected a floating-point tensor, got ${dtype}`);
    } else {
      dtype = 'float32';
    }
  }
  const out = wrap(native.unary(op, t.handle(name)), t.shape, dtype, t.device);
  if (needsGrad(t)) recordUnary(op, name, t, out);
  return out;
}

/** The unary ops whose gradient kernel reads their output (cheaper there) rather than their input. */
const GRAD_FROM_OUTPUT: ReadonlySet<UnaryOp> = new Set([UnaryOp.Sqrt, UnaryOp.Rsqrt, UnaryOp.Exp, UnaryOp.Tanh, UnaryOp.Sigmoid, UnaryOp.Relu]);

/** Records the backward of `out = op(t)`: grad * op'(t) in one native pass (neg: -grad). */
function recordUnary(op: UnaryOp, name: string, t: Tensor, out: Tensor): void {
  if (op === UnaryOp.Neg) return record(out, name, [t], [], (g) => [neg(g)]);
  record(out, name, [t], [GRAD_FROM_OUTPUT.has(op) ? out : t], (g, [saved]) => [
    wrap(native.unaryBackward(op, g.handle(name), saved.handle(name)), g.shape, g.dtype, g.device),
  ]);
}

/** -t. Integer tensors stay integers (the lowest value wraps to itself); bool is refused. */
export function neg(t: Tensor): Tensor {
  return unaryOp(UnaryOp.Neg, 'neg', t);
}

/** |t|. Integer tensors stay integers; bool is refused. */
export function abs(t: Tensor): Tensor {
  return unaryOp(UnaryOp.Abs, 'abs', t);
}

/** Square root (NaN below 0). Integer and bool tensors give float32. */
export function sqrt(t: Tensor): Tensor {
  return unaryOp(UnaryOp.Sqrt, 'sqrt', t);
}

/** 1 / sqrt(t). Integer and bool tensors give float32. */
export function rsqrt(t: Tensor): Tensor {
  return unaryOp(UnaryOp.Rsqrt, 'rsqrt', t);
}

/** e^t. Integer and bool tensors give float32. */
export function exp(t: Tensor): Tensor {
  return unaryOp(UnaryOp.Exp, 'exp', t);
}

/** Natural logarithm (-Infinity at 0, NaN below). Integer and bool tensors give float32. */
export function log(t: Tensor): Tensor {
  return unaryOp(UnaryOp.Log, 'log', t);
}

/** Hyperbolic tangent. Integer and bool tensors give float32. */
export function tanh(t: Tensor): Tensor {
  return unaryOp(UnaryOp.Tanh, 'tanh', t);
}

/** 1 / (1 + e^-t), accurate in both tails. Integer and bool tensors give float32. */
export function sigmoid(t: Tensor): Tensor {
  return unaryOp(UnaryOp.Sigmoid, 'sigmoid', t);
}

/** max(t, 0); NaN stays NaN. Integer tensors stay integers; bool is refused. */
export function relu(t: Tensor): Tensor {
  return unaryOp(UnaryOp.Relu, 'relu', t);
}

/**
 * Gaussian error linear unit, t * Phi(t) with Phi the normal CDF (erf), or with
 * `approximate = 'tanh'` PyTorch's tanh approximation. Float tensors only. The negative tail
 * keeps its relative accuracy, and gelu(-Infinity) is 0 (the limit).
 */
export function gelu(t: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  if (approximate !== 'none' && approximate !== 'tanh') {
    fail('ERR_ARG', `gelu: approximate must be 'none' or 'tanh', got ${String(approximate)}`);
  }
  return unaryOp(approximate === 'tanh' ? UnaryOp.GeluTanh : UnaryOp.Gelu, 'gelu', t);
}

/** t * sigmoid(t) (swish). Float tensors only; silu(-Infinity) is 0 (the limit). */
export function silu(t: Tensor): Tensor {
  return unaryOp(UnaryOp.Silu, 'silu', t);
}

/**
 * Limits t to [min, max]; either bound may be omitted (null or undefined), not both. When
 * min > max every element becomes max, as in PyTorch; NaN elements stay NaN; NaN bounds are
 * refused. Integer tensors stay integers with integer bounds, which saturate to the dtype's
 * range; a fractional or infinite bound gives float32. Bool tensors promote as in arithmetic
 * (int64 with integer bounds).
 */
export function clamp(t: Tensor, min?: number | null, max?: number | null): Tensor {
  checkTensor(t, 'clamp');
  const bounds = [min, max].filter((v): v is number => v !== undefined && v !== null);
  if (bounds.length === 0) fail('ERR_ARG', 'clamp: at least one of min and max must be given');
  let dtype = t.dtype;
  for (const v of bounds) {
    checkNumber(v, 'clamp', 'a bound');
    if (Number.isNaN(v)) fail('ERR_ARG', 'clamp: bounds must not be NaN');
    dtype = promoteWithScalar(dtype, v);
  }
  const lo = min ?? -Infinity;
  const hi = max ?? Infinity;
  const out = wrap(withDtype([t], dtype, 'clamp', ([h]) => native.clamp(h!, lo, hi)), t.shape, dtype, t.device);
  // a float tensor keeps its dtype: the gradient is grad where lo <= t <= hi, 0 elsewhere
  if (needsGrad(t)) {
    record(out, 'clamp', [t], [t], (g, [x]) => [wrap(native.clampBackward(g.handle('clamp'), x.handle('clamp'), lo, hi), g.shape, g.dtype, g.device)]);
  }
  return out;
}

// --- comparisons ---

/** The comparison that gives `s op t` when called as `t op' s`. */
const SWAPPED: Record<CompareOp, CompareOp> = {
  [CompareOp.Eq]: CompareOp.Eq,
  [CompareOp.Ne]: CompareOp.Ne,
  [CompareOp.Lt]: CompareOp.Gt,
  [CompareOp.Le]: CompareOp.Ge,
  [CompareOp.Gt]: CompareOp.Lt,
  [CompareOp.Ge]: CompareOp.Le,
};

function compareOp(op: CompareOp, name: string, a: Tensor | number, b: Tensor | number): Tensor {
  const scalarCase = splitScalar(a, b, name);
  if (scalarCase) {
    const { t, scalar, reversed } = scalarCase;
    return wrap(native.compareScalar(reversed ? SWAPPED[op] : op, t.handle(name), scalar), t.shape, 'bool', t.device);
  }
  const shape = checkPair(a, b, name);
  const [x, y] = [a as Tensor, b as Tensor];
  const dtype = promoteTypes(x.dtype, y.dtype);
  const h =
    x.dtype === dtype && y.dtype === dtype
      ? native.compare(op, x.handle(name), y.handle(name))
      : withDtype([x, y], dtype, name, ([hx, hy]) => native.compare(op, hx!, hy!));
  return wrap(h, shape, 'bool', x.device);
}

/**
 * a == b as a bool tensor. Tensors broadcast and promote as in arithmetic. With a number,
 * float tensors compare against it rounded to their dtype (as PyTorch); integer tensors
 * compare exactly, whatever the number.
 */
export function eq(a: Tensor | number, b: Tensor | number): Tensor {
  return compareOp(CompareOp.Eq, 'eq', a, b);
}

/** a != b as a bool tensor (true where either is NaN); see {@link eq}. */
export function ne(a: Tensor | number, b: Tensor | number): Tensor {
  return compareOp(CompareOp.Ne, 'ne', a, b);
}

/** a < b as a bool tensor; see {@link eq}. */
export function lt(a: Tensor | number, b: Tensor | number): Tensor {
  return compareOp(CompareOp.Lt, 'lt', a, b);
}

/** a <= b as a bool tensor; see {@link eq}. */
export function le(a: Tensor | number, b: Tensor | number): Tensor {
  return compareOp(CompareOp.Le, 'le', a, b);
}

/** a > b as a bool tensor; see {@link eq}. */
export function gt(a: Tensor | number, b: Tensor | number): Tensor {
  return compareOp(CompareOp.Gt, 'gt', a, b);
}

/** a >= b as a bool tensor; see {@link eq}. */
export function ge(a: Tensor | number, b: Tensor | number): Tensor {
  return compareOp(CompareOp.Ge, 'ge', a, b);
}

// --- selection ---

/**
 * Elements of `a` where `condition` is true and of `b` elsewhere, broadcasting all three.
 * `condition` must be bool. `a` and `b` may be numbers; the result dtype promotes them as
 * arithmetic does (two numbers: int64 if both are integers, else float32).
 */
export function where(condition: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  checkTensor(condition, 'where', 'condition');
  if (condition.dtype !== 'bool') fail('ERR_DTYPE', `where: condition must be a bool tensor, got ${condition.dtype}`);
  const operands = [a, b];
  const tensors: Tensor[] = [];
  let shape: readonly number[] = condition.shape;
  for (const [i, x] of operands.entries()) {
    if (typeof x === 'number') continue;
    const t = checkTensor(x, 'where', i === 0 ? 'input' : 'other');
    shape = sameShape(shape, t.shape) ? shape : broadcastShapes(shape, t.shape, 'where');
    tensors.push(t);
  }
  if (tensors.length) checkSameDevice('where', condition, ...tensors);
  let dtype: DType;
  if (tensors.length === 2) dtype = promoteTypes(tensors[0].dtype, tensors[1].dtype);
  else if (tensors.length === 1) dtype = promoteWithScalar(tensors[0].dtype, (typeof a === 'number' ? a : b) as number);
  else dtype = Number.isInteger(a) && Number.isInteger(b) ? 'int64' : 'float32';
  for (const x of operands) if (typeof x === 'number') checkScalarFits(x, dtype, 'where');
  const [aValue, bValue] = operands.map((x) => (typeof x === 'number' ? x : 0));
  const h = withDtype(operands, dtype, 'where', ([ha, hb]) =>
    native.where(condition.handle('where'), ha, aValue, hb, bValue, dtypeCode(dtype)),
  );
  const out = wrap(h, shape, dtype, condition.device);
  if (needsGrad(a, b)) recordWhere(out, condition, a, b);
  return out;
}

/** The backward of where: the gradient goes to a where the condition holds, to b elsewhere. */
function recordWhere(out: Tensor, condition: Tensor, a: Tensor | number, b: Tensor | number): void {
  const meta = [a, b].map((x) => (typeof x === 'number' ? null : { shape: x.shape, dtype: x.dtype }));
  record(out, 'where', [a, b], [condition], (g, [c], needs) =>
    needs.map((needed, k) => {
      if (!needed) return null;
      const { shape, dtype } = meta[k]!;
      return sumToShape(k === 0 ? where(c, g, 0) : where(c, 0, g), shape, dtype);
    }),
  );
}

/**
 * `t` with `value` where `mask` is true. The bool mask broadcasts to t's shape (it may not
 * enlarge it); the result keeps t's dtype, so an integer tensor needs a value that fits it.
 */
export function maskedFill(t: Tensor, mask: Tensor, value: number): Tensor {
  checkTensor(t, 'maskedFill');
  checkTensor(mask, 'maskedFill', 'mask');
  if (mask.dtype !== 'bool') fail('ERR_DTYPE', `maskedFill: mask must be a bool tensor, got ${mask.dtype}`);
  checkNumber(value, 'maskedFill', 'value');
  checkScalarFits(value, t.dtype, 'maskedFill');
  if (t.device !== mask.device) checkSameDevice('maskedFill', t, mask);
  if (!sameShape(broadcastShapes(t.shape, mask.shape, 'maskedFill'), t.shape)) {
    const shapes = `mask of shape ${fmtShape(mask.shape)} cannot be broadcast to the input's shape ${fmtShape(t.shape)}`;
    fail('ERR_SHAPE', `maskedFill: ${shapes}`);
  }
  const out = wrap(native.maskedFill(t.handle('maskedFill'), mask.handle('maskedFill'), value), t.shape, t.dtype, t.device);
  // no gradient where the value was written
  if (needsGrad(t)) record(out, 'maskedFill', [t], [mask], (g, [m]) => [maskedFill(g, m, 0)]);
  return out;
}

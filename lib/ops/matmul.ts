/** Matrix products through BLAS: matmul (PyTorch semantics) and linear. */
import { castForProduct, withCasts } from '../autocast';
import { frozenOperand, needsGrad, record } from '../autograd/graph';
import { isFloat } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { broadcastShapes, checkSameDevice, checkTensor, fmtShape } from './check';
import { sumToShape } from './reduce';
import { reshape, to, transpose } from './views';

interface MatmulNative {
  matmul(a: NativeHandle, b: NativeHandle): NativeHandle;
  linear(x: NativeHandle, w: NativeHandle, bias: NativeHandle | null): NativeHandle;
}
const native = addon as MatmulNative;

/** Both operands floating-point, of one dtype. */
function checkFloatPair(op: string, a: Tensor, b: Tensor, what: string): void {
  if (!isFloat(a.dtype) || !isFloat(b.dtype)) {
    fail('ERR_DTYPE', `${op}: expected floating-point tensors, got ${a.dtype} and ${b.dtype}`);
  }
  if (a.dtype !== b.dtype) fail('ERR_DTYPE', `${op}: ${what} must have one dtype, got ${a.dtype} and ${b.dtype}`);
}

/** The shape of matmul(a, b), or ERR_SHAPE naming both shapes. */
function matmulShape(a: readonly number[], b: readonly number[]): number[] {
  if (a.length === 0 || b.length === 0) {
    fail('ERR_SHAPE', `matmul: operands need at least 1 dim, got shapes ${fmtShape(a)} and ${fmtShape(b)}`);
  }
  const k = a[a.length - 1];
  const kb = b.length === 1 ? b[0] : b[b.length - 2];
  if (k !== kb) fail('ERR_SHAPE', `matmul: shapes ${fmtShape(a)} and ${fmtShape(b)} do not match (inner dims ${k} and ${kb})`);
  const batchA = a.slice(0, Math.max(a.length - 2, 0));
  const batchB = b.slice(0, Math.max(b.length - 2, 0));
  let batch: number[];
  try {
    batch = broadcastShapes(batchA, batchB, 'matmul');
  } catch {
    fail('ERR_SHAPE', `matmul: the batch dims of shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together`);
  }
  if (a.length > 1) batch.push(a[a.length - 2]);
  if (b.length > 1) batch.push(b[b.length - 1]);
  return batch;
}

/**
 * Matrix product with PyTorch's `matmul` semantics: 1-D x 1-D is a dot product (0-dim result);
 * 2-D x 2-D a matrix product; a 1-D first operand gets a dim prepended and a 1-D second operand a
 * dim appended, which the result drops; with more dims, all but the last two are batch dims and
 * broadcast. Operands are floating-point of one dtype (bfloat16 and float16 are computed in
 * float32). Transposed views are passed to BLAS without a copy.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  checkTensor(a, 'matmul', 'first operand');
  checkTensor(b, 'matmul', 'second operand');
  const cast = castForProduct(to, a, b);
  if (cast[0] !== a || cast[1] !== b) return withCasts(cast, [a, b], () => matmul(cast[0], cast[1]));
  checkSameDevice('matmul', a, b);
  checkFloatPair('matmul', a, b, 'operands');
  const shape = matmulShape(a.shape, b.shape);
  const out = wrap(native.matmul(a.handle('matmul'), b.handle('matmul')), shape, a.dtype, a.device);
  if (needsGrad(a, b)) recordMatmul(out, a, b);
  return out;
}

/** The last two dims swapped (a view). */
function mT(t: Tensor): Tensor {
  return transpose(t, -2, -1);
}

/**
 * What the backward of a product of x and y saves: the gradient of each operand reads the other
 * one, so only the operands the requiring ones need are kept (a frozen weight keeps no
 * activation alive). `unpack` gives [x, y] back from the saved aliases, null where not kept.
 */
function savedOperands(x: Tensor, y: Tensor): { saved: Tensor[]; unpack: (kept: Tensor[]) => [Tensor | null, Tensor | null] } {
  const [needX, needY] = [x.requiresGrad, y.requiresGrad];
  return {
    saved: [...(needX ? [y] : []), ...(needY ? [x] : [])],
    unpack: (kept) => [needY ? kept[kept.length - 1] : null, needX ? kept[0] : null],
  };
}

function product(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

/**
 * Records the backward of `out = a @ b`: da = g @ b^T and db = a^T @ g, each one matmul on
 * transposed views. A 1-D operand is given back its dim first, and each gradient is summed over
 * the batch dims its operand was broadcast along. When b has no batch dims (x @ W), that sum
 * is folded into one product over every row: db = a^T g with a and g as [rows, k] and [rows, n].
 */
function recordMatmul(out: Tensor, a: Tensor, b: Tensor): void {
  const [aShape, bShape, dtype] = [a.shape, b.shape, a.dtype];
  // a as [..., m, k], b as [..., k, n], g as [...batch, m, n]
  const aMatrix = aShape.length === 1 ? [1, aShape[0]] : aShape;
  const bMatrix = bShape.length === 1 ? [bShape[0], 1] : bShape;
  const [m, k, n] = [aMatrix[aMatrix.length - 2], aMatrix[aMatrix.length - 1], bMatrix[bMatrix.length - 1]];
  const batch = out.shape.slice(0, out.ndim - (aShape.length > 1 ? 1 : 0) - (bShape.length > 1 ? 1 : 0));
  const rows = product(batch) * m;
  const { saved, unpack } = savedOperands(a, b);
  record(out, 'matmul', [a, b], saved, (g, kept, needs) => {
    const [x, y] = unpack(kept);
    const g2 = reshape(g, [...batch, m, n]);
    let da: Tensor | null = null;
    let db: Tensor | null = null;
    if (needs[0]) {
      da = matmul(g2, mT(reshape(y!, bMatrix)));
      da = reshape(sumToShape(da, aMatrix, dtype), aShape);
    }
    if (needs[1]) {
      const x2 = reshape(x!, aMatrix);
      const folded = bMatrix.length === 2 && aMatrix.length > 2;
      db = folded ? matmul(mT(reshape(x2, [rows, k])), reshape(g2, [rows, n])) : matmul(mT(x2), g2);
      db = reshape(sumToShape(db, bMatrix, dtype), bShape);
    }
    return [da, db];
  });
}

/**
 * `x @ w^T + bias`, as PyTorch's `F.linear`: x [..., in], weight w [out, in], optional bias
 * [out]; the result is [..., out]. One GEMM with w transposed by a BLAS flag (never copied), the
 * bias written into the result first and the product added to it.
 */
export function linear(x: Tensor, w: Tensor, bias?: Tensor | null): Tensor {
  checkTensor(x, 'linear', 'input');
  checkTensor(w, 'linear', 'weight');
  const hasBias = bias !== undefined && bias !== null;
  if (hasBias) checkTensor(bias, 'linear', 'bias');
  const cast = castForProduct(to, x, w, bias);
  if (cast[0] !== x || cast[1] !== w || cast[2] !== bias) return withCasts(cast, [x, w, bias], () => linear(cast[0], cast[1], cast[2]));
  checkSameDevice('linear', x, w, ...(hasBias ? [bias] : []));
  checkFloatPair('linear', x, w, 'input and weight');
  if (hasBias && bias.dtype !== x.dtype) fail('ERR_DTYPE', `linear: bias must have the input's dtype ${x.dtype}, got ${bias.dtype}`);
  if (x.ndim === 0) fail('ERR_SHAPE', 'linear: input must have at least 1 dim, got shape []');
  if (w.ndim !== 2) fail('ERR_SHAPE', `linear: weight must have 2 dims [out, in], got shape ${fmtShape(w.shape)}`);
  const [outFeatures, inFeatures] = w.shape;
  if (x.shape[x.ndim - 1] !== inFeatures) {
    fail('ERR_SHAPE', `linear: input of shape ${fmtShape(x.shape)} does not match weight of shape ${fmtShape(w.shape)} (in_features ${inFeatures})`);
  }
  if (hasBias && (bias.ndim !== 1 || bias.shape[0] !== outFeatures)) {
    fail('ERR_SHAPE', `linear: bias of shape ${fmtShape(bias.shape)} does not match weight of shape ${fmtShape(w.shape)} (expected [${outFeatures}])`);
  }
  const shape = [...x.shape.slice(0, -1), outFeatures];
  const h = native.linear(x.handle('linear'), w.handle('linear'), hasBias ? bias.handle('linear') : null);
  const out = wrap(h, shape, x.dtype, x.device);
  if (needsGrad(x, w, bias)) recordLinear(out, x, w, hasBias ? bias : null);
  return out;
}

/**
 * Records the backward of `out = x @ w^T + bias`, one product per weight gradient: dx = g @ w,
 * dw = g^T @ x over every row at once (g and x as [rows, out] and [rows, in], g^T a view), and
 * db = g summed over its rows.
 */
function recordLinear(out: Tensor, x: Tensor, w: Tensor, bias: Tensor | null): void {
  const [outFeatures, inFeatures] = w.shape;
  const rows = product(x.shape.slice(0, -1));
  // a frozen weight registered with setRefetch is fetched again by the backward, not saved
  const frozen = x.requiresGrad && !w.requiresGrad ? frozenOperand(w) : null;
  const { saved, unpack } = frozen
    ? { saved: frozen.saved, unpack: (kept: Tensor[]): [null, Tensor] => [null, frozen.get(kept)] }
    : savedOperands(x, w);
  record(out, 'linear', [x, w, bias], saved, (g, kept, needs) => {
    const [input, weight] = unpack(kept);
    return [
      needs[0] ? matmul(g, weight!) : null,
      needs[1] ? matmul(mT(reshape(g, [rows, outFeatures])), reshape(input!, [rows, inFeatures])) : null,
      needs[2] ? sumToShape(g, [outFeatures], g.dtype) : null,
    ];
  });
}

/** Indexing and joining: embedding, gather, cat, stack. */
import { needsGrad, needsGradList, record } from '../autograd/graph';
import { DType, dtypeCode, isFloat, isInt, promoteTypes } from '../dtype';
import { fail } from '../errors';
import { addon, NativeHandle } from '../native';
import { Tensor, wrap } from '../tensor';
import { checkSameDevice, checkTensor, fmtShape, normalizeDim, sameShape } from './check';
import { narrow, select, to } from './views';

interface IndexingNative {
  embedding(indices: NativeHandle, weight: NativeHandle): NativeHandle;
  gather(t: NativeHandle, dim: number, index: NativeHandle): NativeHandle;
  cat(tensors: NativeHandle[], dim: number, dtype: number): NativeHandle;
  stack(tensors: NativeHandle[], dim: number, dtype: number): NativeHandle;
  embeddingBackward(grad: NativeHandle, indices: NativeHandle, numEmbeddings: number): NativeHandle;
  gatherBackward(grad: NativeHandle, dim: number, index: NativeHandle, shape: number[]): NativeHandle;
}
const native = addon as IndexingNative;

function checkIndexDtype(index: Tensor, op: string, name: string): void {
  if (!isInt(index.dtype)) fail('ERR_DTYPE', `${op}: ${name} must be int32 or int64, got ${index.dtype}`);
}

/**
 * Rows of `weight` [numEmbeddings, dim] picked by `indices` (int32 or int64, any shape), as
 * PyTorch's `F.embedding`: the result has shape [...indices.shape, dim]. Every index must be in
 * [0, numEmbeddings), else ERR_INDEX naming the bad value. The weight's gradient adds the rows of
 * the output's gradient at their indices, natively (16-bit weights accumulate in float32),
 * deterministically: a row picked several times adds its terms in index order, with the same
 * result on the CPU and on CUDA.
 * On CUDA the index check waits for the GPU (the scan's result is read back), except while a
 * CUDA graph is captured (`ig.cuda.graph`): then nothing is read back, a bad index cannot raise,
 * its row reads as zeros (and gets no gradient), and it is counted by the graph's `indexErrors()`.
 */
export function embedding(indices: Tensor, weight: Tensor): Tensor {
  checkTensor(indices, 'embedding', 'indices');
  checkTensor(weight, 'embedding', 'weight');
  checkSameDevice('embedding', indices, weight);
  checkIndexDtype(indices, 'embedding', 'indices');
  if (!isFloat(weight.dtype)) fail('ERR_DTYPE', `embedding: weight must be a floating-point tensor, got ${weight.dtype}`);
  if (weight.ndim !== 2) fail('ERR_SHAPE', `embedding: weight must be 2-D [numEmbeddings, dim], got shape ${fmtShape(weight.shape)}`);
  const h = native.embedding(indices.handle('embedding'), weight.handle('embedding'));
  const out = wrap(h, [...indices.shape, weight.shape[1]], weight.dtype, weight.device);
  if (needsGrad(weight)) {
    const shape = weight.shape;
    // the rows of the gradient added at their indices, natively
    record(out, 'embedding', [indices, weight], [indices], (g, [idx]) => {
      const h = native.embeddingBackward(g.handle('embedding backward'), idx.handle('embedding backward'), shape[0]);
      return [null, wrap(h, shape, g.dtype, g.device)];
    });
  }
  return out;
}

/**
 * @internal The gradient of gather: a tensor of `shape` (the gathered input's) holding the sum
 * of the elements of `grad` (index's shape) gathered from each position, 0 elsewhere.
 */
export function gatherBackward(grad: Tensor, dim: number, index: Tensor, shape: readonly number[]): Tensor {
  const op = 'gather backward';
  return wrap(native.gatherBackward(grad.handle(op), dim, index.handle(op), shape.slice()), shape, grad.dtype, grad.device);
}

/**
 * Values of `t` picked along `dim` by `index` (int32 or int64), as PyTorch's `torch.gather`:
 * for dim 1 of a 3-D tensor, `out[i][j][k] = t[i][index[i][j][k]][k]`. `index` has t's number
 * of dims and sizes no larger than t's except along `dim`; the result has index's shape and
 * t's dtype. Values must be in [0, t.shape[dim]) (no negative indices), else ERR_INDEX; while a
 * CUDA graph is captured a bad value cannot raise: it reads 0 and is counted by the graph's
 * `indexErrors()` (see {@link embedding}).
 */
export function gather(t: Tensor, dim: number, index: Tensor): Tensor {
  checkTensor(t, 'gather');
  checkTensor(index, 'gather', 'index');
  checkSameDevice('gather', t, index);
  checkIndexDtype(index, 'gather', 'index');
  const d = normalizeDim(dim, t.ndim, 'gather');
  // 0-dim tensors count as 1-D of one element, as in PyTorch.
  const tShape = t.ndim === 0 ? [1] : t.shape;
  const iShape = index.ndim === 0 ? [1] : index.shape;
  if (iShape.length !== tShape.length) {
    fail('ERR_SHAPE', `gather: index of shape ${fmtShape(index.shape)} must have as many dims as the input of shape ${fmtShape(t.shape)}`);
  }
  const bad = iShape.findIndex((size, k) => k !== d && size > tShape[k]);
  if (bad >= 0) {
    fail('ERR_SHAPE', `gather: index of shape ${fmtShape(index.shape)} is larger than the input of shape ${fmtShape(t.shape)} in dim ${bad}`);
  }
  const h = native.gather(t.handle('gather'), d, index.handle('gather'));
  const out = wrap(h, index.shape.slice(), t.dtype, t.device);
  if (needsGrad(t)) {
    const shape = t.shape;
    record(out, 'gather', [t, index], [index], (g, [idx]) => [gatherBackward(g, d, idx, shape), null]);
  }
  return out;
}

/** Checks a list of tensors for cat/stack: a non-empty array of live tensors on one device. */
function checkTensorList(tensors: unknown, op: string): Tensor[] {
  if (!Array.isArray(tensors)) fail('ERR_ARG', `${op}: expected an array of tensors`);
  if (tensors.length === 0) fail('ERR_ARG', `${op}: expected a non-empty array of tensors`);
  tensors.forEach((t, k) => checkTensor(t, op, `tensor ${k}`));
  const list = tensors as Tensor[];
  checkSameDevice(op, ...list);
  return list;
}

function promoteAll(tensors: Tensor[]): DType {
  return tensors.reduce<DType>((dtype, t) => promoteTypes(dtype, t.dtype), tensors[0].dtype);
}

/**
 * Joins tensors along an existing dim, as PyTorch's `torch.cat`. Sizes must match except along
 * `dim` (tensors with 0 elements along it take part too); the result has the promoted dtype of
 * all inputs. 0-dim tensors cannot be joined this way: use {@link stack}.
 */
export function cat(tensors: Tensor[], dim = 0): Tensor {
  const list = checkTensorList(tensors, 'cat');
  const first = list[0];
  if (first.ndim === 0) fail('ERR_SHAPE', 'cat: 0-dim tensors cannot be concatenated; use stack');
  const d = normalizeDim(dim, first.ndim, 'cat');
  const shape = first.shape.slice();
  shape[d] = 0;
  list.forEach((t, k) => {
    const mismatch = (rule: string) =>
      fail('ERR_SHAPE', `cat: tensor ${k} has shape ${fmtShape(t.shape)} and tensor 0 has shape ${fmtShape(first.shape)}; ${rule}`);
    if (t.ndim !== first.ndim) mismatch('all need the same number of dims');
    if (t.shape.some((s, i) => i !== d && s !== first.shape[i])) mismatch(`sizes must match except in dim ${d}`);
    shape[d] += t.shape[d];
  });
  const dtype = promoteAll(list);
  const h = native.cat(list.map((t) => t.handle('cat')), d, dtypeCode(dtype));
  const out = wrap(h, shape, dtype, first.device);
  if (needsGradList(list)) {
    const pieces = list.map((t) => ({ size: t.shape[d], dtype: t.dtype }));
    record(out, 'cat', list, [], (g, _, needs) => {
      let at = 0;
      return pieces.map(({ size, dtype: inputDtype }, k) => {
        at += size;
        return needs[k] ? asDtype(narrow(g, d, at - size, size), inputDtype) : null;
      });
    });
  }
  return out;
}

/** t in `dtype` (itself when it has it already). */
function asDtype(t: Tensor, dtype: DType): Tensor {
  return t.dtype === dtype ? t : to(t, dtype);
}

/**
 * Joins tensors of one shape along a new dim `dim` in [-(ndim + 1), ndim], as PyTorch's
 * `torch.stack`; the result has the promoted dtype of all inputs.
 */
export function stack(tensors: Tensor[], dim = 0): Tensor {
  const list = checkTensorList(tensors, 'stack');
  const first = list[0];
  const d = normalizeDim(dim, first.ndim + 1, 'stack');
  list.forEach((t, k) => {
    if (!sameShape(t.shape, first.shape)) {
      fail('ERR_SHAPE', `stack: tensor ${k} has shape ${fmtShape(t.shape)} and tensor 0 has shape ${fmtShape(first.shape)}; all must have the same shape`);
    }
  });
  const shape = first.shape.slice();
  shape.splice(d, 0, list.length);
  const dtype = promoteAll(list);
  const h = native.stack(list.map((t) => t.handle('stack')), d, dtypeCode(dtype));
  const out = wrap(h, shape, dtype, first.device);
  if (needsGradList(list)) {
    const dtypes = list.map((t) => t.dtype);
    record(out, 'stack', list, [], (g, _, needs) => dtypes.map((inputDtype, k) => (needs[k] ? asDtype(select(g, d, k), inputDtype) : null)));
  }
  return out;
}

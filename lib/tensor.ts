import { inspect } from 'util';
import { backward as runBackward, BackwardOptions } from './autograd/backward';
import { detach, registerPostAccumulateGradHook } from './autograd/graph';
import type { Node, PostAccumulateGradHook, RemovableHandle } from './autograd/graph';
import { Device, deviceOfCode } from './device';
import { DType, DTYPES, DataArray, TYPED_ARRAYS, TypedArrayFor, isFloat } from './dtype';
import { fail } from './errors';
import { format } from './format';
import { setTensorCheck, track } from './memory';
import { core, DEBUG, NativeHandle } from './native';
import * as creation from './ops/creation';
import * as elementwise from './ops/elementwise';
import * as indexing from './ops/indexing';
import * as matmulOps from './ops/matmul';
import * as reduce from './ops/reduce';
import * as softmaxOps from './ops/softmax';
import * as views from './ops/views';

export type { Device } from './device';

/** A nested JS array of numbers (or booleans for bool tensors), as `toArray()` returns. */
export type NestedArray = number | boolean | NestedArray[];

/**
 * An n-dimensional array on a device. Tensors are immutable values: ops return new tensors,
 * views share storage with their base. Free native memory with `dispose()`, `using`, or
 * {@link tidy}; a finalizer frees what is forgotten, later.
 */
export class Tensor {
  /** @internal null once disposed. */
  _handle: NativeHandle | null;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly device: Device;
  /**
   * The gradient that {@link Tensor.backward} accumulated into this leaf, or null. It belongs to
   * this tensor: kept out of tidy() scopes, and disposed with it.
   */
  grad: Tensor | null;
  /** @internal See {@link Tensor.requiresGrad}. */
  _requiresGrad: boolean;
  /** @internal The recorded op that made this tensor; null for a leaf. */
  _gradFn: Node | null;

  /** @internal Use the creation functions ({@link tensor}, {@link zeros}, ...) instead. */
  constructor(handle: NativeHandle, shape: readonly number[], dtype: DType, device: Device = 'cpu') {
    this._handle = handle;
    this.shape = shape;
    this.dtype = dtype;
    this.device = device;
    this.grad = null;
    this._requiresGrad = false;
    this._gradFn = null;
    if (DEBUG) checkAgainstNative(this);
    track(this);
  }

  /** Number of dims. */
  get ndim(): number {
    return this.shape.length;
  }

  /** Number of elements. */
  get numel(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }

  /** Element strides of this view (elements, not bytes). */
  get strides(): number[] {
    return core.meta(this.handle('strides')).strides;
  }

  get isDisposed(): boolean {
    return this._handle === null;
  }

  /** @internal The native handle, or ERR_DISPOSED naming `op`. */
  handle(op: string): NativeHandle {
    if (this._handle === null) fail('ERR_DISPOSED', `${op}: tensor of shape [${this.shape.join(', ')}] was disposed`);
    return this._handle;
  }

  /**
   * Releases this tensor's native memory now (its storage goes when no view uses it), and its
   * `.grad`. Idempotent. A graph that went through it still backpropagates.
   */
  dispose(): void {
    if (this._handle !== null) {
      core.dispose(this._handle);
      this._handle = null;
    }
    if (this.grad !== null) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  isContiguous(): boolean {
    return core.isContiguous(this.handle('isContiguous'));
  }

  /**
   * A copy of the elements in row-major order. bfloat16 and float16 come back as their raw
   * 16-bit patterns (Uint16Array); use `.to('float32').data()` for numbers. int64 gives a
   * BigInt64Array, bool a Uint8Array of 0/1.
   */
  data(): DataArray {
    const buffer = core.toBuffer(this.handle('data'));
    return new TYPED_ARRAYS[this.dtype](buffer) as TypedArrayFor[typeof this.dtype];
  }

  /** The elements as nested JS arrays: numbers, or booleans for bool tensors. */
  toArray(): NestedArray {
    const flat = numbersOf(this);
    const build = (dim: number, offset: number): NestedArray => {
      if (dim === this.ndim) return flat[offset];
      const size = this.shape[dim];
      let step = 1;
      for (let d = dim + 1; d < this.ndim; d++) step *= this.shape[d];
      const out: NestedArray[] = new Array(size);
      for (let i = 0; i < size; i++) out[i] = build(dim + 1, offset + i * step);
      return out;
    };
    return build(0, 0);
  }

  /** The value of a one-element tensor (bool gives 1 or 0). */
  item(): number {
    if (this.numel !== 1) fail('ERR_SHAPE', `item: expected a tensor with one element, got shape [${this.shape.join(', ')}]`);
    return Number(numbersOf(this)[0]);
  }

  toString(): string {
    return format(this);
  }

  [inspect.custom](): string {
    return format(this);
  }

  // --- autograd (autograd/) ---
  /**
   * Whether gradients flow to this tensor: set on leaves with {@link Tensor.requiresGrad_}, true
   * for the results of ops (outside noGrad) with an input that requires grad.
   */
  get requiresGrad(): boolean {
    return this._requiresGrad;
  }

  /** As {@link Tensor.requiresGrad_}, with its checks. */
  set requiresGrad(flag: boolean) {
    this.requiresGrad_(flag);
  }

  /**
   * Copies `src` (broadcast to this tensor's shape, converted to its dtype, moved from its
   * device) into this tensor's memory, in place, and returns this: how new inputs reach the
   * tensors a captured CUDA graph reads. A source sharing memory with this tensor is read in
   * full before any element is written; a destination that holds an element more than once (a
   * broadcast view) is ERR_ARG. Recorded by no autograd graph, so refused (ERR_GRAD) on a tensor
   * that requires grad.
   */
  copy_(src: Tensor): this {
    if (!(src instanceof Tensor)) fail('ERR_ARG', 'copy_: expected a Tensor to copy from');
    if (this.requiresGrad) fail('ERR_GRAD', 'copy_: the tensor requires grad; copy into a tensor without autograd history (detach() it first)');
    if (src.device === this.device) {
      core.copyInto(this.handle('copy_'), src.handle('copy_'));
      return this;
    }
    this.handle('copy_');  // a disposed destination fails before the transfer
    const moved = src.to(this.device);
    try {
      core.copyInto(this.handle('copy_'), moved.handle('copy_'));
    } finally {
      moved.dispose();
    }
    return this;
  }

  /**
   * Makes this leaf record the ops that use it (or stop, with false), so that backward()
   * accumulates its gradient into `.grad`; returns this. Floating-point tensors only (ERR_DTYPE);
   * the result of an op cannot be turned off (ERR_GRAD): use {@link Tensor.detach}.
   */
  requiresGrad_(flag = true): this {
    if (typeof flag !== 'boolean') fail('ERR_ARG', `requiresGrad_: flag must be a boolean, got ${typeof flag}`);
    this.handle('requiresGrad_');
    if (!this.isLeaf) {
      if (!flag) fail('ERR_GRAD', 'requiresGrad_: only leaves can stop requiring grad; use detach() for a tensor without history');
      return this;
    }
    if (flag && !isFloat(this.dtype)) {
      fail('ERR_DTYPE', `requiresGrad_: only floating-point tensors can require grad, got ${this.dtype}`);
    }
    this._requiresGrad = flag;
    return this;
  }

  /** True unless this tensor is the recorded result of an op (then gradients flow through it to its inputs). */
  get isLeaf(): boolean {
    return this._gradFn === null;
  }

  /**
   * Computes the gradient of this tensor with respect to every leaf it depends on that requires
   * grad, and adds it to the leaves' `.grad`. A one-element tensor needs no `grad`; otherwise
   * pass the gradient of some scalar with respect to this tensor (its shape; converted to its
   * dtype), as PyTorch's `backward(gradient)`. The graph's saved tensors are released unless
   * `retainGraph`; running backward through it again then raises ERR_GRAD. Also
   * `backward({ retainGraph: true })`.
   */
  backward(grad?: Tensor | BackwardOptions, opts?: BackwardOptions): void {
    const optionsFirst = typeof grad === 'object' && grad !== null && Object.getPrototypeOf(grad) === Object.prototype;
    if (optionsFirst && opts === undefined) runBackward(this, undefined, grad as BackwardOptions);
    else runBackward(this, grad as Tensor | undefined, opts);
  }

  /**
   * Registers `fn` to run with this leaf (which must require grad) right after a backward
   * accumulated its gradient into `.grad`: once per backward that reaches it, as soon as no node
   * left in the walk can send it more (so while the walk goes on through the layers before it),
   * as PyTorch's `register_post_accumulate_grad_hook`. Hooks run under noGrad in registration
   * order; an exception in one propagates out of backward. Returns a handle whose `remove()`
   * unregisters it.
   */
  registerPostAccumulateGradHook(fn: PostAccumulateGradHook): RemovableHandle {
    return registerPostAccumulateGradHook(this, fn);
  }

  /** A new tensor sharing this one's storage, without history: a leaf that does not require grad. */
  detach(): Tensor {
    return detach(this);
  }

  // --- views and conversions (ops/views.ts) ---
  view(...shape: number[] | [readonly number[]]): Tensor { return views.view(this, shape); }
  reshape(...shape: number[] | [readonly number[]]): Tensor { return views.reshape(this, shape); }
  permute(...dims: number[] | [readonly number[]]): Tensor { return views.permute(this, dims); }
  transpose(dim0: number, dim1: number): Tensor { return views.transpose(this, dim0, dim1); }
  /** Transpose of the last two dims (ERR_SHAPE below 2 dims). */
  get mT(): Tensor {
    if (this.ndim < 2) fail('ERR_SHAPE', `mT: expected at least 2 dims, got shape [${this.shape.join(', ')}]`);
    return views.transpose(this, -2, -1);
  }
  narrow(dim: number, start: number, length: number): Tensor { return views.narrow(this, dim, start, length); }
  slice(dim: number, start?: number, end?: number, step?: number): Tensor { return views.slice(this, dim, start, end, step); }
  select(dim: number, index: number): Tensor { return views.select(this, dim, index); }
  expand(...shape: number[] | [readonly number[]]): Tensor { return views.expand(this, shape); }
  squeeze(dim?: number): Tensor { return views.squeeze(this, dim); }
  unsqueeze(dim: number): Tensor { return views.unsqueeze(this, dim); }
  flatten(startDim = 0, endDim = -1): Tensor { return views.flatten(this, startDim, endDim); }
  split(sizeOrSizes: number | number[], dim = 0): Tensor[] { return views.split(this, sizeOrSizes, dim); }
  chunk(chunks: number, dim = 0): Tensor[] { return views.chunk(this, chunks, dim); }
  contiguous(): Tensor { return views.contiguous(this); }
  clone(): Tensor { return views.clone(this); }
  /** Converts to a dtype or moves to a device: a new tensor (an alias if nothing changes). */
  to(target: DType | Device): Tensor { return views.to(this, target); }
  /** This tensor on a CUDA device (default: the current one), as `to('cuda')`; a number N means 'cuda:N'. */
  cuda(device: number | Device = 'cuda'): Tensor { return views.to(this, typeof device === 'number' ? `cuda:${device}` : device); }
  /** This tensor in host memory, as `to('cpu')`. */
  cpu(): Tensor { return views.to(this, 'cpu'); }

  // --- elementwise (ops/elementwise.ts) ---
  add(other: Tensor | number, alpha?: number): Tensor { return elementwise.add(this, other, alpha); }
  sub(other: Tensor | number, alpha?: number): Tensor { return elementwise.sub(this, other, alpha); }
  mul(other: Tensor | number): Tensor { return elementwise.mul(this, other); }
  div(other: Tensor | number): Tensor { return elementwise.div(this, other); }
  pow(exponent: Tensor | number): Tensor { return elementwise.pow(this, exponent); }
  maximum(other: Tensor | number): Tensor { return elementwise.maximum(this, other); }
  minimum(other: Tensor | number): Tensor { return elementwise.minimum(this, other); }
  neg(): Tensor { return elementwise.neg(this); }
  abs(): Tensor { return elementwise.abs(this); }
  sqrt(): Tensor { return elementwise.sqrt(this); }
  rsqrt(): Tensor { return elementwise.rsqrt(this); }
  exp(): Tensor { return elementwise.exp(this); }
  log(): Tensor { return elementwise.log(this); }
  tanh(): Tensor { return elementwise.tanh(this); }
  sigmoid(): Tensor { return elementwise.sigmoid(this); }
  relu(): Tensor { return elementwise.relu(this); }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return elementwise.gelu(this, approximate); }
  silu(): Tensor { return elementwise.silu(this); }
  clamp(min?: number | null, max?: number | null): Tensor { return elementwise.clamp(this, min, max); }
  eq(other: Tensor | number): Tensor { return elementwise.eq(this, other); }
  ne(other: Tensor | number): Tensor { return elementwise.ne(this, other); }
  lt(other: Tensor | number): Tensor { return elementwise.lt(this, other); }
  le(other: Tensor | number): Tensor { return elementwise.le(this, other); }
  gt(other: Tensor | number): Tensor { return elementwise.gt(this, other); }
  ge(other: Tensor | number): Tensor { return elementwise.ge(this, other); }
  /** Elements of this where `condition` is true, of `other` elsewhere. */
  where(condition: Tensor, other: Tensor | number): Tensor { return elementwise.where(condition, this, other); }
  maskedFill(mask: Tensor, value: number): Tensor { return elementwise.maskedFill(this, mask, value); }

  // --- reductions (ops/reduce.ts) ---
  sum(dim?: number | number[], keepdim = false): Tensor { return reduce.sum(this, dim, keepdim); }
  mean(dim?: number | number[], keepdim = false): Tensor { return reduce.mean(this, dim, keepdim); }
  max(dim?: number, keepdim = false): Tensor { return reduce.max(this, dim, keepdim); }
  min(dim?: number, keepdim = false): Tensor { return reduce.min(this, dim, keepdim); }
  argmax(dim?: number, keepdim = false): Tensor { return reduce.argmax(this, dim, keepdim); }
  argmin(dim?: number, keepdim = false): Tensor { return reduce.argmin(this, dim, keepdim); }
  /** Variance with Bessel's correction by default (`correction = 1`), as PyTorch. */
  var(dim?: number | number[], keepdim = false, correction = 1): Tensor { return reduce.variance(this, dim, keepdim, correction); }
  logsumexp(dim: number | number[], keepdim = false): Tensor { return reduce.logsumexp(this, dim, keepdim); }

  // --- the rest ---
  matmul(other: Tensor): Tensor { return matmulOps.matmul(this, other); }
  softmax(dim: number): Tensor { return softmaxOps.softmax(this, dim); }
  logSoftmax(dim: number): Tensor { return softmaxOps.logSoftmax(this, dim); }
  gather(dim: number, index: Tensor): Tensor { return indexing.gather(this, dim, index); }
  /** A new tensor of this dtype and device, filled with `value`, shaped `shape`. */
  newFull(shape: number[], value: number): Tensor { return creation.full(shape, value, { dtype: this.dtype, device: this.device }); }
}

setTensorCheck((v): v is Tensor => v instanceof Tensor);

/** The elements as JS numbers (or booleans for bool), row-major. */
function numbersOf(t: Tensor): (number | boolean)[] {
  if (t.dtype === 'bfloat16' || t.dtype === 'float16') {
    const wide = views.to(t, 'float32');
    try {
      return numbersOf(wide);
    } finally {
      wide.dispose();
    }
  }
  const data = t.data();
  if (t.dtype === 'bool') return Array.from(data as Uint8Array, (v) => v !== 0);
  if (t.dtype === 'int64') return Array.from(data as BigInt64Array, (v) => Number(v));
  return Array.from(data as Float32Array);
}

function checkAgainstNative(t: Tensor): void {
  const m = core.meta(t._handle as NativeHandle);
  const device = deviceOfCode(m.device);
  if (m.shape.length !== t.shape.length || m.shape.some((d, i) => d !== t.shape[i]) || DTYPES[m.dtype] !== t.dtype || device !== t.device) {
    fail('ERR_INTERNAL', `tensor metadata mismatch: JS [${t.shape}] ${t.dtype} ${t.device}, native [${m.shape}] ${DTYPES[m.dtype]} ${device}`);
  }
}

/** @internal Wraps a native result; shape and dtype are the op's (checked against native under IGNIS_DEBUG). */
export function wrap(handle: NativeHandle, shape: readonly number[], dtype: DType, device: Device = 'cpu'): Tensor {
  return new Tensor(handle, shape, dtype, device);
}

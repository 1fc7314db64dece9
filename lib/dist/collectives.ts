import { DType } from '../dtype';
import { fail } from '../errors';
import { empty, emptyLike } from '../ops/creation';
import { Tensor } from '../tensor';
import { Channel, checkTimeout, group, Group } from './group';
import { Work } from './work';

/** How a reducing collective combines the ranks' values. `avg` needs a floating-point tensor. */
export type ReduceOp = 'sum' | 'avg' | 'max' | 'min' | 'prod';
const REDUCE_OPS: readonly ReduceOp[] = ['sum', 'avg', 'max', 'min', 'prod']; // native codes

/** Options every operation takes. */
export interface CollectiveOptions {
  /** Bound on this operation (default: the one given to init()). */
  timeoutMs?: number;
}

function checkTensor(op: string, t: unknown, what = 'tensor'): Tensor {
  if (!(t instanceof Tensor)) fail('ERR_ARG', `${op}: ${what} must be a Tensor`);
  t.handle(op);
  return t;
}

/** Gloo for CPU tensors, NCCL for CUDA tensors: every tensor of the operation on `t`'s device. */
function channelOf(op: string, g: Group, t: Tensor, others: readonly Tensor[] = []): Channel {
  for (const o of others) {
    if (o.device !== t.device) fail('ERR_DEVICE', `${op}: every tensor must be on ${t.device}, got one on ${o.device}`);
  }
  return g.channel(op, t.device);
}

function checkReduce(op: string, t: Tensor, reduce: unknown): number {
  const code = REDUCE_OPS.indexOf(reduce as ReduceOp);
  if (code < 0) fail('ERR_ARG', `${op}: op must be one of ${REDUCE_OPS.join(', ')}, got ${String(reduce)}`);
  if (t.dtype === 'bool') fail('ERR_DTYPE', `${op}: cannot reduce bool tensors`);
  if (reduce === 'avg' && (t.dtype === 'int32' || t.dtype === 'int64')) {
    fail('ERR_DTYPE', `${op}: avg needs a floating-point tensor, got ${t.dtype}`);
  }
  return code;
}

function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function checkLike(op: string, t: Tensor, shape: readonly number[], dtype: DType, what: string): void {
  if (t.dtype !== dtype) fail('ERR_DTYPE', `${op}: ${what} must be ${dtype}, got ${t.dtype}`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    fail('ERR_SHAPE', `${op}: ${what} must have shape ${shapeStr(shape)}, got ${shapeStr(t.shape)}`);
  }
}

function checkList(op: string, list: unknown, n: number, what: string): Tensor[] {
  if (!Array.isArray(list)) fail('ERR_ARG', `${op}: ${what} must be an array of ${n} tensors`);
  if (list.length !== n) fail('ERR_ARG', `${op}: ${what} must hold one tensor per rank (${n}), got ${list.length}`);
  return list.map((t, i) => checkTensor(op, t, `${what}[${i}]`));
}

function checkRank(op: string, g: Group, r: unknown, what: string): number {
  const n = g.env.worldSize;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 0 || r >= n) {
    fail('ERR_ARG', `${op}: ${what} must be a rank in [0, ${n}), got ${String(r)}`);
  }
  return r;
}

function checkTag(op: string, tag: unknown): number {
  if (typeof tag !== 'number' || !Number.isSafeInteger(tag) || tag < 0) fail('ERR_ARG', `${op}: tag must be an integer >= 0, got ${String(tag)}`);
  return tag;
}

/** `t` split into n views along dim 0 (its size must divide by n; a size of 0 gives n empty parts). */
function parts(op: string, t: Tensor, n: number, what: string): Tensor[] {
  if (t.ndim === 0 || t.shape[0] % n !== 0) {
    fail('ERR_SHAPE', `${op}: ${what} of shape ${shapeStr(t.shape)} does not split into ${n} equal parts along dim 0`);
  }
  const size = t.shape[0] / n;
  return Array.from({ length: n }, (_, i) => t.narrow(0, i * size, size));
}

/**
 * Reduces `t` over all ranks, in place: every rank ends with the same values (`op`: sum
 * (default), avg, max, min, prod). 16-bit floats accumulate in float32 (NCCL, for CUDA
 * tensors, reduces in the tensor's dtype); integers wrap. A non-contiguous `t` is reduced through
 * a contiguous copy and written back.
 *
 * CUDA tensors go through NCCL on a stream of its own, after the work queued on the device's
 * current stream; ops queued on that stream later run after the collective, so its result can be
 * used at once by further CUDA ops, and the work completes when the GPU has finished it.
 */
export function allReduce(t: Tensor, options: CollectiveOptions & { op?: ReduceOp } = {}): Work<Tensor> {
  const op = 'dist.allReduce';
  const g = group(op);
  checkTensor(op, t);
  const code = checkReduce(op, t, options.op ?? 'sum');
  const c = channelOf(op, g, t);
  return new Work(c, c.native.allReduce(t.handle(op), code, checkTimeout(op, options.timeoutMs)), t);
}

/** Options of {@link allGather}. */
export interface AllGatherOptions extends CollectiveOptions {
  /**
   * Where the ranks' tensors go: one tensor per rank, or one tensor holding them all, stacked
   * (`[worldSize, ...shape]`) or concatenated along dim 0 (`[worldSize * shape[0], ...]`).
   * Default: a new list.
   */
  out?: Tensor[] | Tensor;
  /** Without `out`: make a new list (default), or one new stacked or concatenated tensor. */
  into?: 'list' | 'stack' | 'cat';
}

/** Gathers every rank's `t` (same shape and dtype everywhere), in rank order. */
export function allGather(t: Tensor, options?: CollectiveOptions & { into?: 'list' }): Work<Tensor[]>;
export function allGather(t: Tensor, options: CollectiveOptions & { out: Tensor[] }): Work<Tensor[]>;
export function allGather(t: Tensor, options: CollectiveOptions & ({ out: Tensor } | { into: 'stack' | 'cat' })): Work<Tensor>;
export function allGather(t: Tensor, options: AllGatherOptions = {}): Work<Tensor[]> | Work<Tensor> {
  const op = 'dist.allGather';
  const g = group(op);
  const n = g.env.worldSize;
  checkTensor(op, t);
  const timeout = checkTimeout(op, options.timeoutMs);
  const into = options.into ?? 'list';
  if (into !== 'list' && into !== 'stack' && into !== 'cat') fail('ERR_ARG', `${op}: into must be 'list', 'stack' or 'cat', got ${String(into)}`);
  if (into === 'cat' && t.ndim === 0) fail('ERR_SHAPE', `${op}: cannot concatenate 0-d tensors (use into: 'stack')`);
  let out = options.out;
  if (out === undefined) {
    if (into === 'list') out = Array.from({ length: n }, () => emptyLike(t));
    else if (into === 'stack') out = empty([n, ...t.shape], { dtype: t.dtype, device: t.device });
    else out = empty([n * t.shape[0], ...t.shape.slice(1)], { dtype: t.dtype, device: t.device });
  }
  if (Array.isArray(out)) {
    const list = checkList(op, out, n, 'out');
    list.forEach((o, i) => checkLike(op, o, t.shape, t.dtype, `out[${i}]`));
    const c = channelOf(op, g, t, list);
    return new Work<Tensor[]>(c, c.native.allGather(t.handle(op), list.map((o) => o.handle(op)), timeout), list);
  }
  const whole = checkTensor(op, out, 'out');
  const stacked = [n, ...t.shape];
  const catted = t.ndim > 0 ? [n * t.shape[0], ...t.shape.slice(1)] : stacked;
  const same = (s: readonly number[]) => whole.shape.length === s.length && whole.shape.every((d, i) => d === s[i]);
  if (!same(stacked) && !same(catted)) {
    fail('ERR_SHAPE', `${op}: out must have shape ${shapeStr(stacked)} (stacked) or ${shapeStr(catted)} (concatenated), got ${shapeStr(whole.shape)}`);
  }
  checkLike(op, whole, whole.shape, t.dtype, 'out');
  const c = channelOf(op, g, t, [whole]);
  const views = parts(op, whole, n, 'out');
  try {
    return new Work<Tensor>(c, c.native.allGather(t.handle(op), views.map((p) => p.handle(op)), timeout), whole);
  } finally {
    for (const p of views) p.dispose(); // the native side holds what it needs
  }
}

/** Options of {@link reduceScatter}. */
export interface ReduceScatterOptions extends CollectiveOptions {
  op?: ReduceOp;
  /** Where this rank's reduced part goes (default: a new tensor). */
  out?: Tensor;
}

/**
 * Reduces over all ranks and gives each rank one part: rank r gets part r of the reduction.
 * `input` is a list of one tensor per rank (part r goes to rank r), or one tensor split into
 * worldSize parts along dim 0 (as `torch.distributed.reduce_scatter_tensor`). Each rank sends
 * and receives (n - 1) / n of the data, the reduction's bytes once.
 */
export function reduceScatter(input: Tensor | Tensor[], options: ReduceScatterOptions = {}): Work<Tensor> {
  const op = 'dist.reduceScatter';
  const g = group(op);
  const n = g.env.worldSize;
  const timeout = checkTimeout(op, options.timeoutMs);
  let inputs: Tensor[];
  let owned: Tensor[] = [];
  if (Array.isArray(input)) {
    inputs = checkList(op, input, n, 'input');
    inputs.forEach((p, i) => checkLike(op, p, inputs[0].shape, inputs[0].dtype, `input[${i}]`));
  } else {
    owned = inputs = parts(op, checkTensor(op, input, 'input'), n, 'input');
  }
  try {
    const first = inputs[0];
    const code = checkReduce(op, first, options.op ?? 'sum');
    const out = options.out === undefined ? emptyLike(first) : checkTensor(op, options.out, 'out');
    checkLike(op, out, first.shape, first.dtype, 'out');
    const c = channelOf(op, g, first, [...inputs, out]);
    return new Work(c, c.native.reduceScatter(inputs.map((p) => p.handle(op)), out.handle(op), code, timeout), out);
  } finally {
    for (const p of owned) p.dispose(); // the native side holds what it needs
  }
}

/** Copies rank `src`'s `t` (default rank 0) into `t` on every rank, in place. */
export function broadcast(t: Tensor, options: CollectiveOptions & { src?: number } = {}): Work<Tensor> {
  const op = 'dist.broadcast';
  const g = group(op);
  checkTensor(op, t);
  const src = checkRank(op, g, options.src ?? 0, 'src');
  const c = channelOf(op, g, t);
  return new Work(c, c.native.broadcast(t.handle(op), src, checkTimeout(op, options.timeoutMs)), t);
}

/**
 * Resolves once every rank reached this barrier. With the `'nccl'` backend it is an NCCL
 * allreduce of one element on the device (ordered after the work queued there), else Gloo's.
 */
export function barrier(options: CollectiveOptions = {}): Work<void> {
  const op = 'dist.barrier';
  const g = group(op);
  const c = g.backend === 'nccl' && g.nccl !== null ? g.nccl : g.gloo;
  return new Work<void>(c, c.native.barrier(checkTimeout(op, options.timeoutMs)), undefined);
}

/** The checks of send and recv: the group, the tag and the timeout. */
function pointToPoint(op: string, t: Tensor, peer: number, what: string, options: CollectiveOptions & { tag?: number }) {
  const g = group(op);
  checkTensor(op, t);
  checkRank(op, g, peer, what);
  if (peer === g.env.rank) fail('ERR_ARG', `${op}: ${what} must be another rank than this one (${peer})`);
  const tag = checkTag(op, options.tag ?? 0);
  return { c: channelOf(op, g, t), tag, timeout: checkTimeout(op, options.timeoutMs) };
}

/**
 * Sends `t` to rank `dst`, which receives it with {@link recv} (same tag, shape and dtype).
 * Sends and receives are posted in order with the collectives but do not hold them up (a ring of
 * sends then receives works): do not change `t` until the work is done. Messages with one tag
 * between two ranks arrive in the order they were sent. CUDA tensors go through NCCL, which
 * carries no tag (sends and receives between two ranks match in issue order) and runs a send only
 * with its receive: in a ring, even ranks send first and odd ranks receive first.
 */
export function send(t: Tensor, dst: number, options: CollectiveOptions & { tag?: number } = {}): Work<void> {
  const { c, tag, timeout } = pointToPoint('dist.send', t, dst, 'dst', options);
  return new Work<void>(c, c.native.send(t.handle('dist.send'), dst, tag, timeout), undefined);
}

/**
 * Receives into `t`, in place, what rank `src` sent with {@link send} (same tag, shape and
 * dtype). Use `t` once the work is done: operations issued after it do not wait for it.
 */
export function recv(t: Tensor, src: number, options: CollectiveOptions & { tag?: number } = {}): Work<Tensor> {
  const { c, tag, timeout } = pointToPoint('dist.recv', t, src, 'src', options);
  return new Work(c, c.native.recv(t.handle('dist.recv'), src, tag, timeout), t);
}

/**
 * The backward engine: walks the recorded graph from a root in topological order, sums the
 * gradients a node receives from its consumers, calls each node's backward once (under noGrad,
 * no higher-order gradients), disposes intermediate gradients as soon as they are used and
 * accumulates each leaf's gradient into its `.grad` as soon as the last node that sends it one
 * ran (then runs the leaf's post-accumulate-grad hooks), so that a leaf near the loss is final
 * while the rest of the walk goes on. Callbacks queued during the walk
 * ({@link queueBackwardCallback}) run once it is over, before backward returns.
 */
import { fail } from '../errors';
import { keep, tidy } from '../memory';
import { core } from '../native';
import { checkTensor, fmtShape, sameShape } from '../ops/check';
import { full } from '../ops/creation';
import { add } from '../ops/elementwise';
import { clone, to } from '../ops/views';
import { Tensor, wrap } from '../tensor';
import { GradTarget, Node, noGrad, runPostAccumulateGradHooks } from './graph';

/** Options of {@link Tensor.backward}. */
export interface BackwardOptions {
  /**
   * Keep the graph's saved tensors so that backward can run through it again (default false:
   * they are released as the walk passes, and a second backward raises ERR_GRAD).
   */
  retainGraph?: boolean;
}

function describe(t: GradTarget): string {
  return t instanceof Node ? `the output of ${t.op} ${fmtShape(t.shape)}` : `a leaf of shape ${fmtShape(t.shape)}`;
}

/**
 * The nodes reachable from `start`, each after every node that feeds it a gradient (reverse
 * post-order of a depth-first walk, without recursion), checked before anything runs; and for
 * each leaf, how many inputs of those nodes it is (the gradients it waits for).
 */
function topologicalOrder(start: Node): { order: Node[]; producers: Map<Tensor, number> } {
  const postOrder: Node[] = [];
  const producers = new Map<Tensor, number>();
  const seen = new Set<Node>([start]);
  const stack: { node: Node; next: number }[] = [{ node: start, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.next === 0) checkNode(top.node);
    if (top.next < top.node.next.length) {
      const target = top.node.next[top.next++];
      if (target instanceof Node) {
        if (!seen.has(target)) {
          seen.add(target);
          stack.push({ node: target, next: 0 });
        }
      } else if (target !== null) {
        if (target.isDisposed) fail('ERR_DISPOSED', `backward: ${describe(target)} that requires grad (an input of ${top.node.op}) was disposed`);
        producers.set(target, (producers.get(target) ?? 0) + 1);
      }
    } else {
      stack.pop();
      postOrder.push(top.node);
    }
  }
  return { order: postOrder.reverse(), producers };
}

function checkNode(node: Node): void {
  if (node.backward === null) {
    fail(
      'ERR_GRAD',
      `backward: the graph through ${node.op} ${fmtShape(node.shape)} was already backpropagated and its saved tensors ` +
        'released; pass { retainGraph: true } to the first backward() to run backward through it again',
    );
  }
  if (node.saved.some((t) => t.isDisposed)) {
    fail('ERR_GRAD', `backward: a tensor saved by ${node.op} ${fmtShape(node.shape)} for backward was disposed`);
  }
}

/** The gradient the walk starts from: ones for a one-element root, else `grad` checked and owned. */
function seedGradient(root: Tensor, grad: Tensor | undefined): Tensor {
  if (grad === undefined || grad === null) {
    if (root.numel !== 1) {
      fail(
        'ERR_GRAD',
        `backward: a gradient can be created implicitly only for a one-element tensor, got shape ${fmtShape(root.shape)}; ` +
          'pass backward(grad) with a gradient of that shape',
      );
    }
    return full(root.shape.slice(), 1, { dtype: root.dtype, device: root.device });
  }
  checkTensor(grad, 'backward', 'grad');
  if (!sameShape(grad.shape, root.shape)) {
    fail('ERR_SHAPE', `backward: grad of shape ${fmtShape(grad.shape)} does not match the tensor's shape ${fmtShape(root.shape)}`);
  }
  if (grad.device !== root.device) fail('ERR_DEVICE', `backward: grad is on ${grad.device}, the tensor on ${root.device}`);
  // a conversion, or a new handle on the caller's tensor: the walk disposes what it owns
  return grad.dtype === root.dtype ? wrap(core.alias(grad.handle('backward')), grad.shape, grad.dtype, grad.device) : to(grad, root.dtype);
}

/** Adds `grad` (owned) to what `target` has received so far. */
function accumulate(grads: Map<GradTarget, Tensor>, target: GradTarget, grad: Tensor, op: string): void {
  if (!sameShape(grad.shape, target.shape) || grad.dtype !== target.dtype) {
    fail(
      'ERR_INTERNAL',
      `backward of ${op} gave a ${grad.dtype} gradient of shape ${fmtShape(grad.shape)} for ${describe(target)} (${target.dtype})`,
    );
  }
  const previous = grads.get(target);
  if (previous === undefined) {
    grads.set(target, grad);
    return;
  }
  grads.set(target, add(previous, grad));
  previous.dispose();
  grad.dispose();
}

/** Adds `grad` (owned) into leaf.grad, which is kept out of every tidy() scope. */
function accumulateLeaf(leaf: Tensor, grad: Tensor): void {
  const current = leaf.grad;
  let next: Tensor;
  if (current === null || current.isDisposed) {
    // A gradient that shares its storage (with another leaf's, the caller's, a view's base) is
    // copied: .grad is a tensor of its own.
    next = core.ownsStorage(grad.handle('backward')) ? grad : clone(grad);
  } else {
    next = add(current, grad);
    current.dispose();
  }
  if (next !== grad) grad.dispose();
  leaf.grad = keep(next);
}

/** Accumulates what `leaf` received in this walk (if anything) into its `.grad`, then runs its hooks. */
function finishLeaf(leaf: Tensor, grads: Map<GradTarget, Tensor>): void {
  const g = grads.get(leaf);
  if (g === undefined) return;
  grads.delete(leaf);
  accumulateLeaf(leaf, g);
  runPostAccumulateGradHooks(leaf);
}

/** The callbacks queued during the backward in progress (null outside backward). */
let endCallbacks: (() => void)[] | null = null;
let backwardCount = 0;
let runningBackward = 0;

/** @internal A number identifying the backward in progress (a new one for each call), 0 outside backward. */
export function currentBackward(): number {
  return runningBackward;
}

/**
 * @internal Runs `fn` once the backward in progress has accumulated every leaf's gradient, just
 * before it returns (as PyTorch's `Variable._execution_engine.queue_callback`); callbacks run in
 * the order queued, under noGrad, and not at all when the walk failed. ERR_GRAD outside backward
 * (call it from a hook).
 */
export function queueBackwardCallback(fn: () => void): void {
  if (endCallbacks === null) fail('ERR_GRAD', 'queueBackwardCallback: no backward is running (call it from a hook)');
  endCallbacks.push(fn);
}

/** Runs one node's backward on its gradient `grad` (disposed here) and hands on the results. */
function runNode(node: Node, grad: Tensor, grads: Map<GradTarget, Tensor>): void {
  const backward = node.backward as NonNullable<Node['backward']>;
  const needs = node.next.map((t) => t !== null);
  const handOn: [GradTarget, Tensor][] = [];
  try {
    const results = tidy(() => backward(grad, node.saved, needs));
    // Every gradient handed on is a handle of its own: one returned twice, or `grad` itself,
    // gets a new handle on the same storage.
    const owned = new Set<Tensor>();
    node.next.forEach((target, i) => {
      let g = results[i];
      if (target === null || g === null || g === undefined) return;
      if (g === grad || owned.has(g)) g = wrap(core.alias(g.handle('backward')), g.shape, g.dtype, g.device);
      owned.add(g);
      handOn.push([target, g]);
    });
    for (const g of results) if (g && g !== grad && !owned.has(g)) g.dispose();
  } finally {
    grad.dispose();
  }
  for (let i = 0; i < handOn.length; i++) {
    try {
      accumulate(grads, handOn[i][0], handOn[i][1], node.op);
    } catch (err) {
      for (const [, g] of handOn.slice(i)) g.dispose();
      throw err;
    }
  }
}

/**
 * @internal Tensor.backward: accumulates d(root)/d(leaf), weighted by `grad` (ones for a
 * one-element root), into the `.grad` of every leaf that requires grad and that root depends on.
 */
export function backward(root: Tensor, grad?: Tensor, opts?: BackwardOptions): void {
  checkTensor(root, 'backward', 'tensor');
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) fail('ERR_ARG', 'backward: options must be an object');
  for (const key of Object.keys(opts ?? {})) {
    if (key !== 'retainGraph') fail('ERR_ARG', `backward: unknown option ${key}; expected retainGraph`);
  }
  const retainGraph = opts?.retainGraph ?? false;
  if (typeof retainGraph !== 'boolean') fail('ERR_ARG', 'backward: retainGraph must be a boolean');
  if (!root.requiresGrad) {
    fail(
      'ERR_GRAD',
      `backward: the tensor of shape ${fmtShape(root.shape)} does not require grad: none of the inputs of the ops that ` +
        'made it required grad (call requiresGrad_() on the leaves, and compute outside noGrad)',
    );
  }
  const start: GradTarget = root._gradFn ?? root;
  const { order, producers } = start instanceof Node ? topologicalOrder(start) : { order: [], producers: new Map<Tensor, number>() };
  const outer = { callbacks: endCallbacks, id: runningBackward };
  const callbacks: (() => void)[] = [];
  endCallbacks = callbacks;
  runningBackward = ++backwardCount;
  try {
    noGrad(() => {
      const grads = new Map<GradTarget, Tensor>([[start, seedGradient(root, grad)]]);
      try {
        if (!(start instanceof Node)) finishLeaf(start, grads);
        for (const node of order) {
          const g = grads.get(node);
          grads.delete(node);
          // a node none of whose consumers sent a gradient sends none on
          if (g !== undefined) runNode(node, g, grads);
          if (!retainGraph) node.release();
          for (const target of node.next) {
            if (target === null || target instanceof Node) continue;
            const left = (producers.get(target) as number) - 1;
            producers.set(target, left);
            if (left === 0) finishLeaf(target, grads);
          }
        }
      } catch (err) {
        // the graph is not walked again: free what it saved
        if (!retainGraph) for (const node of order) node.release();
        throw err;
      } finally {
        for (const g of grads.values()) g.dispose();
      }
      for (let i = 0; i < callbacks.length; i++) callbacks[i]();
    });
  } finally {
    endCallbacks = outer.callbacks;
    runningBackward = outer.id;
  }
}

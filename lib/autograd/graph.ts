/**
 * The autograd tape. An op whose inputs require grad records a {@link Node} on its output:
 * where each input's gradient goes, the tensors its backward needs (saved as aliases the node
 * owns, so that disposing the op's inputs or outputs, or a tidy() around the forward, does not
 * break a later backward) and the closure that computes the inputs' gradients. The grad mode
 * ({@link noGrad}, {@link enableGrad}) turns recording off and on.
 */
import { DType } from '../dtype';
import { fail } from '../errors';
import { keep, setGraphRelease } from '../memory';
import { core } from '../native';
import type { Tensor } from '../tensor';
import { wrap } from '../tensor';

/**
 * The gradients of an op's inputs, from the gradient of its output (`grad`, with the output's
 * shape and dtype) and the node's saved tensors, in the order of the recorded inputs: each with
 * its input's shape and dtype, or null where `needs[i]` is false (or the input gets none).
 * Runs under noGrad, inside a tidy() scope: temporaries need no disposing.
 */
export type BackwardFn = (grad: Tensor, saved: Tensor[], needs: readonly boolean[]) => (Tensor | null)[];

/** Where a gradient goes: the node that made a tensor, or a leaf tensor that requires grad. */
export type GradTarget = Node | Tensor;

/** @internal One recorded op: the output it made and how to send its gradient to its inputs. */
export class Node {
  /** Its output's shape and dtype: what its gradient must have. */
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Per recorded input: the target of its gradient, or null when it needs none. */
  readonly next: (GradTarget | null)[];
  /** Aliases owned by the node; empty once released. */
  saved: Tensor[];
  /** null once released (after a backward without retainGraph). */
  backward: BackwardFn | null;

  constructor(readonly op: string, out: Tensor, next: (GradTarget | null)[], saved: Tensor[], backward: BackwardFn) {
    this.shape = out.shape;
    this.dtype = out.dtype;
    this.next = next;
    this.saved = saved;
    this.backward = backward;
  }

  /** Disposes the saved tensors and drops the closure: the node cannot be backpropagated again. */
  release(): void {
    for (const t of this.saved) t.dispose();
    this.saved = [];
    this.backward = null;
  }
}

let gradEnabled = true;

function requires(t: unknown): boolean {
  return typeof t === 'object' && t !== null && (t as Tensor)._requiresGrad === true;
}

/**
 * @internal Whether an op on these operands (tensors, numbers, null) must record its backward:
 * grad mode is on and one of them requires grad. Cheap: ops call it on every run.
 */
export function needsGrad(a: unknown, b?: unknown, c?: unknown): boolean {
  return gradEnabled && (requires(a) || requires(b) || requires(c));
}

/** @internal {@link needsGrad} for a list of operands (cat, stack). */
export function needsGradList(list: readonly unknown[]): boolean {
  return gradEnabled && list.some(requires);
}

/** A new handle on t's view, owned by the caller and outside every tidy() scope. */
function ownedAlias(t: Tensor, op: string): Tensor {
  return keep(wrap(core.alias(t.handle(op)), t.shape, t.dtype, t.device));
}

/**
 * @internal Records `out` as made by `op` from `inputs` (tensors, numbers or null, in the order
 * the backward returns their gradients). `saved` are the tensors the backward reads, given to it
 * as aliases in the same order. Call only when {@link needsGrad} says so.
 */
export function record(out: Tensor, op: string, inputs: readonly unknown[], saved: readonly Tensor[], backward: BackwardFn): void {
  const next = inputs.map((t) => (requires(t) ? ((t as Tensor)._gradFn ?? (t as Tensor)) : null));
  out._gradFn = new Node(op, out, next, saved.map((t) => ownedAlias(t, op)), backward);
  out._requiresGrad = true;
}

/** Frozen operands that a backward fetches again instead of saving (see {@link setRefetch}). */
const refetchers = new WeakMap<Tensor, () => Tensor>();

/**
 * @internal Lets the backwards of linear layers get the frozen weight `t` again from `fetch`
 * when they run, instead of saving it with the node: for weights that exist in full only for a
 * while (weights sharded across ranks, gathered for a layer's forward and again for its
 * backward). `fetch` returns a tensor equal to `t` that the backward does not own.
 */
export function setRefetch(t: Tensor, fetch: () => Tensor): void {
  refetchers.set(t, fetch);
}

/**
 * @internal How a backward gets the frozen operand `w`: `saved` holds it (for the node to save,
 * last among its saved tensors) and `get(kept)` gives it back from the node's saved tensors;
 * or, for a tensor registered with {@link setRefetch}, nothing is saved and `get` fetches it.
 */
export function frozenOperand(w: Tensor): { saved: Tensor[]; get: (kept: readonly Tensor[]) => Tensor } {
  const fetch = refetchers.get(w);
  if (fetch !== undefined) return { saved: [], get: () => fetch() };
  return { saved: [w], get: (kept) => kept[kept.length - 1] };
}

/** Whether ops record their backward now (true unless inside {@link noGrad}). */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

function withGradMode<T>(enabled: boolean, fn: () => T, op: string): T {
  if (typeof fn !== 'function') fail('ERR_ARG', `${op}: expected a function`);
  const previous = gradEnabled;
  gradEnabled = enabled;
  try {
    const result = fn();
    if (result instanceof Promise) fail('ERR_ARG', `${op}: fn must be synchronous; it returned a Promise`);
    return result;
  } finally {
    gradEnabled = previous;
  }
}

/**
 * Runs `fn` with recording off: its ops make tensors without history, as PyTorch's
 * `torch.no_grad()` (for evaluation, and for updates of parameters). Returns what fn returns;
 * fn must be synchronous.
 */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn, 'noGrad');
}

/** Runs `fn` with recording on, even inside {@link noGrad}. */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn, 'enableGrad');
}

/** What {@link Tensor.registerPostAccumulateGradHook} returns. */
export interface RemovableHandle {
  /** Unregisters the hook. Idempotent. */
  remove(): void;
}

/** A hook run with a leaf once backward accumulated its gradient (see {@link Tensor.registerPostAccumulateGradHook}). */
export type PostAccumulateGradHook = (t: Tensor) => void;

/** Each leaf's post-accumulate-grad hooks, by registration number (so, in registration order). */
const postAccumulateHooks = new WeakMap<Tensor, Map<number, PostAccumulateGradHook>>();
let hookCount = 0;

/** @internal Tensor.registerPostAccumulateGradHook. */
export function registerPostAccumulateGradHook(t: Tensor, fn: PostAccumulateGradHook): RemovableHandle {
  const op = 'registerPostAccumulateGradHook';
  t.handle(op);
  if (typeof fn !== 'function') fail('ERR_ARG', `${op}: expected a function`);
  if (!t.isLeaf) fail('ERR_GRAD', `${op}: only leaves can have one; this tensor is the output of ${t._gradFn?.op}`);
  if (!t.requiresGrad) fail('ERR_GRAD', `${op}: the tensor does not require grad (call requiresGrad_() first)`);
  let hooks = postAccumulateHooks.get(t);
  if (hooks === undefined) postAccumulateHooks.set(t, (hooks = new Map()));
  const id = hookCount++;
  hooks.set(id, fn);
  return { remove: () => void hooks.delete(id) };
}

/** @internal Runs t's post-accumulate-grad hooks (under noGrad, as backward runs them). */
export function runPostAccumulateGradHooks(t: Tensor): void {
  const hooks = postAccumulateHooks.get(t);
  if (hooks !== undefined) for (const fn of [...hooks.values()]) fn(t);
}

/** A new tensor sharing t's storage, without history: gradients do not flow through it. */
export function detach(t: Tensor): Tensor {
  return wrap(core.alias(t.handle('detach')), t.shape, t.dtype, t.device);
}

// A tidy() scope releases the graph of the tensors it disposes, except the nodes its surviving
// tensors (returned or kept) still lead to.
setGraphRelease((dropped, survivors) => {
  const reachable = new Set<Node>();
  const stack: Node[] = [];
  for (const t of survivors) if (t._gradFn) stack.push(t._gradFn);
  while (stack.length > 0) {
    const node = stack.pop() as Node;
    if (reachable.has(node)) continue;
    reachable.add(node);
    for (const next of node.next) if (next instanceof Node) stack.push(next);
  }
  const retained: Tensor[] = [];
  for (const t of dropped) {
    if (!t._gradFn) continue;
    if (reachable.has(t._gradFn)) retained.push(t);
    else t._gradFn.release();
  }
  return retained;
});

import { fail } from './errors';
import { core, NativeHandle } from './native';
import type { Tensor } from './tensor';

// Each open tidy() scope collects the tensors created while it runs.
const scopes: Set<Tensor>[] = [];
// Per open scope: tensors with a recorded history that keep() took out of it, which still lead
// to the graph recorded inside the scope.
const escapes: Tensor[][] = [];

// Set by the autograd tape: releases the graphs recorded for tensors a scope disposes, except
// what the surviving tensors still lead to (so a graph dies with its tensors, as in PyTorch);
// returns the dropped tensors whose graph it kept for that reason.
let releaseGraphs: (dropped: Tensor[], survivors: Iterable<Tensor>) => Tensor[] = () => [];
/** @internal */
export function setGraphRelease(fn: (dropped: Tensor[], survivors: Iterable<Tensor>) => Tensor[]): void {
  releaseGraphs = fn;
}

// The safety net: a tensor that outlives every scope is registered with a FinalizationRegistry,
// which releases its handle if it is garbage-collected undisposed. Registering costs about as
// much as a small op, so it is deferred: tensors wait in `young` (at most YOUNG_MAX, or until the
// next macrotask) and only those still undisposed then are registered. A released handle is
// never reused (handles carry a generation), so a late finalizer is harmless.
const registry = new FinalizationRegistry<NativeHandle>((handle) => core.dispose(handle));
const YOUNG_MAX = 1024;
let young: Tensor[] = [];
let sweepScheduled = false;

function registerYoung(): void {
  for (const t of young) if (t._handle !== null) registry.register(t, t._handle);
  young = [];
}

function watch(t: Tensor): void {
  young.push(t);
  if (young.length >= YOUNG_MAX) {
    registerYoung();
  } else if (!sweepScheduled) {
    sweepScheduled = true;
    setImmediate(() => {
      sweepScheduled = false;
      registerYoung();
    }).unref();
  }
}

/** @internal Called by every new Tensor. */
export function track(t: Tensor): void {
  const scope = scopes[scopes.length - 1];
  if (scope) scope.add(t);
  else watch(t);
}

/** Anything tidy() can return: its tensors are kept, found through arrays and plain objects. */
export type TidyResult = unknown;

function collectTensors(value: unknown, out: Set<Tensor>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isTensor(value)) {
    out.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, out, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype || value instanceof Map) {
    for (const v of value instanceof Map ? value.values() : Object.values(value)) collectTensors(v, out, seen);
  }
}

let isTensor: (v: unknown) => v is Tensor = (_v): _v is Tensor => false;
/** @internal Lets this module recognise tensors without importing the class (no import cycle). */
export function setTensorCheck(check: (v: unknown) => v is Tensor): void {
  isTensor = check;
}

/**
 * Runs `fn` and disposes every tensor created during it, except those it returns (found in
 * arrays, plain objects and Maps) and those passed to {@link keep}. Tidies nest: kept tensors
 * move to the enclosing scope. Async functions are not supported (a Promise result throws).
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  const escaped: Tensor[] = [];
  scopes.push(scope);
  escapes.push(escaped);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    disposeScope([...scope], escaped);
    throw err;
  } finally {
    scopes.pop();
    escapes.pop();
  }
  if (result instanceof Promise) {
    disposeScope([...scope], escaped);
    throw new TypeError('tidy: fn must be synchronous; it returned a Promise');
  }
  const kept = new Set<Tensor>();
  collectTensors(result, kept);
  const parent = scopes[scopes.length - 1];
  const dropped: Tensor[] = [];
  for (const t of scope) {
    if (!kept.has(t)) dropped.push(t);
    else if (parent) parent.add(t);
    else watch(t);
  }
  disposeScope(dropped, [...kept, ...escaped]);
  return result;
}

/** Exempts `t` from disposal by the enclosing tidy() scopes; returns it. */
export function keep<T extends Tensor>(t: T): T {
  let held = false;
  for (const scope of scopes) held = scope.delete(t) || held;
  if (held) {
    watch(t);
    if (t._gradFn) for (const escaped of escapes) escaped.push(t);
  }
  return t;
}

/** Disposes what a scope dropped; called once the scope is closed. */
function disposeScope(dropped: Tensor[], survivors: Tensor[]): void {
  const retained = dropped.some((t) => t._gradFn) ? releaseGraphs(dropped, survivors) : [];
  // A graph the survivors still lead to passes to the enclosing scope, which releases it in turn
  // unless its own survivors lead there (a forward in nested tidy() scopes leaves nothing).
  const parent = scopes[scopes.length - 1];
  if (parent) for (const t of retained) parent.add(t);
  for (const t of dropped) t.dispose();
}

/** What ignis holds natively. */
export interface MemoryInfo {
  /** Tensors reachable from JS (not yet disposed or collected). */
  tensors: number;
  /** Native tensor views alive, including those held inside ops. */
  views: number;
  /** Separate memory blocks behind them. */
  storages: number;
  /** Bytes of tensor storage held now, per device. */
  bytes: { cpu: number; cuda: number };
}

/** What native memory ignis holds now. */
export function memory(): MemoryInfo {
  const m = core.memory();
  return { tensors: m.handles, views: m.tensors, storages: m.storages, bytes: { cpu: m.cpuBytes, cuda: m.cudaBytes } };
}

/**
 * The most bytes of tensor storage held at once, per device, since the process started or
 * since the last {@link resetPeakMemory} (as PyTorch's `torch.cuda.max_memory_allocated`).
 * Kept apart from {@link memory}, whose result compares equal before and after work that
 * frees all it allocates.
 */
export function peakMemory(): { cpu: number; cuda: number } {
  const m = core.memory();
  return { cpu: m.cpuPeakBytes, cuda: m.cudaPeakBytes };
}

/** Starts peak tracking afresh: {@link peakMemory} becomes the bytes held now and rises with later allocations. */
export function resetPeakMemory(): void {
  core.resetPeakMemory();
}

/** Threads used by CPU kernels (at most the number of cores; `IGNIS_NUM_THREADS` sets the start value). */
export function setNumThreads(n: number): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) fail('ERR_ARG', `setNumThreads: expected an integer >= 1, got ${String(n)}`);
  core.setNumThreads(n);
}

/** Threads CPU kernels use now. */
export function getNumThreads(): number {
  return core.getNumThreads();
}

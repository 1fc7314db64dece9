/** Argument checks shared by the op families: each fails with an IgnisError naming the op. */
import { fail } from '../errors';
import { Tensor } from '../tensor';
export { checkDevice } from '../device';

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function checkTensor(t: unknown, op: string, name = 'input'): Tensor {
  if (!(t instanceof Tensor)) fail('ERR_ARG', `${op}: ${name} must be a Tensor, got ${describe(t)}`);
  if (t.isDisposed) fail('ERR_DISPOSED', `${op}: ${name} of shape ${fmtShape(t.shape)} was disposed`);
  return t;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

export function checkInt(v: unknown, op: string, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) fail('ERR_ARG', `${op}: ${name} must be an integer, got ${String(v)}`);
  return v;
}

export function checkNumber(v: unknown, op: string, name: string): number {
  if (typeof v !== 'number') fail('ERR_ARG', `${op}: ${name} must be a number, got ${describe(v)}`);
  return v;
}

/** A dim in [-ndim, ndim), made non-negative. A 0-dim tensor accepts 0 and -1. */
export function normalizeDim(dim: unknown, ndim: number, op: string): number {
  const d = checkInt(dim, op, 'dim');
  const range = Math.max(ndim, 1);
  if (d < -range || d >= range) fail('ERR_INDEX', `${op}: dim ${d} is out of range for a tensor with ${ndim} dims`);
  return d < 0 ? d + range : d;
}

/** undefined = every dim; a number or a list otherwise; sorted, without repeats. */
export function normalizeDims(dims: number | readonly number[] | undefined, ndim: number, op: string): number[] {
  if (dims === undefined) return Array.from({ length: ndim }, (_, i) => i);
  const list = typeof dims === 'number' ? [dims] : dims;
  if (!Array.isArray(list)) fail('ERR_ARG', `${op}: dim must be an integer or an array of integers`);
  const out = list.map((d) => normalizeDim(d, ndim, op));
  if (new Set(out).size !== out.length) fail('ERR_ARG', `${op}: dim ${fmtShape(list)} repeats a dim`);
  return out.sort((a, b) => a - b);
}

/** Sizes: non-negative integers. */
export function checkShape(shape: unknown, op: string): number[] {
  if (!Array.isArray(shape)) fail('ERR_ARG', `${op}: shape must be an array of integers`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      fail('ERR_ARG', `${op}: shape ${fmtShape(shape)} must hold non-negative integers`);
    }
  }
  return shape as number[];
}

/** NumPy broadcasting of two shapes. */
export function broadcastShapes(a: readonly number[], b: readonly number[], op: string): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da !== db && da !== 1 && db !== 1) {
      fail('ERR_SHAPE', `${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast together`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function checkSameDevice(op: string, ...tensors: Tensor[]): void {
  for (const t of tensors) {
    if (t.device !== tensors[0].device) {
      fail('ERR_DEVICE', `${op}: expected tensors on one device, got ${tensors.map((x) => x.device).join(' and ')}`);
    }
  }
}


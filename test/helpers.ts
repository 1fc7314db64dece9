/**
 * Test helpers: deterministic random data, float64 references in plain TypeScript, inputs in
 * several memory layouts (contiguous, transposed, strided, broadcast), tolerant comparison and
 * error-code checks, temporary folders. Not a test file itself (ava runs *.test.ts only).
 */
import type { ExecutionContext } from 'ava';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ig from '../lib';
import { DType, IgnisError, Tensor } from '../lib';

/**
 * A device that does not exist here, for ERR_DEVICE checks: 'cuda' without CUDA, a CUDA index
 * past the last device with it.
 */
export const UNAVAILABLE_DEVICE: ig.Device = ig.cuda.isAvailable() ? `cuda:${ig.cuda.deviceCount()}` : 'cuda';

/** t on a CUDA device where there is one (for mixed-device checks), else null. */
export function onCuda(t: Tensor): Tensor | null {
  return ig.cuda.isAvailable() ? t.cuda() : null;
}

/** A small deterministic generator (mulberry32) for test data and shapes. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform in [lo, hi). */
  uniform(lo = -1, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
}

/** A row-major float64 array with its shape: the reference side of every comparison. */
export interface Ref {
  shape: number[];
  data: Float64Array;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function rowMajorStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/** Multi-index of flat position `i` in `shape`. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return idx;
}

/** A random shape of 0..maxDims dims with sizes 1..maxSize. */
export function randomShape(rng: Rng, maxDims = 4, maxSize = 5, minDims = 0): number[] {
  const n = rng.int(minDims, maxDims);
  return Array.from({ length: n }, () => rng.int(1, maxSize));
}

/** The values of a tensor as a float64 Ref (any dtype). */
export function refOf(t: Tensor): Ref {
  const wide = t.to('float64');
  const data = wide.data() as Float64Array;
  wide.dispose();
  return { shape: t.shape.slice(), data };
}

export function refFromFn(shape: number[], f: (i: number) => number): Ref {
  const data = new Float64Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = f(i);
  return { shape, data };
}

export type Layout = 'contiguous' | 'transposed' | 'strided' | 'broadcast';
export const LAYOUTS: readonly Layout[] = ['contiguous', 'transposed', 'strided', 'broadcast'];

/**
 * A tensor of `shape` and `dtype` holding `values` (row-major), laid out in memory as `layout`:
 * - contiguous: plain;
 * - transposed: a permuted view of a contiguous tensor (last two dims swapped in memory);
 * - strided: every other element of a larger tensor along each dim;
 * - broadcast: the first dim > 1 holds one row, expanded (values are made to match).
 * Returns the tensor and the reference values it holds (rounded to the dtype). The views are
 * made on `device`, so that a kernel there sees the layout.
 */
export function makeTensor(values: Ref, dtype: DType, layout: Layout, device: ig.Device = 'cpu'): { t: Tensor; ref: Ref } {
  const { shape } = values;
  let data = values.data;
  if (layout === 'broadcast') {
    const d = shape.findIndex((s) => s > 1);
    if (d >= 0) {
      // every index along d takes the values at index 0
      const strides = rowMajorStrides(shape);
      data = data.map((_, i) => {
        const idx = unravel(i, shape);
        return values.data[i - idx[d] * strides[d]];
      });
      const rowShape = shape.slice();
      rowShape[d] = 1;
      const rowData = new Float64Array(numel(rowShape));
      for (let i = 0; i < rowData.length; i++) {
        const idx = unravel(i, rowShape);
        rowData[i] = values.data[idx.reduce((acc, v, k) => acc + v * strides[k], 0)];
      }
      const base = ig.tensor(rowData, { shape: rowShape, device }).to(dtype);
      const t = base.expand(...shape);
      base.dispose();
      return { t, ref: refOf(t) };
    }
  }
  if (layout === 'transposed' && shape.length >= 2) {
    const n = shape.length;
    const perm = Array.from({ length: n }, (_, i) => i);
    [perm[n - 2], perm[n - 1]] = [perm[n - 1], perm[n - 2]];
    const base = ig.tensor(data, { shape, device }).to(dtype);
    const swapped = base.permute(...perm).contiguous();
    const t = swapped.permute(...perm);
    base.dispose();
    swapped.dispose();
    return { t, ref: refOf(t) };
  }
  if (layout === 'strided' && shape.length >= 1) {
    const bigShape = shape.map((s) => 2 * s);
    const big = new Float64Array(numel(bigShape));
    const bigStrides = rowMajorStrides(bigShape);
    for (let i = 0; i < data.length; i++) {
      const idx = unravel(i, shape);
      big[idx.reduce((acc, v, k) => acc + 2 * v * bigStrides[k], 0)] = data[i];
    }
    let t = ig.tensor(big, { shape: bigShape, device }).to(dtype);
    for (let d = 0; d < shape.length; d++) {
      const next = t.slice(d, 0, undefined, 2);
      t.dispose();
      t = next;
    }
    return { t, ref: refOf(t) };
  }
  const base = ig.tensor(data, { shape, device });
  const t = base.to(dtype);
  base.dispose();
  return { t, ref: refOf(t) };
}

/** Random values of `shape` in [lo, hi), as a tensor in `layout` (on `device`) plus its reference. */
export function randomTensor(
  rng: Rng,
  shape: number[],
  dtype: DType = 'float32',
  layout: Layout = 'contiguous',
  lo = -1,
  hi = 1,
  device: ig.Device = 'cpu',
) {
  return makeTensor(refFromFn(shape, () => rng.uniform(lo, hi)), dtype, layout, device);
}

/** Random values in a contiguous tensor of `baseShape` seen through a random permutation of its dims. */
export function permutedTensor(rng: Rng, baseShape: number[], dtype: DType = 'float32'): { t: Tensor; ref: Ref } {
  const perm = baseShape.map((_, i) => i);
  for (let i = perm.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const base = randomTensor(rng, baseShape, dtype);
  const t = base.t.permute(...perm);
  base.t.dispose();
  return { t, ref: refOf(t) };
}

/** Reference elementwise op with NumPy broadcasting. */
export function refBroadcast(a: Ref, b: Ref, f: (x: number, y: number) => number): Ref {
  const n = Math.max(a.shape.length, b.shape.length);
  const pad = (s: number[]) => [...Array(n - s.length).fill(1), ...s];
  const sa = pad(a.shape);
  const sb = pad(b.shape);
  const shape = sa.map((d, i) => (d === 1 ? sb[i] : d));
  const ra = rowMajorStrides(sa);
  const rb = rowMajorStrides(sb);
  return refFromFn(shape, (i) => {
    const idx = unravel(i, shape);
    let ia = 0;
    let ib = 0;
    for (let d = 0; d < n; d++) {
      if (sa[d] !== 1) ia += idx[d] * ra[d];
      if (sb[d] !== 1) ib += idx[d] * rb[d];
    }
    return f(a.data[ia], b.data[ib]);
  });
}

export function refMap(a: Ref, f: (x: number) => number): Ref {
  return { shape: a.shape.slice(), data: a.data.map(f) };
}

/** Default tolerances per dtype: [rtol, atol]. */
export function tolerance(dtype: DType): [number, number] {
  switch (dtype) {
    case 'float64':
      return [1e-12, 1e-12];
    case 'float32':
      return [1e-5, 1e-6];
    case 'float16':
      return [2e-3, 1e-3];
    case 'bfloat16':
      return [1e-2, 1e-2];
    default:
      return [0, 0];
  }
}

/** Checks shape and values of `actual` against `expected` (NaN matches NaN, infinities must be equal). */
export function assertClose(
  t: ExecutionContext,
  actual: Tensor,
  expected: Ref,
  tol: [number, number] = tolerance(actual.dtype),
  what = '',
): void {
  t.deepEqual(actual.shape.slice(), expected.shape, `${what} shape`);
  const got = refOf(actual).data;
  const [rtol, atol] = tol;
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    const e = expected.data[i];
    if (Number.isNaN(e) ? Number.isNaN(g) : !Number.isFinite(e) ? g === e : Math.abs(g - e) <= atol + rtol * Math.abs(e)) continue;
    const excess = Number.isFinite(e) ? Math.abs(g - e) - (atol + rtol * Math.abs(e)) : Infinity;
    if (worst < 0 || excess > worstExcess) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    t.fail(
      `${what} mismatch at [${unravel(worst, expected.shape).join(', ')}]: got ${got[worst]}, expected ${expected.data[worst]} ` +
        `(rtol ${rtol}, atol ${atol}, dtype ${actual.dtype}, shape [${expected.shape.join(', ')}])`,
    );
  } else {
    t.pass();
  }
}

/** Asserts fn throws an IgnisError with `code`. */
export function assertCode(t: ExecutionContext, fn: () => unknown, code: ig.ErrorCode, message?: RegExp): void {
  const err = t.throws(fn, { instanceOf: IgnisError }) as IgnisError | undefined;
  if (err) {
    t.is(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    if (message) t.regex(err.message, message);
  }
}

/** A new empty folder under the system's temporary folder, removed when the test ends. */
export function tempDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * `actual` (on any device) against `expected`: dtype, shape, and the relative error of the values,
 * ||actual - expected|| / ||expected|| over all elements (the plain norm when expected is zero).
 */
export function assertRelative(t: ExecutionContext, actual: Tensor, expected: Tensor, what: string, allowed: number): void {
  t.is(actual.dtype, expected.dtype, what);
  t.deepEqual(actual.shape, expected.shape, what);
  const x = ig.tidy(() => refOf(actual.to('cpu')).data);
  const y = refOf(expected).data;
  let [num, den] = [0, 0];
  for (let i = 0; i < y.length; i++) {
    num += (x[i] - y[i]) ** 2;
    den += y[i] ** 2;
  }
  const error = den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
  t.true(error <= allowed, `${what}: relative error ${error} (allowed ${allowed})`);
}

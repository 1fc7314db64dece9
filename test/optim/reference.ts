/**
 * float64 references of the optimizers (PyTorch's update rules written out per element) and
 * helpers shared by the optimizer tests. Not a test file itself.
 */
import * as ig from '../../lib';
import { DType, Tensor } from '../../lib';
import { Rng, refOf, tolerance } from '../helpers';

/** Rounds float64 values to what a tensor of `dtype` stores. */
export function rounder(dtype: DType): (x: Float64Array) => Float64Array {
  if (dtype === 'float64') return (x) => x;
  if (dtype === 'float32') return (x) => x.map(Math.fround);
  return (x) => {
    const t = ig.tensor(x, { dtype });
    const r = refOf(t).data;
    t.dispose();
    return r;
  };
}

/** The state dtype of a param: float32 for 16-bit params. */
export function stateOf(dtype: DType): DType {
  return dtype === 'bfloat16' || dtype === 'float16' ? 'float32' : dtype;
}

export function valuesOf(t: Tensor): Float64Array {
  return refOf(t).data;
}

/** The stored elements, exactly (16-bit floats as their bit patterns). */
export function bitsOf(t: Tensor): number[] {
  return Array.from(t.data() as ArrayLike<number>);
}

export function randomValues(rng: Rng, n: number, lo = -1, hi = 1): Float64Array {
  return Float64Array.from({ length: n }, () => rng.uniform(lo, hi));
}

/** A float64 model of one param and its AdamW state, rounded as the tensors store them. */
export class AdamWRef {
  m: Float64Array;
  v: Float64Array;
  step = 0;
  constructor(
    public p: Float64Array,
    private readonly dtype: DType,
  ) {
    this.m = new Float64Array(p.length);
    this.v = new Float64Array(p.length);
  }

  update(g: Float64Array, o: { lr: number; betas: [number, number]; eps: number; weightDecay: number }): void {
    const [b1, b2] = o.betas;
    this.step++;
    const bc1 = 1 - b1 ** this.step;
    const bc2 = 1 - b2 ** this.step;
    const p = this.p.slice();
    for (let i = 0; i < p.length; i++) {
      p[i] *= 1 - o.lr * o.weightDecay;
      this.m[i] = b1 * this.m[i] + (1 - b1) * g[i];
      this.v[i] = b2 * this.v[i] + (1 - b2) * g[i] * g[i];
      const mHat = this.m[i] / bc1;
      const vHat = this.v[i] / bc2;
      p[i] -= (o.lr * mHat) / (Math.sqrt(vHat) + o.eps);
    }
    const state = rounder(stateOf(this.dtype));
    this.m = state(this.m);
    this.v = state(this.v);
    this.p = rounder(this.dtype)(p);
  }
}

/** A float64 model of one param and its SGD momentum buffer. */
export class SGDRef {
  buf: Float64Array | null = null;
  constructor(
    public p: Float64Array,
    private readonly dtype: DType,
  ) {}

  update(g: Float64Array, o: { lr: number; momentum: number; dampening: number; weightDecay: number; nesterov: boolean }): void {
    const p = this.p.slice();
    const d = g.map((gi, i) => gi + o.weightDecay * p[i]);
    if (o.momentum !== 0) {
      const buf = this.buf === null ? d.slice() : this.buf.map((b, i) => o.momentum * b + (1 - o.dampening) * d[i]);
      this.buf = rounder(stateOf(this.dtype))(buf);
      for (let i = 0; i < d.length; i++) d[i] = o.nesterov ? d[i] + o.momentum * buf[i] : buf[i];
    }
    for (let i = 0; i < p.length; i++) p[i] -= o.lr * d[i];
    this.p = rounder(this.dtype)(p);
  }
}

/** Tolerances for params after several steps: the per-dtype ones, with float16's atol widened to one rounding step. */
export function stepTolerance(dtype: DType): [number, number] {
  const [rtol, atol] = tolerance(dtype);
  return dtype === 'float16' ? [rtol, 2e-3] : [rtol, atol];
}

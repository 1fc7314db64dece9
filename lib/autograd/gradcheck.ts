/**
 * gradcheck: compares the gradients backward() computes with central finite differences, in
 * float64, as PyTorch's torch.autograd.gradcheck.
 */
import { fail } from '../errors';
import { tidy } from '../memory';
import { checkTensor, fmtShape } from '../ops/check';
import { tensor } from '../ops/creation';
import { Tensor } from '../tensor';
import { enableGrad, noGrad } from './graph';

/** Options of {@link gradcheck}. */
export interface GradcheckOptions {
  /** The step of the central differences. Default 1e-6. */
  eps?: number;
  /** Absolute tolerance. Default 1e-5. */
  atol?: number;
  /** Relative tolerance, against the finite difference. Default 1e-3. */
  rtol?: number;
}

/** Weights of the non-scalar outputs: fixed, so that a failure can be reproduced. */
function weights(n: number): Float64Array {
  const out = new Float64Array(n);
  let state = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = 0.5 + state / 4294967296; // in [0.5, 1.5): never close to 0
  }
  return out;
}

function positionOf(i: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    index[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return index;
}

function checkOutput(out: unknown): Tensor {
  if (!(out instanceof Tensor)) fail('ERR_ARG', 'gradcheck: fn must return a Tensor');
  if (out.dtype !== 'float64') fail('ERR_DTYPE', `gradcheck: fn must return a float64 tensor, got ${out.dtype}`);
  return out;
}

/**
 * Checks the gradients of `fn` at `inputs` against central finite differences. Every input that
 * requires grad must be float64 and is checked element by element: the analytic gradient comes
 * from backward() of sum(fn(...inputs) * v), with v fixed weights in [0.5, 1.5) (v = 1 for a
 * one-element output), the numerical one from (f(x + eps) - f(x - eps)) / (2 eps) on copies of
 * the inputs with that element moved. Other inputs (indices, constants) are passed as they are.
 * Returns true, or throws an IgnisError (ERR_GRAD) naming the input, the element and both values
 * when |analytic - numerical| > atol + rtol * |numerical|. The inputs' `.grad` are left as they were.
 */
export function gradcheck(fn: (...inputs: Tensor[]) => Tensor, inputs: Tensor[], opts: GradcheckOptions = {}): boolean {
  const op = 'gradcheck';
  if (typeof fn !== 'function') fail('ERR_ARG', `${op}: fn must be a function`);
  if (!Array.isArray(inputs)) fail('ERR_ARG', `${op}: inputs must be an array of tensors`);
  inputs.forEach((t, k) => checkTensor(t, op, `input ${k}`));
  const { eps = 1e-6, atol = 1e-5, rtol = 1e-3 } = opts;
  for (const [name, v] of Object.entries({ eps, atol, rtol })) {
    if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) fail('ERR_ARG', `${op}: ${name} must be a finite number >= 0`);
  }
  const checked = inputs.map((t, k) => k).filter((k) => inputs[k].requiresGrad);
  if (checked.length === 0) fail('ERR_ARG', `${op}: no input requires grad; call requiresGrad_() on those to check`);
  for (const k of checked) {
    if (inputs[k].dtype !== 'float64') fail('ERR_DTYPE', `${op}: input ${k} must be float64, got ${inputs[k].dtype}`);
  }

  // Analytic: backward of sum(out * v), from clean gradients; the caller's come back afterwards.
  const previous = inputs.map((t) => t.grad);
  for (const t of inputs) t.grad = null;
  let analytic: Float64Array[];
  let v: Float64Array;
  try {
    const out = enableGrad(() => checkOutput(fn(...inputs)));
    v = out.numel === 1 ? new Float64Array([1]) : weights(out.numel);
    try {
      if (!out.requiresGrad) fail('ERR_GRAD', `${op}: the output does not depend on an input that requires grad`);
      const seed = tensor(v, { dtype: 'float64', shape: out.shape.slice() });
      try {
        out.backward(seed);
      } finally {
        seed.dispose();
      }
    } finally {
      out.dispose();
    }
    analytic = inputs.map((t) => (t.grad === null ? new Float64Array(t.numel) : (t.grad.data() as Float64Array)));
  } finally {
    inputs.forEach((t, k) => {
      t.grad?.dispose();
      t.grad = previous[k];
    });
  }

  // Numerical: f(x) = sum(fn(...) * v) at copies of the inputs with one element moved.
  const objective = (moved: Tensor[]) =>
    tidy(() => {
      const values = checkOutput(fn(...moved)).data() as Float64Array;
      let total = 0;
      for (let i = 0; i < values.length; i++) total += values[i] * v[i];
      return total;
    });
  noGrad(() => {
    for (const k of checked) {
      const x = inputs[k];
      const base = x.data() as Float64Array;
      const at = (i: number, delta: number) => {
        const data = base.slice();
        data[i] += delta;
        const copy = tensor(data, { dtype: 'float64', shape: x.shape.slice() });
        try {
          return objective(inputs.map((t, j) => (j === k ? copy : t)));
        } finally {
          copy.dispose();
        }
      };
      for (let i = 0; i < base.length; i++) {
        const numerical = (at(i, eps) - at(i, -eps)) / (2 * eps);
        const got = analytic[k][i];
        if (!(Math.abs(got - numerical) <= atol + rtol * Math.abs(numerical))) {
          fail(
            'ERR_GRAD',
            `${op}: gradient of input ${k} (shape ${fmtShape(x.shape)}) at element [${positionOf(i, x.shape).join(', ')}]: ` +
              `analytic ${got}, numerical ${numerical} (atol ${atol}, rtol ${rtol}, eps ${eps})`,
          );
        }
      }
    }
  });
  return true;
}

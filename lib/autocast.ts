/**
 * Automatic mixed precision, as `torch.autocast`: inside `autocast(dtype, fn)`, the matrix
 * products (matmul, linear, the LoRA layer, attention) run in a 16-bit dtype, their
 * floating-point inputs cast to it (differentiably: gradients flow back in each input's own
 * dtype), and the ops PyTorch keeps in float32 (softmax, logSoftmax, the losses, layerNorm,
 * rmsNorm) take float32 inputs and give float32 results. float64 tensors are left as they are.
 */
import { DType, isFloat } from './dtype';
import { fail } from './errors';
import type { Tensor } from './tensor';

/** The dtypes {@link autocast} runs products in. */
export type AutocastDType = 'bfloat16' | 'float16';

let current: AutocastDType | null = null;

/**
 * Runs `fn` with its matrix products in `dtype` (`null`: without autocast, to leave it for a
 * part of the code) and returns what fn returns. Nested calls take the innermost dtype; the
 * previous state comes back when fn returns or throws. fn must be synchronous: code after an
 * `await` in it runs outside the autocast region.
 */
export function autocast<T>(dtype: AutocastDType | null, fn: () => T): T {
  if (dtype !== null && dtype !== 'bfloat16' && dtype !== 'float16') {
    fail('ERR_DTYPE', `autocast: expected 'bfloat16', 'float16' or null, got ${String(dtype)}`);
  }
  if (typeof fn !== 'function') fail('ERR_ARG', 'autocast: expected a function');
  const previous = current;
  current = dtype;
  try {
    return fn();
  } finally {
    current = previous;
  }
}

/** The dtype products run in now, or null outside {@link autocast}. */
export function autocastDtype(): AutocastDType | null {
  return current;
}

/** Whether autocast would cast a tensor of `dtype` (float32, bfloat16, float16: not float64, not integers). */
function eligible(dtype: DType): boolean {
  return isFloat(dtype) && dtype !== 'float64';
}

/**
 * @internal The inputs of a matrix product as autocast wants them: each eligible tensor cast to
 * the autocast dtype (null and undefined pass through), or the inputs themselves outside
 * autocast. `cast` is the differentiable conversion (`to`), given to avoid an import cycle.
 * The caller disposes the casts it made (see {@link withCasts}).
 */
export function castForProduct<L extends (Tensor | null | undefined)[]>(cast: (t: Tensor, dtype: DType) => Tensor, ...inputs: L): L {
  const dtype = current;
  if (dtype === null || !inputs.some((t) => t && eligible(t.dtype) && t.dtype !== dtype)) return inputs;
  return inputs.map((t) => (t && eligible(t.dtype) && t.dtype !== dtype ? cast(t, dtype) : t)) as L;
}

/** @internal An input of an op PyTorch's autocast runs in float32: cast to float32 inside autocast when 16-bit. */
export function castToFloat32(cast: (t: Tensor, dtype: DType) => Tensor, t: Tensor): Tensor {
  return current !== null && (t.dtype === 'bfloat16' || t.dtype === 'float16') ? cast(t, 'float32') : t;
}

/** @internal fn's result, with the tensors of `casts` that are not among `originals` (the ones castForProduct or castToFloat32 made) disposed after it. */
export function withCasts<T>(casts: readonly (Tensor | null | undefined)[], originals: readonly (Tensor | null | undefined)[], fn: () => T): T {
  try {
    return fn();
  } finally {
    casts.forEach((t, i) => {
      if (t && t !== originals[i]) t.dispose();
    });
  }
}

/**
 * Error codes carried by {@link IgnisError}:
 * - `ERR_SHAPE`: mismatched shapes, a bad broadcast, a view that needs a copy;
 * - `ERR_DTYPE`: an unsupported or mismatched dtype;
 * - `ERR_DEVICE`: mixed or unavailable devices;
 * - `ERR_DISPOSED`: a tensor used after `dispose()`;
 * - `ERR_INDEX`: an index or dim out of range;
 * - `ERR_ARG`: a wrong argument (type, NaN, negative or non-integer size, bad option);
 * - `ERR_GRAD`: autograd misuse: `backward()` on a tensor that does not require grad, on a
 *   non-scalar without a gradient, or a second time through a graph already backpropagated
 *   without `retainGraph`; a failed `gradcheck`;
 * - `ERR_IO`, `ERR_OOM`, `ERR_CUDA`, `ERR_DIST`, `ERR_TIMEOUT`, `ERR_INTERNAL`.
 */
export type ErrorCode =
  | 'ERR_SHAPE'
  | 'ERR_DTYPE'
  | 'ERR_DEVICE'
  | 'ERR_DISPOSED'
  | 'ERR_INDEX'
  | 'ERR_ARG'
  | 'ERR_GRAD'
  | 'ERR_IO'
  | 'ERR_OOM'
  | 'ERR_CUDA'
  | 'ERR_DIST'
  | 'ERR_TIMEOUT'
  | 'ERR_INTERNAL';

/**
 * The one error type ignis throws. `code` tells what went wrong (see {@link ErrorCode});
 * the message names the op and the shapes, dtypes or devices involved.
 */
export class IgnisError extends Error {
  readonly code: ErrorCode;
  constructor(message: string, code: ErrorCode) {
    super(message);
    this.name = 'IgnisError';
    this.code = code;
  }
}

/** Throws an {@link IgnisError}. */
export function fail(code: ErrorCode, message: string): never {
  throw new IgnisError(message, code);
}

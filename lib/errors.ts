/** Error codes carried by {@link IgnisError}. */
export type ErrorCode =
  | 'ERR_SHAPE'
  | 'ERR_DTYPE'
  | 'ERR_DEVICE'
  | 'ERR_DISPOSED'
  | 'ERR_INDEX'
  | 'ERR_ARG'
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

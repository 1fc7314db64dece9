import { fail } from './errors';

/** Element types. 16-bit floats are stored as such and computed in float32. */
export type DType = 'float32' | 'float64' | 'bfloat16' | 'float16' | 'int32' | 'int64' | 'bool';

/** In the order of the native enum: a dtype's code is its index here. */
export const DTYPES: readonly DType[] = ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'int64', 'bool'];
const CODES: Record<DType, number> = { float32: 0, float64: 1, bfloat16: 2, float16: 3, int32: 4, int64: 5, bool: 6 };
const SIZES: Record<DType, number> = { float32: 4, float64: 8, bfloat16: 2, float16: 2, int32: 4, int64: 8, bool: 1 };

/** What `data()` returns for each dtype: bfloat16 and float16 come back as their raw 16-bit patterns. */
export type TypedArrayFor = {
  float32: Float32Array;
  float64: Float64Array;
  bfloat16: Uint16Array;
  float16: Uint16Array;
  int32: Int32Array;
  int64: BigInt64Array;
  bool: Uint8Array;
};
export type DataArray = TypedArrayFor[DType];

export const TYPED_ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  bfloat16: Uint16Array,
  float16: Uint16Array,
  int32: Int32Array,
  int64: BigInt64Array,
  bool: Uint8Array,
} as const;

export function dtypeCode(dtype: DType): number {
  return CODES[dtype];
}

export function dtypeSize(dtype: DType): number {
  return SIZES[dtype];
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'bfloat16' || dtype === 'float16';
}

export function isInt(dtype: DType): boolean {
  return dtype === 'int32' || dtype === 'int64';
}

/** Checks a user-given dtype name. */
export function checkDType(dtype: unknown, op: string): DType {
  if (typeof dtype !== 'string' || !(dtype in CODES)) {
    fail('ERR_DTYPE', `${op}: unknown dtype ${String(dtype)}; expected one of ${DTYPES.join(', ')}`);
  }
  return dtype as DType;
}

const RANK: Record<DType, number> = { bool: 0, int32: 1, int64: 2, float16: 3, bfloat16: 3, float32: 4, float64: 5 };

/**
 * The dtype of an op on two tensors, as PyTorch promotes: bool < int32 < int64 < 16-bit floats <
 * float32 < float64; bfloat16 with float16 gives float32.
 */
export function promoteTypes(a: DType, b: DType): DType {
  if (a === b) return a;
  if ((a === 'bfloat16' && b === 'float16') || (a === 'float16' && b === 'bfloat16')) return 'float32';
  return RANK[a] >= RANK[b] ? a : b;
}

/** The dtype of a tensor combined with a JS number: an int or bool tensor with a fractional number becomes float32. */
export function promoteWithScalar(dtype: DType, scalar: number): DType {
  if (isFloat(dtype)) return dtype;
  if (!Number.isInteger(scalar)) return 'float32';
  return dtype === 'bool' ? 'int64' : dtype;
}

// Matrix products with PyTorch's matmul semantics, and linear (x @ w^T + bias), through BLAS.
// Operands whose last two dims are row- or column-major go to BLAS as they are (a transpose flag
// and a leading dim); only other layouts are copied. Batch dims broadcast through per-matrix
// offsets, so no batch layout forces a copy.
#pragma once
#include "core/tensor.h"

namespace ignis {

// matmul(a, b): 1-D x 1-D is a dot product (0-dim result), 2-D x 2-D a matrix product, a 1-D
// operand gets a dim prepended (a) or appended (b) that the result drops, and N-D operands
// broadcast their batch dims (all but the last two). Floating-point dtypes only; bfloat16 and
// float16 are computed in float32.
TensorPtr matmul(const TensorPtr& a, const TensorPtr& b);
// linear(x, w, bias): x [..., in] @ w^T with w [out, in], plus bias [out] when not null.
TensorPtr linear(const TensorPtr& x, const TensorPtr& w, const TensorPtr& bias);

// One operand of a batched GEMM: each matrix is row-major with rows `ld` elements apart, or
// column-major (trans) with columns `ld` elements apart.
struct GemmOperand {
  const void* data;
  bool trans;
  int64_t ld;
  Shape batch_strides;  // elements, one per batch dim; 0 where the operand is broadcast
};

// out[i] = alpha * a[i] @ b[i] for every index i of `batch`, or out[i] += alpha * a[i] @ b[i] when
// `accumulate`; a[i] is m x k, b[i] is k x n, out is contiguous [batch..., m, n]. Sizes and
// leading dims fit BLAS's 32-bit ints; m, n, k > 0.
struct Gemm {
  int64_t m, n, k;
  Shape batch;
  GemmOperand a, b;
  void* out;
  bool accumulate;
  double alpha = 1;
  Device device = {};  // where the operands and out live
};

// t (2 dims or more) in `dtype` with its last two dims in a BLAS form: t itself when it already
// is, otherwise a copy (a conversion keeps a column-major operand column-major).
TensorPtr blas_operand(const TensorPtr& t, DType dtype);
// The GEMM operand of t, whose last two dims are in a BLAS form (see blas_operand), for a
// product over the batch dims `batch` (empty for a single 2-D product).
GemmOperand gemm_operand(const TensorPtr& t, const Shape& batch);

// Operands matmul, linear and the LoRA ops have copied because their layout had no BLAS form (a
// diagnostic that shows transposed views go through without a copy).
int64_t matmul_operand_copies();

}  // namespace ignis

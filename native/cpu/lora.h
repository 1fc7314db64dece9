// CPU kernels of the LoRA linear layer y = x w^T (+ bias) + scale * dropout(x) a^T b^T, with
// x [n, in], a frozen weight w [out, in], adapters a [r, in] and b [out, r]. Every product is a
// BLAS GEMM (cpu::gemm); a LoRA term is added into its base product's output by a GEMM with
// beta = 1, so no output gets a separate pass. The skinny LoRA products (r on one side) are
// split over the thread pool by rows, or by the inner dim into partial products that are then
// summed (db and da), with OpenBLAS on one thread per part.
#pragma once
#include "core/matmul.h"

namespace ignis::cpu {

// The 2-D operands of one layer, in a BLAS form (GemmOperand without batch dims) and in the
// compute dtype; the adapters come with each call, laid out for it.
struct LoraOperands {
  int64_t n, in, out, r;
  GemmOperand x;       // [n, in]
  GemmOperand x_drop;  // dropout(x) [n, in]; the same as x without dropout
  GemmOperand w;       // [out, in]
  double scale;
  Device device = {};  // where the operands live
};

// With a_t = A^T [in, r] and b_t = B^T [r, out]: y [n, out] = x w^T + scale * xa b_t (=), or +=
// when y_holds_bias (y then holds the bias, broadcast), where xa [n, r] = x_drop a_t (=); one
// product is written and the other accumulated onto it by its GEMM (the order is the backend's).
void lora_forward(DType dtype, const LoraOperands& p, const GemmOperand& a_t, const GemmOperand& b_t, void* y, bool y_holds_bias,
                  void* xa);

// With a = A [r, in], b = B [out, r], dy [n, out] and the forward's xa [n, r]: dy_b [n, r] = dy b
// (=, computed once), db [out, r] = scale * dy^T xa (=), da [r, in] = scale * dy_b^T x_drop (=);
// da and db are in accumulation_dtype(dtype) (float32 for 16-bit dtypes: the adapters' updates
// are not rounded to 16 bits). When dx (contiguous, x's shape) is not null: dx = dy w +
// scale * dy_b a, one product written and the other accumulated onto it by its GEMM; with a mask
// (broadcasting to dx), the dropout's backward multiplies the LoRA term, so dx = scale * dy_b a
// (=), dx *= mask (in place), then dx += dy w. No gradient for w.
void lora_backward(DType dtype, const LoraOperands& p, const GemmOperand& a, const GemmOperand& b, const GemmOperand& dy,
                   const GemmOperand& xa, void* dy_b, const TensorPtr& dx, const TensorPtr& mask, void* da, void* db);

// delta [out, in] = scale * b a (=), b [out, r] and a [r, in] in a BLAS form on `device`.
void lora_delta(DType dtype, Device device, int64_t out, int64_t in, int64_t r, const GemmOperand& b, const GemmOperand& a, double scale,
                void* delta);

// Whether every element of a contiguous float32 or float64 tensor is finite.
bool all_finite(const TensorPtr& t);

// w += delta elementwise (=, in place), both contiguous of one shape; w of any float dtype,
// delta float32 or float64. The sum is computed in the wider of the two and rounded once.
void add_into(const TensorPtr& w, const TensorPtr& delta);

// out = dropout_mask_value(uniform, 1 - p, 1 / (1 - p)) (=), both contiguous of one shape and dtype.
void dropout_mask(const TensorPtr& out, const TensorPtr& uniform, double p);

}  // namespace ignis::cpu

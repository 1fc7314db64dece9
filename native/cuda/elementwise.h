// CUDA kernels of the elementwise family, with the contracts of cpu/elementwise.h (outputs
// written, fresh and contiguous; inputs with any strides, broadcast to the output's shape).
// The per-element math is kernels/elementwise.h, shared with the CPU.
#pragma once
#include "core/tensor.h"
#include "kernels/elementwise.h"

namespace ignis::cuda {

// elementwise.cu
void binary(BinaryOp op, const TensorPtr& out, const TensorPtr& a, const TensorPtr& b);
void binary_scalar(BinaryOp op, const TensorPtr& out, const TensorPtr& a, double s, bool reversed);
void binary_backward(BinaryGrad op, const TensorPtr& out, const TensorPtr& grad, const TensorPtr& self, const TensorPtr& other);
// unary.cu
void unary(UnaryOp op, const TensorPtr& out, const TensorPtr& a);
void clamp(const TensorPtr& out, const TensorPtr& a, double lo, double hi);
void unary_backward(UnaryOp op, const TensorPtr& out, const TensorPtr& grad, const TensorPtr& saved);
void clamp_backward(const TensorPtr& out, const TensorPtr& grad, const TensorPtr& a, double lo, double hi);
// compare.cu
void compare(CompareOp op, const TensorPtr& out, const TensorPtr& a, const TensorPtr& b);
void compare_scalar(CompareOp op, const TensorPtr& out, const TensorPtr& a, double s);
void where(const TensorPtr& out, const TensorPtr& condition, const TensorPtr& a, const TensorPtr& b);

}  // namespace ignis::cuda

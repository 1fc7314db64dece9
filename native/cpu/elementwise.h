// CPU kernels of the elementwise family. Every output is written (`=`), never accumulated; out
// is fresh and contiguous with the op's (broadcast) shape, inputs may have any strides.
#pragma once
#include "core/tensor.h"
#include "kernels/elementwise.h"

namespace ignis::cpu {

// out = a op b; a, b and out of one dtype.
void binary(BinaryOp op, const TensorPtr& out, const TensorPtr& a, const TensorPtr& b);
// out = a op s (or s op a when reversed).
void binary_scalar(BinaryOp op, const TensorPtr& out, const TensorPtr& a, double s, bool reversed);
// out = the gradient of `self` in `self op other` (see kernels/elementwise.h BinaryGrad); grad,
// self and other (one float dtype) broadcast to out's shape.
void binary_backward(BinaryGrad op, const TensorPtr& out, const TensorPtr& grad, const TensorPtr& self, const TensorPtr& other);
// out = op(a); a and out of one dtype (floats, or int32/int64 for ops with `integers`).
void unary(UnaryOp op, const TensorPtr& out, const TensorPtr& a);
// out = clamp(a, lo, hi); for integer dtypes the bounds are integers or infinite, saturated.
void clamp(const TensorPtr& out, const TensorPtr& a, double lo, double hi);
// out = grad * op'(saved) (see kernels/elementwise.h); grad, saved and out of one float dtype and shape.
void unary_backward(UnaryOp op, const TensorPtr& out, const TensorPtr& grad, const TensorPtr& saved);
// out = lo <= a <= hi ? grad : 0; grad, a and out of one float dtype and shape.
void clamp_backward(const TensorPtr& out, const TensorPtr& grad, const TensorPtr& a, double lo, double hi);
// out (bool) = a op b; a and b of one dtype.
void compare(CompareOp op, const TensorPtr& out, const TensorPtr& a, const TensorPtr& b);
// out (bool) = a op s.
void compare_scalar(CompareOp op, const TensorPtr& out, const TensorPtr& a, double s);
// out = condition ? a : b; condition bool, a, b and out of one dtype.
void where(const TensorPtr& out, const TensorPtr& condition, const TensorPtr& a, const TensorPtr& b);

}  // namespace ignis::cpu

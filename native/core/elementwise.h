// Elementwise ops with broadcasting: the device-neutral entry points (validate, allocate, dispatch).
#pragma once
#include "core/tensor.h"
#include "kernels/elementwise.h"

namespace ignis {

// a op b, broadcast; a and b of one dtype and device.
TensorPtr binary(BinaryOp op, const TensorPtr& a, const TensorPtr& b);
// a op s, or s op a when `reversed`; the result has a's dtype.
TensorPtr binary_scalar(BinaryOp op, const TensorPtr& a, double s, bool reversed);

// The gradient of one operand `self` of a binary op, in the broadcast shape of grad, self and
// other (grad has the op's output shape; reducing it to self's shape is the caller's). All three
// are float tensors of one dtype and device; self and other broadcast to grad's shape.
TensorPtr binary_backward(BinaryGrad op, const TensorPtr& grad, const TensorPtr& self, const TensorPtr& other);

// neg/abs/relu keep a's dtype (int32/int64 included); the others promote int32/int64/bool to
// float32 and gelu/silu take floats only. Bool fails except where it is promoted.
TensorPtr unary(UnaryOp op, const TensorPtr& a);
// min(max(a, lo), hi); pass -inf / +inf for a missing bound. Integer tensors need integer
// bounds (saturated to the dtype's range); bool fails; NaN bounds fail.
TensorPtr clamp(const TensorPtr& a, double lo, double hi);

// grad * op'(x) for the unary op `op` (not neg, whose gradient is -grad): `saved` is the op's
// output for sqrt, rsqrt, exp, tanh, sigmoid and relu, its input x for the others (see
// kernels/elementwise.h). grad and saved: one float dtype, one shape, one device.
TensorPtr unary_backward(UnaryOp op, const TensorPtr& grad, const TensorPtr& saved);
// The gradient of clamp(a, lo, hi): grad where lo <= a <= hi, 0 elsewhere; grad and a as above.
TensorPtr clamp_backward(const TensorPtr& grad, const TensorPtr& a, double lo, double hi);

// a op b -> bool, broadcast; a and b of one dtype and device.
TensorPtr compare(CompareOp op, const TensorPtr& a, const TensorPtr& b);
// a op s -> bool. Floats compare with s rounded to a's dtype (as PyTorch); integers compare
// exactly with any s (fractional, huge or NaN).
TensorPtr compare_scalar(CompareOp op, const TensorPtr& a, double s);

// condition ? a : b, broadcast over all three. a or b may be null: then a_value / b_value is
// used, as a scalar of `dtype`; the tensors among a and b must have `dtype`.
TensorPtr where(const TensorPtr& condition, const TensorPtr& a, double a_value, const TensorPtr& b, double b_value,
                DType dtype);
// t with `value` where mask is true; mask (bool) broadcasts to t's shape, never beyond it.
TensorPtr masked_fill(const TensorPtr& t, const TensorPtr& mask, double value);

int64_t binary_op_from_int(int64_t v);
int64_t binary_grad_from_int(int64_t v);
int64_t unary_op_from_int(int64_t v);
int64_t compare_op_from_int(int64_t v);

}  // namespace ignis

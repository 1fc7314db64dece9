// Elementwise ops with broadcasting: the device-neutral entry points (validate, allocate, dispatch).
#pragma once
#include "core/tensor.h"
#include "kernels/elementwise.h"

namespace ignis {

// a op b, broadcast; a and b of one dtype and device.
TensorPtr binary(BinaryOp op, const TensorPtr& a, const TensorPtr& b);
// a op s, or s op a when `reversed`; the result has a's dtype.
TensorPtr binary_scalar(BinaryOp op, const TensorPtr& a, double s, bool reversed);

int64_t binary_op_from_int(int64_t v);

}  // namespace ignis

#pragma once
#include "core/tensor.h"
#include "kernels/elementwise_backward.h"

namespace ignis::cpu {

// out = the gradient of `self` (written, not accumulated): out is fresh and contiguous with the
// broadcast shape; grad, self and other (one float dtype) broadcast to it, any strides.
void binary_backward(BinaryGrad op, const TensorPtr& out, const TensorPtr& grad, const TensorPtr& self, const TensorPtr& other);

}  // namespace ignis::cpu

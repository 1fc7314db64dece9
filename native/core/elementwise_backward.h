// Gradients of binary elementwise ops that need their own kernel: the device-neutral entry point.
#pragma once
#include "core/tensor.h"
#include "kernels/elementwise_backward.h"

namespace ignis {

// The gradient of one operand `self` of a binary op, in the broadcast shape of grad, self and
// other (grad has the op's output shape; reducing it to self's shape is the caller's). All three
// are float tensors of one dtype and device; self and other broadcast to grad's shape.
TensorPtr binary_backward(BinaryGrad op, const TensorPtr& grad, const TensorPtr& self, const TensorPtr& other);

int64_t binary_grad_from_int(int64_t v);

}  // namespace ignis

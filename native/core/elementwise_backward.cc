#include "core/elementwise_backward.h"

#include "core/loop.h"
#include "cpu/elementwise_backward.h"

namespace ignis {

TensorPtr binary_backward(BinaryGrad op, const TensorPtr& grad, const TensorPtr& self, const TensorPtr& other) {
  const char* name = "binary backward";
  check_same_device(name, grad, self);
  check_same_device(name, grad, other);
  check_same_dtype(name, grad, self);
  check_same_dtype(name, grad, other);
  if (!is_float(grad->dtype)) fail(ERR_DTYPE, name, ": expected floating-point tensors, got ", dtype_name(grad->dtype));
  const Shape shape = broadcast_shapes(grad->shape, broadcast_shapes(self->shape, other->shape, name), name);
  TensorPtr out = empty(shape, grad->dtype, grad->device());
  cpu::binary_backward(op, out, grad, self, other);
  return out;
}

int64_t binary_grad_from_int(int64_t v) {
  if (v < 0 || v > int64_t(BinaryGrad::Minimum)) fail(ERR_ARG, "unknown binary gradient ", v);
  return v;
}

}  // namespace ignis

#include "core/elementwise.h"

#include "core/loop.h"
#include "cpu/elementwise.h"

namespace ignis {

static const char* binary_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
  return names[int(op)];
}

static void check_binary_dtype(BinaryOp op, DType dtype) {
  if (dtype == DType::Bool) fail(ERR_DTYPE, binary_name(op), ": not supported for bool tensors");
  // Integer division by zero traps; div is true division on floats (lib/ops/elementwise.ts promotes).
  if (op == BinaryOp::Div && !is_float(dtype)) fail(ERR_DTYPE, "div: integer tensors must be converted to a float dtype first");
}

TensorPtr binary(BinaryOp op, const TensorPtr& a, const TensorPtr& b) {
  const char* name = binary_name(op);
  check_same_device(name, a, b);
  check_same_dtype(name, a, b);
  check_binary_dtype(op, a->dtype);
  TensorPtr out = empty(broadcast_shapes(a->shape, b->shape, name), a->dtype, a->device());
  cpu::binary(op, out, a, b);
  return out;
}

TensorPtr binary_scalar(BinaryOp op, const TensorPtr& a, double s, bool reversed) {
  check_binary_dtype(op, a->dtype);
  TensorPtr out = empty(a->shape, a->dtype, a->device());
  cpu::binary_scalar(op, out, a, s, reversed);
  return out;
}

int64_t binary_op_from_int(int64_t v) {
  if (v < 0 || v > int64_t(BinaryOp::Minimum)) fail(ERR_ARG, "unknown binary op ", v);
  return v;
}

}  // namespace ignis

#include "core/elementwise.h"

#include <cmath>
#include "core/backend.h"
#include "core/loop.h"
#include "core/views.h"

namespace ignis {

static const char* binary_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
  return names[int(op)];
}

static const char* unary_name(UnaryOp op) {
  static const char* names[] = {"neg",  "abs",     "sqrt", "rsqrt", "exp",  "log",
                                "tanh", "sigmoid", "relu", "gelu",  "gelu", "silu"};
  return names[int(op)];
}

static const char* compare_name(CompareOp op) {
  static const char* names[] = {"eq", "ne", "lt", "le", "gt", "ge"};
  return names[int(op)];
}

static bool is_int(DType dtype) { return dtype == DType::Int32 || dtype == DType::Int64; }

// A JS number stored into an integer or bool tensor must be representable there exactly
// (converting anything else is undefined behaviour in C++).
static void check_scalar_fits(double v, DType dtype, const char* op) {
  if (is_float(dtype)) return;
  bool fits = dispatch_all(dtype, op, [v](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<acc_t<T>>) return true;
    else return representable_as<T>(v);
  });
  if (!fits)
    fail(ERR_ARG, op, ": value ", v, " cannot be converted to ", dtype_name(dtype), " without overflow or rounding");
}

// A 0-dim tensor holding `value`.
static TensorPtr scalar_tensor(double value, DType dtype, Device device, const char* op) {
  check_scalar_fits(value, dtype, op);
  TensorPtr t = empty({}, dtype, device);
  fill(t, value);
  return t;
}

static void check_binary_dtype(BinaryOp op, DType dtype) {
  if (dtype == DType::Bool) fail(ERR_DTYPE, binary_name(op), ": not supported for bool tensors");
  // Integer division by zero traps; div is true division on floats (lib/ops/elementwise.ts promotes).
  if (op == BinaryOp::Div && !is_float(dtype))
    fail(ERR_DTYPE, "div: integer tensors must be converted to a float dtype first");
}

TensorPtr binary(BinaryOp op, const TensorPtr& a, const TensorPtr& b) {
  const char* name = binary_name(op);
  check_same_device(name, a, b);
  check_same_dtype(name, a, b);
  check_binary_dtype(op, a->dtype);
  TensorPtr out = empty(broadcast_shapes(a->shape, b->shape, name), a->dtype, a->device());
  kernel(&DeviceBackend::binary, out->device(), name)(op, out, a, b);
  return out;
}

TensorPtr binary_scalar(BinaryOp op, const TensorPtr& a, double s, bool reversed) {
  check_binary_dtype(op, a->dtype);
  check_scalar_fits(s, a->dtype, binary_name(op));
  TensorPtr out = empty(a->shape, a->dtype, a->device());
  kernel(&DeviceBackend::binary_scalar, out->device(), binary_name(op))(op, out, a, s, reversed);
  return out;
}

TensorPtr binary_backward(BinaryGrad op, const TensorPtr& grad, const TensorPtr& self, const TensorPtr& other) {
  const char* name = "binary backward";
  check_same_device(name, grad, self);
  check_same_device(name, grad, other);
  check_same_dtype(name, grad, self);
  check_same_dtype(name, grad, other);
  if (!is_float(grad->dtype)) fail(ERR_DTYPE, name, ": expected floating-point tensors, got ", dtype_name(grad->dtype));
  const Shape shape = broadcast_shapes(grad->shape, broadcast_shapes(self->shape, other->shape, name), name);
  TensorPtr out = empty(shape, grad->dtype, grad->device());
  kernel(&DeviceBackend::binary_backward, out->device(), name)(op, out, grad, self, other);
  return out;
}

static bool keeps_integers(UnaryOp op) { return op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Relu; }

// The dtype unary(op, ·) gives for an input dtype, or ERR_DTYPE.
static DType unary_result_dtype(UnaryOp op, DType dtype) {
  const char* name = unary_name(op);
  if (is_float(dtype)) return dtype;
  if (keeps_integers(op)) {
    if (dtype == DType::Bool) fail(ERR_DTYPE, name, ": not supported for bool tensors");
    return dtype;
  }
  if (op == UnaryOp::Gelu || op == UnaryOp::GeluTanh || op == UnaryOp::Silu)
    fail(ERR_DTYPE, name, ": expected a floating-point tensor, got ", dtype_name(dtype));
  return DType::Float32;
}

TensorPtr unary(UnaryOp op, const TensorPtr& a) {
  DType dtype = unary_result_dtype(op, a->dtype);
  TensorPtr input = to_dtype(a, dtype);  // an alias unless int/bool is promoted
  TensorPtr out = empty(a->shape, dtype, a->device());
  kernel(&DeviceBackend::unary, out->device(), unary_name(op))(op, out, input);
  return out;
}

TensorPtr clamp(const TensorPtr& a, double lo, double hi) {
  if (std::isnan(lo) || std::isnan(hi)) fail(ERR_ARG, "clamp: bounds must not be NaN");
  if (a->dtype == DType::Bool) fail(ERR_DTYPE, "clamp: not supported for bool tensors");
  if (is_int(a->dtype)) {
    for (double bound : {lo, hi})
      if (std::isfinite(bound) && bound != std::floor(bound))
        fail(ERR_DTYPE, "clamp: ", dtype_name(a->dtype), " tensor with fractional bound ", bound,
             " (convert to a float dtype first)");
  }
  TensorPtr out = empty(a->shape, a->dtype, a->device());
  kernel(&DeviceBackend::clamp, out->device(), "clamp")(out, a, lo, hi);
  return out;
}

// A gradient and the tensor its kernel reads: one float dtype, one shape, one device.
static void check_gradient_operands(const char* op, const TensorPtr& grad, const TensorPtr& saved) {
  check_same_device(op, grad, saved);
  check_same_dtype(op, grad, saved);
  if (!is_float(grad->dtype)) fail(ERR_DTYPE, op, ": expected floating-point tensors, got ", dtype_name(grad->dtype));
  if (grad->shape != saved->shape)
    fail(ERR_SHAPE, op, ": gradient of shape ", shape_str(grad->shape), " for a tensor of shape ", shape_str(saved->shape));
}

TensorPtr unary_backward(UnaryOp op, const TensorPtr& grad, const TensorPtr& saved) {
  const char* name = "unary backward";
  if (op == UnaryOp::Neg) fail(ERR_ARG, name, ": neg has no gradient kernel (its gradient is -grad)");
  check_gradient_operands(name, grad, saved);
  TensorPtr out = empty(grad->shape, grad->dtype, grad->device());
  kernel(&DeviceBackend::unary_backward, out->device(), name)(op, out, grad, saved);
  return out;
}

TensorPtr clamp_backward(const TensorPtr& grad, const TensorPtr& a, double lo, double hi) {
  const char* name = "clamp backward";
  if (std::isnan(lo) || std::isnan(hi)) fail(ERR_ARG, name, ": bounds must not be NaN");
  check_gradient_operands(name, grad, a);
  TensorPtr out = empty(grad->shape, grad->dtype, grad->device());
  kernel(&DeviceBackend::clamp_backward, out->device(), name)(out, grad, a, lo, hi);
  return out;
}

TensorPtr compare(CompareOp op, const TensorPtr& a, const TensorPtr& b) {
  const char* name = compare_name(op);
  check_same_device(name, a, b);
  check_same_dtype(name, a, b);
  TensorPtr out = empty(broadcast_shapes(a->shape, b->shape, name), DType::Bool, a->device());
  kernel(&DeviceBackend::compare, out->device(), name)(op, out, a, b);
  return out;
}

TensorPtr compare_scalar(CompareOp op, const TensorPtr& a, double s) {
  TensorPtr out = empty(a->shape, DType::Bool, a->device());
  kernel(&DeviceBackend::compare_scalar, out->device(), compare_name(op))(op, out, a, s);
  return out;
}

static void check_mask(const TensorPtr& mask, const char* op, const char* what) {
  if (mask->dtype != DType::Bool)
    fail(ERR_DTYPE, op, ": ", what, " must be a bool tensor, got ", dtype_name(mask->dtype));
}

TensorPtr where(const TensorPtr& condition, const TensorPtr& a, double a_value, const TensorPtr& b, double b_value,
                DType dtype) {
  check_mask(condition, "where", "condition");
  Shape shape = condition->shape;
  TensorPtr operands[2];
  const TensorPtr* given[2] = {&a, &b};
  double values[2] = {a_value, b_value};
  for (int k = 0; k < 2; k++) {
    const TensorPtr& t = *given[k];
    if (t) {
      check_same_device("where", condition, t);
      if (t->dtype != dtype)
        fail(ERR_DTYPE, "where: expected operands of dtype ", dtype_name(dtype), ", got ", dtype_name(t->dtype));
      shape = broadcast_shapes(shape, t->shape, "where");
      operands[k] = t;
    } else {
      operands[k] = scalar_tensor(values[k], dtype, condition->device(), "where");
    }
  }
  TensorPtr out = empty(shape, dtype, condition->device());
  kernel(&DeviceBackend::where, out->device(), "where")(out, condition, operands[0], operands[1]);
  return out;
}

TensorPtr masked_fill(const TensorPtr& t, const TensorPtr& mask, double value) {
  check_mask(mask, "maskedFill", "mask");
  check_same_device("maskedFill", t, mask);
  broadcast_strides(*mask, t->shape, "maskedFill");  // ERR_SHAPE unless mask fits t's shape
  TensorPtr fill_value = scalar_tensor(value, t->dtype, t->device(), "maskedFill");
  TensorPtr out = empty(t->shape, t->dtype, t->device());
  kernel(&DeviceBackend::where, out->device(), "maskedFill")(out, mask, fill_value, t);
  return out;
}

// A JS-side op code in [0, last], or ERR_ARG naming what it should have been.
static int64_t checked_code(int64_t v, int64_t last, const char* what) {
  if (v < 0 || v > last) fail(ERR_ARG, "unknown ", what, " ", v);
  return v;
}

int64_t binary_op_from_int(int64_t v) { return checked_code(v, int64_t(BinaryOp::Minimum), "binary op"); }
int64_t binary_grad_from_int(int64_t v) { return checked_code(v, int64_t(BinaryGrad::Minimum), "binary gradient"); }
int64_t unary_op_from_int(int64_t v) { return checked_code(v, int64_t(UnaryOp::Silu), "unary op"); }
int64_t compare_op_from_int(int64_t v) { return checked_code(v, int64_t(CompareOp::Ge), "comparison"); }

}  // namespace ignis

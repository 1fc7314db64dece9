#include "core/elementwise.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// binary(op, a, b)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  auto op = BinaryOp(binary_op_from_int(int_arg(info, 0)));
  return wrap(info.Env(), binary(op, tensor_arg(info, 1), tensor_arg(info, 2)));
}

// binaryScalar(op, a, scalar, reversed)
Napi::Value BinaryScalar(const Napi::CallbackInfo& info) {
  auto op = BinaryOp(binary_op_from_int(int_arg(info, 0)));
  return wrap(info.Env(), binary_scalar(op, tensor_arg(info, 1), number_arg(info, 2), bool_arg(info, 3)));
}

// binaryBackward(op, grad, self, other)
Napi::Value BinaryBackward(const Napi::CallbackInfo& info) {
  auto op = BinaryGrad(binary_grad_from_int(int_arg(info, 0)));
  return wrap(info.Env(), binary_backward(op, tensor_arg(info, 1), tensor_arg(info, 2), tensor_arg(info, 3)));
}

// unary(op, a)
Napi::Value Unary(const Napi::CallbackInfo& info) {
  auto op = UnaryOp(unary_op_from_int(int_arg(info, 0)));
  return wrap(info.Env(), unary(op, tensor_arg(info, 1)));
}

// clamp(a, lo, hi): -Infinity / Infinity for a missing bound
Napi::Value Clamp(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), clamp(tensor_arg(info, 0), number_arg(info, 1), number_arg(info, 2)));
}

// unaryBackward(op, grad, saved)
Napi::Value UnaryBackward(const Napi::CallbackInfo& info) {
  auto op = UnaryOp(unary_op_from_int(int_arg(info, 0)));
  return wrap(info.Env(), unary_backward(op, tensor_arg(info, 1), tensor_arg(info, 2)));
}

// clampBackward(grad, a, lo, hi): -Infinity / Infinity for a missing bound
Napi::Value ClampBackward(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), clamp_backward(tensor_arg(info, 0), tensor_arg(info, 1), number_arg(info, 2), number_arg(info, 3)));
}

// compare(op, a, b)
Napi::Value Compare(const Napi::CallbackInfo& info) {
  auto op = CompareOp(compare_op_from_int(int_arg(info, 0)));
  return wrap(info.Env(), compare(op, tensor_arg(info, 1), tensor_arg(info, 2)));
}

// compareScalar(op, a, scalar)
Napi::Value CompareScalar(const Napi::CallbackInfo& info) {
  auto op = CompareOp(compare_op_from_int(int_arg(info, 0)));
  return wrap(info.Env(), compare_scalar(op, tensor_arg(info, 1), number_arg(info, 2)));
}

// where(condition, a | null, aValue, b | null, bValue, dtype): a null operand is the scalar beside it
Napi::Value Where(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), where(tensor_arg(info, 0), optional_tensor_arg(info, 1), number_arg(info, 2),
                                optional_tensor_arg(info, 3), number_arg(info, 4), dtype_arg(info, 5)));
}

// maskedFill(t, mask, value)
Napi::Value MaskedFill(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), masked_fill(tensor_arg(info, 0), tensor_arg(info, 1), number_arg(info, 2)));
}

}  // namespace

void register_elementwise(Napi::Env env, Napi::Object exports) {
  define(env, exports, "binary", Binary);
  define(env, exports, "binaryScalar", BinaryScalar);
  define(env, exports, "binaryBackward", BinaryBackward);
  define(env, exports, "unary", Unary);
  define(env, exports, "clamp", Clamp);
  define(env, exports, "unaryBackward", UnaryBackward);
  define(env, exports, "clampBackward", ClampBackward);
  define(env, exports, "compare", Compare);
  define(env, exports, "compareScalar", CompareScalar);
  define(env, exports, "where", Where);
  define(env, exports, "maskedFill", MaskedFill);
}

}  // namespace ignis::napi

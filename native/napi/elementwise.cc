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

}  // namespace

void register_elementwise(Napi::Env env, Napi::Object exports) {
  define(env, exports, "binary", Binary);
  define(env, exports, "binaryScalar", BinaryScalar);
}

}  // namespace ignis::napi

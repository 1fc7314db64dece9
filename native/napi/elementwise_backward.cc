#include "core/elementwise_backward.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// binaryBackward(op, grad, self, other)
Napi::Value BinaryBackward(const Napi::CallbackInfo& info) {
  auto op = BinaryGrad(binary_grad_from_int(int_arg(info, 0)));
  return wrap(info.Env(), binary_backward(op, tensor_arg(info, 1), tensor_arg(info, 2), tensor_arg(info, 3)));
}

}  // namespace

void register_elementwise_backward(Napi::Env env, Napi::Object exports) {
  define(env, exports, "binaryBackward", BinaryBackward);
}

}  // namespace ignis::napi

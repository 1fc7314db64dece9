#include "core/softmax.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// softmax(t, dim, log)
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), softmax(tensor_arg(info, 0), int_arg(info, 1), bool_arg(info, 2)));
}

}  // namespace

void register_softmax(Napi::Env env, Napi::Object exports) { define(env, exports, "softmax", Softmax); }

}  // namespace ignis::napi

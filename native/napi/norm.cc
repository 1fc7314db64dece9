#include "core/norm.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// layerNorm(x, normalizedShape, weight | null, bias | null, eps)
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), layer_norm(tensor_arg(info, 0), shape_arg(info, 1), optional_tensor_arg(info, 2),
                                     optional_tensor_arg(info, 3), number_arg(info, 4)));
}

// rmsNorm(x, normalizedShape, weight | null, eps | null): null eps is the dtype's machine epsilon.
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  std::optional<double> eps;
  if (!info[3].IsNull() && !info[3].IsUndefined()) eps = number_arg(info, 3);
  return wrap(info.Env(), rms_norm(tensor_arg(info, 0), shape_arg(info, 1), optional_tensor_arg(info, 2), eps));
}

}  // namespace

void register_norm(Napi::Env env, Napi::Object exports) {
  define(env, exports, "layerNorm", LayerNorm);
  define(env, exports, "rmsNorm", RmsNorm);
}

}  // namespace ignis::napi

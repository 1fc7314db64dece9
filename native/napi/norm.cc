#include "core/norm.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// rmsNorm's eps argument: null is the dtype's machine epsilon.
std::optional<double> optional_eps(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsNull() || info[i].IsUndefined()) return std::nullopt;
  return number_arg(info, i);
}

// layerNorm(x, normalizedShape, weight | null, bias | null, eps)
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), layer_norm(tensor_arg(info, 0), shape_arg(info, 1), optional_tensor_arg(info, 2),
                                     optional_tensor_arg(info, 3), number_arg(info, 4)));
}

// layerNormWithStats(...layerNorm's arguments) -> [out, mean, rstd]: the per-row statistics a backward needs.
Napi::Value LayerNormWithStats(const Napi::CallbackInfo& info) {
  NormStats stats;
  TensorPtr out = layer_norm(tensor_arg(info, 0), shape_arg(info, 1), optional_tensor_arg(info, 2),
                             optional_tensor_arg(info, 3), number_arg(info, 4), &stats);
  return wrap_all(info.Env(), {out, stats.mean, stats.rstd});
}

// rmsNorm(x, normalizedShape, weight | null, eps | null)
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), rms_norm(tensor_arg(info, 0), shape_arg(info, 1), optional_tensor_arg(info, 2), optional_eps(info, 3)));
}

// rmsNormWithStats(...rmsNorm's arguments) -> [out, rstd]
Napi::Value RmsNormWithStats(const Napi::CallbackInfo& info) {
  NormStats stats;
  TensorPtr out = rms_norm(tensor_arg(info, 0), shape_arg(info, 1), optional_tensor_arg(info, 2), optional_eps(info, 3), &stats);
  return wrap_all(info.Env(), {out, stats.rstd});
}

// layerNormBackward(grad, x, normalizedShape, weight | null, mean, rstd, wantX, wantWeight, wantBias)
//   -> [dx | null, dweight | null, dbias | null]
Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  NormStats stats{tensor_arg(info, 4), tensor_arg(info, 5)};
  NormGrads g = norm_backward(tensor_arg(info, 0), tensor_arg(info, 1), shape_arg(info, 2), optional_tensor_arg(info, 3), stats,
                              bool_arg(info, 6), bool_arg(info, 7), bool_arg(info, 8));
  return wrap_all(info.Env(), {g.x, g.weight, g.bias});
}

// rmsNormBackward(grad, x, normalizedShape, weight | null, rstd, wantX, wantWeight) -> [dx | null, dweight | null]
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  NormStats stats{nullptr, tensor_arg(info, 4)};
  NormGrads g = norm_backward(tensor_arg(info, 0), tensor_arg(info, 1), shape_arg(info, 2), optional_tensor_arg(info, 3), stats,
                              bool_arg(info, 5), bool_arg(info, 6), false);
  return wrap_all(info.Env(), {g.x, g.weight});
}

}  // namespace

void register_norm(Napi::Env env, Napi::Object exports) {
  define(env, exports, "layerNorm", LayerNorm);
  define(env, exports, "layerNormWithStats", LayerNormWithStats);
  define(env, exports, "rmsNorm", RmsNorm);
  define(env, exports, "rmsNormWithStats", RmsNormWithStats);
  define(env, exports, "layerNormBackward", LayerNormBackward);
  define(env, exports, "rmsNormBackward", RmsNormBackward);
}

}  // namespace ignis::napi

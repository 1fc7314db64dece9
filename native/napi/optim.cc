#include "core/optim.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

std::vector<int64_t> int_list_arg(const Napi::CallbackInfo& info, size_t i) {
  Shape values = shape_arg(info, i);  // an array of integers
  return std::vector<int64_t>(values.begin(), values.end());
}

std::vector<bool> bool_list_arg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) fail(ERR_ARG, "argument ", i, " must be an array of booleans");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<bool> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value v = a.Get(k);
    if (!v.IsBoolean()) fail(ERR_ARG, "argument ", i, ": element ", k, " is not a boolean");
    out[k] = v.As<Napi::Boolean>().Value();
  }
  return out;
}

// adamwStep(params, grads, expAvgs, expAvgSqs, steps, lr, beta1, beta2, eps, weightDecay, lrSlot)
Napi::Value AdamWStep(const Napi::CallbackInfo& info) {
  AdamWOptions o{number_arg(info, 5), number_arg(info, 6), number_arg(info, 7),       number_arg(info, 8),
                 number_arg(info, 9), int(int_arg(info, 10))};
  adamw_step(tensor_list_arg(info, 0), tensor_list_arg(info, 1), tensor_list_arg(info, 2), tensor_list_arg(info, 3),
             int_list_arg(info, 4), o);
  return info.Env().Undefined();
}

// sgdStep(params, grads, momentumBuffers, fresh, lr, momentum, dampening, weightDecay, nesterov, lrSlot)
Napi::Value SgdStep(const Napi::CallbackInfo& info) {
  SgdOptions o{number_arg(info, 4), number_arg(info, 5), number_arg(info, 6),
               number_arg(info, 7), bool_arg(info, 8),   int(int_arg(info, 9))};
  sgd_step(tensor_list_arg(info, 0), tensor_list_arg(info, 1), tensor_list_arg(info, 2), bool_list_arg(info, 3), o);
  return info.Env().Undefined();
}

// totalNorm(tensors, normType) -> number
Napi::Value TotalNorm(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), total_norm(tensor_list_arg(info, 0), number_arg(info, 1)));
}

// scaleInPlace(tensors, factor)
Napi::Value ScaleInPlace(const Napi::CallbackInfo& info) {
  scale_in_place(tensor_list_arg(info, 0), number_arg(info, 1));
  return info.Env().Undefined();
}

// clipByTotalNorm(tensors, maxNorm, normType) -> the norm, a 0-dim float32 tensor
Napi::Value ClipByTotalNorm(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), clip_by_total_norm(tensor_list_arg(info, 0), number_arg(info, 1), number_arg(info, 2)));
}

}  // namespace

void register_optim(Napi::Env env, Napi::Object exports) {
  define(env, exports, "adamwStep", AdamWStep);
  define(env, exports, "sgdStep", SgdStep);
  define(env, exports, "totalNorm", TotalNorm);
  define(env, exports, "scaleInPlace", ScaleInPlace);
  define(env, exports, "clipByTotalNorm", ClipByTotalNorm);
}

}  // namespace ignis::napi

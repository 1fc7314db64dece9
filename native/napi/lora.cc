#include "core/lora.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

Napi::Value optional_wrap(Napi::Env env, TensorPtr t) { return t ? wrap(env, std::move(t)) : env.Null(); }

// loraLinearForward(x, w, bias | null, a, b, scale, mask | null) -> [y, xa]
Napi::Value LoraLinearForward(const Napi::CallbackInfo& info) {
  LoraForward r = lora_linear_forward(tensor_arg(info, 0), tensor_arg(info, 1), optional_tensor_arg(info, 2), tensor_arg(info, 3),
                                      tensor_arg(info, 4), number_arg(info, 5), optional_tensor_arg(info, 6));
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, wrap(info.Env(), r.y));
  out.Set(1u, wrap(info.Env(), r.xa));
  return out;
}

// loraLinearBackward(dy, x, w, a, b, xa, scale, mask | null, needInputGrad) -> [dx | null, da, db]
Napi::Value LoraLinearBackward(const Napi::CallbackInfo& info) {
  LoraGrads g = lora_linear_backward(tensor_arg(info, 0), tensor_arg(info, 1), tensor_arg(info, 2), tensor_arg(info, 3),
                                     tensor_arg(info, 4), tensor_arg(info, 5), number_arg(info, 6), optional_tensor_arg(info, 7),
                                     bool_arg(info, 8));
  Napi::Array out = Napi::Array::New(info.Env(), 3);
  out.Set(0u, optional_wrap(info.Env(), g.dx));
  out.Set(1u, wrap(info.Env(), g.da));
  out.Set(2u, wrap(info.Env(), g.db));
  return out;
}

// loraMerge(w, a, b, scale): w += scale * b a in place.
Napi::Value LoraMerge(const Napi::CallbackInfo& info) {
  lora_merge(tensor_arg(info, 0), tensor_arg(info, 1), tensor_arg(info, 2), number_arg(info, 3), false);
  return info.Env().Undefined();
}

// loraUnmerge(w, a, b, scale): w -= scale * b a in place.
Napi::Value LoraUnmerge(const Napi::CallbackInfo& info) {
  lora_merge(tensor_arg(info, 0), tensor_arg(info, 1), tensor_arg(info, 2), number_arg(info, 3), true);
  return info.Env().Undefined();
}

// loraDropoutMask(uniform, p)
Napi::Value LoraDropoutMask(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), lora_dropout_mask(tensor_arg(info, 0), number_arg(info, 1)));
}

}  // namespace

void register_lora(Napi::Env env, Napi::Object exports) {
  define(env, exports, "loraLinearForward", LoraLinearForward);
  define(env, exports, "loraLinearBackward", LoraLinearBackward);
  define(env, exports, "loraMerge", LoraMerge);
  define(env, exports, "loraUnmerge", LoraUnmerge);
  define(env, exports, "loraDropoutMask", LoraDropoutMask);
}

}  // namespace ignis::napi

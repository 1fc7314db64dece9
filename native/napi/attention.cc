#include "core/attention.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// attentionForward(q, k, v, mask | null, causal, scale) -> [out, lse]
Napi::Value AttentionForwardFn(const Napi::CallbackInfo& info) {
  AttentionForward r = attention_forward(tensor_arg(info, 0), tensor_arg(info, 1), tensor_arg(info, 2), optional_tensor_arg(info, 3),
                                         bool_arg(info, 4), number_arg(info, 5));
  return wrap_all(info.Env(), {r.out, r.lse});
}

// attentionBackward(dout, q, k, v, out, lse, mask | null, causal, scale) -> [dq, dk, dv]
Napi::Value AttentionBackwardFn(const Napi::CallbackInfo& info) {
  AttentionGrads g = attention_backward(tensor_arg(info, 0), tensor_arg(info, 1), tensor_arg(info, 2), tensor_arg(info, 3),
                                        tensor_arg(info, 4), tensor_arg(info, 5), optional_tensor_arg(info, 6), bool_arg(info, 7),
                                        number_arg(info, 8));
  return wrap_all(info.Env(), {g.dq, g.dk, g.dv});
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  define(env, exports, "attentionForward", AttentionForwardFn);
  define(env, exports, "attentionBackward", AttentionBackwardFn);
}

}  // namespace ignis::napi

#include "core/loss.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// Arguments first..first+2: ignoreIndex, reduction, labelSmoothing.
CrossEntropyOptions options_arg(const Napi::CallbackInfo& info, size_t first) {
  CrossEntropyOptions options;
  options.ignore_index = int_arg(info, first);
  options.reduction = reduction_from_int(int_arg(info, first + 1));
  options.label_smoothing = number_arg(info, first + 2);
  return options;
}

// crossEntropy(logits, target, ignoreIndex, reduction, labelSmoothing)
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), cross_entropy(tensor_arg(info, 0), tensor_arg(info, 1), options_arg(info, 2)));
}

// crossEntropyWithStats(...crossEntropy's arguments) -> [loss, logsumexp, counted, countedOnDevice | null]:
// what the backward needs (the count is on the device, and counted -1, while a CUDA graph is captured).
Napi::Value CrossEntropyWithStats(const Napi::CallbackInfo& info) {
  CrossEntropyRows rows;
  TensorPtr loss = cross_entropy(tensor_arg(info, 0), tensor_arg(info, 1), options_arg(info, 2), &rows);
  Napi::Array out = wrap_all(info.Env(), {loss, rows.logsumexp});
  out.Set(2u, Napi::Number::New(info.Env(), double(rows.counted)));
  out.Set(3u, rows.counted_on_device ? wrap(info.Env(), rows.counted_on_device) : info.Env().Null());
  return out;
}

// crossEntropyBackward(grad, logits, target, logsumexp, ignoreIndex, reduction, labelSmoothing, counted, countedOnDevice | null)
Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), cross_entropy_backward(tensor_arg(info, 0), tensor_arg(info, 1), tensor_arg(info, 2),
                                                 tensor_arg(info, 3), options_arg(info, 4), int_arg(info, 7),
                                                 optional_tensor_arg(info, 8)));
}

// mseLoss(input, target, reduction, dtype)
Napi::Value MseLoss(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), mse_loss(tensor_arg(info, 0), tensor_arg(info, 1), reduction_from_int(int_arg(info, 2)),
                                   dtype_arg(info, 3)));
}

}  // namespace

void register_loss(Napi::Env env, Napi::Object exports) {
  define(env, exports, "crossEntropy", CrossEntropy);
  define(env, exports, "crossEntropyWithStats", CrossEntropyWithStats);
  define(env, exports, "crossEntropyBackward", CrossEntropyBackward);
  define(env, exports, "mseLoss", MseLoss);
}

}  // namespace ignis::napi

#include "core/loss.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// crossEntropy(logits, target, ignoreIndex, reduction, labelSmoothing)
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  CrossEntropyOptions options;
  options.ignore_index = int_arg(info, 2);
  options.reduction = reduction_from_int(int_arg(info, 3));
  options.label_smoothing = number_arg(info, 4);
  return wrap(info.Env(), cross_entropy(tensor_arg(info, 0), tensor_arg(info, 1), options));
}

// mseLoss(input, target, reduction, dtype)
Napi::Value MseLoss(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), mse_loss(tensor_arg(info, 0), tensor_arg(info, 1), reduction_from_int(int_arg(info, 2)),
                                   dtype_arg(info, 3)));
}

}  // namespace

void register_loss(Napi::Env env, Napi::Object exports) {
  define(env, exports, "crossEntropy", CrossEntropy);
  define(env, exports, "mseLoss", MseLoss);
}

}  // namespace ignis::napi

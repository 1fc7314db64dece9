#include "core/reduce.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// reduce(op, t, dims | null, keepdim, correction): null reduces every dim.
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  auto op = ReduceOp(reduce_op_from_int(int_arg(info, 0)));
  const TensorPtr& x = tensor_arg(info, 1);
  std::optional<Shape> dims;
  if (!info[2].IsNull()) dims = shape_arg(info, 2);
  return wrap(info.Env(), reduce(op, x, dims, bool_arg(info, 3), number_arg(info, 4)));
}

}  // namespace

void register_reduce(Napi::Env env, Napi::Object exports) { define(env, exports, "reduce", Reduce); }

}  // namespace ignis::napi

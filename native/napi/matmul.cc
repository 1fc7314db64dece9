#include "core/matmul.h"
#include "cpu/matmul.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// matmul(a, b)
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), matmul(tensor_arg(info, 0), tensor_arg(info, 1)));
}

// linear(x, w, bias | null)
Napi::Value Linear(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), linear(tensor_arg(info, 0), tensor_arg(info, 1), optional_tensor_arg(info, 2)));
}

// matmulOperandCopies(): operands copied so far because their layout had no BLAS form.
Napi::Value MatmulOperandCopies(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(matmul_operand_copies()));
}

// blasInfo(): { config: the BLAS build and the CPU core it runs on, threads: its thread count now }.
Napi::Value BlasInfo(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("config", cpu::blas_config());
  o.Set("threads", cpu::blas_threads());
  return o;
}

}  // namespace

void register_matmul(Napi::Env env, Napi::Object exports) {
  define(env, exports, "matmul", Matmul);
  define(env, exports, "linear", Linear);
  define(env, exports, "matmulOperandCopies", MatmulOperandCopies);
  define(env, exports, "blasInfo", BlasInfo);
}

}  // namespace ignis::napi

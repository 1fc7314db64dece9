// Creation ops and the global random generator's state.
#include "core/creation.h"
#include "kernels/philox.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// Every creation function takes a device code last (see device_arg).

// arange(start, end, step, dtype, device?)
Napi::Value Arange(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), arange(number_arg(info, 0), number_arg(info, 1), number_arg(info, 2), dtype_arg(info, 3), device_arg(info, 4)));
}

// linspace(start, end, steps, dtype, device?)
Napi::Value Linspace(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), linspace(number_arg(info, 0), number_arg(info, 1), int_arg(info, 2), dtype_arg(info, 3), device_arg(info, 4)));
}

// eye(n, m, dtype, device?)
Napi::Value Eye(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), eye(int_arg(info, 0), int_arg(info, 1), dtype_arg(info, 2), device_arg(info, 3)));
}

// rand(shape, dtype, device?), randn(shape, dtype, device?), randint(low, high, shape, dtype, device?)
Napi::Value Rand(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), rand(shape_arg(info, 0), dtype_arg(info, 1), device_arg(info, 2)));
}
Napi::Value Randn(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), randn(shape_arg(info, 0), dtype_arg(info, 1), device_arg(info, 2)));
}
Napi::Value Randint(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), randint(int_arg(info, 0), int_arg(info, 1), shape_arg(info, 2), dtype_arg(info, 3), device_arg(info, 4)));
}

uint64_t uint64_arg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBigInt()) fail(ERR_ARG, "argument ", i, " must be a BigInt");
  bool lossless = false;
  uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) fail(ERR_ARG, "argument ", i, " must be a BigInt in [0, 2^64)");
  return v;
}

// getRngState() -> { seed: bigint, offset: bigint }
Napi::Value GetRngState(const Napi::CallbackInfo& info) {
  RngState s = rng_state();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("seed", Napi::BigInt::New(info.Env(), s.seed));
  o.Set("offset", Napi::BigInt::New(info.Env(), s.offset));
  return o;
}

// setRngState(seed: bigint, offset: bigint)
Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  set_rng_state(RngState{uint64_arg(info, 0), uint64_arg(info, 1)});
  return info.Env().Undefined();
}

// philox4x32(counter: number[4], key: number[2]) -> number[4]: one raw block, for known-answer tests.
Napi::Value Philox4x32(const Napi::CallbackInfo& info) {
  Shape counter = shape_arg(info, 0), key = shape_arg(info, 1);
  if (counter.size() != 4 || key.size() != 2) fail(ERR_ARG, "philox4x32: expected 4 counter words and 2 key words");
  for (int64_t w : counter) if (w < 0 || w > 0xffffffffll) fail(ERR_ARG, "philox4x32: words are 32-bit unsigned");
  for (int64_t w : key) if (w < 0 || w > 0xffffffffll) fail(ERR_ARG, "philox4x32: words are 32-bit unsigned");
  PhiloxBlock out = philox4x32_10(
      PhiloxBlock{{uint32_t(counter[0]), uint32_t(counter[1]), uint32_t(counter[2]), uint32_t(counter[3])}},
      uint32_t(key[0]), uint32_t(key[1]));
  return shape_value(info.Env(), Shape{out.w[0], out.w[1], out.w[2], out.w[3]});
}

}  // namespace

void register_creation(Napi::Env env, Napi::Object exports) {
  define(env, exports, "arange", Arange);
  define(env, exports, "linspace", Linspace);
  define(env, exports, "eye", Eye);
  define(env, exports, "rand", Rand);
  define(env, exports, "randn", Randn);
  define(env, exports, "randint", Randint);
  define(env, exports, "getRngState", GetRngState);
  define(env, exports, "setRngState", SetRngState);
  define(env, exports, "philox4x32", Philox4x32);
}

}  // namespace ignis::napi

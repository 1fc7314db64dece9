#include <cmath>
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// Handle = slot + generation * kSlots; the generation changes when a slot is released.
class HandleTable {
 public:
  static constexpr double kSlots = 67108864.0;  // 2^26 live handles at most

  double add(TensorPtr t) {
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      if (double(slots_.size()) >= kSlots) fail(ERR_OOM, "too many live tensors (", slots_.size(), ")");
      slot = uint32_t(slots_.size());
      slots_.emplace_back();
      generations_.push_back(0);
    }
    slots_[slot] = std::move(t);
    return double(slot) + double(generations_[slot]) * kSlots;
  }

  // nullptr when the handle was released (or never existed).
  const TensorPtr* find(double id) const {
    if (!(id >= 0) || id != std::floor(id)) return nullptr;
    double gen = std::floor(id / kSlots);
    uint64_t slot = uint64_t(id - gen * kSlots);
    if (slot >= slots_.size() || generations_[slot] != uint32_t(gen) || !slots_[slot]) return nullptr;
    return &slots_[slot];
  }

  void release(double id) {
    const TensorPtr* t = find(id);
    if (!t) return;
    uint32_t slot = uint32_t(t - slots_.data());
    slots_[slot].reset();
    generations_[slot] = (generations_[slot] + 1) & ((1u << 26) - 1);
    free_.push_back(slot);
  }

  size_t live() const { return slots_.size() - free_.size(); }

 private:
  std::vector<TensorPtr> slots_;
  std::vector<uint32_t> generations_;
  std::vector<uint32_t> free_;
};

struct InstanceData {
  Napi::FunctionReference error_class;  // lib/errors.ts IgnisError
  HandleTable handles;
};

HandleTable& handles(Napi::Env env) { return env.GetInstanceData<InstanceData>()->handles; }

Napi::Value error_value(Napi::Env env, const char* code, const std::string& message) {
  auto* data = env.GetInstanceData<InstanceData>();
  if (data && !data->error_class.IsEmpty()) {
    return data->error_class.New({Napi::String::New(env, message), Napi::String::New(env, code)});
  }
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err.Value();
}

[[noreturn]] void throw_js(Napi::Env env, const char* code, const char* message) {
  throw Napi::Error(env, error_value(env, code, message));
}

// Tells V8 about native bytes allocated or freed since the last report, in steps of 1 MiB.
void report_external_memory(Napi::Env env) {
  auto& pending = memory_counters().unreported_bytes;
  if (std::abs(pending.load(std::memory_order_relaxed)) < (int64_t(1) << 20)) return;
  int64_t delta = pending.exchange(0);
  Napi::MemoryManagement::AdjustExternalMemory(env, delta);
}

}  // namespace

Napi::Value wrap(Napi::Env env, TensorPtr t) { return Napi::Number::New(env, handles(env).add(std::move(t))); }

static const TensorPtr& lookup(Napi::Env env, const Napi::Value& v, size_t i) {
  if (!v.IsNumber()) fail(ERR_ARG, "argument ", i, " is not a tensor");
  const TensorPtr* t = handles(env).find(v.As<Napi::Number>().DoubleValue());
  if (!t) fail(ERR_DISPOSED, "tensor was used after dispose()");
  return *t;
}

const TensorPtr& tensor_arg(const Napi::CallbackInfo& info, size_t i) { return lookup(info.Env(), info[i], i); }

void release_handle(Napi::Env env, const Napi::Value& v) {
  if (v.IsNumber()) handles(env).release(v.As<Napi::Number>().DoubleValue());
}

size_t live_handles(Napi::Env env) { return handles(env).live(); }

TensorPtr optional_tensor_arg(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsNull() || info[i].IsUndefined()) return nullptr;
  return tensor_arg(info, i);
}

double number_arg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) fail(ERR_ARG, "argument ", i, " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i) {
  double d = number_arg(info, i);
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9007199254740991.0)
    fail(ERR_ARG, "argument ", i, " must be an integer, got ", d);
  return int64_t(d);
}

bool bool_arg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsBoolean()) fail(ERR_ARG, "argument ", i, " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

Shape shape_arg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsArray()) fail(ERR_ARG, "argument ", i, " must be an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  Shape shape(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value e = a.Get(k);
    double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9007199254740991.0)
      fail(ERR_ARG, "argument ", i, ": element ", k, " is not an integer");
    shape[k] = int64_t(d);
  }
  return shape;
}

DType dtype_arg(const Napi::CallbackInfo& info, size_t i) { return dtype_from_int(int_arg(info, i)); }

Device device_arg(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsNull() || info[i].IsUndefined()) return Device{};
  int64_t code = int_arg(info, i);
  if (code < -1 || code > 65535) fail(ERR_ARG, "argument ", i, ": ", code, " is not a device code");
  return code < 0 ? Device{} : Device{DeviceType::CUDA, int(code)};
}

int device_code(Device device) { return device.is_cpu() ? -1 : device.index; }

std::vector<TensorPtr> tensor_list_arg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Value v = info[i];
  if (!v.IsArray()) fail(ERR_ARG, "argument ", i, " must be an array of tensors");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<TensorPtr> out;
  out.reserve(a.Length());
  for (uint32_t k = 0; k < a.Length(); k++) out.push_back(lookup(info.Env(), a.Get(k), i));
  return out;
}

Napi::Array wrap_all(Napi::Env env, std::initializer_list<TensorPtr> tensors) {
  Napi::Array a = Napi::Array::New(env, tensors.size());
  uint32_t k = 0;
  for (const TensorPtr& t : tensors) a.Set(k++, t ? wrap(env, t) : env.Null());
  return a;
}

Napi::Array shape_value(Napi::Env env, const Shape& shape) {
  Napi::Array a = Napi::Array::New(env, shape.size());
  for (size_t k = 0; k < shape.size(); k++) a.Set(uint32_t(k), Napi::Number::New(env, double(shape[k])));
  return a;
}

Napi::Value make_error(Napi::Env env, const char* code, const std::string& message) {
  return error_value(env, code, message);
}

void rethrow_as_js(Napi::Env env) {
  try {
    throw;
  } catch (const Error& e) {
    throw_js(env, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    throw_js(env, ERR_OOM, "out of host memory");
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw_js(env, ERR_INTERNAL, e.what());
  } catch (...) {
    throw_js(env, ERR_INTERNAL, "unknown native exception");
  }
}

void define(Napi::Env env, Napi::Object exports, const char* name, Method fn) {
  exports.Set(name, Napi::Function::New(
                        env,
                        [fn](const Napi::CallbackInfo& info) -> Napi::Value {
                          try {
                            Napi::Value result = fn(info);
                            report_external_memory(info.Env());
                            return result;
                          } catch (...) {
                            rethrow_as_js(info.Env());
                          }
                        },
                        name));
}

static Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) fail(ERR_ARG, "setErrorClass: expected a class");
  auto* data = info.Env().GetInstanceData<InstanceData>();
  data->error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

Napi::Object init_module(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new InstanceData());
  define(env, exports, "setErrorClass", SetErrorClass);
  register_tensor(env, exports);
  register_creation(env, exports);
  register_elementwise(env, exports);
  register_reduce(env, exports);
  register_matmul(env, exports);
  register_softmax(env, exports);
  register_norm(env, exports);
  register_indexing(env, exports);
  register_loss(env, exports);
  register_optim(env, exports);
  register_lora(env, exports);
  register_attention(env, exports);
  register_cuda(env, exports);
  register_dist(env, exports);
  return exports;
}

}  // namespace ignis::napi

static Napi::Object InitIgnis(Napi::Env env, Napi::Object exports) { return ignis::napi::init_module(env, exports); }

NODE_API_MODULE(ignis, InitIgnis)

// N-API glue shared by every op family: tensor handles, argument conversion, error mapping.
// Functions here only convert values; validation and work happen in core/.
#pragma once
#include <napi.h>
#include "core/tensor.h"

namespace ignis::napi {

// A JS tensor holds a handle: a number naming a slot of this environment's handle table
// (slot + generation, so a released handle can never reach a later tensor). Numbers cost
// nothing to create, unlike Externals with finalizers; the JS side releases handles on
// dispose() and, as a safety net, from a FinalizationRegistry (lib/memory.ts).
Napi::Value wrap(Napi::Env env, TensorPtr t);
// The tensor behind argument i; ERR_DISPOSED after release, ERR_ARG when it is not a handle.
const TensorPtr& tensor_arg(const Napi::CallbackInfo& info, size_t i);
void release_handle(Napi::Env env, const Napi::Value& handle);
size_t live_handles(Napi::Env env);
// Nullable tensor argument: null/undefined gives an empty pointer.
TensorPtr optional_tensor_arg(const Napi::CallbackInfo& info, size_t i);
int64_t int_arg(const Napi::CallbackInfo& info, size_t i);
double number_arg(const Napi::CallbackInfo& info, size_t i);
bool bool_arg(const Napi::CallbackInfo& info, size_t i);
Shape shape_arg(const Napi::CallbackInfo& info, size_t i);  // an array of integers
DType dtype_arg(const Napi::CallbackInfo& info, size_t i);
// A device code (lib/tensor.ts deviceCode): -1, null or undefined for the CPU, n >= 0 for cuda:n.
Device device_arg(const Napi::CallbackInfo& info, size_t i);
int device_code(Device device);
std::vector<TensorPtr> tensor_list_arg(const Napi::CallbackInfo& info, size_t i);
Napi::Array shape_value(Napi::Env env, const Shape& shape);
// Several results: an array of handles, with null for an empty pointer.
Napi::Array wrap_all(Napi::Env env, std::initializer_list<TensorPtr> tensors);

using Method = Napi::Value (*)(const Napi::CallbackInfo&);
// exports[name] = fn, with ignis::Error turned into a thrown IgnisError.
void define(Napi::Env env, Napi::Object exports, const char* name, Method fn);
// Rethrows the exception being handled (call it in a catch block) as a JS IgnisError: ignis::Error
// keeps its code, bad_alloc is ERR_OOM, anything else ERR_INTERNAL.
[[noreturn]] void rethrow_as_js(Napi::Env env);
// An IgnisError value with this code and message (not thrown).
Napi::Value make_error(Napi::Env env, const char* code, const std::string& message);
// fn() with its exceptions turned into a thrown IgnisError, for methods that define() cannot
// wrap (class methods).
template <typename F>
Napi::Value guarded(Napi::Env env, F&& fn) {
  try {
    return fn();
  } catch (...) {
    rethrow_as_js(env);
  }
}

// Why CUDA ops fail in a build without the CUDA backend.
constexpr const char* kNoCudaBackend =
    "this build of ignis has no CUDA backend (build it with `npm run build:cuda` on a machine with nvcc)";

// One per op family (napi/<family>.cc).
void register_tensor(Napi::Env env, Napi::Object exports);
void register_creation(Napi::Env env, Napi::Object exports);
void register_elementwise(Napi::Env env, Napi::Object exports);
void register_reduce(Napi::Env env, Napi::Object exports);
void register_matmul(Napi::Env env, Napi::Object exports);
void register_softmax(Napi::Env env, Napi::Object exports);
void register_norm(Napi::Env env, Napi::Object exports);
void register_indexing(Napi::Env env, Napi::Object exports);
void register_loss(Napi::Env env, Napi::Object exports);
void register_optim(Napi::Env env, Napi::Object exports);
void register_lora(Napi::Env env, Napi::Object exports);
void register_attention(Napi::Env env, Napi::Object exports);
void register_cuda(Napi::Env env, Napi::Object exports);
void register_dist(Napi::Env env, Napi::Object exports);

Napi::Object init_module(Napi::Env env, Napi::Object exports);

}  // namespace ignis::napi

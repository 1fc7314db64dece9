// Tensor lifetime, data in and out, views and copies.
#include <cstring>
#include "core/backend.h"
#include "core/parallel.h"
#include "core/views.h"
#include "napi/napi.h"

namespace ignis::napi {
namespace {

// empty(shape, dtype, device?)
Napi::Value Empty(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), empty(shape_arg(info, 0), dtype_arg(info, 1), device_arg(info, 2)));
}

// fromBuffer(typedArray, shape, dtype, device?): a copy of the bytes, which must be exactly
// numel * size, on the device.
Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray()) fail(ERR_ARG, "tensor: data must be a TypedArray");
  auto array = info[0].As<Napi::TypedArray>();
  Shape shape = shape_arg(info, 1);
  DType dtype = dtype_arg(info, 2);
  Device device = device_arg(info, 3);
  check_shape(shape, "tensor");
  size_t nbytes = size_t(shape_numel(shape)) * dtype_size(dtype);
  if (array.ByteLength() != nbytes)
    fail(ERR_SHAPE, "tensor: ", array.ByteLength(), " bytes of data do not fill shape ", shape_str(shape), " of ",
         dtype_name(dtype));
  TensorPtr t = empty(shape, dtype, Device{});
  const char* src = static_cast<const char*>(array.ArrayBuffer().Data()) + array.ByteOffset();
  if (nbytes) std::memcpy(t->data(), src, nbytes);
  return wrap(info.Env(), to_device(t, device));
}

// toBuffer(t): the elements in row-major order, as a new ArrayBuffer (copied from the device).
Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  TensorPtr t = to_host_contiguous(tensor_arg(info, 0));
  size_t nbytes = size_t(t->numel()) * t->element_size();
  auto buffer = Napi::ArrayBuffer::New(info.Env(), nbytes);
  if (nbytes) std::memcpy(buffer.Data(), t->data(), nbytes);
  return buffer;
}

Napi::Value Meta(const Napi::CallbackInfo& info) {
  const TensorPtr& t = tensor_arg(info, 0);
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("shape", shape_value(env, t->shape));
  o.Set("strides", shape_value(env, t->strides));
  o.Set("offset", Napi::Number::New(env, double(t->offset)));
  o.Set("dtype", Napi::Number::New(env, double(int(t->dtype))));
  o.Set("device", Napi::Number::New(env, device_code(t->device())));
  o.Set("contiguous", Napi::Boolean::New(env, t->is_contiguous()));
  o.Set("storageBytes", Napi::Number::New(env, double(t->storage->nbytes)));
  return o;
}

Napi::Value IsContiguous(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), tensor_arg(info, 0)->is_contiguous());
}

// dispose(t): releases the handle (a no-op when already released); the storage goes when its
// last view does.
Napi::Value Dispose(const Napi::CallbackInfo& info) {
  release_handle(info.Env(), info[0]);
  return info.Env().Undefined();
}

Napi::Value View(const Napi::CallbackInfo& info) { return wrap(info.Env(), view(tensor_arg(info, 0), shape_arg(info, 1))); }
Napi::Value Reshape(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), reshape(tensor_arg(info, 0), shape_arg(info, 1)));
}
Napi::Value Permute(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), permute(tensor_arg(info, 0), shape_arg(info, 1)));
}
Napi::Value Narrow(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), narrow(tensor_arg(info, 0), int_arg(info, 1), int_arg(info, 2), int_arg(info, 3)));
}
Napi::Value Slice(const Napi::CallbackInfo& info) {
  return wrap(info.Env(),
              slice(tensor_arg(info, 0), int_arg(info, 1), int_arg(info, 2), int_arg(info, 3), int_arg(info, 4)));
}
Napi::Value Expand(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), expand(tensor_arg(info, 0), shape_arg(info, 1)));
}
// squeeze(t, dim | null): null squeezes every size-1 dim.
Napi::Value Squeeze(const Napi::CallbackInfo& info) {
  const TensorPtr& t = tensor_arg(info, 0);
  int64_t dim = info[1].IsNull() || info[1].IsUndefined() ? -1 : normalize_dim(int_arg(info, 1), t->ndim(), "squeeze");
  return wrap(info.Env(), squeeze(t, dim));
}
Napi::Value Unsqueeze(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), unsqueeze(tensor_arg(info, 0), int_arg(info, 1)));
}
// ownsStorage(t): whether t is the only view of its storage and covers all of it, row-major: the
// autograd engine then takes it as a leaf's gradient without copying.
Napi::Value OwnsStorage(const Napi::CallbackInfo& info) {
  const TensorPtr& t = tensor_arg(info, 0);
  const bool sole = t.use_count() == 1 && t->storage.use_count() == 1 && t->offset == 0 && t->is_contiguous() &&
                    size_t(t->numel()) * t->element_size() == t->storage->nbytes;
  return Napi::Boolean::New(info.Env(), sole);
}
Napi::Value Alias(const Napi::CallbackInfo& info) { return wrap(info.Env(), alias(tensor_arg(info, 0))); }
Napi::Value Contiguous(const Napi::CallbackInfo& info) {
  const TensorPtr& t = tensor_arg(info, 0);
  return wrap(info.Env(), t->is_contiguous() ? alias(t) : contiguous_copy(t));
}
Napi::Value Clone(const Napi::CallbackInfo& info) { return wrap(info.Env(), contiguous_copy(tensor_arg(info, 0))); }
// toDevice(t, device): t itself (an alias) on its device, else a contiguous copy on `device`.
Napi::Value ToDevice(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), to_device(tensor_arg(info, 0), device_arg(info, 1)));
}
Napi::Value ToDtype(const Napi::CallbackInfo& info) {
  return wrap(info.Env(), to_dtype(tensor_arg(info, 0), dtype_arg(info, 1)));
}
// copyInto(dst, src): dst <- src, src broadcast to dst's shape.
Napi::Value CopyInto(const Napi::CallbackInfo& info) {
  copy_into(tensor_arg(info, 0), tensor_arg(info, 1));
  return info.Env().Undefined();
}
Napi::Value Fill(const Napi::CallbackInfo& info) {
  fill(tensor_arg(info, 0), number_arg(info, 1));
  return info.Env().Undefined();
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  auto& c = memory_counters();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("handles", Napi::Number::New(env, double(live_handles(env))));
  o.Set("tensors", Napi::Number::New(env, double(c.live_tensors.load())));
  o.Set("storages", Napi::Number::New(env, double(c.live_storages.load())));
  o.Set("cpuBytes", Napi::Number::New(env, double(c.live_bytes[int(DeviceType::CPU)].load())));
  o.Set("cudaBytes", Napi::Number::New(env, double(c.live_bytes[int(DeviceType::CUDA)].load())));
  o.Set("cpuPeakBytes", Napi::Number::New(env, double(c.peak_bytes[int(DeviceType::CPU)].load())));
  o.Set("cudaPeakBytes", Napi::Number::New(env, double(c.peak_bytes[int(DeviceType::CUDA)].load())));
  return o;
}
Napi::Value ResetPeakMemory(const Napi::CallbackInfo& info) {
  reset_peak_bytes();
  return info.Env().Undefined();
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int64_t n = int_arg(info, 0);
  if (n < 1) fail(ERR_ARG, "setNumThreads: expected at least 1 thread, got ", n);
  set_num_threads(int(n));
  return info.Env().Undefined();
}
Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), num_threads()); }

}  // namespace

void register_tensor(Napi::Env env, Napi::Object exports) {
  define(env, exports, "empty", Empty);
  define(env, exports, "fromBuffer", FromBuffer);
  define(env, exports, "toBuffer", ToBuffer);
  define(env, exports, "meta", Meta);
  define(env, exports, "isContiguous", IsContiguous);
  define(env, exports, "dispose", Dispose);
  define(env, exports, "view", View);
  define(env, exports, "reshape", Reshape);
  define(env, exports, "permute", Permute);
  define(env, exports, "narrow", Narrow);
  define(env, exports, "slice", Slice);
  define(env, exports, "expand", Expand);
  define(env, exports, "squeeze", Squeeze);
  define(env, exports, "unsqueeze", Unsqueeze);
  define(env, exports, "ownsStorage", OwnsStorage);
  define(env, exports, "alias", Alias);
  define(env, exports, "contiguous", Contiguous);
  define(env, exports, "clone", Clone);
  define(env, exports, "toDtype", ToDtype);
  define(env, exports, "toDevice", ToDevice);
  define(env, exports, "copyInto", CopyInto);
  define(env, exports, "fill", Fill);
  define(env, exports, "memory", Memory);
  define(env, exports, "resetPeakMemory", ResetPeakMemory);
  define(env, exports, "setNumThreads", SetNumThreads);
  define(env, exports, "getNumThreads", GetNumThreads);
}

}  // namespace ignis::napi

#include "core/backend.h"

#include <atomic>
#include "core/cuda_runtime.h"
#include "core/views.h"
#include "cpu/backend.h"

namespace ignis {
namespace {

// Written only by static initializers (before any op can run), read afterwards.
const DeviceBackend* g_backends[2] = {nullptr, nullptr};
CudaRuntime* g_cuda_runtime = nullptr;
std::atomic<bool> g_tf32{false};

}  // namespace

void register_backend(DeviceType type, const DeviceBackend* backend) { g_backends[int(type)] = backend; }

const char* device_type_name(DeviceType type) { return type == DeviceType::CPU ? "cpu" : "cuda"; }

const DeviceBackend& backend(Device device) {
  if (device.is_cpu()) return cpu::backend();
  const DeviceBackend* b = g_backends[int(device.type)];
  if (!b)
    fail(ERR_DEVICE, "device ", device.str(), " is not available: this build of ignis has no CUDA backend (build it with ",
         "`npm run build:cuda` on a machine with nvcc)");
  return *b;
}

void require_cpu(const char* op, const TensorPtr& t) {
  if (t && !t->device().is_cpu()) fail(ERR_DEVICE, "op ", op, " is not implemented on ", device_type_name(t->device().type), " yet");
}

void require_cpu(const char* op, const std::vector<TensorPtr>& tensors) {
  for (const TensorPtr& t : tensors) require_cpu(op, t);
}

TensorPtr to_device(const TensorPtr& t, Device device) {
  if (t->device() == device) return alias(t);
  TensorPtr src = contiguous(t);
  TensorPtr dst = empty(src->shape, src->dtype, device);
  if (dst->numel() == 0) return dst;
  // the backend of the side that is not the CPU moves the bytes
  Device mover = device.is_cpu() ? src->device() : device;
  kernel(&DeviceBackend::transfer, mover, "to")(dst, src);
  return dst;
}

TensorPtr to_host_contiguous(const TensorPtr& t) { return t->device().is_cpu() ? contiguous(t) : to_device(t, Device{}); }

CudaRuntime* cuda_runtime() { return g_cuda_runtime; }
void register_cuda_runtime(CudaRuntime* runtime) { g_cuda_runtime = runtime; }

void set_float32_matmul_tf32(bool allow) { g_tf32.store(allow, std::memory_order_relaxed); }
bool float32_matmul_tf32() { return g_tf32.load(std::memory_order_relaxed); }

}  // namespace ignis

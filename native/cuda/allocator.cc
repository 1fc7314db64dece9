#include "cuda/allocator.h"

#include <cstdio>
#include <mutex>
#include "cuda/graph.h"
#include "cuda/runtime.h"

namespace ignis::cuda {
namespace {

class CudaMemory : public RawDeviceMemory {
 public:
  explicit CudaMemory(int device) : device_(device) {}

  void* malloc(size_t nbytes) override {
    use_device(device_);
    void* data = nullptr;
    const cudaError_t status = relaxed_capture([&] { return cudaMalloc(&data, nbytes); });
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky: clear it, the caller retries or reports
      return nullptr;
    }
    check(status, "cudaMalloc");
    return data;
  }

  // Only whole free segments come here (emptyCache, or before retrying a failed cudaMalloc), but
  // work queued earlier on the device may still use their blocks: wait for it first.
  void free(void* data) noexcept override {
    if (try_use_device(device_) && cudaDeviceSynchronize() == cudaSuccess) cudaFree(data);
    cudaGetLastError();
  }

  std::string describe() noexcept override {
    size_t free = 0, total = 0;
    if (!try_use_device(device_) || cudaMemGetInfo(&free, &total) != cudaSuccess) {
      cudaGetLastError();
      return "";
    }
    char buf[96];
    std::snprintf(buf, sizeof buf, "%.2f GiB in all and %.2f GiB free", double(total) / (1 << 30), double(free) / (1 << 30));
    return buf;
  }

 private:
  const int device_;
};

std::mutex g_mutex;
// Never destroyed: blocks may still be freed while the process exits, after the CUDA runtime has
// been torn down.
CachingAllocator* g_allocators[kMaxDevices];

}  // namespace

CachingAllocator& allocator(int device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_allocators[device])
    g_allocators[device] = new CachingAllocator(std::make_unique<CudaMemory>(device), Device{DeviceType::CUDA, device}.str());
  return *g_allocators[device];
}

void* allocate(Device device, size_t nbytes) {
  require_device(device);
  if (nbytes == 0) return nullptr;
  return allocator(device.index).allocate(nbytes, allocation_pool(device.index));
}

void deallocate(Device device, void* data, size_t) noexcept {
  if (data) g_allocators[device.index]->free(data);
}

}  // namespace ignis::cuda

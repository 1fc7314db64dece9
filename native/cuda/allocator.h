// Device memory for CUDA tensors: one caching allocator (core/caching_allocator.h) per device,
// over cudaMalloc / cudaFree, with blocks pooled per stream (the current stream when allocated).
// A tensor used on another stream than the one current when it was made must be kept alive (or
// that stream synchronised) until that work is done: its block may be reused on its own stream
// as soon as it is freed.
#pragma once
#include "core/caching_allocator.h"
#include "core/tensor.h"

namespace ignis::cuda {

// The allocator of an existing device (made at first use).
CachingAllocator& allocator(int device);
// DeviceBackend::allocate / deallocate.
void* allocate(Device device, size_t nbytes);
void deallocate(Device device, void* data, size_t nbytes) noexcept;

}  // namespace ignis::cuda

// The tensor model: a refcounted Storage (device, bytes) and TensorImpl (dtype, shape, strides,
// offset) views over it. Strides and offset count elements, not bytes.
#pragma once
#include <atomic>
#include <memory>
#include <vector>
#include "core/dtype.h"
#include "core/error.h"

namespace ignis {

using Shape = std::vector<int64_t>;
constexpr int kMaxDims = 16;

struct Storage {
  Storage(Device device, size_t nbytes);  // allocates; throws ERR_OOM (ERR_DEVICE, ERR_CUDA off the CPU)
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  Device device;
  size_t nbytes;
  void* data;
};

struct TensorImpl {
  TensorImpl(std::shared_ptr<Storage> storage, DType dtype, Shape shape, Shape strides, int64_t offset);
  ~TensorImpl();
  TensorImpl(const TensorImpl&) = delete;
  TensorImpl& operator=(const TensorImpl&) = delete;

  std::shared_ptr<Storage> storage;
  DType dtype;
  Shape shape;
  Shape strides;
  int64_t offset;

  int ndim() const { return int(shape.size()); }
  int64_t numel() const;
  bool is_contiguous() const;
  Device device() const { return storage->device; }
  size_t element_size() const { return dtype_size(dtype); }
  void* data() const { return static_cast<char*>(storage->data) + offset * int64_t(element_size()); }
  template <typename T> T* data_as() const { return static_cast<T*>(data()); }
};

using TensorPtr = std::shared_ptr<TensorImpl>;

// Row-major strides for a shape.
Shape contiguous_strides(const Shape& shape);
int64_t shape_numel(const Shape& shape);
// Validates sizes (non-negative, at most kMaxDims dims, numel fits) for `op`.
void check_shape(const Shape& shape, const char* op);

// A new, uninitialised, contiguous tensor.
TensorPtr empty(const Shape& shape, DType dtype, Device device);
// A view sharing t's storage.
TensorPtr make_view(const TensorPtr& t, Shape shape, Shape strides, int64_t offset);

// Same device for every tensor of an op, else ERR_DEVICE naming the op.
void check_same_device(const char* op, const TensorPtr& a, const TensorPtr& b);
void check_same_dtype(const char* op, const TensorPtr& a, const TensorPtr& b);

// Live-object counters behind ignis.memory().
struct MemoryCounters {
  std::atomic<int64_t> live_tensors{0};
  std::atomic<int64_t> live_storages{0};
  std::atomic<int64_t> live_bytes[2]{};  // per DeviceType
  // The highest live_bytes since the start or the last reset_peak_bytes(), per DeviceType.
  std::atomic<int64_t> peak_bytes[2]{};
  // Bytes allocated minus freed since the N-API layer last told V8 (AdjustExternalMemory).
  std::atomic<int64_t> unreported_bytes{0};
};
MemoryCounters& memory_counters();
// Sets each device's peak to the bytes live now.
void reset_peak_bytes();

}  // namespace ignis

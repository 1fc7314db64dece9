#include "core/tensor.h"

#include <limits>
#include "core/backend.h"

namespace ignis {

MemoryCounters& memory_counters() {
  static MemoryCounters counters;
  return counters;
}

void reset_peak_bytes() {
  auto& c = memory_counters();
  for (int d = 0; d < 2; d++) c.peak_bytes[d] = c.live_bytes[d].load();
}

Storage::Storage(Device device, size_t nbytes) : device(device), nbytes(nbytes), data(nullptr) {
  data = backend(device).allocate(device, nbytes);
  auto& c = memory_counters();
  c.live_storages++;
  const int64_t live = c.live_bytes[int(device.type)] += int64_t(nbytes);
  auto& peak = c.peak_bytes[int(device.type)];
  for (int64_t seen = peak.load(); live > seen && !peak.compare_exchange_weak(seen, live);) {
  }
  if (device.is_cpu()) c.unreported_bytes += int64_t(nbytes);  // V8 hears of host memory only
}

Storage::~Storage() {
  backend(device).deallocate(device, data, nbytes);
  auto& c = memory_counters();
  c.live_storages--;
  c.live_bytes[int(device.type)] -= int64_t(nbytes);
  if (device.is_cpu()) c.unreported_bytes -= int64_t(nbytes);
}

TensorImpl::TensorImpl(std::shared_ptr<Storage> storage, DType dtype, Shape shape, Shape strides, int64_t offset)
    : storage(std::move(storage)), dtype(dtype), shape(std::move(shape)), strides(std::move(strides)), offset(offset) {
  memory_counters().live_tensors++;
}

TensorImpl::~TensorImpl() { memory_counters().live_tensors--; }

int64_t TensorImpl::numel() const { return shape_numel(shape); }

bool TensorImpl::is_contiguous() const {
  int64_t expected = 1;
  for (int i = ndim() - 1; i >= 0; i--) {
    if (shape[i] == 1) continue;  // the stride of a size-1 dim never matters
    if (strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (int i = int(shape.size()) - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i] > 0 ? shape[i] : 1;
  }
  return strides;
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void check_shape(const Shape& shape, const char* op) {
  if (shape.size() > size_t(kMaxDims)) fail(ERR_SHAPE, op, ": at most ", kMaxDims, " dims are supported, got ", shape.size());
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail(ERR_ARG, op, ": negative size in shape ", shape_str(shape));
    if (d > 0 && n > std::numeric_limits<int64_t>::max() / 16 / d) fail(ERR_ARG, op, ": shape ", shape_str(shape), " is too large");
    n *= d;
  }
}

TensorPtr empty(const Shape& shape, DType dtype, Device device) {
  check_shape(shape, "empty");
  auto storage = std::make_shared<Storage>(device, size_t(shape_numel(shape)) * dtype_size(dtype));
  return std::make_shared<TensorImpl>(std::move(storage), dtype, shape, contiguous_strides(shape), 0);
}

TensorPtr make_view(const TensorPtr& t, Shape shape, Shape strides, int64_t offset) {
  return std::make_shared<TensorImpl>(t->storage, t->dtype, std::move(shape), std::move(strides), offset);
}

void check_same_device(const char* op, const TensorPtr& a, const TensorPtr& b) {
  if (a->device() != b->device())
    fail(ERR_DEVICE, op, ": expected tensors on the same device, got ", a->device().str(), " and ", b->device().str());
}

void check_same_dtype(const char* op, const TensorPtr& a, const TensorPtr& b) {
  if (a->dtype != b->dtype)
    fail(ERR_DTYPE, op, ": expected tensors of the same dtype, got ", dtype_name(a->dtype), " and ", dtype_name(b->dtype));
}

}  // namespace ignis

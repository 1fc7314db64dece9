// CUDA kernels of copies and fills, with the contracts of cpu/copy.h.
#pragma once
#include "core/tensor.h"

namespace ignis::cuda {

// dst = src converted to dst's dtype, src broadcast to dst's shape; any strides on both sides.
void copy(const TensorPtr& dst, const TensorPtr& src);
void fill(const TensorPtr& dst, double value);

}  // namespace ignis::cuda

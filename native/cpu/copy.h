#pragma once
#include "core/tensor.h"

namespace ignis::cpu {

// dst = src converted to dst's dtype; src is broadcast to dst's shape (checked by the caller
// through broadcast_strides). Any strides on both sides.
void copy(const TensorPtr& dst, const TensorPtr& src);
void fill(const TensorPtr& dst, double value);

}  // namespace ignis::cpu

// softmax and log-softmax along one dim: the device-neutral entry point.
#pragma once
#include "core/tensor.h"

namespace ignis {

// softmax (or log-softmax when `log`) of a float tensor along `dim` (negatives count from the
// end). The output keeps the memory order of x's dims (contiguous when x is).
TensorPtr softmax(const TensorPtr& x, int64_t dim, bool log);

}  // namespace ignis

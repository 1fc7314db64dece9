// softmax and log-softmax along one dim: the device-neutral entry point.
#pragma once
#include "core/tensor.h"

namespace ignis {

// softmax (or log-softmax when `log`) of a float tensor along `dim` (negatives count from the
// end). When the input is contiguous along `dim`, the output is too (its dims keep the input's
// memory order); otherwise the output is contiguous.
TensorPtr softmax(const TensorPtr& x, int64_t dim, bool log);

}  // namespace ignis

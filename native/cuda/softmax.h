// CUDA kernels of softmax and log-softmax, with the contracts of cpu/softmax.h.
#pragma once
#include "core/tensor.h"

namespace ignis::cuda {

void softmax_rows(const TensorPtr& out, const TensorPtr& x, bool log);
void softmax_columns(const TensorPtr& out, const TensorPtr& x, int64_t dim, bool log);

}  // namespace ignis::cuda

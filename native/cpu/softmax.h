#pragma once
#include "core/tensor.h"

namespace ignis::cpu {

// out = softmax (log-softmax when `log`) of x along its last dim, which has stride 1 in x (or
// size 1); out is contiguous and of x's shape. Written, not accumulated.
void softmax_rows(const TensorPtr& out, const TensorPtr& x, bool log);
// out = softmax along `dim` of a contiguous x, vectorised across the dims after `dim`; out is
// contiguous and of x's shape. Written, not accumulated.
void softmax_columns(const TensorPtr& out, const TensorPtr& x, int64_t dim, bool log);

}  // namespace ignis::cpu

#pragma once
#include "core/tensor.h"
#include "kernels/elementwise.h"

namespace ignis::cpu {

// out = a op b (written, not accumulated); out has the broadcast shape, fresh and contiguous.
void binary(BinaryOp op, const TensorPtr& out, const TensorPtr& a, const TensorPtr& b);
// out = a op s (or s op a when reversed).
void binary_scalar(BinaryOp op, const TensorPtr& out, const TensorPtr& a, double s, bool reversed);

}  // namespace ignis::cpu

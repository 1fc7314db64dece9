#pragma once
#include "core/tensor.h"

namespace ignis::cpu {

// Cross-entropy forward with class-index targets, one row of C classes per target element:
// logits [N, C, d1, ...] or [C] (any strides), target contiguous with in-range values.
// Written (=), for every row r: loss[r] and logsumexp[r], contiguous, float32 (float64 for
// float64 logits); ignored rows get 0 in both. logsumexp is what a fused backward needs:
// dloss/dx = exp(x - lse) - (1 - eps) * onehot(target) - eps / C.
void cross_entropy_rows(const TensorPtr& loss, const TensorPtr& logsumexp, const TensorPtr& logits,
                        const TensorPtr& target, int64_t ignore_index, double label_smoothing);
// The fused cross-entropy backward: for every row r of target (rows laid out as in
// cross_entropy_rows), dlogits[r, c] = s * (exp(logits[r, c] - logsumexp[r]) - (1 - eps) * [c ==
// target[r]] - eps / C) with s = row_scale[r] (contiguous, logsumexp's dtype) or `scale` when
// row_scale is null; 0 for ignored targets. dlogits: contiguous, logits' shape and dtype, written (=).
void cross_entropy_backward(const TensorPtr& dlogits, const TensorPtr& logits, const TensorPtr& target,
                            const TensorPtr& logsumexp, const TensorPtr& row_scale, double scale, int64_t ignore_index,
                            double label_smoothing);
// out = (input - target)^2 (written); input and target broadcast to out's shape, one float dtype.
void squared_error(const TensorPtr& out, const TensorPtr& input, const TensorPtr& target);
// The sum of (input - target)^2 over contiguous tensors of one shape and float dtype, in double.
double sum_squared_error(const TensorPtr& input, const TensorPtr& target);
// The sum of a contiguous float32/float64 tensor, in double.
double sum(const TensorPtr& t);

}  // namespace ignis::cpu

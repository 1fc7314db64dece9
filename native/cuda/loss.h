// CUDA kernels of the losses, with the contracts of cpu/loss.h (the sum of a tensor is in cuda/reduce.h).
#pragma once
#include "core/tensor.h"

namespace ignis::cuda {

void cross_entropy_rows(const TensorPtr& loss, const TensorPtr& logsumexp, const TensorPtr& logits,
                        const TensorPtr& target, int64_t ignore_index, double label_smoothing);
void cross_entropy_backward(const TensorPtr& dlogits, const TensorPtr& logits, const TensorPtr& target,
                            const TensorPtr& logsumexp, const TensorPtr& row_scale, double scale, int64_t ignore_index,
                            double label_smoothing);
void squared_error(const TensorPtr& out, const TensorPtr& input, const TensorPtr& target);
// Waits for the stream (the sum is read back).
double sum_squared_error(const TensorPtr& input, const TensorPtr& target);

}  // namespace ignis::cuda

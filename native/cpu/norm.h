#pragma once
#include "core/tensor.h"

namespace ignis::cpu {

// x and out are [rows..., n] with stride 1 along n (x's leading dims any strides, out
// contiguous): each row of n elements is normalised. weight and bias are contiguous [n] or null;
// mean and rstd are null or contiguous, one element per row, of the accumulation dtype. All
// outputs are written (=), not accumulated.

// out = (x - mean) * rstd * weight + bias, rstd = 1 / sqrt(biased variance + eps).
void layer_norm(const TensorPtr& out, const TensorPtr& mean, const TensorPtr& rstd, const TensorPtr& x,
                const TensorPtr& weight, const TensorPtr& bias, double eps);
// out = x * rstd * weight, rstd = 1 / sqrt(mean of squares + eps).
void rms_norm(const TensorPtr& out, const TensorPtr& rstd, const TensorPtr& x, const TensorPtr& weight, double eps);

}  // namespace ignis::cpu

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

// Backward of both norms (rms_norm when mean is null): with xhat = (x - mean) * rstd and
// wg = grad * weight, dx = rstd * (wg - mean(wg) - xhat * mean(wg * xhat)) (rms_norm leaves out
// mean(wg)), dweight = sum over rows of grad * xhat, dbias = sum over rows of grad. grad and x
// are laid out as x above, dx as out; dx, dweight, dbias (contiguous [n]) may each be null. All
// written (=); the sums over rows run in fixed blocks, so they do not depend on the threads.
void norm_backward(const TensorPtr& dx, const TensorPtr& dweight, const TensorPtr& dbias, const TensorPtr& grad,
                   const TensorPtr& x, const TensorPtr& weight, const TensorPtr& mean, const TensorPtr& rstd);

}  // namespace ignis::cpu

// CUDA kernels of layer_norm and rms_norm, with the contracts of cpu/norm.h.
#pragma once
#include "core/tensor.h"

namespace ignis::cuda {

void layer_norm(const TensorPtr& out, const TensorPtr& mean, const TensorPtr& rstd, const TensorPtr& x,
                const TensorPtr& weight, const TensorPtr& bias, double eps);
void rms_norm(const TensorPtr& out, const TensorPtr& rstd, const TensorPtr& x, const TensorPtr& weight, double eps);
// dx by one group of threads per row, dweight and dbias by one group per column, or per chunk of
// a column and then per column over the chunks' sums when there are many rows (fixed trees and
// chunks: deterministic).
void norm_backward(const TensorPtr& dx, const TensorPtr& dweight, const TensorPtr& dbias, const TensorPtr& grad,
                   const TensorPtr& x, const TensorPtr& weight, const TensorPtr& mean, const TensorPtr& rstd);

}  // namespace ignis::cuda

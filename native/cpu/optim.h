#pragma once
#include "core/optim.h"

namespace ignis::cpu {

// The kernels behind core/optim.h, on arguments it has validated; every tensor of a step is
// contiguous. Parameters and optimizer state are overwritten in place (=) with their new values.
void adamw_step(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                const TensorList& exp_avg_sqs, const std::vector<int64_t>& steps, const AdamWOptions& options);
void sgd_step(const TensorList& params, const TensorList& grads, const TensorList& momentum_buffers,
              const std::vector<bool>& fresh, const SgdOptions& options);
// The norm of the elements of contiguous float tensors, taken together.
double total_norm(const TensorList& tensors, double norm_type);
// t = t * factor in place (=), any layout without broadcast dims.
void scale_in_place(const TensorList& tensors, double factor);
// norm (0-dim float32) = the norm of `contiguous` (=, the tensors' contents, contiguous); the
// tensors scaled in place (=) by max_norm / (norm + 1e-6) when that is below 1 or NaN.
void clip_by_total_norm(const TensorList& tensors, const TensorList& contiguous, double max_norm, double norm_type,
                        const TensorPtr& norm);

}  // namespace ignis::cpu

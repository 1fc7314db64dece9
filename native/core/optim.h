// Optimizer steps over many tensors in one call (multi-tensor), updating parameters and state in
// place, and the gradient-norm helpers behind clipGradNorm. Every entry validates all of its
// tensors before it writes any, so a failed call changes nothing.
#pragma once
#include <vector>
#include "core/tensor.h"

namespace ignis {

using TensorList = std::vector<TensorPtr>;

// The dtype of a parameter's optimizer state: float32 for bfloat16/float16 params, else the param's.
DType optimizer_state_dtype(DType param);

struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
  // >= 0 while a CUDA graph captures the step: each replay reads the lr from this per-replay
  // scalar of the graph (cuda/graph.h), so a schedule can change it between replays.
  int lr_slot = -1;
};

// One torch.optim.AdamW step for every k: params[k] (contiguous float tensors), its exp_avgs[k]
// and exp_avg_sqs[k] (contiguous, of the param's shape and optimizer_state_dtype) updated in place
// from grads[k] (the param's shape and dtype, any layout); steps[k] >= 1 is the param's step count
// after this step (bias correction).
void adamw_step(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                const TensorList& exp_avg_sqs, const std::vector<int64_t>& steps, const AdamWOptions& options);

struct SgdOptions {
  double lr = 1e-3, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  int lr_slot = -1;  // as AdamWOptions::lr_slot
};

// One torch.optim.SGD step for every k: params[k] updated in place from grads[k]. With momentum,
// momentum_buffers[k] (contiguous, the param's shape, optimizer_state_dtype) is updated in place;
// fresh[k] marks a buffer on its first step (its contents are ignored and overwritten). Without
// momentum, momentum_buffers and fresh are empty.
void sgd_step(const TensorList& params, const TensorList& grads, const TensorList& momentum_buffers,
              const std::vector<bool>& fresh, const SgdOptions& options);

// The norm of all elements of all tensors together (float tensors, any layout): the p-norm for
// norm_type > 0, the largest absolute value for infinity; NaN when any element is NaN. Summed in
// double over fixed blocks, so the result does not depend on the number of threads.
double total_norm(const TensorList& tensors, double norm_type);

// t *= factor for every tensor, in place (float tensors, any layout without broadcast dims).
void scale_in_place(const TensorList& tensors, double factor);

// clipGradNorm without the host reading the norm (so that a CUDA graph can capture it): the
// tensors (as for total_norm and scale_in_place, on one device) are scaled in place by
// max_norm / (norm + 1e-6) when that is below 1 or NaN; returns the norm before clipping as a
// 0-dim float32 tensor on their device.
TensorPtr clip_by_total_norm(const TensorList& tensors, double max_norm, double norm_type);

}  // namespace ignis

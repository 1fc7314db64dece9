// CUDA kernels of the optimizers and gradient clipping, with the contracts of cpu/optim.h.
#pragma once
#include "core/optim.h"

namespace ignis::cuda {

// Multi-tensor: one launch updates up to a few dozen tensors of one dtype (their pointers and
// sizes go in the kernel's arguments, so a captured CUDA graph replays them as they are). Under
// graph capture the AdamW step counts are read on the device from the graph's replay counter,
// so each replay applies the next step's bias corrections.
void adamw_step(const TensorList& params, const TensorList& grads, const TensorList& exp_avgs,
                const TensorList& exp_avg_sqs, const std::vector<int64_t>& steps, const AdamWOptions& options);
void sgd_step(const TensorList& params, const TensorList& grads, const TensorList& momentum_buffers,
              const std::vector<bool>& fresh, const SgdOptions& options);
// Block partials in double, combined in a fixed order on the device, then read back (a host
// sync: not allowed while a CUDA graph is captured).
double total_norm(const TensorList& tensors, double norm_type);
void scale_in_place(const TensorList& tensors, double factor);
// As total_norm then scale_in_place, with the norm and the factor kept on the device.
void clip_by_total_norm(const TensorList& tensors, const TensorList& contiguous, double max_norm, double norm_type,
                        const TensorPtr& norm);

}  // namespace ignis::cuda

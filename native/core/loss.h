// Losses: cross-entropy with class-index targets (fused log-softmax + NLL) and mean squared error.
#pragma once
#include "core/tensor.h"
#include "kernels/loss.h"

namespace ignis {

struct CrossEntropyOptions {
  int64_t ignore_index = -100;
  Reduction reduction = Reduction::Mean;
  double label_smoothing = 0;
};

// The per-row forward, kept for a fused backward: loss and logsumexp of target's shape
// (float32, float64 for float64 logits; 0 at ignored targets) and the number of targets counted.
struct CrossEntropyRows {
  TensorPtr loss;
  TensorPtr logsumexp;
  int64_t counted;
  // While a CUDA graph is captured: counted is -1 and this holds it on the device (int64, 0-dim;
  // see IndexScan); else null.
  TensorPtr counted_on_device;
};
CrossEntropyRows cross_entropy_rows(const TensorPtr& logits, const TensorPtr& target, int64_t ignore_index,
                                    double label_smoothing);

// PyTorch's F.cross_entropy with class-index targets: logits [N, C] with target [N], [C] with a
// 0-dim target, or [N, C, d1, ...] with target [N, d1, ...]. 'mean' divides by the number of
// targets that are not ignore_index (NaN when there are none).
// When `rows` is given, it receives the per-row forward for cross_entropy_backward.
TensorPtr cross_entropy(const TensorPtr& logits, const TensorPtr& target, const CrossEntropyOptions& options,
                        CrossEntropyRows* rows = nullptr);
// The gradient of cross_entropy with respect to the logits (their shape and dtype), fused:
// (softmax - (1 - eps) * onehot(target) - eps / C) scaled by `grad` (0-dim for 'mean' and 'sum',
// target's shape for 'none'; divided by `counted` for 'mean'), 0 in the rows of ignored targets.
// `logsumexp`, `counted` and `counted_on_device` (may be null) come from the forward's
// CrossEntropyRows. While a CUDA graph is captured (or with counted_on_device) the scale stays
// on the device: nothing is read back.
TensorPtr cross_entropy_backward(const TensorPtr& grad, const TensorPtr& logits, const TensorPtr& target,
                                 const TensorPtr& logsumexp, const CrossEntropyOptions& options, int64_t counted,
                                 const TensorPtr& counted_on_device = nullptr);
// (input - target)^2, broadcast, in `dtype` (a float dtype both are converted to), then reduced.
TensorPtr mse_loss(const TensorPtr& input, const TensorPtr& target, Reduction reduction, DType dtype);

Reduction reduction_from_int(int64_t v);

}  // namespace ignis

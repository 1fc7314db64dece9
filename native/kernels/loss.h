// Per-element math of the losses, shared by the CPU loops and the CUDA kernels.
// 16-bit floats arrive here already widened to float (see acc_t).
#pragma once
#include "kernels/common.h"

namespace ignis {

// The numeric values are part of the JS <-> C++ contract (lib/ops/loss.ts).
enum class Reduction : int { None = 0, Mean, Sum };

template <typename A>
IGNIS_HD A squared_difference(A x, A y) {
  A d = x - y;
  return d * d;
}

// Cross-entropy of one row of logits x with PyTorch's label smoothing (the target distribution
// puts 1 - eps + eps / C on the target class and eps / C on every other):
// (1 - eps) * (lse - x[target]) + eps * (lse - mean(x)), from values shifted by the row max m:
// log_sum = log(sum(exp(x - m))), target = x[target] - m, mean = mean(x - m). Shifting keeps the
// loss exact when the logits are large (lse - x[target] would lose it to rounding). The smoothing
// term is left out when eps is 0, so that -inf logits (masked classes) do not make the loss NaN.
template <typename A>
IGNIS_HD A cross_entropy_shifted(A log_sum, A target, A mean, A eps) {
  A nll = log_sum - target;
  if (eps == A(0)) return nll;
  return (A(1) - eps) * nll + eps * (log_sum - mean);
}

}  // namespace ignis

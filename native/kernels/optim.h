// Per-element math of the optimizers (PyTorch's torch.optim.AdamW and torch.optim.SGD), shared by
// the CPU loops and the CUDA kernels. A is the arithmetic type: float for float32, bfloat16 and
// float16 parameters (whose state is float32), double for float64.
#pragma once
#include <cmath>
#include <cstdint>
#include "kernels/common.h"

namespace ignis {

// The scalars of one AdamW step of one tensor (its step count sets the bias corrections).
template <typename A>
struct AdamWScalars {
  A beta1, one_minus_beta1;
  A beta2, one_minus_beta2;
  A eps;
  A decay;                  // 1 - lr * weight_decay: decoupled weight decay scales the param first
  A step_size;              // lr / (1 - beta1^step)
  A bias_correction2_sqrt;  // sqrt(1 - beta2^step)
};

// Computed in double, as PyTorch computes them in Python, then rounded to A once (on the host,
// or by the CUDA kernel when the step count is on the device).
template <typename A>
IGNIS_HD AdamWScalars<A> adamw_scalars(double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step) {
  const double bias_correction1 = 1.0 - std::pow(beta1, double(step));
  const double bias_correction2 = 1.0 - std::pow(beta2, double(step));
  return {A(beta1), A(1.0 - beta1), A(beta2), A(1.0 - beta2), A(eps), A(1.0 - lr * weight_decay),
          A(lr / bias_correction1), A(std::sqrt(bias_correction2))};
}

// One element: the param p, its exp_avg m and exp_avg_sq v updated in place from the gradient g.
template <typename A>
IGNIS_HD void adamw_update(A& p, A g, A& m, A& v, const AdamWScalars<A>& s) {
  p *= s.decay;
  m += s.one_minus_beta1 * (g - m);
  v = s.beta2 * v + s.one_minus_beta2 * g * g;
  p -= s.step_size * m / (std::sqrt(v) / s.bias_correction2_sqrt + s.eps);
}

template <typename A>
struct SgdScalars {
  A lr, momentum, one_minus_dampening, weight_decay;
  bool nesterov;
};

// SGD's direction before momentum: the gradient plus L2 weight decay.
template <typename A>
IGNIS_HD A sgd_direction(A p, A g, const SgdScalars<A>& s) {
  return s.weight_decay != A(0) ? g + s.weight_decay * p : g;
}

// One element without momentum.
template <typename A>
IGNIS_HD void sgd_update(A& p, A g, const SgdScalars<A>& s) {
  p -= s.lr * sgd_direction(p, g, s);
}

// One element with momentum: `fresh` on the buffer's first step, which takes the direction
// itself (no dampening), as PyTorch's first step does.
template <typename A>
IGNIS_HD void sgd_momentum_update(A& p, A g, A& buf, bool fresh, const SgdScalars<A>& s) {
  A d = sgd_direction(p, g, s);
  buf = fresh ? d : s.momentum * buf + s.one_minus_dampening * d;
  p -= s.lr * (s.nesterov ? d + s.momentum * buf : buf);
}

}  // namespace ignis

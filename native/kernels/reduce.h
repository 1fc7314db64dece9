// Per-element math of the reductions (also used by softmax and the norms), shared by the CPU
// loops and the CUDA kernels. 16-bit floats arrive here already widened to float (see acc_t).
#pragma once
#include <cmath>
#include <cstdint>
#include "kernels/fast_exp.h"
#include "kernels/half.h"

namespace ignis {

// The numeric values are part of the JS <-> C++ contract (lib/ops/reduce.ts).
enum class ReduceOp : int { Sum = 0, Mean, Var, LogSumExp, Max, Min, ArgMax, ArgMin };

// max/min that propagate NaN, as PyTorch's reductions do. (`a != a` is false for integers and
// bool, where this is the plain max.)
template <typename T>
IGNIS_HD T max_nan(T a, T b) {
  return (a > b || a != a) ? a : b;
}
template <typename T>
IGNIS_HD T min_nan(T a, T b) {
  return (a < b || a != a) ? a : b;
}

// exp in the accumulation type: the vectorisable one for float, libm's for double.
IGNIS_HD float exp_acc(float x) { return fast_exp(x); }
IGNIS_HD double exp_acc(double x) { return std::exp(x); }

// The shift that keeps exp(x - shift) in range for a row whose maximum is m: m itself, or 0 when
// m is infinite (all -inf gives exp(-inf) = 0 and log(0) = -inf; +inf gives inf) or NaN.
template <typename A>
IGNIS_HD A logsumexp_shift(A m) {
  return std::isfinite(m) ? m : A(0);
}

// log(sum of exp(x - shift)) + shift.
template <typename A>
IGNIS_HD A logsumexp_finish(A sum_exp, A shift) {
  return std::log(sum_exp) + shift;
}

}  // namespace ignis
